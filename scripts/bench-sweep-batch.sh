#!/usr/bin/env bash
# Gas per deposit of EIP-3009 sweeps relayed in batches through Multicall3 `aggregate3` (issue 26
# item 1), at batch sizes 1 (one relay per transaction, no Multicall3), 5, 20 and 50, on anvil with
# the test USDC. Gas is deterministic, so a debug build is fine.
#
# Runs the ignored test `sweep_batch_gas_benchmark` (tests/api/sweep_batches.rs): it needs anvil
# (scripts/install-tools.sh) and PostgreSQL (DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres).
# Env: CARGO_TARGET_DIR as usual.
set -euo pipefail
cd "$(dirname "$0")/.."
export TOOLS_DIR="${TOOLS_DIR:-$HOME/.cache/vendor-server-tools}"
export PATH="$TOOLS_DIR/bin:$PATH"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export SQLX_OFFLINE=true
out="$(cargo nextest run --test api --run-ignored only -E 'test(sweep_batch_gas_benchmark)' --no-capture 2>&1)" || {
  echo "$out" >&2
  exit 1
}
grep -E '^(EIP-3009 sweeps|batch size)' <<<"$out"
