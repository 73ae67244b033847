#!/usr/bin/env bash
# Restores a backup made by infra/ops/backup.sh into the database at DATABASE_URL, which must
# exist and be empty (a restore never overwrites data). One transaction: a failure leaves the
# database empty. Then apply newer migrations and rebuild the index:
#
#   DATABASE_URL=postgres://.../voxpersona_restored bash infra/ops/restore.sh FILE
#   cargo run --release --bin vox -- migrate
#   cargo run --release --bin vox -- index --rebuild
set -euo pipefail
file=${1:?usage: restore.sh FILE}
: "${DATABASE_URL:?DATABASE_URL must name the (empty) database to restore into}"
[ -s "$file" ] || { echo "restore: $file is missing or empty" >&2; exit 1; }
pg_restore --list "$file" >/dev/null || { echo "restore: $file is not a pg_dump archive" >&2; exit 1; }
tables=$(psql "$DATABASE_URL" -Atqc \
  "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
if [ "$tables" != "0" ]; then
  echo "restore: the target database already has $tables tables; restore into an empty one" >&2
  exit 1
fi
pg_restore --no-owner --no-privileges --exit-on-error --single-transaction \
  --dbname "$DATABASE_URL" "$file"
echo "restore: $file restored" >&2
