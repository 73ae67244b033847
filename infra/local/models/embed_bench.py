#!/usr/bin/env python3
"""Python side of the embedding benchmark (tests/benches/embed.rs runs it).

Reads the bench's input file (JSON: "texts", "batch_size", and "batches", the token_ids and
row_splits the Rust embedder built for each batch) and opens the same model.onnx and
tokenizer.json with onnxruntime and the tokenizers binding. Session: CPU provider, intra-op
threads --threads, inter-op 1, sequential execution, all graph optimizations,
session.intra_op.allow_spinning --spinning.

Checks that tokenizing each batch here gives exactly the Rust token ids, warms up, and prints
one JSON line (versions, the check's result). Then reads commands from stdin, one a line, so
that the bench can alternate Rust and Python passes on a busy machine; each timed command runs
one pass over all texts and prints {"wall": s, "cpu": s} (CPU: this process, all threads):

  e2e        per batch: encode_batch(texts, add_special_tokens=True), the two ragged arrays,
             session.run (what UseEmbedder::embed does)
  inference  session.run on the Rust token ids
  tokenize   encode_batch and the arrays only
  vectors P  write the last e2e pass's vectors to P (float32, row-major, little-endian)

Run with $VOX_CACHE/venv-embed/bin/python (prepare_embedding.sh creates it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tokenizers
from tokenizers import Tokenizer


def ragged(encodings) -> dict[str, np.ndarray]:
    lengths = [len(e.ids) for e in encodings]
    ids = np.fromiter((i for e in encodings for i in e.ids), dtype=np.int32, count=sum(lengths))
    splits = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=splits[1:])
    return {"token_ids": ids, "row_splits": splits}


def timed(run) -> dict:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model_dir", type=Path, help="$VOX_MODELS_DIR/use-multilingual")
    p.add_argument("input", type=Path, help="the bench's JSON input")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--spinning", type=int, choices=(0, 1), default=0)
    a = p.parse_args()

    data = json.loads(a.input.read_text())
    texts: list[str] = data["texts"]
    size: int = data["batch_size"]
    groups = [texts[i:i + size] for i in range(0, len(texts), size)]
    rust_feeds = [
        {"token_ids": np.asarray(b["token_ids"], dtype=np.int32),
         "row_splits": np.asarray(b["row_splits"], dtype=np.int64)}
        for b in data["batches"]
    ]
    if len(rust_feeds) != len(groups):
        print(f"{len(rust_feeds)} batches of ids for {len(groups)} batches of texts", file=sys.stderr)
        return 1

    tok = Tokenizer.from_file(str(a.model_dir / "tokenizer.json"))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = a.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", str(a.spinning))
    session = ort.InferenceSession(str(a.model_dir / "model.onnx"), opts,
                                   providers=["CPUExecutionProvider"])

    # The same token ids as Rust, batch by batch.
    mismatched = 0
    for group, want in zip(groups, rust_feeds):
        got = ragged(tok.encode_batch(group, add_special_tokens=True))
        if not (np.array_equal(got["token_ids"], want["token_ids"])
                and np.array_equal(got["row_splits"], want["row_splits"])):
            mismatched += 1

    out: list[np.ndarray] = []

    def end_to_end() -> None:
        out.clear()
        for group in groups:
            feed = ragged(tok.encode_batch(group, add_special_tokens=True))
            out.append(session.run(["embeddings"], feed)[0])

    def inference() -> None:
        for feed in rust_feeds:
            session.run(["embeddings"], feed)

    def tokenize() -> None:
        for group in groups:
            ragged(tok.encode_batch(group, add_special_tokens=True))

    for feed in rust_feeds[:3]:  # warm-up, as the Rust side
        session.run(["embeddings"], feed)
    info = {
        "sentences": len(texts),
        "batches": len(groups),
        "token_ids_mismatched_batches": mismatched,
        "onnxruntime": ort.__version__,
        "tokenizers": tokenizers.__version__,
    }
    print(json.dumps(info), flush=True)
    passes = {"e2e": end_to_end, "inference": inference, "tokenize": tokenize}
    for line in sys.stdin:
        command, _, arg = line.strip().partition(" ")
        if command in passes:
            print(json.dumps(timed(passes[command])), flush=True)
        elif command == "vectors":
            np.concatenate(out).astype("<f4").tofile(arg)
            print(json.dumps({"written": arg}), flush=True)
        elif command:
            print(f"unknown command {command!r}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
