#!/usr/bin/env python3
"""Resemblyzer's speaker encoder (PyPI `Resemblyzer`, `resemblyzer/pretrained.pt`) as ONNX.

usage: resemblyzer_to_onnx.py --pt pretrained.pt --out speaker/encoder.onnx [--check]

The checkpoint is a GE2E speaker encoder (Wan et al. 2018, trained by Resemblyzer's authors
on LibriSpeech, VoxCeleb 1 and 2): a 3-layer LSTM (40 -> 256) over 40-channel mel power
frames (25 ms window, 10 ms hop, 16 kHz), its last layer's final hidden state through a
linear layer (256 -> 256) and ReLU, L2-normalised. Resemblyzer embeds 1.6 s pieces (160
frames) of an utterance.

The file is PyTorch's legacy (pre-zip) serialization; it is read here without torch: five
pickles (magic, protocol, system info, the object with persistent ids for its storages, the
storage keys) followed by each storage's element count and raw little-endian bytes.

The graph, opset 18:
  input  mels       float32 [batch, frames, 40]   mel power (librosa.feature.melspectrogram
                                                  defaults: Slaney filters and area norm, not log)
  output embedding  float32 [batch, 256]          L2-normalised, every component >= 0

PyTorch orders an LSTM's gates i, f, g, o; ONNX's LSTM wants i, o, f, c: the blocks are
reordered. With --check the graph is compared against a NumPy LSTM on random input.
"""

from __future__ import annotations

import argparse
import io
import pickle
import struct
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HIDDEN = 256
LAYERS = 3
N_MELS = 40

_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
}


class _Storage:
    def __init__(self, dtype: np.dtype):
        self.dtype = dtype
        self.data: np.ndarray | None = None


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def array(self) -> np.ndarray:
        base = self.storage.data
        item = base.itemsize
        view = np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.size, strides=tuple(s * item for s in self.stride)
        )
        return np.array(view, dtype=np.float32)


def _rebuild_tensor(storage, offset, size, stride, *_rest):
    return _Tensor(storage, offset, size, stride)


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, storages: dict):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            import collections

            return collections.OrderedDict
        raise pickle.UnpicklingError(f"unexpected class {module}.{name} in the checkpoint")

    def persistent_load(self, pid):
        kind, storage_type, key, _location, _numel, view = pid[:6]
        if kind != "storage" or view is not None:
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(np.dtype(_DTYPES[storage_type]).newbyteorder("<"))
        return self.storages[key]


def load_legacy_checkpoint(path: str) -> dict:
    """The checkpoint's state dict as NumPy float32 arrays."""
    with open(path, "rb") as f:
        raw = f.read()
    f = io.BytesIO(raw)
    magic = pickle.load(f)
    if magic != 0x1950A86A20F9469CFC6C:
        raise SystemExit(f"{path}: not a legacy PyTorch checkpoint (magic {magic!r})")
    pickle.load(f)  # protocol version
    pickle.load(f)  # system info
    storages: dict = {}
    obj = _Unpickler(f, storages).load()
    keys = pickle.load(f)
    for key in keys:
        (count,) = struct.unpack("<q", f.read(8))
        st = storages[key]
        nbytes = count * st.dtype.itemsize
        st.data = np.frombuffer(f.read(nbytes), dtype=st.dtype, count=count)
    state = obj["model_state"] if isinstance(obj, dict) and "model_state" in obj else obj
    return {k: v.array() for k, v in state.items() if isinstance(v, _Tensor)}


def _gates_to_onnx(w: np.ndarray) -> np.ndarray:
    i, f, g, o = np.split(w, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def build_graph(state: dict) -> onnx.ModelProto:
    inits, nodes = [], []

    def const(name: str, value: np.ndarray):
        if not any(i.name == name for i in inits):
            inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    nodes.append(helper.make_node("Transpose", ["mels"], ["x0"], perm=[1, 0, 2]))  # [T, B, 40]
    x = "x0"
    for layer in range(LAYERS):
        w = _gates_to_onnx(state[f"lstm.weight_ih_l{layer}"])[None]
        r = _gates_to_onnx(state[f"lstm.weight_hh_l{layer}"])[None]
        b = np.concatenate(
            [_gates_to_onnx(state[f"lstm.bias_ih_l{layer}"]), _gates_to_onnx(state[f"lstm.bias_hh_l{layer}"])]
        )[None]
        y, y_h = f"y{layer}", f"h{layer}"
        nodes.append(
            helper.make_node(
                "LSTM",
                [x, const(f"W{layer}", w), const(f"R{layer}", r), const(f"B{layer}", b)],
                [y, y_h],
                hidden_size=HIDDEN,
            )
        )
        if layer + 1 < LAYERS:  # Y is [T, 1, B, H]: drop the direction axis
            nodes.append(helper.make_node("Squeeze", [y, const("axis1", np.array([1], np.int64))], [f"x{layer + 1}"]))
            x = f"x{layer + 1}"
    last = f"h{LAYERS - 1}"  # [1, B, H]
    nodes.append(helper.make_node("Squeeze", [last, const("axis0", np.array([0], np.int64))], ["hidden"]))
    nodes.append(helper.make_node("MatMul", ["hidden", const("linear_wt", state["linear.weight"].T)], ["lin"]))
    nodes.append(helper.make_node("Add", ["lin", const("linear_b", state["linear.bias"])], ["lin_b"]))
    nodes.append(helper.make_node("Relu", ["lin_b"], ["raw"]))
    nodes.append(helper.make_node("ReduceL2", ["raw", const("axis_last", np.array([1], np.int64))], ["norm"], keepdims=1))
    nodes.append(helper.make_node("Max", ["norm", const("eps", np.array([1e-12], np.float32))], ["norm_safe"]))
    nodes.append(helper.make_node("Div", ["raw", "norm_safe"], ["embedding"]))

    graph = helper.make_graph(
        nodes,
        "resemblyzer_speaker_encoder",
        [helper.make_tensor_value_info("mels", TensorProto.FLOAT, ["batch", "frames", N_MELS])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", HIDDEN])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="voxpersona")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def reference(state: dict, mels: np.ndarray) -> np.ndarray:
    """The checkpoint's forward pass in NumPy, PyTorch's gate order."""
    x = mels.astype(np.float64)
    batch = x.shape[0]
    for layer in range(LAYERS):
        wi, wh = state[f"lstm.weight_ih_l{layer}"], state[f"lstm.weight_hh_l{layer}"]
        bias = state[f"lstm.bias_ih_l{layer}"] + state[f"lstm.bias_hh_l{layer}"]
        h = np.zeros((batch, HIDDEN))
        c = np.zeros((batch, HIDDEN))
        out = []
        for t in range(x.shape[1]):
            g = x[:, t] @ wi.T + h @ wh.T + bias
            i, f, gg, o = np.split(g, 4, axis=1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(gg)
            h = _sigmoid(o) * np.tanh(c)
            out.append(h)
        x = np.stack(out, axis=1)
    raw = np.maximum(h @ state["linear.weight"].T + state["linear.bias"], 0.0)
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pt", required=True, help="resemblyzer/pretrained.pt from the wheel")
    ap.add_argument("--out", required=True, help="where to write the ONNX graph")
    ap.add_argument("--check", action="store_true", help="compare with a NumPy forward pass")
    args = ap.parse_args()

    state = load_legacy_checkpoint(args.pt)
    for layer in range(LAYERS):
        shape = state[f"lstm.weight_ih_l{layer}"].shape
        want = (4 * HIDDEN, N_MELS if layer == 0 else HIDDEN)
        if shape != want:
            raise SystemExit(f"lstm.weight_ih_l{layer} is {shape}, expected {want}")
    model = build_graph(state)
    onnx.save(model, args.out)
    print(f"wrote {args.out}", file=sys.stderr)

    if args.check:
        import onnxruntime as ort

        rng = np.random.default_rng(7)
        mels = (rng.random((3, 160, N_MELS)) ** 4 * 5).astype(np.float32)
        sess = ort.InferenceSession(args.out, providers=["CPUExecutionProvider"])
        got = sess.run(["embedding"], {"mels": mels})[0]
        want = reference(state, mels)
        err = float(np.abs(got - want).max())
        print(f"max |onnx - numpy| = {err:.2e}", file=sys.stderr)
        if err > 1e-4:
            raise SystemExit("the ONNX graph does not match the NumPy forward pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
