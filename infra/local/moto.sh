#!/usr/bin/env bash
# Local S3 + SQS emulator for VoxPersona: moto[server], pinned by
# infra/local/requirements-moto.txt, run in the background on 127.0.0.1.
#
#   infra/local/moto.sh start    install (first time only) and start; prints the endpoint URL
#   infra/local/moto.sh stop     stop the server started by `start` (ok if not running)
#   infra/local/moto.sh status   exit 0 if the server answers, 1 otherwise
#   infra/local/moto.sh reset    wipe all emulated state (POST /moto-api/reset)
#   infra/local/moto.sh url      print http://127.0.0.1:PORT
#   infra/local/moto.sh setup    start, then create (idempotently) the demo's buckets, queues,
#                                dead-letter queues with redrive policies and the ObjectCreated
#                                notification; prints `export VAR=...` lines for `eval`
#
# Environment:
#   VOX_CACHE           cache root (default $HOME/.cache/voxpersona); venv in venv-moto/,
#                       pidfile and log in run/
#   MOTO_PORT           port (default 5000)
#   MOTO_START_TIMEOUT  seconds to wait for the server to answer (default 30)
#   MOTO_PYTHON         interpreter used to create the venv (default python3)
#
#   VOX_LOCAL_NAME      name prefix of what `setup` creates (default vox)
#
# Only the URL goes to stdout (so `url=$(infra/local/moto.sh start)` works; `setup` prints
# only its exports); progress and errors go to stderr. See infra/local/MOTO.md.
set -euo pipefail

SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
REQUIREMENTS="$SCRIPT_DIR/requirements-moto.txt"

CACHE="${VOX_CACHE:-${HOME:-$(cd ~ && pwd)}/.cache/voxpersona}"
VENV="$CACHE/venv-moto"
RUN_DIR="$CACHE/run"
HOST=127.0.0.1
PORT="${MOTO_PORT:-5000}"
START_TIMEOUT="${MOTO_START_TIMEOUT:-30}"
PYTHON="${MOTO_PYTHON:-python3}"

PIDFILE="$RUN_DIR/moto-$PORT.pid"
LOGFILE="$RUN_DIR/moto-$PORT.log"
LOCKFILE="$RUN_DIR/moto-$PORT.lock"
STAMP="$VENV/.requirements.sha256"
URL="http://$HOST:$PORT"

log() { printf 'moto.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
    sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
}

check_port() {
    if ! [[ "$PORT" =~ ^[1-9][0-9]{0,4}$ ]] || ((PORT > 65535)); then
        die "MOTO_PORT must be a port number, got '$PORT'"
    fi
    [[ "$START_TIMEOUT" =~ ^(0|[1-9][0-9]{0,5})$ ]] ||
        die "MOTO_START_TIMEOUT must be a whole number of seconds, got '$START_TIMEOUT'"
}

# --- venv ------------------------------------------------------------------------------

requirements_digest() {
    # The venv is valid for this exact requirements file and this interpreter.
    { sha256sum <"$REQUIREMENTS"; "$PYTHON" -c 'import sys; print(sys.version)'; } |
        sha256sum | cut -d' ' -f1
}

venv_ready() {
    [[ -x "$VENV/bin/moto_server" && -f "$STAMP" ]] || return 1
    [[ "$(cat "$STAMP")" == "$(requirements_digest)" ]] || return 1
    "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1
}

ensure_venv() {
    [[ -f "$REQUIREMENTS" ]] || die "missing $REQUIREMENTS"
    command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found (set MOTO_PYTHON)"
    if venv_ready; then
        return 0 # installed: no pip, no network
    fi
    mkdir -p "$CACHE"
    # One installer at a time; others wait and then find it done.
    exec 8>"$CACHE/venv-moto.lock"
    if command -v flock >/dev/null 2>&1; then
        flock 8
    fi
    if ! venv_ready; then
        local t0=$SECONDS
        log "installing moto into $VENV (first run only; 1-3 minutes)"
        rm -rf "$VENV"
        "$PYTHON" -m venv "$VENV" || die "could not create a venv with $PYTHON"
        # --require-hashes: every artifact must match a hash in the file.
        # --only-binary: wheels only, nothing is compiled.
        PIP_DISABLE_PIP_VERSION_CHECK=1 "$VENV/bin/python" -m pip install \
            --no-input --quiet --require-hashes --only-binary=:all: \
            -r "$REQUIREMENTS" >&2 ||
            { rm -rf "$VENV"; die "pip install of $REQUIREMENTS failed"; }
        requirements_digest >"$STAMP"
        log "installed in $((SECONDS - t0)) s"
    fi
    exec 8>&-
}

# --- process ---------------------------------------------------------------------------

# Pid of our running moto_server for this port, or nothing.
our_pid() {
    local pid cmdline
    [[ -f "$PIDFILE" ]] || return 1
    pid="$(cat "$PIDFILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # Guard against a recycled pid: it must still be our moto_server.
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
    [[ "$cmdline" == *"$VENV/bin/moto_server"* ]] || return 1
    printf '%s\n' "$pid"
}

# Does a moto server answer on the port?
answers() {
    local body
    if command -v curl >/dev/null 2>&1; then
        body="$(curl -sS --max-time 2 "$URL/moto-api/config" 2>/dev/null)" || return 1
    elif [[ -x "$VENV/bin/python" ]]; then
        body="$("$VENV/bin/python" - "$URL/moto-api/config" 2>/dev/null <<'PY'
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())
PY
)" || return 1
    else
        return 1
    fi
    [[ "$body" == *'"batch"'* ]]
}

# Is anything at all listening on the port?
port_taken() {
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}

log_tail() {
    if [[ -f "$LOGFILE" ]]; then
        log "last lines of $LOGFILE:"
        tail -n 20 "$LOGFILE" | sed 's/^/    /' >&2
    fi
}

cmd_start() {
    ensure_venv
    mkdir -p "$RUN_DIR"
    exec 9>"$LOCKFILE"
    if command -v flock >/dev/null 2>&1; then
        flock 9
    fi

    local pid
    if pid="$(our_pid)"; then
        if answers; then
            log "already running (pid $pid)"
            printf '%s\n' "$URL"
            return 0
        fi
        log "pid $pid is running but not answering yet; waiting"
    else
        rm -f "$PIDFILE"
        if port_taken; then
            if answers; then
                die "a moto server not started by this script already listens on $URL; stop it or set MOTO_PORT"
            fi
            die "port $PORT on $HOST is taken by another program; set MOTO_PORT"
        fi
        : >"$LOGFILE"
        # Detached: own session, no stdin, output to the log, cwd /, and none of our
        # other file descriptors (the lock, a CI runner's pipes) inherited.
        (
            cd /
            for fd in /proc/"$BASHPID"/fd/*; do
                fd="${fd##*/}"
                if ((fd > 2)); then eval "exec $fd>&-"; fi
            done
            export MOTO_PORT="$PORT"
            # Through the venv's python, not the script's shebang (which breaks when
            # the cache path contains spaces).
            server=("$VENV/bin/python" "$VENV/bin/moto_server" -H "$HOST" -p "$PORT")
            if command -v setsid >/dev/null 2>&1; then
                exec setsid "${server[@]}"
            else
                exec nohup "${server[@]}"
            fi
        ) </dev/null >>"$LOGFILE" 2>&1 &
        pid=$!
        printf '%s\n' "$pid" >"$PIDFILE"
    fi

    local deadline=$((SECONDS + START_TIMEOUT))
    while ! answers; do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$PIDFILE"
            log_tail
            die "moto_server (pid $pid) exited before answering on $URL"
        fi
        if ((SECONDS >= deadline)); then
            kill "$pid" 2>/dev/null || true
            rm -f "$PIDFILE"
            log_tail
            die "moto_server (pid $pid) did not answer on $URL within ${START_TIMEOUT}s; stopped it"
        fi
        sleep 0.1
    done
    log "started (pid $pid, log $LOGFILE)"
    printf '%s\n' "$URL"
}

cmd_stop() {
    local pid
    if [[ -d "$RUN_DIR" ]] && command -v flock >/dev/null 2>&1; then
        exec 9>"$LOCKFILE"
        flock 9 # wait for a `start` in progress
    fi
    if ! pid="$(our_pid)"; then
        rm -f "$PIDFILE"
        log "not running"
        return 0
    fi
    kill "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "pid $pid ignored SIGTERM for 10 s; sending SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$PIDFILE"
    log "stopped (pid $pid)"
}

cmd_status() {
    local pid
    if answers; then
        if pid="$(our_pid)"; then
            log "running at $URL (pid $pid)"
        else
            log "a moto server answers at $URL (not started by this script)"
        fi
        return 0
    fi
    log "not running at $URL"
    return 1
}

cmd_reset() {
    answers || die "no moto server answers at $URL (run: $0 start)"
    local out
    if command -v curl >/dev/null 2>&1; then
        out="$(curl -sS --max-time 30 -X POST "$URL/moto-api/reset")" ||
            die "POST $URL/moto-api/reset failed"
    else
        out="$("$VENV/bin/python" - "$URL/moto-api/reset" <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=b"", method="POST")
print(urllib.request.urlopen(req, timeout=30).read().decode())
PY
)" || die "POST $URL/moto-api/reset failed"
    fi
    [[ "$out" == *'"ok"'* ]] || die "unexpected reset answer: $out"
    log "state reset"
}

# The local twin of infra/aws/template.yaml's storage and queues: a recordings bucket whose
# ObjectCreated notifications under recordings/ go to the transcribe queue, an index bucket,
# the transcribe, analyze and index (FIFO) queues, each with a dead-letter queue and a redrive
# policy. Visibility timeouts are short (`vox run` keeps a batch invisible while it runs), so a
# failed message is retried within seconds instead of the deployed 90 minutes.
cmd_setup() {
    cmd_start >/dev/null
    local name="${VOX_LOCAL_NAME:-vox}"
    [[ "$name" =~ ^[a-z0-9][a-z0-9-]{0,40}$ ]] ||
        die "VOX_LOCAL_NAME must be lower-case letters, digits and dashes, got '$name'"
    AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_DEFAULT_REGION=eu-central-1 \
        "$VENV/bin/python" - "$URL" "$name" <<'PY'
import json, sys
import boto3

url, name = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=url)
sqs = boto3.client("sqs", endpoint_url=url)
region = "eu-central-1"

def queue(qname, visibility, dlq_max=None):
    fifo = qname.endswith(".fifo")
    base = {"FifoQueue": "true"} if fifo else {}
    dlq_name = qname[:-5] + "-dlq.fifo" if fifo else qname + "-dlq"
    dlq_url = sqs.create_queue(QueueName=dlq_name, Attributes=base)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    attrs = dict(base, VisibilityTimeout=str(visibility),
                 RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(dlq_max)}))
    try:
        q_url = sqs.create_queue(QueueName=qname, Attributes=attrs)["QueueUrl"]
    except sqs.exceptions.QueueNameExists:
        q_url = sqs.get_queue_url(QueueName=qname)["QueueUrl"]
        attrs.pop("FifoQueue", None)
        sqs.set_queue_attributes(QueueUrl=q_url, Attributes=attrs)
    return q_url

def bucket(bname):
    try:
        s3.create_bucket(Bucket=bname, CreateBucketConfiguration={"LocationConstraint": region})
    except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        pass

transcribe = queue(f"{name}-transcribe", 60, 3)
analyze = queue(f"{name}-analyze", 60, 3)
index = queue(f"{name}-index.fifo", 60, 10)
recordings, index_bucket = f"{name}-recordings", f"{name}-index"
bucket(recordings)
bucket(index_bucket)
# The console uploads and plays straight from the bucket (presigned PUT and GET, from the
# page's own origin): the bucket allows those cross-origin requests.
s3.put_bucket_cors(Bucket=recordings, CORSConfiguration={"CORSRules": [{
    "AllowedOrigins": ["*"], "AllowedMethods": ["PUT", "GET", "HEAD"],
    "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag"], "MaxAgeSeconds": 3000}]})
arn = sqs.get_queue_attributes(QueueUrl=transcribe, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
wanted = [{"Id": "transcribe", "QueueArn": arn, "Events": ["s3:ObjectCreated:*"],
           "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "recordings/"}]}}}]
current = s3.get_bucket_notification_configuration(Bucket=recordings).get("QueueConfigurations", [])
# Every PutBucketNotificationConfiguration sends an s3:TestEvent: only when it changes.
if [(c.get("Id"), c.get("QueueArn")) for c in current] != [("transcribe", arn)]:
    s3.put_bucket_notification_configuration(
        Bucket=recordings, NotificationConfiguration={"QueueConfigurations": wanted})

exports = {
    "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_REGION": region, "VOX_RECORDINGS_BUCKET": recordings,
    "VOX_RECORDINGS_PREFIX": "recordings/", "VOX_INDEX_BUCKET": index_bucket,
    "VOX_TRANSCRIBE_QUEUE_URL": transcribe, "VOX_ANALYZE_QUEUE_URL": analyze,
    "VOX_INDEX_QUEUE_URL": index,
}
for k, v in exports.items():
    print(f"export {k}={v}")
PY
    log "set up buckets $name-recordings, $name-index and queues $name-transcribe, $name-analyze, $name-index.fifo (each with a -dlq)"
}

main() {
    local cmd="${1:-}"
    case "$cmd" in
    start | stop | status | reset | url | setup) check_port ;;
    -h | --help | help) usage; return 0 ;;
    *) usage; die "unknown command '${cmd}'" ;;
    esac
    case "$cmd" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    reset) cmd_reset ;;
    url) printf '%s\n' "$URL" ;;
    setup) cmd_setup ;;
    esac
}

main "$@"
