#!/usr/bin/env bash
# Starts the local PostgreSQL cluster if nothing answers on 127.0.0.1:5432 (idempotent).
set -euo pipefail
ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ready; then exit 0; fi
echo "[ensure-postgres] PostgreSQL is not answering on 127.0.0.1:5432; starting it" >&2
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
elif command -v service >/dev/null 2>&1; then
  service postgresql start || true
fi
for _ in $(seq 1 30); do ready && exit 0; sleep 1; done
echo "[ensure-postgres] error: PostgreSQL did not come up on 127.0.0.1:5432" >&2
exit 1
