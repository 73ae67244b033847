#!/usr/bin/env python3
"""Two-voice interviews and one-voice audits for the speech evaluation set.

usage: make_dialogues.py [ID ...] [--long] [--force] [--out DIR]

With IDs only those scripts are built (the tests need a few; the benchmark builds them all).

Reads the scripts in dialogues/*.txt beside this file (format in README.md: a header of
`# key: value` lines, then one turn per line, `S1: ...` or `S2: ...`), speaks every turn with
festival (Russian voice msu_ru_nsh_clunits, English cmu_us_slt_arctic_hts), gives speaker S2 a
second voice by shifting the pitch (sox `pitch -350`, as design.md measured), and joins the
turns with pauses: `gaps: fixed X` uses X seconds between every two turns, `gaps: random`
draws them from 0.2-1.5 s with a generator seeded by the script's name, so every build is the
same. Half a second of silence opens and closes each clip.

Writes into ${VOX_CACHE:-~/.cache/voxpersona}/speech/dialogues/:
  <id>.wav         16 kHz mono s16
  <id>.txt         the reference: one turn per line
  <id>.turns.tsv   start_ms, end_ms, speaker (S1/S2), role, text: where each turn really is
  <id>.json        the header (kind, lang, building, city, roles) and the duration

With --long also `ru_int_long_10min`: the Russian interviews one after another (each keeps its
own voices and gaps, 1.5 s between interviews), as many whole ones as fit in 10 minutes.

Idempotent: a clip is rebuilt when its script, this file or a turn's audio changed; each
turn's audio is cached by (voice, pitch, text).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE / "dialogues"
RATE = 16000
VOICES = {"ru": "msu_ru_nsh_clunits", "en": "cmu_us_slt_arctic_hts"}
SECOND_VOICE_PITCH = "-350"  # cents, sox `pitch`
EDGE_S = 0.5
GAP_RANGE = (0.2, 1.5)
LONG_ID = "ru_int_long_10min"
LONG_MAX_S = 600.0
BETWEEN_INTERVIEWS_S = 1.5
TURN_RE = re.compile(r"^(S[12]):\s*(.+)$")


def log(msg: str) -> None:
    print(f"make_dialogues: {msg}", file=sys.stderr)


def sha(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode() if isinstance(p, str) else p)
        h.update(b"\0")
    return h.hexdigest()


class Script:
    def __init__(self, path: Path):
        self.id = path.stem
        self.path = path
        self.header: dict[str, str] = {}
        self.turns: list[tuple[str, str]] = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                key, _, value = line[1:].partition(":")
                self.header[key.strip()] = value.strip()
                continue
            m = TURN_RE.match(line)
            if not m:
                sys.exit(f"make_dialogues: {path}:{n}: expected 'S1: text' or 'S2: text'")
            if re.search(r"[0-9]", m.group(2)):
                sys.exit(f"make_dialogues: {path}:{n}: write numbers as words")
            self.turns.append((m.group(1), m.group(2)))
        self.lang = self.header.get("lang", "ru")
        if self.lang not in VOICES:
            sys.exit(f"make_dialogues: {path}: lang {self.lang!r} is not ru or en")
        if not self.turns:
            sys.exit(f"make_dialogues: {path}: no turns")
        self.roles = dict(
            part.split("=", 1) for part in self.header.get("roles", "S1=employee").split() if "=" in part
        )

    def gaps(self) -> list[float]:
        spec = self.header.get("gaps", "random").split()
        if spec[0] == "fixed":
            return [float(spec[1])] * (len(self.turns) - 1)
        rng = random.Random(self.id)
        return [round(rng.uniform(*GAP_RANGE), 2) for _ in range(len(self.turns) - 1)]


def read_samples(path: Path) -> bytes:
    with wave.open(str(path), "rb") as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (RATE, 1, 2):
            sys.exit(f"make_dialogues: {path} is not 16 kHz mono s16")
        return w.readframes(w.getnframes())


def write_wav(path: Path, pcm: bytes) -> None:
    tmp = path.with_suffix(".wav.part")
    with wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm)
    os.replace(tmp, path)


def silence(seconds: float) -> bytes:
    return b"\0\0" * int(round(seconds * RATE))


def turn_audio(cache: Path, lang: str, speaker: str, text: str) -> bytes:
    """One turn spoken in `speaker`'s voice, 16 kHz mono s16, cached by what makes it."""
    pitch = SECOND_VOICE_PITCH if speaker == "S2" else "0"
    key = sha(VOICES[lang], pitch, text)[:24]
    out = cache / f"{key}.wav"
    if not out.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            txt, raw = Path(tmp) / "t.txt", Path(tmp) / "raw.wav"
            txt.write_text(text + "\n", encoding="utf-8")
            # -eval is essential: without it festival picks whichever voice is installed first.
            res = subprocess.run(
                ["text2wave", "-eval", f"(voice_{VOICES[lang]})", str(txt), "-o", str(raw)],
                capture_output=True, text=True, stdin=subprocess.DEVNULL)
            if res.returncode != 0 or "no rule matches" in res.stderr or not raw.is_file():
                sys.exit(f"make_dialogues: festival failed on {text!r}: {res.stderr.strip()}")
            effects = ["rate", str(RATE)] if pitch == "0" else ["pitch", pitch, "rate", str(RATE)]
            part = Path(tmp) / "out.wav"
            subprocess.run(["sox", "-D", str(raw), "-r", str(RATE), "-c", "1", "-b", "16",
                            "-e", "signed-integer", str(part), *effects], check=True)
            os.replace(part, out)
    return read_samples(out)


def build(script: Script, out_dir: Path, cache: Path, force: bool, recipe: str) -> dict:
    stamp = sha(recipe, script.path.read_bytes())
    meta_path = out_dir / f"{script.id}.json"
    if not force and meta_path.is_file():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("stamp") == stamp and (out_dir / f"{script.id}.wav").is_file():
            return meta
    pcm, turns = bytearray(silence(EDGE_S)), []
    gaps = script.gaps()
    for i, (speaker, text) in enumerate(script.turns):
        if i > 0:
            pcm += silence(gaps[i - 1])
        start = len(pcm) // 2
        pcm += turn_audio(cache, script.lang, speaker, text)
        turns.append({"start_ms": start * 1000 // RATE, "end_ms": len(pcm) // 2 * 1000 // RATE,
                      "speaker": speaker, "role": script.roles.get(speaker, ""), "text": text})
    pcm += silence(EDGE_S)
    meta = write_clip(out_dir, script.id, bytes(pcm), turns, script.header, stamp)
    log(f"{script.id}: {len(turns)} turns, {meta['duration_s']:.1f} s")
    return meta


def write_clip(out_dir: Path, clip_id: str, pcm: bytes, turns: list[dict], header: dict,
               stamp: str) -> dict:
    write_wav(out_dir / f"{clip_id}.wav", pcm)
    (out_dir / f"{clip_id}.txt").write_text("".join(t["text"] + "\n" for t in turns), encoding="utf-8")
    rows = ["start_ms\tend_ms\tspeaker\trole\ttext\n"]
    rows += [f"{t['start_ms']}\t{t['end_ms']}\t{t['speaker']}\t{t['role']}\t{t['text']}\n" for t in turns]
    (out_dir / f"{clip_id}.turns.tsv").write_text("".join(rows), encoding="utf-8")
    meta = {"id": clip_id, **{k: v for k, v in header.items() if k != "title"},
            "title": header.get("title", clip_id), "duration_s": round(len(pcm) / 2 / RATE, 3),
            "turns": len(turns), "stamp": stamp}
    tmp = out_dir / f"{clip_id}.json.part"
    tmp.write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, out_dir / f"{clip_id}.json")
    return meta


def build_long(scripts: list[Script], out_dir: Path, force: bool, recipe: str) -> None:
    interviews = [s for s in scripts if s.lang == "ru" and s.header.get("kind") == "interview"]
    for s in interviews:  # a no-op for those already built
        build(s, out_dir, out_dir / "turns", False, recipe)
    stamp = sha(recipe, *[s.path.read_bytes() for s in interviews])
    meta_path = out_dir / f"{LONG_ID}.json"
    if not force and meta_path.is_file() and json.loads(meta_path.read_text()).get("stamp") == stamp:
        return
    pcm, turns, k = bytearray(), [], 0
    # Longest first, then round the list again while whole interviews still fit.
    order = sorted(interviews, key=lambda s: -len(read_samples(out_dir / f"{s.id}.wav")))
    while True:
        added = False
        for s in order:
            clip = read_samples(out_dir / f"{s.id}.wav")
            gap = silence(BETWEEN_INTERVIEWS_S) if pcm else b""
            if (len(pcm) + len(gap) + len(clip)) / 2 / RATE > LONG_MAX_S:
                continue
            pcm += gap
            offset = len(pcm) // 2 * 1000 // RATE
            for row in (out_dir / f"{s.id}.turns.tsv").read_text(encoding="utf-8").splitlines()[1:]:
                start, end, speaker, role, text = row.split("\t", 4)
                turns.append({"start_ms": int(start) + offset, "end_ms": int(end) + offset,
                              "speaker": speaker, "role": role, "text": text})
            pcm += clip
            added, k = True, k + 1
        if not added:
            break
    header = {"kind": "interview", "lang": "ru", "building": "mixed", "city": "mixed",
              "roles": "S1=employee S2=client", "gaps": "random",
              "title": f"{k} Russian interviews one after another"}
    meta = write_clip(out_dir, LONG_ID, bytes(pcm), turns, header, stamp)
    log(f"{LONG_ID}: {k} interviews, {len(turns)} turns, {meta['duration_s']:.1f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("ids", nargs="*", help="build only these scripts (default: all)")
    ap.add_argument("--long", action="store_true", help=f"also build {LONG_ID}")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    cache_root = Path(os.environ.get("VOX_CACHE") or Path.home() / ".cache/voxpersona")
    out_dir = args.out or cache_root / "speech" / "dialogues"
    out_dir.mkdir(parents=True, exist_ok=True)
    recipe = sha(Path(__file__).read_bytes())
    scripts = [Script(p) for p in sorted(SCRIPTS.glob("*.txt"))]
    unknown = set(args.ids) - {s.id for s in scripts}
    if unknown:
        sys.exit(f"make_dialogues: no script for {', '.join(sorted(unknown))} in {SCRIPTS}")
    chosen = [s for s in scripts if not args.ids or s.id in args.ids]
    for s in chosen:
        build(s, out_dir, out_dir / "turns", args.force, recipe)
    if args.long:
        build_long(scripts, out_dir, args.force, recipe)
    print(f"make_dialogues: {len(chosen) + args.long} clips in {out_dir}")


if __name__ == "__main__":
    main()
