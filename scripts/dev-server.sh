#!/usr/bin/env bash
# Starts the server for local development on this machine: makes sure PostgreSQL is up, creates the
# database from .env's DATABASE_URL if missing, creates .env from .env.example if missing, then
# `cargo run -- serve`. Extra arguments go to cargo run (e.g. --release).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f .env ] || { cp .env.example .env; echo "[dev-server] created .env from .env.example"; }
scripts/ensure-postgres.sh
url="$(grep -E '^DATABASE_URL=' .env | tail -n 1 | cut -d= -f2-)"
url="${DATABASE_URL:-$url}"
db="${url##*/}"; db="${db%%\?*}"
admin="${url%/*}/postgres"
if ! psql "$admin" -tAc "select 1 from pg_database where datname = '$db'" | grep -q 1; then
  psql "$admin" -q -c "create database \"$db\"" && echo "[dev-server] created database $db"
fi
export SQLX_OFFLINE=true
exec cargo run "$@" -- serve
