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
log() { echo "[bench-gateway] $*" >&2; }
# Start-up (tools, binary, database, chain, stand-in, server, cleanup) is shared (scripts/bench-lib.sh).
source scripts/bench-lib.sh
bench_tools
bench_binary
port="$(bench_free_port)"
bench_database "vs_bench_gateway_$$"
url="$bench_db_url"
bench_anvil
bench_upstream
upstream_port="$bench_upstream_port"
# The Gemini stand-in; the offer's 60 requests/minute is raised for the bench purchase below.
bench_stack "$port" GEMINI_API_KEY=bench-upstream-key GEMINI_UPSTREAM_URL="http://127.0.0.1:$upstream_port"
bench_start
server="$bench_server_pid"
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
node scripts/bench-gateway.mjs --gateway "http://127.0.0.1:$port" \
  --upstream "http://127.0.0.1:$upstream_port" --key vsg_bench --calls "$calls"
charged="$(psql "$url" -Atc "select count(*) from ledger_entry where kind = 'usage'")"
log "usage entries posted: $charged"
