#!/usr/bin/env bash
# Every function under `cargo lambda watch`, invoked with each fixture of infra/local/events/
# as infra/local/LOOP.md documents, in the documented order, with the responses and the
# stored state checked. Runs on a database and emulator resources of its own; used by the
# test command.
#
# The fixtures name the default local bucket (vox-recordings); this check's own bucket is
# written into a copy of the two transcribe fixtures, nothing else is changed.
set -euo pipefail
cd "$(dirname "$0")/../.."

db=vox_lambda_check
admin=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db?sslmode=disable
export VOX_LOCAL_NAME=voxlambda
work=$(mktemp -d)
watch_pid=
cleanup() {
  [ -n "$watch_pid" ] && kill -- -"$watch_pid" 2>/dev/null || true
  psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "lambda check: $*" >&2
  [ -s "$work/watch.log" ] && tail -n 30 "$work/watch.log" >&2
  exit 1
}
sql() { psql "$DATABASE_URL" -Atqc "$1"; }

started=$(date +%s)
cargo_lambda=$(bash infra/local/cargo_lambda.sh)
bash infra/local/postgres.sh
psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
bash infra/local/models/prepare.sh >/dev/null
bash infra/local/models/prepare_embedding.sh >/dev/null
bash infra/local/speech/make_clips.sh >/dev/null
speech="${VOX_CACHE:-$HOME/.cache/voxpersona}/speech"
eval "$(bash infra/local/moto.sh setup)"
# moto outlives this check's database: an index published by an earlier run (from a database
# since dropped) is removed first, and what the run leaves in its own queues at the end, so
# that a later `vox run` with the same names meets neither.
emulator() {
  "${VOX_CACHE:-$HOME/.cache/voxpersona}/venv-moto/bin/python" - "$1" <<'PY'
import os, sys, boto3
kw = dict(endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])
if sys.argv[1] == "clear-index":
    bucket = boto3.resource("s3", **kw).Bucket(os.environ["VOX_INDEX_BUCKET"])
    bucket.objects.all().delete()
else:
    sqs = boto3.client("sqs", **kw)
    for var in ("VOX_TRANSCRIBE_QUEUE_URL", "VOX_ANALYZE_QUEUE_URL", "VOX_INDEX_QUEUE_URL"):
        while True:
            got = sqs.receive_message(QueueUrl=os.environ[var], MaxNumberOfMessages=10,
                                      WaitTimeSeconds=0).get("Messages", [])
            if not got:
                break
            for m in got:
                sqs.delete_message(QueueUrl=os.environ[var], ReceiptHandle=m["ReceiptHandle"])
PY
}
emulator clear-index
trap 'emulator drain-queues || true; cleanup' EXIT

cargo build -q --bin vox
vox=./target/debug/vox
"$vox" migrate >/dev/null
"$vox" prompts sync >/dev/null
# The two objects the transcribe fixtures name, with a design audit's metadata. Reads are
# pinned to the notified version, so the fixtures get the uploaded objects' real ETags.
etag_of() { python3 -c 'import json, sys; print(json.load(sys.stdin)["etag"])'; }
etag1=$("$vox" upload "$speech/ru_01.ogg" --key "аудит 1/запись ё.ogg" --scenario design \
  --building hotel --report-type structured-audit --report-type audit-methodology \
  --place "Гранд Отель" --city Казань --date 2026-03-14 | etag_of)
etag2=$("$vox" upload "$speech/ru_05.m4a" --key "design/2026-03-14 Grand Hotel.m4a" --scenario design \
  --building hotel --report-type structured-audit | etag_of)
for f in transcribe-sqs-batch transcribe-s3-direct; do
  sed -e "s/vox-recordings/$VOX_RECORDINGS_BUCKET/g" \
    -e "s/de73644a7f88c4c2732938c6637de795/$etag1/g" \
    -e "s/e8919f820eb5dce470d00ae589163686-2/$etag2/g" "infra/local/events/$f.json" > "$work/$f.json"
  grep -q "$VOX_RECORDINGS_BUCKET" "$work/$f.json" || fail "$f.json does not name vox-recordings"
done

# The emulator builds each function (debug, `cargo run --bin NAME`) on its first invocation
# and runs it with this environment. They are built here first, one at a time as the emulator
# builds them (the same features, so the same artifacts), so that no invocation waits for a
# compiler.
for fn in transcribe analyze index api; do
  cargo build -q --bin "$fn"
done
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
setsid "$cargo_lambda" lambda watch -A 127.0.0.1 -P "$port" --timeout 900 \
  > "$work/watch.log" 2>&1 &
watch_pid=$!
for _ in $(seq 1 600); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || fail "cargo lambda watch did not listen on $port"

# invoke FUNCTION FIXTURE: the function's response lands in $r (not a command substitution,
# so that a failure here ends the check at once).
invoke() {
  local out="$work/$1-$(basename "$2")"
  "$cargo_lambda" lambda invoke "$1" -A 127.0.0.1 -P "$port" --output-format json \
    --data-file "$2" > "$out" 2> "$out.err" ||
    fail "cargo lambda invoke $1 --data-file $2 failed: $(cat "$out.err" "$out")"
  echo "lambda check: $1 $(basename "$2"): $(tr -d '\n' < "$out" | cut -c1-300)" >&2
  r=$(cat "$out")
}
# check JSON PYTHON-EXPRESSION MESSAGE: the expression over `r` (the response) must hold.
check() {
  python3 -c 'import json, sys; r = json.loads(sys.argv[1]); sys.exit(0 if eval(sys.argv[2]) else 1)' \
    "$1" "$2" || fail "$3: $1"
}
# invoke_api FIXTURE: the API function must answer 200; its body lands in $body.
invoke_api() {
  invoke api "$1"
  check "$r" 'r["statusCode"] == 200' "the api answered $(basename "$1")"
  body=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["body"])' "$r")
}

echo "lambda check: transcribe (an SQS batch with s3:TestEvent, a direct S3 event)" >&2
invoke transcribe "$work/transcribe-sqs-batch.json"
check "$r" 'r == {"batchItemFailures": []}' "transcribe reported failures"
invoke transcribe "$work/transcribe-s3-direct.json"
check "$r" 'len(r["processed"]) == 1 and "transcription" in r["processed"][0]' "the direct S3 event"
[ "$(sql "SELECT count(*) FROM recording WHERE status = 'transcribed'")" = 2 ] ||
  fail "the two recordings are not transcribed: $(sql "SELECT object_key || ': ' || status || ' ' || coalesce(last_error, '') FROM recording")"

echo "lambda check: analyze (an SQS batch of two jobs, a direct job)" >&2
invoke analyze infra/local/events/analyze-sqs-batch.json
check "$r" 'r == {"batchItemFailures": []}' "analyze reported failures"
invoke analyze infra/local/events/analyze-job-direct.json
check "$r" 'r == {"analysis_job_id": 1, "outcome": "already_done"}' "the direct job was not recognised as done"
[ "$(sql "SELECT count(*) FROM analysis_job WHERE analysis_job_id IN (1, 2) AND status = 'done'")" = 2 ] ||
  fail "jobs 1 and 2 are not done: $(sql "SELECT analysis_job_id || ' ' || status || ' ' || coalesce(last_error, '') FROM analysis_job ORDER BY analysis_job_id")"
[ "$(sql "SELECT count(*) FROM audit")" -gt 0 ] || fail "no reports stored"

echo "lambda check: index (an SQS batch, a direct rebuild)" >&2
invoke index infra/local/events/index-sqs-batch.json
check "$r" 'r == {"batchItemFailures": []}' "index reported failures"
invoke index infra/local/events/index-direct-rebuild.json
check "$r" 'r.get("rebuilt") is True and r["generation"] >= 1 and r["chunks_added"] > 0' \
  "the rebuild published nothing"
[ "$(sql "SELECT count(*) FROM index_generation WHERE deleted_at IS NULL")" -ge 1 ] ||
  fail "no index generation published"

echo "lambda check: api (API Gateway HTTP API v2 requests)" >&2
invoke_api infra/local/events/api-get-scenarios.json
check "$body" 'any(s["id"] == "design" for s in r)' "GET /scenarios"
invoke_api infra/local/events/api-list-audits.json
check "$body" 'len(r["items"]) > 0' "GET /audits listed nothing"
invoke_api infra/local/events/api-post-search.json
check "$body" 'len(r["hits"]) > 0' "POST /search found nothing"
invoke_api infra/local/events/api-post-answer.json
check "$body" 'r["found"] and r["sources"]' "POST /answers did not answer"

echo "lambda check: passed ($(( $(date +%s) - started )) s)"
