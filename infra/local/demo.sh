#!/usr/bin/env bash
# The main job on local defaults: PostgreSQL up and migrated with the prompt catalog synced,
# models prepared, the S3/SQS emulator up with the bucket, queues, dead-letter queues and the
# ObjectCreated notification (infra/local/moto.sh setup), a sample Russian design audit
# synthesized and uploaded with its metadata (vox upload), the functions run by the local
# event source mapping until every queue is empty (vox run --until-idle), then the stored
# report and its metrics printed from PostgreSQL (offline engine unless VOX_LLM_PROVIDER names
# a hosted model) and a sample question answered from the published index with citations.
# Everything prepared is reused by a second run (the same object is recognised as done).
set -euo pipefail
cd "$(dirname "$0")/../.."

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/voxpersona?sslmode=disable}"
bash infra/local/postgres.sh
# VOX_DEMO_PROFILE=debug uses the debug build (CI's demo check, which has it already).
profile=${VOX_DEMO_PROFILE:-release}
case "$profile" in
  release) cargo build --release --bin vox ;;
  debug) cargo build --bin vox ;;
  *) echo "demo: VOX_DEMO_PROFILE must be release or debug, got '$profile'" >&2; exit 1 ;;
esac
vox=./target/$profile/vox
"$vox" migrate
"$vox" prompts sync
echo "== models" >&2
bash infra/local/models/prepare.sh >/dev/null
bash infra/local/models/prepare_embedding.sh >/dev/null
echo "== S3 and SQS (moto)" >&2
eval "$(bash infra/local/moto.sh setup)"
echo "== sample recording (festival)" >&2
bash infra/local/speech/make_clips.sh >/dev/null
speech="${VOX_CACHE:-$HOME/.cache/voxpersona}/speech"
# A one-minute design audit of a hotel: five festival clips (lobby, furniture, restaurant
# acoustics, spa navigation, facade) joined into one Opus recording, made once.
sample="$speech/demo_audit_ru.ogg"
if [ ! -s "$sample" ]; then
  ffmpeg -nostdin -hide_banner -loglevel error -y \
    -i "$speech/ru_01.wav" -i "$speech/ru_02.wav" -i "$speech/ru_03.wav" \
    -i "$speech/ru_04.wav" -i "$speech/ru_05.wav" \
    -filter_complex '[0:a][1:a][2:a][3:a][4:a]concat=n=5:v=0:a=1' \
    -c:a libopus -b:a 32k -application voip "$sample.tmp.ogg"
  mv "$sample.tmp.ogg" "$sample"
fi
echo "== uploading $sample" >&2
uploaded="$("$vox" upload "$sample" --scenario design --building hotel \
  --report-type structured-audit --place "Гранд Отель" --city Казань --date 2026-03-14 \
  --employee "Анна Смирнова" --key recordings/demo/demo_audit_ru.ogg)"
echo "$uploaded"
# The emulator outlives databases: an index published from an earlier, since recreated
# database is replaced (its chunk ids would name other chunks).
if ! "$vox" index >/dev/null 2>/tmp/vox-demo-index.err; then
  if grep -q "another database" /tmp/vox-demo-index.err; then
    echo "== the published index came from another database: rebuilding it" >&2
    "$vox" index --rebuild >/dev/null
  else
    cat /tmp/vox-demo-index.err >&2
    exit 1
  fi
fi
echo "== running the functions until every queue is empty" >&2
"$vox" run --until-idle
IFS=$'\t' read -r bucket key etag < <(python3 -c 'import json,sys; u=json.loads(sys.argv[1]); print(u["bucket"], u["key"], u["etag"], sep="\t")' "$uploaded")
echo "== stored report (structured audit, hotel)" >&2
psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -Atq \
  -v bucket="$bucket" -v key="$key" -v etag="$etag" <<'SQL'
SELECT format('recording %s: %s', r.recording_id, r.status)
FROM recording r WHERE r.bucket = :'bucket' AND r.object_key = :'key' AND r.etag = :'etag';
SELECT E'\n' || a.audit
       || CASE WHEN a.metrics IS NULL THEN '' ELSE E'\n\nmetrics: ' || a.metrics::text END
FROM recording r
JOIN transcription t USING (recording_id)
JOIN audit a USING (transcription_id)
WHERE r.bucket = :'bucket' AND r.object_key = :'key' AND r.etag = :'etag'
ORDER BY a.report_type_id, a.pass;
SQL
question="Что не так с освещением в лобби?"
echo "== question: $question" >&2
"$vox" ask "$question" ${VOX_DEMO_ASK_ARGS:-}
