#!/usr/bin/env bash
# Runs every test: installs the external test tools (anvil, moto, an SMTP sink) into a cache outside
# the repository, makes sure PostgreSQL is up, builds the dashboard, runs the whole Rust test suite
# against it, then the dashboard's browser tests (scripts/browser-test.sh; SKIP_BROWSER_TESTS=1 skips)
# and fuzzes the running server against its OpenAPI document (scripts/schemathesis.sh;
# SKIP_SCHEMATHESIS=1 skips).
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
# The dashboard's build (dashboard/dist) is what the server serves under /v1/dashboard/.
scripts/build-dashboard.sh
status=0
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --all-targets --no-fail-fast "$@" || status=$?
  cargo test --doc --quiet || status=$?
else
  cargo test --all-targets --no-fail-fast "$@" || status=$?
fi
# Both run the server binary the test build above just made (a plain `cargo build` would resolve
# features without the dev-dependencies and rebuild half the tree).
bin="${CARGO_TARGET_DIR:-target}/debug/vendor-server"
if [ "${SKIP_BROWSER_TESTS:-0}" != 1 ]; then
  VENDOR_SERVER_BIN="$bin" scripts/browser-test.sh || status=$?
fi
if [ -z "${SKIP_SCHEMATHESIS:-}" ]; then
  VENDOR_SERVER_BIN="$bin" scripts/schemathesis.sh || status=$?
fi
exit "$status"
