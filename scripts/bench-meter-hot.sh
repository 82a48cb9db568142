#!/usr/bin/env bash
# meter-usage on ONE hot purchase next to pgbench's naive hot-row debit, same client count, same
# PostgreSQL, same run (issue 26 item 3). Prints req/s, p50/p99, errors, the ratio, and where a debit
# waits: the mean of each step of the meter's group commit (`vendor_meter_stage_seconds{stage}`
# from /metrics over the measured run): auth (billing tokens checked, one query per batch), queue
# (waiting for the batch before it: the group-commit window), begin (a pooled connection + BEGIN),
# lock (purchase rows FOR UPDATE), keys (idempotency lookup), ledger (entry ids, rows and balances:
# one statement), save (idempotency answers), commit. Steps that did not run are not printed.
#
# Not a test: figures depend on the machine (record them in README "Performance" with `uptime`).
# Needs wrk (`apt-get install -y wrk`), pgbench and PostgreSQL (DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/postgres: databases vs_meter_<pid> and vs_pgbench_<pid> are
# created there and dropped).
# Env: VENDOR_SERVER_BIN (a prebuilt release binary; else cargo build --release), BENCH_PORT (3097),
#      BENCH_SECS (10), BENCH_CLIENTS (64), BENCH_ROUNDS (2: meter and pgbench alternate this many
#      times; the ratio is of the sums).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[bench-meter-hot] $*" >&2; }
for tool in wrk pgbench psql; do
  command -v "$tool" >/dev/null || { log "$tool is not installed (wrk: apt-get install -y wrk)"; exit 1; }
done
source scripts/bench-lib.sh
port="${BENCH_PORT:-3097}"
secs="${BENCH_SECS:-10}"
clients="${BENCH_CLIENTS:-64}"
rounds="${BENCH_ROUNDS:-2}"

bench_binary
bench_database "vs_meter_$$"
bench_serve "$port"
# One active purchase with $1,000,000 (never crosses a threshold at $0.000001 a call) and a billing token.
psql "$bench_db_url" -q <<'SQL'
insert into purchase (purchase_id, offer_id, status, balance_micros, low_trigger_micros, critical_trigger_micros,
                      termination_trigger_micros, title, customer_key_hash, customer_key_prefix, resource_status)
values (gen_random_uuid(), 'gemini-api-gateway', 'active', 1000000000000, 10000000, 2000000, 50000, 'hot',
        sha256(convert_to('vsc_bench_hot', 'UTF8')), 'vsc_bench', 'ready');
SQL
psql "$bench_db_url" -tAc "select 'CustomerPurchaseID_' || purchase_id from purchase" >"$bench_workdir/hot.txt"
token="$(bench_cli tokens create --label bench 2>/dev/null)"
ledger_before="$(psql "$bench_db_url" -tAc "select balance_micros from purchase")"

# pgbench's naive debit on one row: lock the balance, insert a ledger row, update the balance, commit.
pg_db="vs_pgbench_$$"
psql "$bench_admin_url" -qtAc "create database $pg_db" >/dev/null
bench_on_exit "psql '$bench_admin_url' -qtAc 'drop database if exists $pg_db with (force)' >/dev/null 2>&1"
pg_url="${bench_admin_url%/*}/$pg_db"
psql "$pg_url" -q <<'SQL'
create table bench_balance (id int primary key, balance bigint not null);
insert into bench_balance values (1, 1000000000);
create table bench_ledger (id bigserial primary key, account int not null, amount bigint not null,
    balance_after bigint not null, created_at timestamptz not null default now());
SQL
cat >"$bench_workdir/debit.sql" <<'SQL'
BEGIN;
SELECT balance FROM bench_balance WHERE id = 1 FOR UPDATE;
INSERT INTO bench_ledger (account, amount, balance_after) SELECT 1, -1, balance - 1 FROM bench_balance WHERE id = 1;
UPDATE bench_balance SET balance = balance - 1 WHERE id = 1;
COMMIT;
SQL
# The new databases' files are synced now, not by a checkpoint during a measured round.
psql "$bench_db_url" -qc checkpoint

stages=(auth queue begin lock keys ledger save commit)
meter_round() {
  local tag="$1" out before after
  before="$(bench_scrape "$port")"
  out="$(wrk -t2 -c"$clients" -d"${secs}s" --latency -s scripts/bench-meter.lua \
    "http://127.0.0.1:$port" -- "$token" "$bench_workdir/hot.txt" "$tag")"
  after="$(bench_scrape "$port")"
  meter_rps+=("$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")")
  printf '%-36s %10s req/s   p50 %8s   p99 %8s   %s\n' "meter-usage, one purchase ($tag)" \
    "${meter_rps[-1]}" "$(awk '$1 == "50%" {print $2}' <<<"$out")" "$(awk '$1 == "99%" {print $2}' <<<"$out")" \
    "$(awk '/Non-2xx or 3xx responses:/ {print $NF " non-2xx"} /Socket errors:/ {print}' <<<"$out" | tr '\n' ' ')"
  local line="    where a debit waits (mean ms):"
  local st b a
  for st in "${stages[@]}"; do
    line+="$(bench_stage_ms "$st" "$before" "$after" | awk -v st="$st" '$1 != "" { printf " %s %s", st, $1 }')"
  done
  b="$(bench_metric vendor_meter_batches_total "" <<<"$before")"; a="$(bench_metric vendor_meter_batches_total "" <<<"$after")"
  local rb ra
  rb="$(bench_metric vendor_meter_batched_records_total "" <<<"$before")"; ra="$(bench_metric vendor_meter_batched_records_total "" <<<"$after")"
  line+="$(awk -v b="$b" -v a="$a" -v rb="$rb" -v ra="$ra" 'BEGIN { split(b, x, " "); split(a, y, " ");
    split(rb, r, " "); split(ra, s, " "); n = y[1] - x[1];
    printf "; %d batches of %.1f records", n, (n > 0 ? (s[1] - r[1]) / n : 0) }')"
  echo "$line"
}

pg_round() {
  local out tps
  out="$(pgbench -n -c "$clients" -j 2 -T "$secs" -f "$bench_workdir/debit.sql" "$pg_url" 2>&1)"
  tps="$(awk '/^tps =/ {print $3}' <<<"$out")"
  [ -n "$tps" ] || { echo "$out" >&2; exit 1; }
  pg_tps+=("$tps")
  printf '%-36s %10s tps     %s\n' "pgbench naive debit, one row" "$tps" "$(grep '^latency average' <<<"$out")"
}

log "PostgreSQL: autovacuum $(psql "$bench_admin_url" -Atc 'show autovacuum'), synchronous_commit $(psql "$bench_admin_url" -Atc 'show synchronous_commit'); load: $(uptime | sed 's/.*load average/load average/')"
echo "meter-usage vs pgbench, $clients clients, ${secs}s each, $rounds round(s), $(nproc) cores"
# Warm-up: connections, caches, prepared statements.
wrk -t2 -c"$clients" -d3s -s scripts/bench-meter.lua "http://127.0.0.1:$port" -- "$token" "$bench_workdir/hot.txt" warm >/dev/null
meter_rps=()
pg_tps=()
for r in $(seq 1 "$rounds"); do
  meter_round "round$r"
  pg_round
done
awk -v m="${meter_rps[*]}" -v p="${pg_tps[*]}" 'BEGIN { n = split(m, a, " "); split(p, b, " ");
  for (i = 1; i <= n; i++) { sm += a[i]; sp += b[i] }
  printf "ratio: %.2fx pgbench (meter %.0f req/s vs pgbench %.0f tps, means of %d round(s))\n", sm / sp, sm / n, sp / n, n }'

# Exact ledger: every acknowledged debit is one ledger row and the balance moved by exactly that much.
read -r rows debited balance <<<"$(psql "$bench_db_url" -tA -F ' ' -c \
  "select count(*), coalesce(-sum(amount_micros), 0), (select balance_micros from purchase) from ledger_entry where kind = 'usage'")"
keys="$(psql "$bench_db_url" -tAc "select count(*) from meter_idempotency")"
if [ "$((ledger_before - debited))" != "$balance" ] || [ "$rows" != "$keys" ]; then
  echo "LEDGER MISMATCH: $rows rows, $debited debited, balance $ledger_before -> $balance, $keys keys" >&2
  exit 1
fi
echo "ledger exact: $rows usage rows, one idempotency key each, balance moved by exactly their sum"
