#!/usr/bin/env bash
# The demo's own path, checked: runs infra/local/demo.sh (debug build) on a database and
# emulator resources of its own, asserts the final state (the recording done, its reports,
# metrics and chunks stored, an index generation published, the sample question answered
# with sources citing the recording), then runs it again and asserts that the second run
# reused everything (no new recording, no new transcription). Used by the test command.
set -euo pipefail
cd "$(dirname "$0")/../.."

db=vox_demo_check
admin=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
trap 'psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true' EXIT
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db?sslmode=disable
export VOX_LOCAL_NAME=voxcheck VOX_DEMO_PROFILE=debug VOX_DEMO_ASK_ARGS=--json

fail() { echo "demo check: $*" >&2; exit 1; }
sql() { psql "$DATABASE_URL" -Atqc "$1"; }

started=$(date +%s)
bash infra/local/demo.sh > /tmp/vox-demo-check.out 2> /tmp/vox-demo-check.err ||
  { tail -n 40 /tmp/vox-demo-check.err >&2; fail "the demo failed"; }
first=$(( $(date +%s) - started ))

[ "$(sql "SELECT count(*) FROM recording WHERE status = 'done'")" = 1 ] ||
  fail "the sample recording is not done: $(sql "SELECT status || ' ' || coalesce(last_error, '') FROM recording")"
[ "$(sql "SELECT count(*) FROM audit WHERE kind = 'narrative'")" -ge 3 ] || fail "narrative reports missing"
[ "$(sql "SELECT count(*) FROM audit WHERE kind = 'metrics' AND metrics IS NOT NULL")" = 1 ] ||
  fail "the metrics report is missing"
[ "$(sql "SELECT count(*) FROM chunk")" -gt 0 ] || fail "no chunks stored"
[ "$(sql "SELECT count(*) FROM index_generation WHERE deleted_at IS NULL")" -ge 1 ] ||
  fail "no index generation published"
grep -q "Структурированный отчёт аудита" /tmp/vox-demo-check.out || fail "the report was not printed"
# The answer is the last JSON document of the output.
python3 - /tmp/vox-demo-check.out <<'PY' || fail "the sample question was not answered with citations"
import json, sys
text = open(sys.argv[1], encoding="utf-8").read()
answer = json.loads(text[text.rindex('\n{\n  "question"') + 1:])
assert answer["found"], answer["text"]
assert answer["statements"] and all(s["sources"] for s in answer["statements"]), answer
keys = {s["object_key"] for s in answer["sources"]}
assert keys == {"recordings/demo/demo_audit_ru.ogg"}, keys
assert all(s["segments"] for s in answer["sources"]), "sources without segment times"
print(f"demo check: answered with {len(answer['sources'])} cited source(s)")
PY

transcriptions=$(sql "SELECT count(*) FROM transcription")
started=$(date +%s)
bash infra/local/demo.sh > /tmp/vox-demo-check2.out 2> /tmp/vox-demo-check2.err ||
  { tail -n 40 /tmp/vox-demo-check2.err >&2; fail "the second run failed"; }
second=$(( $(date +%s) - started ))
[ "$(sql "SELECT count(*) FROM recording")" = 1 ] || fail "the second run made another recording"
[ "$(sql "SELECT count(*) FROM transcription")" = "$transcriptions" ] ||
  fail "the second run transcribed again"
echo "demo check: passed (first run ${first} s, second ${second} s)"
