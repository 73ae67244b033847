#!/usr/bin/env bash
# The API against its own OpenAPI document: schemathesis (PyPI, pinned, in a venv of its own)
# generates requests for every operation against `vox serve` on a database of its own, with an
# admin key, and fails on any 5xx or any response that does not match the document. Needs
# PostgreSQL, the S3/SQS emulator (VOX_TEST_MOTO_URL) and the models, as the tests do; uses
# the debug `vox` binary the test run built (or builds it).
set -euo pipefail
cd "$(dirname "$0")/../.."

cache=${VOX_CACHE:-$HOME/.cache/voxpersona}
venv=$cache/venv-st
version=4.32.5
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$version"; then
  echo "api_contract: installing schemathesis $version into $venv (first run only)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$version"
fi

db=vox_contract
admin=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db?sslmode=disable
export AWS_ENDPOINT_URL=${VOX_TEST_MOTO_URL:?VOX_TEST_MOTO_URL must point at the emulator}
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_REGION=us-east-1
export VOX_S3_PATH_STYLE=true VOX_RECORDINGS_BUCKET=vox-contract
cargo build -q -p vox
vox=target/debug/vox
"$vox" migrate >/dev/null
"$vox" prompts sync >/dev/null
key=$("$vox" keys create --name contract --role admin | grep -o 'vox_[A-Za-z0-9_-]*' | head -n 1)
[ -n "$key" ] || { echo "api_contract: no admin key was printed" >&2; exit 1; }

port=18080
"$vox" serve --port "$port" 2>/tmp/vox-contract-serve.log &
serve=$!
cleanup() {
  kill "$serve" 2>/dev/null || true
  wait "$serve" 2>/dev/null || true
  psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 "$serve" 2>/dev/null || { cat /tmp/vox-contract-serve.log >&2; exit 1; }
  sleep 0.5
done

"$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --header "Authorization: Bearer $key" \
  --checks not_a_server_error,response_schema_conformance,content_type_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "${VOX_CONTRACT_EXAMPLES:-25}" \
  --workers 2 \
  --seed 1 \
  --no-color
