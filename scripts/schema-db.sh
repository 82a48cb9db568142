#!/usr/bin/env bash
# (Re)creates the database the sqlx query macros check against at compile time, by applying every
# migration with psql. Prints the DATABASE_URL to use for `cargo check` / `scripts/sqlx-prepare.sh`.
# Usage: scripts/schema-db.sh [dbname]   (PGHOST/PGPORT/PGUSER as usual; default 127.0.0.1:5432 postgres)
set -euo pipefail
cd "$(dirname "$0")/.."
db="${1:-vendor_server_schema}"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
psql -q -v ON_ERROR_STOP=1 -d postgres -c "drop database if exists $db with (force)" -c "create database $db" >/dev/null
for f in migrations/*.sql; do
  psql -q -v ON_ERROR_STOP=1 -d "$db" -f "$f" >/dev/null
done
echo "postgres://$PGUSER@$PGHOST:$PGPORT/$db"
