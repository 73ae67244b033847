#!/usr/bin/env python3
"""A CTranslate2 Whisper model.bin with random weights and chosen dimensions, for tests.

usage: make_synthetic_ct2.py --out DIR --tokenizer tokenizer.json --config config.json
                             [--n-mels 128] [--d-model 256] [--heads 4] [--encoder-layers 2]
                             [--decoder-layers 3] [--ffn 512] [--text-ctx 448] [--seed 7]

No registry package ships a complete Whisper larger than base, so the converter
(ct2_whisper_to_onnx.py) and the engine's reading of `model.json` are tested on a model of
other dimensions made here: the layout faster-whisper's models have (CTranslate2 binary
version 6, WhisperSpec, fp16 weights, fused self-attention q/k/v, fused cross-attention k/v,
the head count as a scalar), random weights, the vocabulary of the given tokenizer. Writes
DIR/model.bin, and copies the tokenizer and config beside it. Its transcripts are noise; what
it proves is that every dimension is read from the model, not assumed.
"""

import argparse
import json
import os
import shutil
import struct

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--n-mels", type=int, default=128)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--encoder-layers", type=int, default=2)
    ap.add_argument("--decoder-layers", type=int, default=3)
    ap.add_argument("--ffn", type=int, default=512)
    ap.add_argument("--text-ctx", type=int, default=448)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()

    with open(a.tokenizer, encoding="utf-8") as f:
        tok = json.load(f)
    ids = list(tok["model"]["vocab"].values()) + [t["id"] for t in tok.get("added_tokens", [])]
    # Whisper's vocabulary is the text tokens, the special tokens, then 1501 timestamps.
    n_vocab = max(ids) + 1 + 1501
    D, F, M = a.d_model, a.ffn, a.n_mels
    rng = np.random.default_rng(a.seed)
    variables = []

    def w(name, *shape, scale=0.02):
        variables.append((name, (rng.standard_normal(shape) * scale).astype(np.float16)))

    def ln(prefix):
        variables.append((f"{prefix}/gamma", np.ones(D, np.float16)))
        variables.append((f"{prefix}/beta", np.zeros(D, np.float16)))

    def scalar(name, value):
        variables.append((name, np.array([value], np.int32)))

    def linear(prefix, n_out, n_in):
        w(f"{prefix}/weight", n_out, n_in)
        w(f"{prefix}/bias", n_out)

    def self_attention(layer):  # q, k, v fused, then the output
        ln(f"{layer}/self_attention/layer_norm")
        linear(f"{layer}/self_attention/linear_0", 3 * D, D)
        linear(f"{layer}/self_attention/linear_1", D, D)

    def ffn(layer):
        ln(f"{layer}/ffn/layer_norm")
        linear(f"{layer}/ffn/linear_0", F, D)
        linear(f"{layer}/ffn/linear_1", D, F)

    for prefix, n_in in (("encoder/conv1", M), ("encoder/conv2", D)):  # kernel width 3
        w(f"{prefix}/weight", D, n_in, 3)
        w(f"{prefix}/bias", D)
    scalar("encoder/num_heads", a.heads)
    for i in range(a.encoder_layers):
        self_attention(f"encoder/layer_{i}")
        ffn(f"encoder/layer_{i}")
    ln("encoder/layer_norm")
    w("decoder/embeddings/weight", n_vocab, D)
    w("decoder/position_encodings/encodings", a.text_ctx, D)
    scalar("decoder/num_heads", a.heads)
    scalar("decoder/activation", 3)
    scalar("decoder/pre_norm", 1)
    for i in range(a.decoder_layers):
        p = f"decoder/layer_{i}"
        self_attention(p)
        # Cross-attention: the query, then keys and values fused, then the output.
        ln(f"{p}/attention/layer_norm")
        linear(f"{p}/attention/linear_0", D, D)
        linear(f"{p}/attention/linear_1", 2 * D, D)
        linear(f"{p}/attention/linear_2", D, D)
        ffn(p)
    ln("decoder/layer_norm")

    dtype_ids = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2,
                 np.dtype(np.int32): 3, np.dtype(np.float16): 4}

    def string(s):
        b = s.encode("utf-8") + b"\0"
        return struct.pack("<H", len(b)) + b

    os.makedirs(a.out, exist_ok=True)
    tmp = os.path.join(a.out, "model.bin.part")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<I", 6) + string("WhisperSpec") + struct.pack("<I", 3))
        f.write(struct.pack("<I", len(variables)))
        for name, arr in variables:
            data = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
            f.write(string(name) + struct.pack("<B", arr.ndim))
            f.write(struct.pack(f"<{arr.ndim}I", *arr.shape))
            f.write(struct.pack("<BI", dtype_ids[arr.dtype], len(data)) + data)
        f.write(struct.pack("<I", 0))  # no aliases
    os.replace(tmp, os.path.join(a.out, "model.bin"))
    shutil.copyfile(a.tokenizer, os.path.join(a.out, "tokenizer.json"))
    shutil.copyfile(a.config, os.path.join(a.out, "config.json"))
    print(json.dumps({"n_vocab": n_vocab, "d_model": D, "n_mels": M, "heads": a.heads,
                      "encoder_layers": a.encoder_layers, "decoder_layers": a.decoder_layers}))


if __name__ == "__main__":
    main()
