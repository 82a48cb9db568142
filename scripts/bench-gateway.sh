#!/usr/bin/env bash
# Gemini gateway overhead per call: the release server on loopback in front of the local upstream
# stand-in (scripts/soak-gemini-upstream.mjs), one purchase with a gateway key, and
# scripts/bench-gateway.mjs sending the same generateContent request straight to the stand-in and
# through the gateway (key check, rate limits, hold, forward, usage charged through the ledger),
# alternating, one at a time. Prints p50/p99 of both and of the difference (README "Performance").
#
# Usage: scripts/bench-gateway.sh [CALLS]   (default 2000; VENDOR_SERVER_BIN = a prebuilt binary,
#                                            else cargo build --release)
# Needs: PostgreSQL on 127.0.0.1:5432 (scripts/ensure-postgres.sh), node, anvil (scripts/install-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
calls="${1:-2000}"
export TOOLS_DIR="${TOOLS_DIR:-$HOME/.cache/vendor-server-tools}"
log() { echo "[bench-gateway] $*" >&2; }
scripts/install-tools.sh >/dev/null 2>&1
scripts/ensure-postgres.sh
root="$(pwd)"
if [ -n "${VENDOR_SERVER_BIN:-}" ]; then
  bin="$VENDOR_SERVER_BIN"
else
  log "building the release binary"
  SQLX_OFFLINE=true cargo build --release --quiet --bin vendor-server
  bin="$root/${CARGO_TARGET_DIR:-target}/release/vendor-server"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="$(free_port)"; anvil_port="$(free_port)"; upstream_port="$(free_port)"
admin="${BENCH_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="vs_bench_gateway_$$"
url="${admin%/*}/$db"
work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  psql "$admin" -q -c "drop database if exists \"$db\" with (force)" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

psql "$admin" -q -c "create database \"$db\""
"$TOOLS_DIR/bin/anvil" --host 127.0.0.1 --port "$anvil_port" --chain-id 31337 --silent >"$work/anvil.log" 2>&1 &
pids+=($!)
node scripts/soak-gemini-upstream.mjs "$upstream_port" &
pids+=($!)
for _ in $(seq 1 100); do
  curl -s -o /dev/null -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "http://127.0.0.1:$anvil_port" && break
  sleep 0.1
done
cd "$work"
"$bin" dev env --port "$port" --database-url "$url" --rpc "http://127.0.0.1:$anvil_port" --aws-endpoint "" >.env
# Production-like logging; limits one loopback client cannot trip (the offer's 60 requests/minute
# is raised for the bench purchase below).
export OFFERS_FILE="$root/config/offers.toml" LOG_FORMAT=json RUST_LOG=warn \
  GEMINI_API_KEY=bench-upstream-key GEMINI_UPSTREAM_URL="http://127.0.0.1:$upstream_port"
unset RUST_BACKTRACE RUST_LIB_BACKTRACE
"$bin" dev chain --rpc "http://127.0.0.1:$anvil_port" >/dev/null
"$bin" serve >"$work/server.log" 2>&1 &
server=$!
pids+=("$server")
for _ in $(seq 1 300); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/health" && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.2
done
# One active Gemini purchase with $1,000 and the gateway key vsg_bench (SHA-256 stored); the
# offer's per-minute limits lifted (offers are synced at start only).
psql "$url" -q <<'SQL'
update offer set settings = settings - 'requests_per_minute' - 'tokens_per_minute'
where offer_id = 'gemini-api-gateway';
insert into purchase (purchase_id, offer_id, status, balance_micros, low_trigger_micros, critical_trigger_micros,
                      termination_trigger_micros, title, customer_key_hash, customer_key_prefix, resource_status)
values (gen_random_uuid(), 'gemini-api-gateway', 'active', 1000000000, 10000000, 2000000, 50000, 'bench',
        sha256(convert_to('vsc_bench', 'UTF8')), 'vsc_bench', 'ready');
insert into gateway_key (gateway_key_id, purchase_id, key_hash, key_prefix)
select gen_random_uuid(), purchase_id, sha256(convert_to('vsg_bench', 'UTF8')), 'vsg_bench' from purchase;
SQL
log "server pid $server on :$port, upstream stand-in on :$upstream_port; $calls calls each way"
node "$root/scripts/bench-gateway.mjs" --gateway "http://127.0.0.1:$port" \
  --upstream "http://127.0.0.1:$upstream_port" --key vsg_bench --calls "$calls"
charged="$(psql "$url" -Atc "select count(*) from ledger_entry where kind = 'usage'")"
log "usage entries posted: $charged"
