#!/usr/bin/env bash
# The web console in a real browser: Debian's headless Chromium, driven by playwright-core
# (npm, pinned in tests/browser/package-lock.json), against `vox serve` on a database and
# emulator resources of its own. Signs in, uploads a festival clip through the console's
# presigned PUT, runs the functions (`vox run --until-idle`) while the page follows the status,
# opens a report and plays a quote from its moment, exports Markdown, DOCX and PDF (the PDF's
# text checked with pdftotext), follows the transcript, searches, asks a fast and a deep
# question, and checks the 390 px layout. Screenshots and exports land in
# ${CARGO_TARGET_DIR:-target}/browser/. Used by the test command.
set -euo pipefail
cd "$(dirname "$0")/../.."

chromium=${VOX_CHROMIUM:-/usr/bin/chromium}
[ -x "$chromium" ] || { echo "browser check: $chromium is missing (apt-get install chromium)" >&2; exit 1; }
command -v pdftotext >/dev/null || { echo "browser check: pdftotext is missing (apt-get install poppler-utils)" >&2; exit 1; }
command -v node >/dev/null || { echo "browser check: node is missing" >&2; exit 1; }
if ! cmp -s tests/browser/package-lock.json tests/browser/node_modules/.package-lock.json 2>/dev/null; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

target=${CARGO_TARGET_DIR:-target}
artifacts=$target/browser
rm -rf "$artifacts"
mkdir -p "$artifacts"

db=vox_browser_check
admin=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable
psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
export DATABASE_URL=postgres://postgres@127.0.0.1:5432/$db?sslmode=disable
# Buckets and queues of its own each run: nothing left over from an earlier run is processed.
export VOX_LOCAL_NAME=voxbrowser-$(date +%s)
eval "$(bash infra/local/moto.sh setup)"
cargo build -q -p vox
vox=$target/debug/vox
"$vox" migrate >/dev/null
"$vox" prompts sync >/dev/null
key=$("$vox" keys create --name browser --role admin | grep -o 'vox_[A-Za-z0-9_-]*' | head -n 1)
[ -n "$key" ] || { echo "browser check: no admin key was printed" >&2; exit 1; }

# A design audit of about a minute: five festival sentences about a hotel, as the demo uses.
bash infra/local/speech/make_clips.sh >/dev/null
speech="${VOX_CACHE:-$HOME/.cache/voxpersona}/speech"
clip="$speech/browser_audit_ru.ogg"
if [ ! -s "$clip" ]; then
  ffmpeg -nostdin -hide_banner -loglevel error -y \
    -i "$speech/ru_01.wav" -i "$speech/ru_02.wav" -i "$speech/ru_03.wav" \
    -i "$speech/ru_04.wav" -i "$speech/ru_05.wav" \
    -filter_complex '[0:a][1:a][2:a][3:a][4:a]concat=n=5:v=0:a=1' \
    -c:a libopus -b:a 32k -application voip "$clip.tmp.ogg"
  mv "$clip.tmp.ogg" "$clip"
fi

port=${VOX_BROWSER_PORT:-18082}
"$vox" serve --port "$port" 2>"$artifacts/serve.log" &
serve=$!
cleanup() {
  kill "$serve" 2>/dev/null || true
  wait "$serve" 2>/dev/null || true
  psql "$admin" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 1 120); do
  curl -fs "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
  kill -0 "$serve" 2>/dev/null || { cat "$artifacts/serve.log" >&2; exit 1; }
  sleep 0.5
done

VOX_BASE_URL="http://127.0.0.1:$port" VOX_API_KEY="$key" VOX_CLIP="$clip" VOX_BIN="$vox" \
  VOX_ARTIFACTS="$artifacts" VOX_CHROMIUM="$chromium" \
  node tests/browser/console.mjs || { tail -n 30 "$artifacts/serve.log" >&2; exit 1; }
