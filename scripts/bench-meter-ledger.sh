#!/usr/bin/env bash
# meter-usage p99 under a long ledger (issue 26 item 2): MINUTES (10) of meter load spread over 1,000
# purchases with autovacuum ON (PostgreSQL's default and the compose files'), printing req/s and
# p50/p99 per minute, the ledger's size and the vacuum/analyze activity; the goal is a p99 flat
# within 20 % from minute 2 to the end (printed as the verdict).
#
# When the server at DATABASE_URL runs with autovacuum off (this development machine does), a
# private PostgreSQL cluster with the stock settings plus docker-compose.prod.yml's
# (backend_flush_after) is started for the run (initdb into a temporary directory, a free port; as
# the `postgres` user when run as root) and removed afterwards. A shared server is used as it is.
# Not a test: figures depend on the machine (record them in README "Performance" with `uptime`).
# Usage: scripts/bench-meter-ledger.sh [MINUTES]
# Env: VENDOR_SERVER_BIN (a prebuilt release binary; else cargo build --release), BENCH_PORT (3096),
#      BENCH_CLIENTS (64), BENCH_PURCHASES (1000), BENCH_OWN_POSTGRES (auto | 1 | 0).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[bench-meter-ledger] $*" >&2; }
command -v wrk >/dev/null || { log "wrk is not installed: apt-get install -y wrk"; exit 1; }
minutes="${1:-10}"
port="${BENCH_PORT:-3096}"
clients="${BENCH_CLIENTS:-64}"
purchases="${BENCH_PURCHASES:-1000}"
own="${BENCH_OWN_POSTGRES:-auto}"
shared_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if [ "$own" = auto ]; then
  own=0
  [ "$(psql "$shared_url" -Atc 'show autovacuum')" = on ] || own=1
fi

# The production compose file's PostgreSQL settings (docker-compose.prod.yml's `command`).
compose_pg_settings="-c backend_flush_after=256kB"
pg_dir=""
stop_own_postgres() {
  [ -n "$pg_dir" ] || return 0
  as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$own" = 1 ]; then
  pg_bin="$(dirname "$(readlink -f "$(command -v pg_ctl 2>/dev/null || ls /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -n 1)")")"
  pg_dir="$(mktemp -d)"
  chmod 755 "$pg_dir"
  [ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
  pg_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  trap stop_own_postgres EXIT
  as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust >/dev/null
  as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=200 $compose_pg_settings" start >/dev/null
  export DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
  log "private PostgreSQL on :$pg_port (stock settings and the production compose's: $compose_pg_settings; autovacuum on)"
fi
source scripts/bench-lib.sh
[ -z "$pg_dir" ] || bench_on_exit stop_own_postgres

bench_binary
bench_database "vs_meter_ledger_$$"
bench_serve "$port"
psql "$bench_db_url" -q -v n="$purchases" <<'SQL'
insert into purchase (purchase_id, offer_id, status, balance_micros, low_trigger_micros, critical_trigger_micros,
                      termination_trigger_micros, title, customer_key_hash, customer_key_prefix, resource_status)
select gen_random_uuid(), 'gemini-api-gateway', 'active', 1000000000000, 10000000, 2000000, 50000, 'ledger ' || i,
       sha256(convert_to('vsc_bench_ledger_' || i, 'UTF8')), 'vsc_bench', 'ready'
from generate_series(1, :n) i;
SQL
psql "$bench_db_url" -tAc "select 'CustomerPurchaseID_' || purchase_id from purchase" >"$bench_workdir/purchases.txt"
token="$(bench_cli tokens create --label bench 2>/dev/null)"
# A production database is analyzed and checkpointed; a freshly created one is neither (its first
# checkpoint would sync every file the migrations created while the load runs).
psql "$bench_db_url" -q -c 'vacuum analyze' -c 'checkpoint'
checkpoints_sql="select checkpoints_timed + checkpoints_req from pg_stat_bgwriter"
[ "$(psql "$bench_db_url" -Atc 'show server_version_num')" -lt 170000 ] ||
  checkpoints_sql="select num_timed + num_requested from pg_stat_checkpointer"
log "autovacuum $(psql "$bench_db_url" -Atc 'show autovacuum'); $purchases purchases; $clients clients; $minutes minute(s); load: $(uptime | sed 's/.*load average/load average/')"

# commit and queue: the mean ms of those steps of the meter's group commit in that minute (a commit
# waits for the disk; a record queues behind the batch before it); ckpt: checkpoints started.
printf '%-6s %9s %9s %9s %7s %7s %5s %11s %s\n' minute "req/s" p50 p99 commit queue ckpt "ledger" \
  "autovacuum/autoanalyze runs (ledger_entry, meter_idempotency, purchase)"
p99s=()
for m in $(seq 1 "$minutes"); do
  before="$(bench_scrape "$port")"
  ckpt_before="$(psql "$bench_db_url" -Atc "$checkpoints_sql")"
  out="$(wrk -t2 -c"$clients" -d60s --latency -s scripts/bench-meter.lua \
    "http://127.0.0.1:$port" -- "$token" "$bench_workdir/purchases.txt" "m$m")"
  after="$(bench_scrape "$port")"
  ckpt="$(($(psql "$bench_db_url" -Atc "$checkpoints_sql") - ckpt_before))"
  non2xx="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")"
  p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
  p99s+=("$p99")
  stats="$(psql "$bench_db_url" -tA -F ' ' -c "select (select count(*) from ledger_entry),
      string_agg(relname || ' ' || autovacuum_count || '/' || autoanalyze_count, ', ' order by relname)
      from pg_stat_user_tables where relname in ('ledger_entry', 'meter_idempotency', 'purchase')")"
  printf '%-6s %9s %9s %9s %7s %7s %5s %11s %s%s\n' "$m" "$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")" \
    "$(awk '$1 == "50%" {print $2}' <<<"$out")" "$p99" "$(bench_stage_ms commit "$before" "$after")" \
    "$(bench_stage_ms queue "$before" "$after")" "$ckpt" "${stats%% *}" "${stats#* }" \
    "${non2xx:+   $non2xx non-2xx}"
done
# wrk prints latencies with units (us, ms, s): compare in ms.
printf '%s\n' "${p99s[@]}" | awk 'function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
  NR >= 2 { x = ms($1); if (min == "" || x < min) min = x; if (x > max) max = x }
  END { if (min == "") { print "verdict: too short (needs 2+ minutes)"; exit }
        printf "p99 from minute 2: %.2f .. %.2f ms (max/min %.2f): %s\n", min, max, max / min, (max <= 1.2 * min ? "flat within 20 %" : "NOT flat within 20 %") }'
