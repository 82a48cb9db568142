#!/usr/bin/env bash
# Regenerates the committed offline query metadata (.sqlx/) from a fresh schema database, so the
# crate builds with SQLX_OFFLINE=true (Docker, CI) without a database.
# `--check` fails if the committed .sqlx/ differs from what the queries need.
set -euo pipefail
cd "$(dirname "$0")/.."
url="$(scripts/schema-db.sh "${SCHEMA_DB:-vendor_server_schema}")"
out=".sqlx"
[ "${1:-}" = "--check" ] && out="$(mktemp -d)"
rm -rf "$out/"query-*.json 2>/dev/null || true
mkdir -p "$out"
# Touch the sources so every query macro expands again, online, writing into $out.
find src tests benches -name '*.rs' -exec touch {} + 2>/dev/null || true
SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$(cd "$out" && pwd)" DATABASE_URL="$url" cargo check --all-targets --quiet
if [ "${1:-}" = "--check" ]; then
  if ! diff -r -q .sqlx "$out" >/dev/null; then
    diff -r -q .sqlx "$out" || true
    echo "error: .sqlx/ is out of date: run scripts/sqlx-prepare.sh and commit .sqlx/" >&2
    exit 1
  fi
  echo ".sqlx/ is up to date"
else
  echo "wrote $(ls .sqlx | wc -l) query files to .sqlx/"
fi
