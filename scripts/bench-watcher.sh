#!/usr/bin/env bash
# Deposit watcher at scale (issue 21): the release server with its jobs on a local chain, with N open
# checkouts watched (10, 10,000, 100,000 and 1,000,000 by default), a finalized purchase topped up
# PAYMENTS times. Prints per N: the credit latency (payment counted on chain → ledger row; median and
# max), RPC round trips per watcher pass (all of the server's RPC requests over an idle minute-part
# divided by the watcher passes in it: an upper bound, the sweeper and the gauges share it), the pass
# time and the server's RSS (now and peak).
#
# Usage: scripts/bench-watcher.sh [N ...]   (VENDOR_SERVER_BIN = a prebuilt binary; else cargo build --release)
# Needs: PostgreSQL on 127.0.0.1:5432 (scripts/ensure-postgres.sh), anvil (scripts/install-tools.sh), curl.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 10000 100000 1000000)
payments="${PAYMENTS:-5}"
log() { echo "[bench-watcher] $*" >&2; }
# Start-up (tools, binary, database, chain, server, cleanup) is shared (scripts/bench-lib.sh).
source scripts/bench-lib.sh
bench_tools
bench_binary
# The last server log is kept.
bench_on_exit 'cp "$bench_workdir/server.log" "${TMPDIR:-/tmp}/vendor-bench-watcher-server.log" 2>/dev/null'
now_ms() { date +%s%3N; }
metric() { # metric NAME_WITH_LABELS: the summed value of matching lines of /metrics
  curl -s -H "authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$port/metrics" \
    | awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { printf "%d", s }'
}
metric_f() {
  curl -s -H "authorization: Bearer $ADMIN_TOKEN" "http://127.0.0.1:$port/metrics" \
    | awk -v m="$1" 'index($0, m) == 1 { s += $NF } END { printf "%.6f", s }'
}

results=()
for n in "${sizes[@]}"; do
  port="$(bench_free_port)"
  bench_database "vs_bench_watcher_$$_$n"
  url="$bench_db_url"
  bench_anvil
  bench_stack "$port" GEMINI_API_KEY=bench-upstream-key GEMINI_UPSTREAM_URL="http://127.0.0.1:9" \
    CHECKOUT_RATE_LIMIT_PER_MINUTE=1000000 WATCHER_INTERVAL_SECS=1 DEFAULT_BLOCK_CONFIRMATIONS=1
  # A first start stores the offers; the watched set (N - 1 open checkouts, pseudo-random addresses)
  # is stored before the server starts again.
  bench_start server0.log
  bench_stop
  log "N=$n: storing $((n - 1)) open checkouts"
  bench_checkouts "$((n - 1))"
  bench_start
  server="$bench_server_pid"
  # One purchase (the N-th watched address), bought through the real flow.
  address="$(bench_run dev checkout --offer gemini-api-gateway --amount 5 --url "http://127.0.0.1:$port" \
    | sed -n 's/^2\. checkout .*: pay to \(0x[0-9a-fA-F]*\).*/\1/p')"
  [ -n "$address" ] || { log "the checkout failed"; cat "$bench_workdir/server.log" >&2; exit 1; }
  # Wait for the hot set to hold every address.
  for _ in $(seq 1 600); do
    [ "$(metric 'vendor_watched_addresses{')" -ge "$n" ] && break
    sleep 0.5
  done
  # Idle passes: RPC round trips per pass and pass time.
  sleep 2
  r0="$(metric 'vendor_rpc_requests_total{')"; p0="$(metric 'vendor_watcher_pass_seconds_count{')"
  s0="$(metric_f 'vendor_watcher_pass_seconds_sum{')"
  sleep 10
  r1="$(metric 'vendor_rpc_requests_total{')"; p1="$(metric 'vendor_watcher_pass_seconds_count{')"
  s1="$(metric_f 'vendor_watcher_pass_seconds_sum{')"
  passes=$((p1 - p0)); [ "$passes" -gt 0 ] || passes=1
  trips="$(python3 -c "print(f'{($r1 - $r0) / $passes:.1f}')")"
  pass_ms="$(python3 -c "print(f'{($s1 - $s0) * 1000 / $passes:.0f}')")"
  # Top-ups: payment counted on chain (minted and confirmed) → ledger row.
  latencies=()
  for i in $(seq 1 "$payments"); do
    before="$(psql "$url" -Atc "select count(*) from ledger_entry where kind = 'deposit'")"
    bench_run dev pay --to "$address" --amount 1 >/dev/null
    t0="$(now_ms)"
    while [ "$(psql "$url" -Atc "select count(*) from ledger_entry where kind = 'deposit'")" -le "$before" ]; do
      [ $(( $(now_ms) - t0 )) -lt 60000 ] || { log "not credited within 60 s"; exit 1; }
      sleep 0.05
    done
    latencies+=($(( $(now_ms) - t0 )))
    sleep "0.$((RANDOM % 10))"
  done
  lat="$(printf '%s\n' "${latencies[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%d ms median, %d ms max", a[int((NR+1)/2)], a[NR]}')"
  rss="$(awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$server/status")"
  hwm="$(awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$server/status")"
  watched="$(metric 'vendor_watched_addresses{')"
  line="| $n | $watched | $lat | $trips | $pass_ms ms | $rss MB (peak $hwm MB) |"
  log "$line"
  results+=("$line")
  bench_down
done
echo "| watched addresses | in the hot set | credit latency ($payments payments) | RPC round trips per pass (≤) | pass time (mean) | server RSS |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${results[@]}"
