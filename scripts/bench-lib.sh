# Shared start-up of the benchmark scripts (sourced, not run): the release binary, a fresh
# database, the server on loopback (without background jobs, or the whole stack with them), and
# cleanup at exit. Used by scripts/bench-read.sh, scripts/bench-meter-hot.sh and
# scripts/bench-meter-ledger.sh; the stack by scripts/soak.sh, scripts/bench-gateway.sh,
# scripts/bench-watcher.sh and scripts/bench-rescan.sh.
#
#   bench_binary                 sets $bench_bin: $VENDOR_SERVER_BIN, else `cargo build --release`
#   bench_database NAME          creates NAME next to $bench_admin_url (DATABASE_URL), sets
#                                $bench_db_url; dropped at exit
#   bench_serve PORT [VAR=V ...] starts the server on 127.0.0.1:PORT against $bench_db_url from an
#                                empty directory (no .env), waits for /health/live; sets
#                                $bench_server_pid and $bench_env (the server's environment, for CLI calls)
#   bench_cli ARGS...            runs the binary's CLI with the server's environment
#   bench_on_exit CMD            runs CMD at exit too (after the server stopped and its database was dropped)
#   bench_stop                   stops the server (bench_serve's or bench_start's)
#   bench_scrape PORT            prints the server's /metrics
#   bench_metric NAME [STAGE]    "<sum> <count>" of a histogram's stage (or a counter) from /metrics on stdin
#   bench_stage_ms STAGE A B     mean ms of one step of the meter's group commit between scrapes A and B
#
# The whole stack (the server with its jobs, on a local chain):
#   bench_tools                  the test tools (anvil; scripts/install-tools.sh) and PostgreSQL
#                                (scripts/ensure-postgres.sh); exports $TOOLS_DIR
#   bench_free_port              prints a free TCP port on 127.0.0.1
#   bench_anvil                  starts a local chain (anvil, chain id 31337) on a free port and waits
#                                for it; sets $bench_rpc
#   bench_upstream               starts the Gemini stand-in (scripts/soak-gemini-upstream.mjs) on a free
#                                port; sets $bench_upstream_port
#   bench_stack PORT [VAR=V ...] exports the server's settings into this shell: `dev env` for PORT,
#                                $bench_db_url and $bench_rpc (kept in $bench_workdir/.env), then
#                                config/offers.toml, production-like logging (JSON, warnings, no
#                                backtraces) and the VAR=V pairs (they win); deploys the test tokens
#                                (`dev chain`)
#   bench_start [LOG]            `serve` from $bench_workdir with those settings (jobs on), output in
#                                $bench_workdir/LOG (server.log); waits for /health; sets $bench_server_pid
#   bench_run ARGS...            runs the binary (CLI) from $bench_workdir with those settings
#   bench_checkouts N            stores N open checkouts of the Gemini offer on the local chain, all
#                                watched (pseudo-random deposit addresses; deposit_index 1000001…)
#   bench_down                   stops the server, the chain and the stand-in and drops the database:
#                                for a script that starts one stack after another (exit does it too)
# Callers define `log` and `cd` to the repository root before sourcing. BENCH_ADMIN_URL, when set,
# wins over DATABASE_URL.

bench_admin_url="${BENCH_ADMIN_URL:-${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}}"
bench_root="$(pwd)"
bench_workdir="$(mktemp -d)"
bench_server_pid=""
bench_db=""
bench_exit_hooks=()
bench_pids=()

bench_cleanup() {
  trap - INT TERM EXIT
  local hook
  bench_stop
  bench_drop_database
  for hook in "${bench_exit_hooks[@]}"; do eval "$hook" || true; done
  rm -rf "$bench_workdir"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

bench_on_exit() { bench_exit_hooks+=("$1"); }

bench_stop() {
  if [ -n "$bench_server_pid" ]; then
    kill "$bench_server_pid" 2>/dev/null || true
    wait "$bench_server_pid" 2>/dev/null || true
  fi
  bench_server_pid=""
}

bench_drop_database() {
  if [ -n "$bench_db" ]; then
    psql "$bench_admin_url" -qtAc "drop database if exists $bench_db with (force)" >/dev/null 2>&1 || true
  fi
  bench_db=""
}

# The chain and the stand-in (bench_pids), stopped at exit after the server and the database.
bench_stop_pids() {
  local pid
  for pid in "${bench_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  bench_pids=()
}
bench_on_exit bench_stop_pids

bench_binary() {
  if [ -n "${VENDOR_SERVER_BIN:-}" ]; then
    bench_bin="$VENDOR_SERVER_BIN"
  else
    log "cargo build --release (10+ minutes on a busy 2-core machine the first time)"
    SQLX_OFFLINE=true cargo build --release --quiet --bin vendor-server
    bench_bin="${CARGO_TARGET_DIR:-target}/release/vendor-server"
  fi
  bench_bin="$(cd "$(dirname "$bench_bin")" && pwd)/$(basename "$bench_bin")"
}

bench_database() {
  bench_db="$1"
  bench_db_url="${bench_admin_url%/*}/$bench_db"
  psql "$bench_admin_url" -qtAc "create database $bench_db" >/dev/null
}

bench_serve() {
  local port="$1"
  shift
  local root
  root="$(pwd)"
  # The Gemini key only makes its offer sold; every client is 127.0.0.1, so the per-address
  # connection limit (64 by default: wrk's 64 plus a /metrics scrape were refused) is raised;
  # extra VAR=VALUE pairs win.
  bench_env=(PATH="$PATH" HOME="$HOME" DATABASE_URL="$bench_db_url" HOST=127.0.0.1 PORT="$port"
    PUBLIC_BASE_URL="http://127.0.0.1:$port" OFFERS_FILE="$root/config/offers.toml" JOBS_ENABLED=false
    GEMINI_API_KEY=bench-unused RUST_LOG=warn MAX_CONNECTIONS_PER_IP=1024 "$@")
  # Dirty pages of an earlier build or run, written back during the measurement, stall commits'
  # fsync (a p99 of 76 ms against 10 ms in the next round): flush them first.
  sync
  (cd "$bench_workdir" && exec env -i "${bench_env[@]}" "$bench_bin") >"$bench_workdir/server.log" 2>&1 &
  bench_server_pid=$!
  bench_await "$port" /health/live 150 "$bench_workdir/server.log"
}

# bench_await PORT PATH TRIES LOG: waits (TRIES × 0.2 s) for the server to answer PATH; prints LOG
# and fails when it stopped or never answered.
bench_await() {
  local port="$1" path="$2" tries="$3" out="$4" _
  for _ in $(seq 1 "$tries"); do
    curl -fsS "http://127.0.0.1:$port$path" >/dev/null 2>&1 && return 0
    if ! kill -0 "$bench_server_pid" 2>/dev/null; then
      cat "$out" >&2
      return 1
    fi
    sleep 0.2
  done
  log "the server did not answer on :$port"
  cat "$out" >&2
  return 1
}

bench_cli() {
  (cd "$bench_workdir" && env -i "${bench_env[@]}" "$bench_bin" "$@")
}

bench_tools() {
  export TOOLS_DIR="${TOOLS_DIR:-$HOME/.cache/vendor-server-tools}"
  "$bench_root/scripts/install-tools.sh" >/dev/null 2>&1 || log "scripts/install-tools.sh failed: using the tools installed"
  "$bench_root/scripts/ensure-postgres.sh"
}

bench_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bench_anvil() {
  local port _
  port="$(bench_free_port)"
  bench_rpc="http://127.0.0.1:$port"
  "$TOOLS_DIR/bin/anvil" --host 127.0.0.1 --port "$port" --chain-id 31337 --silent >"$bench_workdir/anvil.log" 2>&1 &
  bench_pids+=($!)
  for _ in $(seq 1 100); do
    curl -s -o /dev/null -H 'content-type: application/json' \
      -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "$bench_rpc" && return 0
    sleep 0.1
  done
  log "anvil did not answer on :$port"
  cat "$bench_workdir/anvil.log" >&2
  return 1
}

bench_upstream() {
  bench_upstream_port="$(bench_free_port)"
  node "$bench_root/scripts/soak-gemini-upstream.mjs" "$bench_upstream_port" &
  bench_pids+=($!)
}

bench_stack() {
  local port="$1"
  shift
  bench_run dev env --port "$port" --database-url "$bench_db_url" --rpc "$bench_rpc" --aws-endpoint "" \
    >"$bench_workdir/.env"
  set -a
  # shellcheck disable=SC1091
  . "$bench_workdir/.env"
  set +a
  export OFFERS_FILE="$bench_root/config/offers.toml" LOG_FORMAT=json RUST_LOG=warn "$@"
  unset RUST_BACKTRACE RUST_LIB_BACKTRACE
  bench_run dev chain --rpc "$bench_rpc" >/dev/null
}

bench_start() {
  local out="$bench_workdir/${1:-server.log}"
  (cd "$bench_workdir" && exec "$bench_bin" serve) >"$out" 2>&1 &
  bench_server_pid=$!
  bench_await "$PORT" /health 300 "$out"
}

bench_run() {
  (cd "$bench_workdir" && "$bench_bin" "$@")
}

bench_checkouts() {
  psql "$bench_db_url" -q -v n="$1" <<'SQL'
insert into checkout (checkout_session_id, checkout_wallet_id, checkout_flow_id, offer_id, chain_name,
                      token_symbol, deposit_index, deposit_address, expires_at, watch_until)
select gen_random_uuid(), gen_random_uuid(), 'gemini-api-gateway:local:usdc', 'gemini-api-gateway', 'local', 'usdc',
       1000000 + i, '0x' || substr(md5(i::text) || md5((i + 7)::text), 1, 40),
       now() + interval '24 hours', now() + interval '30 days'
from generate_series(1, :n) i;
analyze checkout;
SQL
}

bench_down() {
  bench_stop
  bench_stop_pids
  bench_drop_database
}

# bench_scrape PORT: the server's /metrics.
bench_scrape() { curl -fsS "http://127.0.0.1:$1/metrics"; }

# bench_metric NAME [STAGE] < METRICS: "<sum> <count>" of one stage of a histogram, or a counter's
# "<value> 1" when STAGE is empty.
bench_metric() {
  awk -v name="$1" -v stage="$2" '
    stage != "" && index($0, name "_sum{stage=\"" stage "\"}") == 1 { s = $2 }
    stage != "" && index($0, name "_count{stage=\"" stage "\"}") == 1 { c = $2 }
    stage == "" && $1 == name { s = $2; c = 1 }
    END { printf "%s %s\n", (s == "" ? 0 : s), (c == "" ? 0 : c) }'
}

# bench_stage_ms STAGE BEFORE AFTER: mean ms of one step of the meter's group commit
# (`vendor_meter_stage_seconds{stage}`) between two scrapes; nothing when it did not run.
bench_stage_ms() {
  local b a
  b="$(bench_metric vendor_meter_stage_seconds "$1" <<<"$2")"
  a="$(bench_metric vendor_meter_stage_seconds "$1" <<<"$3")"
  awk -v b="$b" -v a="$a" 'BEGIN { split(b, x, " "); split(a, y, " "); n = y[2] - x[2];
    if (n > 0) printf "%.2f\n", 1000 * (y[1] - x[1]) / n }'
}
