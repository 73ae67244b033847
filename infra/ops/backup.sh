#!/usr/bin/env bash
# Backs up the database at DATABASE_URL into FILE (pg_dump custom format: compressed, every
# table, the migration history included; restore with infra/ops/restore.sh). The vector index
# is not backed up: it is rebuilt from the stored embeddings (`vox index --rebuild`).
#
#   DATABASE_URL=postgres://... bash infra/ops/backup.sh backups/vox-$(date +%F).dump
set -euo pipefail
out=${1:?usage: backup.sh FILE}
: "${DATABASE_URL:?DATABASE_URL must name the database to back up}"
mkdir -p "$(dirname "$out")"
tmp="$out.partial"
# Written under another name first, so an interrupted dump never passes for a backup.
pg_dump --format=custom --compress=6 --no-owner --no-privileges \
  --dbname "$DATABASE_URL" --file "$tmp"
mv "$tmp" "$out"
echo "backup: $(du -h "$out" | cut -f1) in $out" >&2
