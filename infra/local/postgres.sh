#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 (trust auth, as on a development
# machine): installs Debian's server if missing, creates a cluster if there is none, starts it
# if it is down, and waits until it accepts connections. Idempotent; prints nothing on success
# beyond one status line.
set -euo pipefail

host=127.0.0.1
port=5432

if pg_isready -q -h "$host" -p "$port" 2>/dev/null; then
  echo "postgres: running on $host:$port" >&2
  exit 0
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ -z "$(ls /usr/lib/postgresql 2>/dev/null)" ]; then
  echo "postgres: installing Debian's PostgreSQL server" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq postgresql postgresql-contrib >/dev/null
fi

version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$version main"; then
  echo "postgres: creating cluster $version/main" >&2
  pg_createcluster "$version" main --port "$port" -- --auth-local=trust --auth-host=trust >/dev/null
fi

conf_dir=/etc/postgresql/$version/main
# Trust on loopback, as the tests and the local defaults expect (never do this on a server
# reachable from elsewhere).
if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$conf_dir/pg_hba.conf"; then
  sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$conf_dir/pg_hba.conf"
fi

echo "postgres: starting cluster $version/main" >&2
pg_ctlcluster --skip-systemctl-redirect "$version" main start || true

for _ in $(seq 1 60); do
  if pg_isready -q -h "$host" -p "$port"; then
    echo "postgres: running on $host:$port" >&2
    exit 0
  fi
  sleep 0.5
done
echo "postgres: the server did not come up on $host:$port; log:" >&2
tail -n 20 "/var/log/postgresql/postgresql-$version-main.log" >&2 || true
exit 1
