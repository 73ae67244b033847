#!/usr/bin/env bash
# The main job on local defaults, as far as the pipeline goes today: PostgreSQL up and
# migrated with the prompt catalog synced, models prepared, a sample Russian design audit
# synthesized, transcribed, then analysed into a structured report (offline engine unless
# VOX_LLM_PROVIDER names a hosted model). Everything prepared is reused by a second run.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash infra/local/postgres.sh
cargo build --release --bin vox
./target/release/vox migrate
./target/release/vox prompts sync
echo "== models" >&2
bash infra/local/models/prepare.sh >/dev/null
bash infra/local/models/prepare_embedding.sh >/dev/null
echo "== sample recording (festival)" >&2
bash infra/local/speech/make_clips.sh >/dev/null
sample="${VOX_CACHE:-$HOME/.cache/voxpersona}/speech/ru_07.ogg"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
echo "== transcribing $sample" >&2
./target/release/vox transcribe "$sample" >"$out/transcript.json"
python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["text"])' "$out/transcript.json"
echo "== structured audit report (hotel)" >&2
./target/release/vox analyze --transcript "$out/transcript.json" \
  --scenario design --report-type structured-audit --building hotel
