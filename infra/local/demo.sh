#!/usr/bin/env bash
# The main job on local defaults, as far as the pipeline goes today: PostgreSQL up and
# migrated, models prepared, a sample Russian recording synthesized, then transcribed.
# Everything prepared is reused by a second run.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash infra/local/postgres.sh
cargo build --release --bin vox
./target/release/vox migrate
echo "== models" >&2
bash infra/local/models/prepare.sh >/dev/null
echo "== sample recording (festival)" >&2
bash infra/local/speech/make_clips.sh >/dev/null
sample="${VOX_CACHE:-$HOME/.cache/voxpersona}/speech/ru_07.ogg"
echo "== transcribing $sample" >&2
./target/release/vox transcribe "$sample"
