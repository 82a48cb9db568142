#!/usr/bin/env bash
# Runs every test: installs the external test tools (anvil, moto, an SMTP sink) into a cache outside
# the repository, makes sure PostgreSQL is up, then runs the whole test suite against it, then
# fuzzes the running server against its OpenAPI document (scripts/schemathesis.sh; SKIP_SCHEMATHESIS=1
# skips that).
# Usage: scripts/test.sh [extra cargo nextest/test args]
set -euo pipefail
cd "$(dirname "$0")/.."
export TOOLS_DIR="${TOOLS_DIR:-$HOME/.cache/vendor-server-tools}"
scripts/install-tools.sh
scripts/ensure-postgres.sh
export PATH="$TOOLS_DIR/bin:$TOOLS_DIR/venv/bin:$PATH"
# Tests create one database per test on this server (sqlx::test).
export DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
# Build from the committed query metadata: the same build Docker and a fresh clone do.
export SQLX_OFFLINE=true
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --all-targets --no-fail-fast "$@"
  cargo test --doc --quiet
else
  cargo test --all-targets --no-fail-fast "$@"
fi
if [ -z "${SKIP_SCHEMATHESIS:-}" ]; then
  VENDOR_SERVER_BIN="${CARGO_TARGET_DIR:-target}/debug/vendor-server" scripts/schemathesis.sh
fi
