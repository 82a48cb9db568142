#!/bin/sh
# Restores a dump made by scripts/backup.sh into a database, creating it when missing. Refuses a
# database that already holds vendor-server tables (restore into a new one, check it, then point
# DATABASE_URL at it). Stop the server (or every replica) before pointing it at the restored database.
#
# Usage: scripts/restore.sh FILE [TARGET_DATABASE_URL]     (target defaults to $DATABASE_URL)
set -eu
file="${1:?usage: scripts/restore.sh FILE [TARGET_DATABASE_URL]}"
target="${2:-${DATABASE_URL:-}}"
[ -n "$target" ] || { echo "restore: give the target database URL (or set DATABASE_URL)" >&2; exit 2; }
[ -f "$file" ] || { echo "restore: no such file: $file" >&2; exit 2; }
pg_restore --list "$file" >/dev/null || { echo "restore: $file is not a pg_dump custom-format dump" >&2; exit 2; }

base="${target%%\?*}"
db="${base##*/}"
admin="${base%/*}/postgres"
# PostgreSQL cuts names at 63 bytes: a longer one would name another database.
[ "${#db}" -le 63 ] || { echo "restore: database name $db is longer than 63 characters" >&2; exit 2; }
if ! psql "$admin" -tAc "select 1 from pg_database where datname = '$db'" | grep -q 1; then
  psql "$admin" -q -c "create database \"$db\""
  echo "restore: created database $db"
fi
if [ "$(psql "$target" -tAc "select count(*) from pg_tables where tablename = 'purchase'")" != "0" ]; then
  echo "restore: database $db already has vendor-server tables; restore into a new database" >&2
  exit 1
fi
if pg_restore --list "$file" | grep -q 'EXTENSION - timescaledb'; then
  # TimescaleDB needs its pre/post restore hooks around the data.
  psql "$target" -q -c "create extension if not exists timescaledb" -c "select timescaledb_pre_restore()"
  pg_restore --no-owner --no-privileges --exit-on-error --dbname="$target" "$file"
  psql "$target" -q -c "select timescaledb_post_restore()"
else
  pg_restore --no-owner --no-privileges --exit-on-error --single-transaction --dbname="$target" "$file"
fi
echo "restore: restored $file into $db ($(psql "$target" -tAc "select count(*) from purchase") purchases, $(psql "$target" -tAc "select count(*) from ledger_entry") ledger entries)"
