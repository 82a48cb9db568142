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
log() { echo "[soak] $*" >&2; }
# Start-up (tools, binary, database, chain, stand-in, server, cleanup) is shared with the benchmarks.
source scripts/bench-lib.sh
bench_admin_url="${SOAK_ADMIN_URL:-$bench_admin_url}"
bench_tools
bench_binary
port="$(bench_free_port)"
bench_database "vs_soak_$$"
url="$bench_db_url"
# Without autovacuum nothing vacuums or analyzes the growing tables and meter-usage slows down over
# the run (README "Soak"): say which way this server is set.
log "PostgreSQL autovacuum: $(psql "$bench_admin_url" -Atc 'show autovacuum')"
bench_anvil
bench_upstream
# The Gemini stand-in, and rate limits that one loopback client cannot trip.
bench_stack "$port" GEMINI_API_KEY=soak-upstream-key GEMINI_UPSTREAM_URL="http://127.0.0.1:$bench_upstream_port" \
  CHECKOUT_RATE_LIMIT_PER_MINUTE=1000000 CHECKOUT_VALIDATE_RATE_LIMIT_PER_MINUTE=1000000
bench_start
server="$bench_server_pid"
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
purchases="$bench_workdir/purchases.txt"
psql "$url" -tAc "select 'CustomerPurchaseID_' || purchase_id from purchase" >"$purchases"
token="$(bench_run tokens create --label soak 2>/dev/null)"
log "server pid $server on :$port; $(wc -l <"$purchases") purchases; driving for $minutes minute(s)"
status=0
node scripts/soak.mjs --base "http://127.0.0.1:$port" --pid "$server" --minutes "$minutes" \
  --purchases "$purchases" --token "$token" --concurrency "${SOAK_CONCURRENCY:-32}" || status=$?
# The server's own errors count too: a job that keeps failing is a finding even when requests succeed.
kept="${TMPDIR:-/tmp}/vendor-soak-server.log"
cp "$bench_workdir/server.log" "$kept"
errors="$(grep -c '"level":"ERROR"' "$kept" || true)"
echo "server log: $errors error line(s) (kept in $kept)"
if [ "$errors" -gt 0 ]; then
  grep '"level":"ERROR"' "$kept" | head -n 3
  status=1
fi
exit "$status"
