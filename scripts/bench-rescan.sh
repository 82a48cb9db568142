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
log() { echo "[bench-rescan] $*" >&2; }
# Start-up (tools, binary, database, chain, cleanup) is shared (scripts/bench-lib.sh).
source scripts/bench-lib.sh
bench_tools
bench_binary
bench_database "vs_bench_rescan_$$"
url="$bench_db_url"
bench_anvil
rpc_call() { curl -sf -H 'content-type: application/json' -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$1\",\"params\":$2}" "$bench_rpc"; }
bench_stack "$(bench_free_port)" DEFAULT_BLOCK_CONFIRMATIONS=1
# One start stores the offers (checkouts reference them); the server is not running during the rescans.
bench_start
bench_stop

log "storing $n watched checkouts"
bench_checkouts "$n"
start="$(printf '%d' "$(rpc_call eth_blockNumber '[]' | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"])')")"
log "mining $blocks blocks with $payments payments to watched addresses among them"
step=$((blocks / payments))
for i in $(seq 1 "$payments"); do
  to="$(psql "$url" -Atc "select deposit_address from checkout where deposit_index = 1000000 + ($i * 7919 % $n) + 1")"
  bench_run dev pay --to "$to" --amount 1 >/dev/null
  rpc_call anvil_mine "[\"$(printf '0x%x' "$step")\"]" >/dev/null
done
head="$(printf '%d' "$(rpc_call eth_blockNumber '[]' | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"])')")"
log "chain at block $head; rescanning $start..$head"
for run in first second; do
  t0="$(date +%s%N)"
  out="$(bench_run deposits rescan --chain 31337 --from-block "$start" --to-block "$head")"
  t1="$(date +%s%N)"
  secs="$(python3 -c "print(f'{($t1 - $t0) / 1e9:.2f}')")"
  bps="$(python3 -c "print(f'{($head - $start + 1) / (($t1 - $t0) / 1e9):.0f}')")"
  log "$run: $out"
  echo "| $run rescan | $n watched | $((head - start + 1)) blocks | $secs s (process included) | $bps blocks/s | $(echo "$out" | sed -n 's/.*: \([0-9]* Transfer logs.*\)/\1/p') |"
done
recorded="$(psql "$url" -Atc "select count(*) from deposit")"
echo "deposits recorded: $recorded (payments: $payments)"
