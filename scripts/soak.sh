#!/usr/bin/env bash
# Soak: the release server on loopback with its background jobs running (a local chain, a Gemini
# stand-in upstream), driven for a bounded time (10 minutes by default) with mixed traffic — offers,
# suggest, initiate/validate, meter-usage on 1,000 purchases, Gemini calls through the gateway — by
# scripts/soak.mjs, which reports throughput, p50/p99 per route, RSS and open sockets each minute and
# fails when any request fails or RSS grows more than 20% after the first minute.
#
# Usage: scripts/soak.sh [MINUTES]       (VENDOR_SERVER_BIN = a prebuilt binary; else cargo build --release)
# Needs: PostgreSQL on 127.0.0.1:5432 (scripts/ensure-postgres.sh), node, anvil (scripts/install-tools.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-10}"
export TOOLS_DIR="${TOOLS_DIR:-$HOME/.cache/vendor-server-tools}"
log() { echo "[soak] $*" >&2; }
scripts/install-tools.sh >/dev/null 2>&1
scripts/ensure-postgres.sh
root="$(pwd)"
if [ -n "${VENDOR_SERVER_BIN:-}" ]; then
  bin="$VENDOR_SERVER_BIN"
else
  log "building the release binary (about 10 minutes the first time on a 2-core machine)"
  SQLX_OFFLINE=true cargo build --release --quiet --bin vendor-server
  bin="$root/${CARGO_TARGET_DIR:-target}/release/vendor-server"
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="$(free_port)"; anvil_port="$(free_port)"; upstream_port="$(free_port)"
admin="${SOAK_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="vs_soak_$$"
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
# Without autovacuum nothing vacuums or analyzes the growing tables and meter-usage slows down over
# the run (README "Soak"): say which way this server is set.
log "PostgreSQL autovacuum: $(psql "$admin" -Atc 'show autovacuum')"
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
# Real environment variables win over .env: production-like logging (JSON, warnings and errors only),
# the Gemini stand-in, and rate limits that one loopback client cannot trip. No backtrace capture, as in
# the container image.
export OFFERS_FILE="$root/config/offers.toml" LOG_FORMAT=json RUST_LOG=warn \
  GEMINI_API_KEY=soak-upstream-key GEMINI_UPSTREAM_URL="http://127.0.0.1:$upstream_port" \
  CHECKOUT_RATE_LIMIT_PER_MINUTE=1000000 CHECKOUT_VALIDATE_RATE_LIMIT_PER_MINUTE=1000000
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
# 1,000 active Gemini purchases with $1,000 each and a gateway key vsg_soak_<uuid> (SHA-256 stored).
psql "$url" -q <<'SQL'
insert into purchase (purchase_id, offer_id, status, balance_micros, low_trigger_micros, critical_trigger_micros,
                      termination_trigger_micros, title, customer_key_hash, customer_key_prefix, resource_status)
select gen_random_uuid(), 'gemini-api-gateway', 'active', 1000000000, 10000000, 2000000, 50000, 'soak ' || i,
       sha256(convert_to('vsc_soak_' || i, 'UTF8')), 'vsc_soak', 'ready'
from generate_series(1, 1000) i;
insert into gateway_key (gateway_key_id, purchase_id, key_hash, key_prefix)
select gen_random_uuid(), purchase_id, sha256(convert_to('vsg_soak_' || purchase_id, 'UTF8')), 'vsg_soak'
from purchase;
SQL
psql "$url" -tAc "select 'CustomerPurchaseID_' || purchase_id from purchase" >purchases.txt
token="$("$bin" tokens create --label soak 2>/dev/null)"
log "server pid $server on :$port; $(wc -l <purchases.txt) purchases; driving for $minutes minute(s)"
status=0
node "$root/scripts/soak.mjs" --base "http://127.0.0.1:$port" --pid "$server" --minutes "$minutes" \
  --purchases purchases.txt --token "$token" --concurrency "${SOAK_CONCURRENCY:-32}" || status=$?
# The server's own errors count too: a job that keeps failing is a finding even when requests succeed.
kept="${TMPDIR:-/tmp}/vendor-soak-server.log"
cp "$work/server.log" "$kept"
errors="$(grep -c '"level":"ERROR"' "$kept" || true)"
echo "server log: $errors error line(s) (kept in $kept)"
if [ "$errors" -gt 0 ]; then
  grep '"level":"ERROR"' "$kept" | head -n 3
  status=1
fi
exit "$status"
