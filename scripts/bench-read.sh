#!/usr/bin/env bash
# Read-path benchmark (issue 16): builds the release binary, starts it on a fresh database and runs
# `wrk -t2 -c64 -d10s` against GET /v1/offer/{id}, GET /v1/appstore/suggest, GET /health,
# GET /health/live and an unknown route (JSON 404), printing req/s, p99 latency and errors of each.
# Not a test: figures depend on the machine (record them in README "Performance").
#
# Needs wrk (Debian/Ubuntu: `apt-get install -y wrk`) and PostgreSQL (DATABASE_URL, default
# postgres://postgres@127.0.0.1:5432/postgres: a database `vs_bench_<pid>` is created there and dropped).
# Env: CARGO_TARGET_DIR (target), BENCH_PORT (3099), BENCH_DURATION (10s), BENCH_CONNECTIONS (64),
#      VENDOR_SERVER_BIN = a prebuilt release binary (skips `cargo build --release`).
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[bench-read] $*" >&2; }

if ! command -v wrk >/dev/null; then
  log "wrk is not installed: apt-get install -y wrk (Debian/Ubuntu) or brew install wrk (macOS)"
  exit 1
fi
# Start-up (binary, database, server, cleanup) is shared with the other HTTP benchmarks.
source scripts/bench-lib.sh
port="${BENCH_PORT:-3099}"
duration="${BENCH_DURATION:-10s}"
connections="${BENCH_CONNECTIONS:-64}"

bench_binary
if [ -z "${VENDOR_SERVER_BIN:-}" ]; then
  SQLX_OFFLINE=true cargo build --release --quiet --example bare_axum
fi
# The baseline: a bare axum route (examples/bare_axum.rs), next to the binary when built.
bare="$(dirname "$bench_bin")/examples/bare_axum"
bare_pid=""
bench_on_exit '[ -z "$bare_pid" ] || { kill "$bare_pid" 2>/dev/null; wait "$bare_pid" 2>/dev/null; }'

bench_database "vs_bench_$$"
log "server on 127.0.0.1:$port, database $bench_db"
bench_serve "$port"
curl -fsS "http://127.0.0.1:$port/v1/offer/gemini-api-gateway" >/dev/null

printf '%-34s %12s %10s %10s\n' "route" "req/s" "p99" "errors"
run() {
  local name="$1" path="$2" out rps p99 non2xx sockerr
  out="$(wrk -t2 -c"$connections" -d"$duration" --latency "http://127.0.0.1:$port$path")"
  rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
  p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
  non2xx="$(awk '/Non-2xx or 3xx responses:/ {print $NF}' <<<"$out")"
  sockerr="$(awk '/Socket errors:/ {print $0}' <<<"$out")"
  printf '%-34s %12s %10s %10s %s\n' "$name" "$rps" "$p99" "${non2xx:-0} non-2xx" "$sockerr"
}
run "GET /v1/offer/{id}" /v1/offer/gemini-api-gateway
run "GET /v1/appstore/suggest" /v1/appstore/suggest
run "GET /health" /health
run "GET /health/live" /health/live
run "GET /v1/openapi.json" /v1/openapi.json
run "GET unknown route (404 expected)" /no/such/route
if [ -x "$bare" ]; then
  bare_port=$((port - 1))
  BARE_AXUM_ADDR="127.0.0.1:$bare_port" "$bare" &
  bare_pid=$!
  sleep 0.5
  port="$bare_port"
  run "bare axum GET / (baseline)" /
else
  log "no $bare: build it with cargo build --release --example bare_axum for the baseline"
fi
