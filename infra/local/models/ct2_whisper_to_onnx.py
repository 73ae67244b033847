#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model (faster-whisper layout) to ONNX for ONNX Runtime.

Input: a CTranslate2 ``model.bin`` (possibly split into parts that are concatenated in order),
its ``config.json`` and ``tokenizer.json``.

Output directory:
  encoder.int8.onnx   log-mel -> cross-attention K/V for every decoder layer
  decoder.int8.onnx   one decoding step with a self-attention KV cache
  mel.onnx            optional front end: 16 kHz waveform -> log-mel (exact Whisper recipe)
  model.json          dimensions, token ids, suppress lists, I/O names
  config.json, tokenizer.json   copied from the CTranslate2 model
  (encoder.onnx, decoder.onnx   fp32 graphs, only with --keep-fp32)

Only numpy, onnx and onnxruntime (for quantization) are needed. The graphs use two
ONNX Runtime contrib ops (com.microsoft FusedMatMul and Gelu), so they are meant for
ONNX Runtime. See README.md next to this file for the exact I/O contract.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import shutil
import struct
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
MS_DOMAIN = "com.microsoft"
FORMAT_VERSION = 1  # bump when the I/O contract of the graphs changes
# fp32 graphs above this many bytes of weights are saved with external data (protobuf's 2 GB limit)
LARGE = int(os.environ.get("VOX_CT2_EXTERNAL_DATA_BYTES", "1800000000"))

# ---------------------------------------------------------------------------------------
# CTranslate2 model.bin reader
# ---------------------------------------------------------------------------------------

# CTranslate2 DataType enum values as written in binary version >= 4.
_CT2_DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: "bfloat16",
}


class _Concat:
    """Read-only byte view over one or more files concatenated in order."""

    def __init__(self, paths):
        self._maps = []
        if len(paths) == 1:
            f = open(paths[0], "rb")
            self.buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            self._maps.append((f, self.buf))
        else:
            parts = []
            for p in paths:
                with open(p, "rb") as f:
                    parts.append(f.read())
            self.buf = b"".join(parts)

    def close(self):
        for f, m in self._maps:
            m.close()
            f.close()


class CT2Model:
    """Variables of a CTranslate2 model.bin as float32 numpy arrays (decoded lazily)."""

    def __init__(self, paths):
        self._src = _Concat(paths)
        buf = self._src.buf
        self._buf = buf
        self._off = 0
        self.binary_version = self._u32()
        if self.binary_version < 4:
            raise ValueError(f"unsupported CTranslate2 binary version {self.binary_version} "
                             "(re-convert the model with CTranslate2 >= 3)")
        if self.binary_version != 6:
            print(f"warning: CTranslate2 binary version {self.binary_version}; only version 6 "
                  "(CTranslate2 >= 3, every faster-whisper model) was tested; trying anyway", file=sys.stderr)
        self.spec = self._str()
        self.revision = self._u32()
        n = self._u32()
        self.raw = {}  # name -> (dtype, shape, offset, nbytes)
        for _ in range(n):
            name = self._str()
            rank = self._u8()
            shape = tuple(self._u32() for _ in range(rank))
            dt = _CT2_DTYPES.get(self._u8())
            if dt is None:
                raise ValueError(f"unknown dtype for variable {name}")
            nbytes = self._u32()
            self.raw[name] = (dt, shape, self._off, nbytes)
            self._off += nbytes
        self.aliases = {}
        if self._off < len(buf):
            na = self._u32()
            for _ in range(na):
                alias = self._str()
                target = self._str()
                self.aliases[alias] = target
        if self._off != len(buf):
            print(f"warning: {len(buf) - self._off} trailing bytes after the model variables",
                  file=sys.stderr)

    # -- primitive readers
    def _u8(self):
        v = self._buf[self._off]
        self._off += 1
        return v

    def _u32(self):
        (v,) = struct.unpack_from("<I", self._buf, self._off)
        self._off += 4
        return v

    def _str(self):
        (n,) = struct.unpack_from("<H", self._buf, self._off)
        self._off += 2
        s = bytes(self._buf[self._off:self._off + n])
        self._off += n
        return s.rstrip(b"\0").decode("utf-8")

    # -- variable access
    def has(self, name):
        return name in self.raw or name in self.aliases

    def _resolve(self, name):
        seen = 0
        while name in self.aliases:
            name = self.aliases[name]
            seen += 1
            if seen > 16:
                raise ValueError("alias loop")
        return name

    def array(self, name):
        name = self._resolve(name)
        dt, shape, off, nbytes = self.raw[name]
        if dt == "bfloat16":
            u16 = np.frombuffer(self._buf, dtype="<u2", count=nbytes // 2, offset=off)
            return (u16.astype(np.uint32) << 16).view(np.float32).reshape(shape)
        return np.frombuffer(self._buf, dtype=dt, count=nbytes // dt.itemsize, offset=off).reshape(shape)

    def scalar(self, name, default=None):
        if not self.has(name):
            return default
        return self.array(name).reshape(-1)[0].item()

    def f32(self, name):
        """Variable as float32, dequantizing CTranslate2 int8/int16 weights if needed."""
        a = self.array(name)
        if a.dtype in (np.int8, np.int16):
            scale_name = name + "_scale"
            if name.endswith("/weight"):
                scale_name = name[: -len("weight")] + "weight_scale"
            if not self.has(scale_name):
                raise ValueError(f"{name} is quantized but {scale_name} is missing")
            scale = self.array(scale_name).astype(np.float32)
            if scale.ndim == 1 and a.ndim == 2:
                scale = scale[:, None]
            return (a.astype(np.float32) / scale).astype(np.float32)
        return np.ascontiguousarray(a, dtype=np.float32)

    def close(self):
        self._buf = None
        self._src.close()


# ---------------------------------------------------------------------------------------
# Graph building helpers
# ---------------------------------------------------------------------------------------


class G:
    """Tiny graph builder around onnx.helper."""

    def __init__(self, name):
        self.name = name
        self.nodes = []
        self.inits = []
        self._n = 0
        self._const_cache = {}

    def uniq(self, base):
        self._n += 1
        return f"{base}_{self._n}"

    def init(self, name, arr):
        arr = np.asarray(arr)
        if not arr.flags.c_contiguous:
            arr = arr.copy(order="C")  # (np.ascontiguousarray would turn a scalar into [1])
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def const_i64(self, values):
        key = ("i64", tuple(values) if isinstance(values, (list, tuple)) else values)
        if key not in self._const_cache:
            arr = np.array(values, dtype=np.int64)
            self._const_cache[key] = self.init(self.uniq("c_i64"), arr)
        return self._const_cache[key]

    def const_f32(self, value):
        key = ("f32", value)
        if key not in self._const_cache:
            self._const_cache[key] = self.init(self.uniq("c_f32"), np.array(value, dtype=np.float32))
        return self._const_cache[key]

    def op(self, op_type, inputs, n_out=1, domain=None, name=None, outputs=None, **attrs):
        name = name or self.uniq(op_type)
        if outputs is None:
            outputs = [f"{name}_out{i}" for i in range(n_out)]
        node = helper.make_node(op_type, inputs, outputs, name=name, domain=domain, **attrs)
        self.nodes.append(node)
        return outputs[0] if len(outputs) == 1 else outputs

    # -- composite ops
    def linear(self, x, w, b, prefix):
        """x @ w.T + b with w in [out, in] layout (as CTranslate2/torch)."""
        wn = self.init(prefix + ".weight", np.ascontiguousarray(w.T.astype(np.float32)))
        y = self.op("MatMul", [x, wn], name=prefix + ".matmul")
        if b is not None:
            bn = self.init(prefix + ".bias", b.astype(np.float32))
            y = self.op("Add", [y, bn], name=prefix + ".add")
        return y

    def layer_norm(self, x, gamma, beta, prefix, eps=1e-5):
        g = self.init(prefix + ".gamma", gamma.astype(np.float32))
        b = self.init(prefix + ".beta", beta.astype(np.float32))
        return self.op("LayerNormalization", [x, g, b], name=prefix, axis=-1, epsilon=eps)

    def gelu(self, x):
        return self.op("Gelu", [x], domain=MS_DOMAIN)

    def split_heads(self, x, n_heads, head_dim):
        """[B, S, H*Dh] -> [B, H, S, Dh]"""
        r = self.op("Reshape", [x, self.const_i64([0, 0, n_heads, head_dim])])
        return self.op("Transpose", [r], perm=[0, 2, 1, 3])

    def merge_heads(self, x, d_model):
        """[B, H, S, Dh] -> [B, S, H*Dh]"""
        t = self.op("Transpose", [x], perm=[0, 2, 1, 3])
        return self.op("Reshape", [t, self.const_i64([0, 0, d_model])])

    def matmul_act(self, a, b, trans_b=False):
        """Activation x activation product; FusedMatMul so the quantizer leaves it in fp32
        and the transpose of B costs no copy."""
        return self.op("FusedMatMul", [a, b], domain=MS_DOMAIN, transA=0, transB=1 if trans_b else 0,
                       alpha=1.0)


def _vi(name, elem, shape):
    return helper.make_tensor_value_info(name, elem, shape)


def _make_model(g, inputs, outputs, doc):
    graph = helper.make_graph(g.nodes, g.name, inputs, outputs, initializer=g.inits)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)],
        producer_name="voxpersona-ct2_whisper_to_onnx",
        producer_version=str(FORMAT_VERSION),
        doc_string=doc,
    )
    model.ir_version = 8
    return model


# ---------------------------------------------------------------------------------------
# Whisper dimensions
# ---------------------------------------------------------------------------------------


class Dims:
    def __init__(self, m: CT2Model):
        emb = m.array("decoder/embeddings/weight")
        self.n_vocab, self.d_model = int(emb.shape[0]), int(emb.shape[1])
        conv1 = m.array("encoder/conv1/weight")
        self.n_mels = int(conv1.shape[1])
        self.n_heads = int(m.scalar("encoder/num_heads", 0) or 0)
        self.n_dec_heads = int(m.scalar("decoder/num_heads", 0) or self.n_heads)
        if self.n_heads == 0:
            self.n_heads = self.d_model // 64
        self.head_dim = self.d_model // self.n_heads
        self.n_enc_layers = _count_layers(m, "encoder")
        self.n_dec_layers = _count_layers(m, "decoder")
        self.n_text_ctx = int(m.array("decoder/position_encodings/encodings").shape[0])
        self.n_audio_ctx = 1500  # 30 s of 10 ms mel frames after the stride-2 convolution
        if m.has("encoder/position_encodings/encodings"):
            self.n_audio_ctx = int(m.array("encoder/position_encodings/encodings").shape[0])
        self.ffn_dim = int(m.array("encoder/layer_0/ffn/linear_0/weight").shape[0])
        if self.n_dec_heads != self.n_heads:
            raise ValueError("encoder and decoder head counts differ; not supported")
        act = m.scalar("decoder/activation", 3)
        if act != 3:
            raise ValueError(f"unsupported activation id {act} (expected 3 = GELU)")
        if m.scalar("decoder/pre_norm", 1) != 1:
            raise ValueError("post-norm decoder not supported")
        if m.scalar("decoder/scale_embeddings", 0):
            raise ValueError("scaled embeddings not supported")

    def as_dict(self):
        return {
            "n_mels": self.n_mels,
            "n_audio_ctx": self.n_audio_ctx,
            "n_text_ctx": self.n_text_ctx,
            "d_model": self.d_model,
            "n_heads": self.n_heads,
            "head_dim": self.head_dim,
            "n_encoder_layers": self.n_enc_layers,
            "n_decoder_layers": self.n_dec_layers,
            "ffn_dim": self.ffn_dim,
            "n_vocab": self.n_vocab,
        }


def _count_layers(m, side):
    n = 0
    while m.has(f"{side}/layer_{n}/ffn/linear_0/weight"):
        n += 1
    if n == 0:
        raise ValueError(f"no {side} layers found; is this a Whisper CTranslate2 model?")
    return n


def _sinusoids(length, channels, max_timescale=10000):
    inc = np.log(max_timescale) / (channels // 2 - 1)
    inv = np.exp(-inc * np.arange(channels // 2))
    t = np.arange(length)[:, None] * inv[None, :]
    return np.concatenate([np.sin(t), np.cos(t)], axis=1).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Encoder
# ---------------------------------------------------------------------------------------


def build_encoder(m: CT2Model, d: Dims):
    g = G("whisper_encoder")
    H, Dh, D = d.n_heads, d.head_dim, d.d_model
    q_scale = np.float32(1.0 / np.sqrt(Dh))

    mel = "mel"
    w1 = g.init("conv1.weight", m.f32("encoder/conv1/weight"))
    b1 = g.init("conv1.bias", m.f32("encoder/conv1/bias"))
    x = g.op("Conv", [mel, w1, b1], name="conv1", kernel_shape=[3], pads=[1, 1], strides=[1])
    x = g.gelu(x)
    w2 = g.init("conv2.weight", m.f32("encoder/conv2/weight"))
    b2 = g.init("conv2.bias", m.f32("encoder/conv2/bias"))
    x = g.op("Conv", [x, w2, b2], name="conv2", kernel_shape=[3], pads=[1, 1], strides=[2])
    x = g.gelu(x)
    x = g.op("Transpose", [x], perm=[0, 2, 1])  # [B, 1500, D]
    if m.has("encoder/position_encodings/encodings"):
        pos = m.f32("encoder/position_encodings/encodings")
    else:
        pos = _sinusoids(d.n_audio_ctx, D)
    x = g.op("Add", [x, g.init("encoder.positions", pos[: d.n_audio_ctx])])

    for i in range(d.n_enc_layers):
        p = f"encoder/layer_{i}"
        h = g.layer_norm(x, m.f32(f"{p}/self_attention/layer_norm/gamma"),
                         m.f32(f"{p}/self_attention/layer_norm/beta"), f"enc{i}.attn_ln")
        wqkv = m.f32(f"{p}/self_attention/linear_0/weight").copy()
        bqkv = m.f32(f"{p}/self_attention/linear_0/bias").copy()
        wqkv[:D] *= q_scale  # fold 1/sqrt(head_dim) into the query projection
        bqkv[:D] *= q_scale
        qkv = g.linear(h, wqkv, bqkv, f"enc{i}.qkv")
        q, k, v = g.op("Split", [qkv, g.const_i64([D, D, D])], n_out=3, axis=-1)
        q, k, v = (g.split_heads(t, H, Dh) for t in (q, k, v))
        s = g.matmul_act(q, k, trans_b=True)  # [B, H, S, S]
        a = g.op("Softmax", [s], axis=-1)
        o = g.merge_heads(g.matmul_act(a, v), D)
        o = g.linear(o, m.f32(f"{p}/self_attention/linear_1/weight"),
                     m.f32(f"{p}/self_attention/linear_1/bias"), f"enc{i}.attn_out")
        x = g.op("Add", [x, o])
        h = g.layer_norm(x, m.f32(f"{p}/ffn/layer_norm/gamma"), m.f32(f"{p}/ffn/layer_norm/beta"),
                         f"enc{i}.ffn_ln")
        h = g.linear(h, m.f32(f"{p}/ffn/linear_0/weight"), m.f32(f"{p}/ffn/linear_0/bias"), f"enc{i}.fc1")
        h = g.gelu(h)
        h = g.linear(h, m.f32(f"{p}/ffn/linear_1/weight"), m.f32(f"{p}/ffn/linear_1/bias"), f"enc{i}.fc2")
        x = g.op("Add", [x, h])
    xa = g.layer_norm(x, m.f32("encoder/layer_norm/gamma"), m.f32("encoder/layer_norm/beta"), "enc.ln_post")

    outputs = []
    for i in range(d.n_dec_layers):
        p = f"decoder/layer_{i}/attention"
        wkv = m.f32(f"{p}/linear_1/weight")
        bkv = m.f32(f"{p}/linear_1/bias")
        k = g.linear(xa, wkv[:D], bkv[:D], f"dec{i}.cross_k")
        v = g.linear(xa, wkv[D:], bkv[D:], f"dec{i}.cross_v")
        for kind, t in (("k", k), ("v", v)):
            r = g.op("Reshape", [t, g.const_i64([0, 0, H, Dh])])
            g.op("Transpose", [r], perm=[0, 2, 1, 3], outputs=[f"cross_{kind}_{i}"])
            outputs.append(_vi(f"cross_{kind}_{i}", TensorProto.FLOAT, ["batch", H, d.n_audio_ctx, Dh]))
    inputs = [_vi("mel", TensorProto.FLOAT, ["batch", d.n_mels, 2 * d.n_audio_ctx])]
    return _make_model(g, inputs, outputs, "Whisper encoder: log-mel -> cross-attention K/V per decoder layer")


# ---------------------------------------------------------------------------------------
# Decoder
# ---------------------------------------------------------------------------------------


def build_decoder(m: CT2Model, d: Dims, int8_embedding: bool):
    g = G("whisper_decoder")
    H, Dh, D, L = d.n_heads, d.head_dim, d.d_model, d.n_dec_layers
    q_scale = np.float32(1.0 / np.sqrt(Dh))
    neg_inf = g.const_f32(float("-inf"))
    zero_f = g.const_f32(0.0)

    tokens, offset = "tokens", "offset"
    emb = m.f32("decoder/embeddings/weight")  # [V, D]; also the (tied) output projection

    # token embedding
    if int8_embedding:
        # Symmetric per-token 8-bit codes, stored once as uint8 [D, V] with zero point 128 and
        # used for both the lookup and the tied output projection. uint8 (not int8) because
        # u8 x s8 integer matmuls saturate on x86 CPUs without VNNI (AVX2 vpmaddubsw).
        scale = np.maximum(np.abs(emb).max(axis=1), 1e-8) / 127.0
        q = (np.clip(np.round(emb / scale[:, None]), -127, 127) + 128).astype(np.uint8)
        eq_t = g.init("embed.u8_t", np.ascontiguousarray(q.T))  # [D, V]
        ezp = g.init("embed.zero_point", np.array(128, dtype=np.uint8))
        escale = g.init("embed.scale", scale.astype(np.float32))  # [V]
        t = g.op("Gather", [eq_t, tokens], axis=1)  # [D, B, T]
        t = g.op("Transpose", [t], perm=[1, 2, 0])  # [B, T, D]
        t = g.op("Cast", [t], to=TensorProto.FLOAT)
        t = g.op("Sub", [t, g.const_f32(128.0)])
        s = g.op("Gather", [escale, tokens], axis=0)  # [B, T]
        s = g.op("Unsqueeze", [s, g.const_i64([-1])])
        tok = g.op("Mul", [t, s])
    else:
        e = g.init("embed.weight", emb)
        tok = g.op("Gather", [e, tokens], axis=0)

    # positions offset .. offset+T-1
    tshape = g.op("Shape", [tokens])
    T = g.op("Gather", [tshape, g.const_i64(1)], axis=0)  # scalar
    zero_i = g.const_i64(0)
    one_i = g.const_i64(1)
    ar_t = g.op("Range", [zero_i, T, one_i])  # [T]
    off_s = g.op("Squeeze", [offset, g.const_i64([0])])  # scalar
    pos_ids = g.op("Add", [ar_t, off_s])
    pos = g.op("Gather", [g.init("decoder.positions", m.f32("decoder/position_encodings/encodings")), pos_ids],
               axis=0)  # [T, D]
    x = g.op("Add", [tok, pos])

    # masks
    cshape = g.op("Shape", ["cache_k_0"])
    cap = g.op("Gather", [cshape, g.const_i64(2)], axis=0)
    cap_1d = g.op("Unsqueeze", [cap, g.const_i64([0])])  # [1]
    ar_c = g.op("Range", [zero_i, cap, one_i])  # [cap]
    valid_c = g.op("Less", [ar_c, off_s])
    mask_cache = g.op("Where", [valid_c, zero_f, neg_inf])  # [cap]
    ii = g.op("Unsqueeze", [ar_t, g.const_i64([1])])  # [T,1]
    jj = g.op("Unsqueeze", [ar_t, g.const_i64([0])])  # [1,T]
    fut = g.op("Greater", [jj, ii])
    mask_new = g.op("Where", [fut, neg_inf, zero_f])  # [T, T]

    inputs = [
        _vi(tokens, TensorProto.INT64, ["batch", "tokens"]),
        _vi(offset, TensorProto.INT64, [1]),
    ]
    outputs = []
    cache_inputs, cross_inputs = [], []
    for i in range(L):
        p = f"decoder/layer_{i}"
        # --- self attention with cache
        h = g.layer_norm(x, m.f32(f"{p}/self_attention/layer_norm/gamma"),
                         m.f32(f"{p}/self_attention/layer_norm/beta"), f"dec{i}.self_ln")
        wqkv = m.f32(f"{p}/self_attention/linear_0/weight").copy()
        bqkv = m.f32(f"{p}/self_attention/linear_0/bias").copy()
        wqkv[:D] *= q_scale
        bqkv[:D] *= q_scale
        qkv = g.linear(h, wqkv, bqkv, f"dec{i}.self_qkv")
        q, k, v = g.op("Split", [qkv, g.const_i64([D, D, D])], n_out=3, axis=-1)
        q = g.split_heads(q, H, Dh)
        for kind, t in (("k", k), ("v", v)):
            r = g.op("Reshape", [t, g.const_i64([0, 0, H, Dh])])
            g.op("Transpose", [r], perm=[0, 2, 1, 3], outputs=[f"new_{kind}_{i}"])
        kn, vn = f"new_k_{i}", f"new_v_{i}"
        kc, vc = f"cache_k_{i}", f"cache_v_{i}"
        s_c = g.op("Add", [g.matmul_act(q, kc, trans_b=True), mask_cache])  # [B,H,T,cap]
        s_n = g.op("Add", [g.matmul_act(q, kn, trans_b=True), mask_new])  # [B,H,T,T]
        a = g.op("Softmax", [g.op("Concat", [s_c, s_n], axis=-1)], axis=-1)
        a_c = g.op("Slice", [a, g.const_i64([0]), cap_1d, g.const_i64([-1])])
        a_n = g.op("Slice", [a, cap_1d, g.const_i64([2**62]), g.const_i64([-1])])
        o = g.op("Add", [g.matmul_act(a_c, vc), g.matmul_act(a_n, vn)])
        o = g.merge_heads(o, D)
        o = g.linear(o, m.f32(f"{p}/self_attention/linear_1/weight"),
                     m.f32(f"{p}/self_attention/linear_1/bias"), f"dec{i}.self_out")
        x = g.op("Add", [x, o])
        # --- cross attention (K/V precomputed by the encoder)
        h = g.layer_norm(x, m.f32(f"{p}/attention/layer_norm/gamma"),
                         m.f32(f"{p}/attention/layer_norm/beta"), f"dec{i}.cross_ln")
        q = g.linear(h, m.f32(f"{p}/attention/linear_0/weight") * q_scale,
                     m.f32(f"{p}/attention/linear_0/bias") * q_scale, f"dec{i}.cross_q")
        q = g.split_heads(q, H, Dh)
        ck, cv = f"cross_k_{i}", f"cross_v_{i}"
        a = g.op("Softmax", [g.matmul_act(q, ck, trans_b=True)], axis=-1)
        o = g.merge_heads(g.matmul_act(a, cv), D)
        o = g.linear(o, m.f32(f"{p}/attention/linear_2/weight"), m.f32(f"{p}/attention/linear_2/bias"),
                     f"dec{i}.cross_out")
        x = g.op("Add", [x, o])
        # --- feed-forward
        h = g.layer_norm(x, m.f32(f"{p}/ffn/layer_norm/gamma"), m.f32(f"{p}/ffn/layer_norm/beta"),
                         f"dec{i}.ffn_ln")
        h = g.linear(h, m.f32(f"{p}/ffn/linear_0/weight"), m.f32(f"{p}/ffn/linear_0/bias"), f"dec{i}.fc1")
        h = g.gelu(h)
        h = g.linear(h, m.f32(f"{p}/ffn/linear_1/weight"), m.f32(f"{p}/ffn/linear_1/bias"), f"dec{i}.fc2")
        x = g.op("Add", [x, h])

        cache_inputs += [_vi(kc, TensorProto.FLOAT, ["batch", H, "cache", Dh]),
                         _vi(vc, TensorProto.FLOAT, ["batch", H, "cache", Dh])]
        cross_inputs += [_vi(ck, TensorProto.FLOAT, ["batch", H, d.n_audio_ctx, Dh]),
                         _vi(cv, TensorProto.FLOAT, ["batch", H, d.n_audio_ctx, Dh])]
        outputs += [_vi(kn, TensorProto.FLOAT, ["batch", H, "tokens", Dh]),
                    _vi(vn, TensorProto.FLOAT, ["batch", H, "tokens", Dh])]

    # logits of the last position only
    last = g.op("Slice", [x, g.const_i64([-1]), g.const_i64([2**62]), g.const_i64([1])])  # [B,1,D]
    last = g.op("Squeeze", [last, g.const_i64([1])])  # [B, D]
    last = g.layer_norm(last, m.f32("decoder/layer_norm/gamma"), m.f32("decoder/layer_norm/beta"), "dec.ln_post")
    if int8_embedding:
        xq, xs, xz = g.op("DynamicQuantizeLinear", [last], n_out=3)
        acc = g.op("MatMulInteger", [xq, eq_t, xz, ezp])  # [B, V] int32
        accf = g.op("Cast", [acc], to=TensorProto.FLOAT)
        g.op("Mul", [accf, g.op("Mul", [xs, escale])], outputs=["logits"])
    else:
        g.op("FusedMatMul", [last, "embed.weight"], domain=MS_DOMAIN, transA=0, transB=1, alpha=1.0,
             outputs=["logits"])
    outputs = [_vi("logits", TensorProto.FLOAT, ["batch", d.n_vocab])] + outputs
    inputs += cache_inputs + cross_inputs
    return _make_model(g, inputs, outputs, "Whisper decoder step with self-attention KV cache")


# ---------------------------------------------------------------------------------------
# Log-mel front end (optional ONNX graph with the exact Whisper recipe)
# ---------------------------------------------------------------------------------------


def _hz_to_mel_slaney(f):
    f = np.asarray(f, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = f / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep, mels)


def _mel_to_hz_slaney(m):
    m = np.asarray(m, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * m
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), freqs)


def mel_filters(n_mels, sr=16000, n_fft=400):
    """Slaney-scale, Slaney-normalised triangular filters [n_mels, n_fft//2+1] (float32)."""
    fft_freqs = np.linspace(0.0, sr / 2.0, n_fft // 2 + 1)
    mel_pts = _mel_to_hz_slaney(np.linspace(_hz_to_mel_slaney(0.0), _hz_to_mel_slaney(sr / 2.0), n_mels + 2))
    fdiff = np.diff(mel_pts)
    ramps = mel_pts[:, None] - fft_freqs[None, :]
    w = np.zeros((n_mels, len(fft_freqs)), dtype=np.float64)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        w[i] = np.maximum(0.0, np.minimum(lower, upper))
    w *= (2.0 / (mel_pts[2: n_mels + 2] - mel_pts[:n_mels]))[:, None]
    return w.astype(np.float32)


def build_mel(n_mels, n_samples=480000, n_fft=400, hop=160):
    """audio [1, N] (N <= n_samples, 16 kHz) -> log-mel [1, n_mels, n_samples // hop]."""
    g = G("whisper_log_mel")
    n_freq = n_fft // 2 + 1
    n = np.arange(n_fft)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / n_fft)  # periodic Hann
    k = np.arange(n_freq)
    ang = 2 * np.pi * np.outer(k, n) / n_fft
    basis = np.concatenate([np.cos(ang) * window, -np.sin(ang) * window], axis=0)  # [2F, n_fft]
    basis = g.init("stft.basis", basis.astype(np.float32)[:, None, :])  # [2F, 1, n_fft]
    filt = g.init("mel.filters", mel_filters(n_mels, 16000, n_fft))  # [M, F]

    # zero-pad (or trim) to n_samples, then reflect-pad n_fft/2 on both sides (center=True)
    trimmed = g.op("Slice", ["audio", g.const_i64([0]), g.const_i64([n_samples]), g.const_i64([1])])
    ln = g.op("Gather", [g.op("Shape", [trimmed]), g.const_i64(1)], axis=0)
    pad_r = g.op("Sub", [g.const_i64(n_samples), ln])
    pads = g.op("Concat", [g.const_i64([0, 0, 0]), g.op("Unsqueeze", [pad_r, g.const_i64([0])])], axis=0)
    x = g.op("Pad", [trimmed, pads, g.const_f32(0.0)], mode="constant")
    x = g.op("Pad", [x, g.const_i64([0, n_fft // 2, 0, n_fft // 2])], mode="reflect")
    x = g.op("Unsqueeze", [x, g.const_i64([1])])  # [1, 1, N + n_fft]
    spec = g.op("Conv", [x, basis], kernel_shape=[n_fft], strides=[hop])  # [1, 2F, frames+1]
    n_frames = n_samples // hop
    spec = g.op("Slice", [spec, g.const_i64([0]), g.const_i64([n_frames]), g.const_i64([2])])  # drop last frame
    re, im = g.op("Split", [spec, g.const_i64([n_freq, n_freq])], n_out=2, axis=1)
    power = g.op("Add", [g.op("Mul", [re, re]), g.op("Mul", [im, im])])  # [1, F, frames]
    mel = g.op("MatMul", [filt, power])  # [1, M, frames]
    mel = g.op("Max", [mel, g.const_f32(1e-10)])
    logm = g.op("Div", [g.op("Log", [mel]), g.const_f32(float(np.log(10.0)))])
    mx = g.op("ReduceMax", [logm], keepdims=1)
    logm = g.op("Max", [logm, g.op("Sub", [mx, g.const_f32(8.0)])])
    g.op("Div", [g.op("Add", [logm, g.const_f32(4.0)]), g.const_f32(4.0)], outputs=["mel"])
    inputs = [_vi("audio", TensorProto.FLOAT, [1, "samples"])]
    outputs = [_vi("mel", TensorProto.FLOAT, [1, n_mels, n_frames])]
    return _make_model(g, inputs, outputs, "Whisper log-mel front end (16 kHz mono, 30 s window)")


# ---------------------------------------------------------------------------------------
# Token ids and model.json
# ---------------------------------------------------------------------------------------


def special_tokens(tokenizer_path, config, n_vocab):
    with open(tokenizer_path, "r", encoding="utf-8") as f:
        tok = json.load(f)
    by_content = {a["content"]: a["id"] for a in tok.get("added_tokens", [])}

    def need(name, *alts):
        for c in (name,) + alts:
            if c in by_content:
                return by_content[c]
        raise ValueError(f"special token {name} not in tokenizer.json")

    ids = {
        "eot": need("<|endoftext|>"),
        "sot": need("<|startoftranscript|>"),
        "translate": need("<|translate|>"),
        "transcribe": need("<|transcribe|>"),
        "sot_lm": need("<|startoflm|>"),
        "sot_prev": need("<|startofprev|>"),
        "no_speech": need("<|nospeech|>", "<|nocaptions|>"),
        "no_timestamps": need("<|notimestamps|>"),
    }
    ids["timestamp_begin"] = ids["no_timestamps"] + 1
    languages = {}
    lang_ids = set(config.get("lang_ids", []))
    for content, i in by_content.items():
        if (i in lang_ids or not lang_ids) and content.startswith("<|") and content.endswith("|>"):
            code = content[2:-2]
            if i > ids["sot"] and i < ids["translate"]:
                languages[code] = i
    ids["languages"] = dict(sorted(languages.items(), key=lambda kv: kv[1]))
    ids["timestamp_count"] = n_vocab - ids["timestamp_begin"]
    # English-only (.en) models have a smaller vocabulary and take no language/task tokens
    ids["multilingual"] = n_vocab >= 51865
    return ids


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------


def _save(model, path, large):
    if large:
        data_name = os.path.basename(path) + ".data"
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=1024)
    else:
        onnx.save_model(model, path)


def _model_bytes(model):
    return sum(int(np.prod(t.dims)) * (1 if t.data_type in (TensorProto.INT8, TensorProto.UINT8) else 4)
               for t in model.graph.initializer)


def quantize(src, dst, large, per_channel):
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # the quantizer's generic pre-processing advice

    quantize_dynamic(
        src, dst,
        op_types_to_quantize=["MatMul"],
        weight_type=QuantType.QUInt8,  # see the note on embed.u8_t
        per_channel=per_channel,
        reduce_range=False,
        use_external_data_format=large,
        extra_options={"MatMulConstBOnly": True, "DefaultTensorType": TensorProto.FLOAT},
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-bin", nargs="+", required=True,
                    help="model.bin, or its parts in order (they are concatenated)")
    ap.add_argument("--config", required=True, help="CTranslate2 config.json")
    ap.add_argument("--tokenizer", required=True, help="tokenizer.json")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--name", default=None, help="model name recorded in model.json")
    ap.add_argument("--keep-fp32", action="store_true", help="also keep encoder.onnx / decoder.onnx (fp32)")
    ap.add_argument("--per-tensor", action="store_true",
                    help="per-tensor weight scales in dynamic quantization (default per-channel, more accurate)")
    ap.add_argument("--no-mel", action="store_true", help="do not write mel.onnx")
    args = ap.parse_args(argv)

    t0 = time.time()
    m = CT2Model(args.model_bin)
    if m.spec != "WhisperSpec":
        raise SystemExit(f"not a Whisper model: spec {m.spec!r}")
    d = Dims(m)
    with open(args.config, "r", encoding="utf-8") as f:
        config = json.load(f)
    ids = special_tokens(args.tokenizer, config, d.n_vocab)
    print(f"CTranslate2 v{m.binary_version} {m.spec} rev {m.revision}: {len(m.raw)} variables; "
          f"{json.dumps(d.as_dict())}", flush=True)

    os.makedirs(args.out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="ct2onnx-", dir=args.out)
    try:
        enc = build_encoder(m, d)
        enc_large = _model_bytes(enc) > LARGE
        enc_fp32 = os.path.join(tmp, "encoder.onnx")
        _save(enc, enc_fp32, enc_large)
        del enc
        dec_fp32 = None
        if args.keep_fp32:
            dec = build_decoder(m, d, int8_embedding=False)
            dec_fp32 = os.path.join(tmp, "decoder.onnx")
            _save(dec, dec_fp32, _model_bytes(dec) > LARGE)
            del dec
        dec = build_decoder(m, d, int8_embedding=True)
        dec_large = _model_bytes(dec) > LARGE
        dec_pre = os.path.join(tmp, "decoder.preq.onnx")
        _save(dec, dec_pre, dec_large)
        del dec
        m.close()
        print(f"graphs built in {time.time() - t0:.1f}s; quantizing", flush=True)

        quantize(enc_fp32, os.path.join(tmp, "encoder.int8.onnx"), enc_large, not args.per_tensor)
        quantize(dec_pre, os.path.join(tmp, "decoder.int8.onnx"), dec_large, not args.per_tensor)
        produced = []
        for name, large in (("encoder.int8.onnx", enc_large), ("decoder.int8.onnx", dec_large)):
            if large:  # the int8 graph usually fits in one file again: re-save it self-contained
                mdl = onnx.load(os.path.join(tmp, name))
                if mdl.ByteSize() < 2_000_000_000:
                    os.remove(os.path.join(tmp, name + ".data"))
                    onnx.save_model(mdl, os.path.join(tmp, name))
                else:
                    produced.append(name + ".data")
                del mdl
            produced.append(name)
        if args.keep_fp32:
            produced += [f for f in os.listdir(tmp) if f.split(".onnx")[0] in ("encoder", "decoder")
                         and f.startswith(("encoder.onnx", "decoder.onnx"))]
        if not args.no_mel:
            onnx.save_model(build_mel(d.n_mels), os.path.join(tmp, "mel.onnx"))
            produced.append("mel.onnx")

        info = {
            "format_version": FORMAT_VERSION,
            "name": args.name,
            "source": {"ct2_binary_version": m.binary_version, "ct2_spec": m.spec, "ct2_revision": m.revision},
            "dims": d.as_dict(),
            "audio": {"sample_rate": 16000, "n_fft": 400, "hop_length": 160, "chunk_samples": 480000,
                      "n_frames": 2 * d.n_audio_ctx, "seconds_per_timestamp": 0.02},
            "tokens": ids,
            "suppress_ids": config.get("suppress_ids", []),
            "suppress_ids_begin": config.get("suppress_ids_begin", []),
            "alignment_heads": config.get("alignment_heads", []),
            "files": {"encoder": "encoder.int8.onnx", "decoder": "decoder.int8.onnx",
                      "mel": None if args.no_mel else "mel.onnx",
                      "tokenizer": "tokenizer.json", "config": "config.json"},
            "io": {
                "mel": {"inputs": {"audio": ["f32", [1, "samples<=480000"]]},
                        "outputs": {"mel": ["f32", [1, d.n_mels, 2 * d.n_audio_ctx]]}},
                "encoder": {"inputs": {"mel": ["f32", ["batch", d.n_mels, 2 * d.n_audio_ctx]]},
                            "outputs": {"cross_k_{i}": ["f32", ["batch", d.n_heads, d.n_audio_ctx, d.head_dim]],
                                        "cross_v_{i}": ["f32", ["batch", d.n_heads, d.n_audio_ctx, d.head_dim]]}},
                "decoder": {"inputs": {"tokens": ["i64", ["batch", "T"]], "offset": ["i64", [1]],
                                       "cache_k_{i}": ["f32", ["batch", d.n_heads, "cache", d.head_dim]],
                                       "cache_v_{i}": ["f32", ["batch", d.n_heads, "cache", d.head_dim]],
                                       "cross_k_{i}": ["f32", ["batch", d.n_heads, d.n_audio_ctx, d.head_dim]],
                                       "cross_v_{i}": ["f32", ["batch", d.n_heads, d.n_audio_ctx, d.head_dim]]},
                            "outputs": {"logits": ["f32", ["batch", d.n_vocab]],
                                        "new_k_{i}": ["f32", ["batch", d.n_heads, "T", d.head_dim]],
                                        "new_v_{i}": ["f32", ["batch", d.n_heads, "T", d.head_dim]]},
                            "layers": d.n_dec_layers},
            },
        }
        with open(os.path.join(tmp, "model.json"), "w", encoding="utf-8") as f:
            json.dump(info, f, indent=2)
            f.write("\n")
        shutil.copyfile(args.config, os.path.join(tmp, "config.json"))
        shutil.copyfile(args.tokenizer, os.path.join(tmp, "tokenizer.json"))
        produced += ["model.json", "config.json", "tokenizer.json"]
        for f in produced:  # move into place; model.json last so its presence marks completion
            if f != "model.json":
                os.replace(os.path.join(tmp, f), os.path.join(args.out, f))
        os.replace(os.path.join(tmp, "model.json"), os.path.join(args.out, "model.json"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for f in sorted(set(produced)):
        p = os.path.join(args.out, f)
        print(f"  {p}  {os.path.getsize(p) / 1e6:.1f} MB")
    print(f"done in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
