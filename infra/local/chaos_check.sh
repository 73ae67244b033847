#!/usr/bin/env bash
# The chaos check (issue 14): the pipeline survives the faults it is meant to survive, and
# its final state equals a clean run's.
#
# Two worlds, each with a database and emulator resources of its own, get the same uploads
# (short festival clips and hostile files). The reference world runs `vox run --until-idle`
# once. The chaos world runs it again and again, aborting the process (SIGABRT: what kill -9
# leaves, see common/src/chaos.rs) at each named step in turn, then with the database's
# connections cut under it, with the emulator frozen (SIGSTOP) for a while, and with three
# workers at once on eight more uploads; then runs clean until idle and sweeps
# (`vox maintain`). The check asserts that both worlds hold the same recordings with the
# same statuses, reasons, transcripts, reports and chunks, that the index covers every
# chunk, that no row is left without a final state, that every dead-letter queue is empty
# and that no temporary file is left.
#
# Leases are short (3 s) and redeliveries quick (4 s), so a killed worker's work is taken
# over within seconds. Uses the debug build of `vox`. Used by the test command.
set -euo pipefail
cd "$(dirname "$0")/../.."

admin=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
export PGOPTIONS=--client-min-messages=warning
ref_db=vox_chaos_ref
chaos_db=vox_chaos
tmp=$(mktemp -d /tmp/vox-chaos-check.XXXXXX)
cutter=
cleanup() {
  [ -n "$cutter" ] && kill "$cutter" 2>/dev/null || true
  [ -n "${moto_pid:-}" ] && kill -CONT "$moto_pid" 2>/dev/null || true
  for db in "$ref_db" "$chaos_db"; do
    psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  # VOX_CHAOS_KEEP=1 keeps the worlds' outputs for a look.
  if [ -n "${VOX_CHAOS_KEEP:-}" ]; then echo "chaos check: outputs kept in $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

fail() { echo "chaos check: $*" >&2; exit 1; }
log() { echo "chaos check: $*" >&2; }

cargo build -q --bin vox
vox=$PWD/target/debug/vox
check_started=$(date +%s)
bash infra/local/postgres.sh >/dev/null
bash infra/local/speech/make_clips.sh >/dev/null
speech="${VOX_CACHE:-$HOME/.cache/voxpersona}/speech"
moto_url=$(bash infra/local/moto.sh start 2>/dev/null)
moto_pid=$(bash infra/local/moto.sh status 2>&1 | grep -o 'pid [0-9]*' | grep -o '[0-9]*' || true)
moto_python="${VOX_CACHE:-$HOME/.cache/voxpersona}/venv-moto/bin/python"

export VOX_LEASE_SECONDS=3 VOX_JOB_LEASE_SECONDS=3 VOX_SWEEP_IDLE_SECONDS=0
# One `vox run` process runs all three functions here, so each kill also kills whatever else
# was in flight (deployed, each function crashes alone): seven kills can all land on one
# slow recording. The attempt budgets and receive counts are raised above the deployed 5 and
# 8 so that the check measures recovery, not the budget (which the sweeper test covers).
export VOX_MAX_ATTEMPTS=20 VOX_JOB_MAX_ATTEMPTS=20
export RUST_LOG=${RUST_LOG:-warn}
run_args=(run --until-idle --visibility-timeout 4)

# world NAME DB: the environment of one world (database, bucket, queues, temp dir).
world() {
  local name=$1 db=$2
  psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
  psql "$admin" -qc "CREATE DATABASE $db" >/dev/null
  mkdir -p "$tmp/$name/tmp"
  {
    echo "export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db?sslmode=disable"
    echo "export TMPDIR=$tmp/$name/tmp"
    VOX_LOCAL_NAME="voxchaos-$name" bash infra/local/moto.sh setup 2>/dev/null
  } > "$tmp/$name/env"
  # Queues outlive databases (and an earlier check may have stopped half-way): both worlds
  # start with every queue empty.
  inw "$name" queues purge
  inw "$name" queues redrive
  inw "$name" "$vox" migrate >/dev/null
  inw "$name" "$vox" prompts sync >/dev/null
  inw "$name" "$vox" index --rebuild >/dev/null
}

# queues purge|redrive|dead-letters: empties every queue of the world; gives its queues a
# redrive policy of 20 receives (see VOX_MAX_ATTEMPTS above; the local setup's 3 would take a
# message killed three times in a row for a poison message); or prints the messages its
# dead-letter queues hold.
queues() {
  "$moto_python" - "$1" <<'PY'
import json, os, sys
import boto3
sqs = boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"])
urls = [os.environ[v] for v in ("VOX_TRANSCRIBE_QUEUE_URL", "VOX_ANALYZE_QUEUE_URL", "VOX_INDEX_QUEUE_URL")]
dlqs = [u[:-5] + "-dlq.fifo" if u.endswith(".fifo") else u + "-dlq" for u in urls]
if sys.argv[1] == "purge":
    for u in urls + dlqs:
        sqs.purge_queue(QueueUrl=u)
elif sys.argv[1] == "redrive":
    for u, dlq, n in zip(urls, dlqs, (20, 20, 20)):
        arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": str(n)})
        sqs.set_queue_attributes(QueueUrl=u, Attributes={"RedrivePolicy": policy})
else:
    for u in dlqs:
        a = sqs.get_queue_attributes(QueueUrl=u, AttributeNames=["All"])["Attributes"]
        n = sum(int(a[k]) for k in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"))
        if n:
            print(f"{n} message(s) in {u.rsplit('/', 1)[-1]}")
PY
}

# inw NAME CMD...: runs CMD in world NAME.
inw() { local name=$1; shift; ( . "$tmp/$name/env"; "$@" ); }

upload() { # NAME FILE KEY
  inw "$1" "$vox" upload "$2" --scenario design --building hotel --report-type structured-audit \
    --place "Отель $3" --city Казань --date 2026-03-14 --key "recordings/$3" >/dev/null
}

# The state both worlds must end in, one line per fact.
state() {
  inw "$1" psql "postgres://postgres@127.0.0.1:5432/$2?sslmode=disable" -Atq <<'SQL'
SELECT 'recording ' || r.object_key || ' ' || r.status || ' ' || coalesce(r.last_error, '-')
       || ' transcript ' || coalesce((SELECT md5(t.transcription_text) FROM transcription t WHERE t.recording_id = r.recording_id), '-')
       || ' reports ' || (SELECT count(*) || ' ' || coalesce(md5(string_agg(a.audit, '|' ORDER BY a.report_type_id, a.pass)), '-')
                          FROM audit a JOIN transcription t USING (transcription_id)
                          WHERE t.recording_id = r.recording_id)
       || ' chunks ' || (SELECT count(*) FROM chunk c JOIN audit a ON a.audit_id = c.audit_id
                         JOIN transcription t ON t.transcription_id = a.transcription_id
                         WHERE t.recording_id = r.recording_id)
       || ' windows ' || (SELECT count(*) || ' ' || coalesce(md5(string_agg(c.text, '|' ORDER BY c.seq)), '-')
                          FROM chunk c JOIN transcription t ON t.transcription_id = c.transcription_id
                          WHERE t.recording_id = r.recording_id)
FROM recording r ORDER BY r.object_key;
SELECT 'jobs ' || status || ' ' || count(*) FROM analysis_job GROUP BY status ORDER BY status;
SQL
}

log "setting up two worlds"
world ref "$ref_db"
world chaos "$chaos_db"
first=(ru_01 ru_02 ru_03)
more=(ru_04 ru_05 ru_06 en_01 en_02 en_03 en_04 en_05)
# WAV headers declaring 2,147,483,647 Hz and 0 Hz over a second of silence, a text file
# named .ogg, an empty file.
python3 - "$tmp" <<'PY'
import struct, sys
for name, rate in (("rate_2g.wav", 2_147_483_647), ("rate_0.wav", 0)):
    data = bytes(32000)
    header = b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack(
        "<IHHIIHH", 16, 1, 1, rate, (rate * 2) & 0xFFFFFFFF, 2, 16) + b"data" + struct.pack("<I", len(data))
    open(f"{sys.argv[1]}/{name}", "wb").write(header + data)
PY
cp "$speech/not_audio.ogg" "$speech/empty.wav" "$tmp/"
hostile=(rate_2g.wav rate_0.wav not_audio.ogg empty.wav)
for name in ref chaos; do
  for c in "${first[@]}"; do upload "$name" "$speech/$c.ogg" "$c.ogg"; done
  for h in "${hostile[@]}"; do upload "$name" "$tmp/$h" "hostile-$h"; done
done

log "reference run"
started=$(date +%s)
inw ref "$vox" "${run_args[@]}" > "$tmp/ref.out" 2>&1 || fail "the reference run failed: $(tail -5 "$tmp/ref.out")"
for c in "${more[@]}"; do upload ref "$speech/$c.ogg" "$c.ogg"; done
inw ref "$vox" "${run_args[@]}" >> "$tmp/ref.out" 2>&1 || fail "the reference run failed: $(tail -5 "$tmp/ref.out")"
log "reference run: $(( $(date +%s) - started )) s"

# Each step: a worker aborted there; the next run (after leases and visibility ran out)
# takes over where it stopped.
for step in claimed window-saved transcript-stored audits-stored chunks-stored index-uploaded manifest-swapped; do
  started=$(date +%s)
  set +e
  VOX_CHAOS_ABORT_AT=$step inw chaos "$vox" "${run_args[@]}" > "$tmp/chaos-$step.out" 2>&1
  rc=$?
  set -e
  grep -q "chaos: aborting at $step" "$tmp/chaos-$step.out" && aborted=yes || aborted=no
  log "killed at $step: exit $rc, aborted $aborted ($(( $(date +%s) - started )) s)"
  [ "$aborted" = yes ] || [ "$rc" = 0 ] || fail "the run for $step failed without aborting: $(tail -5 "$tmp/chaos-$step.out")"
  sleep 4
done

# Eight more uploads, three workers at once, with the database cutting connections and the
# emulator frozen for a while.
for c in "${more[@]}"; do upload chaos "$speech/$c.ogg" "$c.ogg"; done
started=$(date +%s)
(
  for _ in 1 2 3; do
    sleep 3
    psql "$admin" -Atqc "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
                         WHERE datname = '$chaos_db' AND pid <> pg_backend_pid()" >> "$tmp/cut.log"
  done
  if [ -n "$moto_pid" ]; then
    kill -STOP "$moto_pid"; sleep 6; kill -CONT "$moto_pid"
  fi
) &
cutter=$!
pids=()
for w in 1 2 3; do
  inw chaos "$vox" "${run_args[@]}" > "$tmp/worker-$w.out" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
wait "$cutter" || true
cutter=
log "three workers, connections cut ($(awk "{s+=\$1} END {print s+0}" "$tmp/cut.log") killed), emulator frozen 6 s: $(( $(date +%s) - started )) s"

# Then a clean run to idle, the sweeper, and a clean run for what it re-queued.
inw chaos "$vox" "${run_args[@]}" > "$tmp/final.out" 2>&1 || true
inw chaos "$vox" maintain > "$tmp/maintain.out" 2>&1 || fail "vox maintain failed: $(tail -5 "$tmp/maintain.out")"
inw chaos "$vox" "${run_args[@]}" >> "$tmp/final.out" 2>&1 ||
  fail "the final run did not end clean: $(tail -5 "$tmp/final.out")"

state ref "$ref_db" > "$tmp/ref.state"
state chaos "$chaos_db" > "$tmp/chaos.state"
diff -u "$tmp/ref.state" "$tmp/chaos.state" >&2 || fail "the final state differs from the clean run's"
grep -q ' done ' "$tmp/ref.state" || fail "no recording reached done in the reference run"
for h in "${hostile[@]}"; do
  grep -q "recording recordings/hostile-$h failed " "$tmp/chaos.state" || fail "hostile file $h did not fail with a reason"
done

dead=$(inw chaos queues dead-letters)
[ -z "$dead" ] || fail "dead-letter queues are not empty: $dead"
stuck=$(inw chaos psql "postgres://postgres@127.0.0.1:5432/$chaos_db?sslmode=disable" -Atqc \
  "SELECT count(*) FROM recording WHERE status NOT IN ('done', 'failed')")
[ "$stuck" = 0 ] || fail "$stuck recording(s) not in a final state"
inw chaos "$vox" maintain --json > "$tmp/maintain.json"
python3 - "$tmp/maintain.json" <<'PY' || fail "the index does not cover every chunk"
import json, sys
m = json.load(open(sys.argv[1]))
assert m["index"]["chunks_not_indexed"] == 0, m["index"]
assert m["stuck"]["requeued"] == [] and m["stuck"]["failed"] == [], m["stuck"]
PY
# Ours only: libraries leave files of their own there (ONNX Runtime's `.ses`).
left=$(find "$tmp/chaos/tmp" -mindepth 1 -maxdepth 1 -name 'vox-*')
[ -z "$left" ] || fail "temporary files left: $left"
echo "chaos check: passed in $(( $(date +%s) - check_started )) s ($(grep -c '^recording' "$tmp/chaos.state") recordings equal to the clean run's)"
