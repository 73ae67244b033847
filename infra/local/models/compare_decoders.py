#!/usr/bin/env python3
"""Token-by-token comparison of our Whisper decoding with CTranslate2's (faster-whisper's).

usage: compare_decoders.py AUDIO [--start S] [--end E] [--language ru] [--threads 2]
                           [--models DIR] [--ct2 DIR] [--steps]

Decodes one window (AUDIO from S to E seconds, at most 30 s) four ways and prints the tokens:

  ct2/fw-mel    CTranslate2 int8 on faster-whisper's features (what faster-whisper decodes)
  ct2/our-mel   CTranslate2 int8 on our features
  onnx/fw-mel   our int8 ONNX graphs, our greedy rules, on faster-whisper's features
  onnx/our-mel  our int8 ONNX graphs on our features (what the Rust engine decodes)

The two front ends differ in how a window shorter than 30 s is padded: faster-whisper computes
the log-mel of the audio and pads the *features* with zeros (a value of 0 after Whisper's
normalisation), ours pads the *audio* with zeros (silence: the floor of max - 8 after
normalisation). With --steps, for the first point where onnx/fw-mel parts from ct2/fw-mel,
prints the top candidates of both decoders' next step given the same prefix.

Greedy, beam 1, prompt <|startoftranscript|><|lang|><|transcribe|>, timestamps on, the model's
suppress lists, suppress_blank, first timestamp at most 1 s: faster-whisper's defaults at
temperature 0. Runs in the faster-whisper venv (requirements-fw.txt), which has ctranslate2,
onnxruntime and numpy; the CTranslate2 model is the one faster_whisper_bench.py prepares.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_whisper as cw  # noqa: E402  (numpy mel, ONNX sessions, tokenizer)
import faster_whisper_bench as fwb  # noqa: E402  (the CTranslate2 model directory)


def fw_features(window: np.ndarray, n_mels: int) -> np.ndarray:
    from faster_whisper.feature_extractor import FeatureExtractor

    fe = FeatureExtractor(feature_size=n_mels)
    feats = fe(window)  # [n_mels, frames + 1]; faster-whisper drops the last frame
    content = feats[:, : feats.shape[-1] - 1]
    out = np.zeros((n_mels, cw.N_FRAMES), np.float32)
    n = min(content.shape[1], cw.N_FRAMES)
    out[:, :n] = content[:, :n]
    return out


class Rules:
    """Whisper's logit filters at temperature 0, as common/src/asr/whisper.rs applies them."""

    def __init__(self, info: dict):
        t = info["tokens"]
        self.eot, self.tb = t["eot"], t["timestamp_begin"]
        n = info["dims"]["n_vocab"]
        self.suppress = np.zeros(n, bool)
        self.suppress[[i for i in info["suppress_ids"] if i < n]] = True
        self.suppress[self.eot + 1 : self.tb] = True  # specials; timestamps stay allowed
        self.begin = list(info["suppress_ids_begin"])

    def apply(self, logits: np.ndarray, sampled: list[int]) -> np.ndarray:
        s = logits.astype(np.float32).copy()
        tb = self.tb
        s[self.suppress] = -np.inf
        if not sampled:
            s[self.begin] = -np.inf
        last_ts = bool(sampled) and sampled[-1] >= tb
        pen_ts = len(sampled) < 2 or sampled[-2] >= tb
        if last_ts:
            if pen_ts:
                s[tb:] = -np.inf
            else:
                s[: self.eot] = -np.inf
        ts = [t for t in sampled if t >= tb]
        if ts:
            floor = ts[-1] if (last_ts and not pen_ts) else ts[-1] + 1
            s[tb:floor] = -np.inf
        if not sampled:
            s[:tb] = -np.inf
            s[tb + 51 :] = -np.inf
        logp = s - np.logaddexp.reduce(s[np.isfinite(s)]) if np.isfinite(s).any() else s
        if np.logaddexp.reduce(logp[tb:]) > logp[:tb].max():
            s[:tb] = -np.inf
        return s


def onnx_decode(w: cw.Whisper, rules: Rules, mel: np.ndarray, lang: str, forced=None, max_new=224):
    """Greedy decode; with `forced`, feeds those tokens instead and records each step's scores."""
    cross = w.encode(mel)
    cap = w.n_text_ctx
    cache = ([np.zeros((1, w.H, cap, w.Dh), np.float32) for _ in range(w.L)],
             [np.zeros((1, w.H, cap, w.Dh), np.float32) for _ in range(w.L)])
    logits = w.step([w.tok["sot"]], 0, cache, cross)
    no_speech = float(cw._softmax(logits)[w.tok["no_speech"]])
    prompt = [w.lang_ids[lang], w.tok["transcribe"]]
    logits = w.step(prompt, 1, cache, cross)
    offset, out, scores = 3, [], []
    while len(out) < max_new and offset < w.n_text_ctx:
        s = rules.apply(logits, out)
        scores.append((s, logits.copy()))
        nxt = int(np.argmax(s)) if forced is None else (forced[len(out)] if len(out) < len(forced) else None)
        if nxt is None or nxt == rules.eot:
            break
        out.append(nxt)
        logits = w.step([nxt], offset, cache, cross)
        offset += 1
    return out, no_speech, scores


def ct2_decode(model, tok: dict, mel: np.ndarray, lang_id: int, prefix=()):
    import ctranslate2

    feats = ctranslate2.StorageView.from_array(mel[None].astype(np.float32))
    prompt = [tok["sot"], lang_id, tok["transcribe"], *prefix]
    r = model.generate(feats, [prompt], beam_size=1, suppress_blank=True, suppress_tokens=[-1],
                       max_initial_timestamp_index=50, return_scores=True, return_no_speech_prob=True,
                       return_logits_vocab=bool(prefix), max_length=448)[0]
    return list(r.sequences_ids[0]), r.no_speech_prob, r


def show(name: str, ids: list[int], w: cw.Whisper, tb: int) -> None:
    parts, text = [], []
    for t in ids:
        if t >= tb:
            if text:
                parts.append(w.detok.decode(text).strip())
                text = []
            parts.append(f"<|{(t - tb) * 0.02:.2f}|>")
        else:
            text.append(t)
    if text:
        parts.append(w.detok.decode(text).strip() + " …")
    print(f"{name:<13} {len(ids):>3} tokens: {' '.join(parts)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("audio")
    ap.add_argument("--start", type=float, default=0.0)
    ap.add_argument("--end", type=float)
    ap.add_argument("--language", default="ru")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models")
    ap.add_argument("--ct2")
    ap.add_argument("--steps", action="store_true")
    args = ap.parse_args()
    cache = os.environ.get("VOX_CACHE") or os.path.expanduser("~/.cache/voxpersona")
    models = args.models or os.path.join(cache, "models", "whisper-base")
    ct2_dir = args.ct2 or fwb.model_dir(cache)

    import ctranslate2
    from faster_whisper.audio import decode_audio

    audio = decode_audio(args.audio, sampling_rate=cw.SR)
    a, b = int(args.start * cw.SR), int((args.end or len(audio) / cw.SR) * cw.SR)
    window = audio[a:b][: cw.CHUNK]
    print(f"window {args.start:.2f}-{a / cw.SR + len(window) / cw.SR:.2f} s ({len(window) / cw.SR:.2f} s)")

    w = cw.Whisper(models, threads=args.threads)
    rules = Rules(w.info)
    tok, tb = w.tok, w.tok["timestamp_begin"]
    lang_id = w.lang_ids[args.language]
    ct2 = ctranslate2.models.Whisper(ct2_dir, device="cpu", compute_type="int8", intra_threads=args.threads)

    mels = {"fw-mel": fw_features(window, w.n_mels), "our-mel": cw.log_mel(window, w.filters)}
    pad_from = min(len(window) // cw.HOP, cw.N_FRAMES)
    for k, m in mels.items():
        tail = m[:, pad_from + 2:]
        print(f"{k}: max {m.max():.3f}; padding value {tail.mean() if tail.size else float('nan'):.3f}")
    results = {}
    for k, m in mels.items():
        ids, ns, _ = ct2_decode(ct2, tok, m, lang_id)
        results[f"ct2/{k}"] = ids
        show(f"ct2/{k}", ids, w, tb)
        print(f"{'':13} no_speech {ns:.3f}")
    for k, m in mels.items():
        ids, ns, _ = onnx_decode(w, rules, m, args.language)
        results[f"onnx/{k}"] = ids
        show(f"onnx/{k}", ids, w, tb)
        print(f"{'':13} no_speech {ns:.3f}")

    if args.steps:
        ref, ours = results["ct2/fw-mel"], results["onnx/fw-mel"]
        i = next((j for j in range(min(len(ref), len(ours))) if ref[j] != ours[j]), min(len(ref), len(ours)))
        if ref == ours:
            print("onnx/fw-mel and ct2/fw-mel agree on every token")
            return
        print(f"first difference at token {i}: ct2 {ref[i] if i < len(ref) else 'EOT'}, "
              f"onnx {ours[i] if i < len(ours) else 'EOT'}")
        _, _, scores = onnx_decode(w, rules, mels["fw-mel"], args.language, forced=ref[:i] + [rules.eot])
        name = lambda t: "EOT" if t == rules.eot else (f"<|{(t - tb) * 0.02:.2f}|>" if t >= tb else repr(w.detok.decode([int(t)])))
        s, raw = scores[i]
        for label, v in (("filtered", s), ("raw", raw)):
            lp = v - np.logaddexp.reduce(v[np.isfinite(v)])
            top = np.argsort(-lp)[:6]
            extra = f"; all timestamps {np.logaddexp.reduce(lp[tb:]):.3f}" if label == "raw" else ""
            print(f"onnx next-token candidates ({label}, log-prob):", ", ".join(f"{name(t)} {lp[t]:.3f}" for t in top) + extra)
        _, _, r = ct2_decode(ct2, tok, mels["fw-mel"], lang_id, prefix=ref[:i])
        # One vector per step, the forced prefix steps included: the step after it is at i.
        steps = r.logits[0] if getattr(r, "logits", None) else []
        lv = np.asarray(steps[i]) if len(steps) > i else None
        if lv is not None and lv.size:
            lv = lv - np.logaddexp.reduce(lv[np.isfinite(lv)])
            top = np.argsort(-lv)[:6]
            print("ct2 log-probs after the same prefix:", ", ".join(f"{name(t)} {lv[t]:.3f}" for t in top)
                  + f"; all timestamps {np.logaddexp.reduce(lv[tb:]):.3f}")


if __name__ == "__main__":
    main()
