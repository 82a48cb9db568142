#!/usr/bin/env bash
# Rescan speed (issue 23): `vendor-server deposits rescan` over BLOCKS blocks of a local chain (anvil)
# with N watched deposit addresses (10,000 by default) and PAYMENTS payments to some of them spread
# over the range. Prints blocks per second for a first rescan (it records the payments) and a second
# one over the same range (it finds them again and records nothing: idempotent).
#
# Usage: scripts/bench-rescan.sh [N]   (BLOCKS=100000 PAYMENTS=20; VENDOR_SERVER_BIN = a prebuilt
#        binary, e.g. a debug build, else cargo build --release)
# Needs: PostgreSQL on 127.0.0.1:5432 (scripts/ensure-postgres.sh), anvil (scripts/install-tools.sh), curl.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-10000}"
blocks="${BLOCKS:-100000}"
payments="${PAYMENTS:-20}"
export TOOLS_DIR="${TOOLS_DIR:-$HOME/.cache/vendor-server-tools}"
log() { echo "[bench-rescan] $*" >&2; }
scripts/install-tools.sh >/dev/null 2>&1 || true
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
admin="${BENCH_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
port="$(free_port)"; anvil_port="$(free_port)"
rpc="http://127.0.0.1:$anvil_port"
db="vs_bench_rescan_$$"
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
rpc_call() { curl -sf -H 'content-type: application/json' -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$1\",\"params\":$2}" "$rpc"; }

psql "$admin" -q -c "create database \"$db\""
"$TOOLS_DIR/bin/anvil" --host 127.0.0.1 --port "$anvil_port" --chain-id 31337 --silent >"$work/anvil.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do rpc_call eth_chainId '[]' >/dev/null && break; sleep 0.1; done
(cd "$work" && "$bin" dev env --port "$port" --database-url "$url" --rpc "$rpc" --aws-endpoint "" >.env)
set -a; . "$work/.env"; set +a
export OFFERS_FILE="$root/config/offers.toml" LOG_FORMAT=json RUST_LOG=warn DEFAULT_BLOCK_CONFIRMATIONS=1
unset RUST_BACKTRACE RUST_LIB_BACKTRACE
(cd "$work" && "$bin" dev chain --rpc "$rpc" >/dev/null && "$bin" migrate >/dev/null)
# One start stores the offers (checkouts reference them); the server is not running during the rescans.
(cd "$work" && exec "$bin" serve >"$work/server.log" 2>&1) &
first=$!
for _ in $(seq 1 300); do
  curl -sf -o /dev/null "http://127.0.0.1:$port/health" && break
  kill -0 "$first" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.2
done
kill "$first"; wait "$first" 2>/dev/null || true

log "storing $n watched checkouts"
psql "$url" -q -v n="$n" <<'SQL'
insert into checkout (checkout_session_id, checkout_wallet_id, checkout_flow_id, offer_id, chain_name,
                      token_symbol, deposit_index, deposit_address, expires_at, watch_until)
select gen_random_uuid(), gen_random_uuid(), 'gemini-api-gateway:local:usdc', 'gemini-api-gateway', 'local', 'usdc',
       1000000 + i, '0x' || substr(md5(i::text) || md5((i + 7)::text), 1, 40),
       now() + interval '24 hours', now() + interval '30 days'
from generate_series(1, :n) i;
analyze checkout;
SQL
start="$(printf '%d' "$(rpc_call eth_blockNumber '[]' | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"])')")"
log "mining $blocks blocks with $payments payments to watched addresses among them"
step=$((blocks / payments))
for i in $(seq 1 "$payments"); do
  to="$(psql "$url" -Atc "select deposit_address from checkout where deposit_index = 1000000 + ($i * 7919 % $n) + 1")"
  (cd "$work" && "$bin" dev pay --to "$to" --amount 1 >/dev/null)
  rpc_call anvil_mine "[\"$(printf '0x%x' "$step")\"]" >/dev/null
done
head="$(printf '%d' "$(rpc_call eth_blockNumber '[]' | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"])')")"
log "chain at block $head; rescanning $start..$head"
for run in first second; do
  t0="$(date +%s%N)"
  out="$(cd "$work" && "$bin" deposits rescan --chain 31337 --from-block "$start" --to-block "$head")"
  t1="$(date +%s%N)"
  secs="$(python3 -c "print(f'{($t1 - $t0) / 1e9:.2f}')")"
  bps="$(python3 -c "print(f'{($head - $start + 1) / (($t1 - $t0) / 1e9):.0f}')")"
  log "$run: $out"
  echo "| $run rescan | $n watched | $((head - start + 1)) blocks | $secs s (process included) | $bps blocks/s | $(echo "$out" | sed -n 's/.*: \([0-9]* Transfer logs.*\)/\1/p') |"
done
recorded="$(psql "$url" -Atc "select count(*) from deposit")"
echo "deposits recorded: $recorded (payments: $payments)"
