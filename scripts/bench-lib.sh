# Shared start-up of the HTTP benchmark scripts (sourced, not run): the release binary, a fresh
# database, the server on loopback without background jobs, and cleanup at exit. Used by
# scripts/bench-read.sh, scripts/bench-meter-hot.sh and scripts/bench-meter-ledger.sh.
#
#   bench_binary                 sets $bench_bin: $VENDOR_SERVER_BIN, else `cargo build --release`
#   bench_database NAME          creates NAME next to $bench_admin_url (DATABASE_URL), sets
#                                $bench_db_url; dropped at exit
#   bench_serve PORT [VAR=V ...] starts the server on 127.0.0.1:PORT against $bench_db_url from an
#                                empty directory (no .env), waits for /health/live; sets
#                                $bench_server_pid and $bench_env (the server's environment, for CLI calls)
#   bench_cli ARGS...            runs the binary's CLI with the server's environment
#   bench_on_exit CMD            runs CMD at exit too (after the server stopped and its database was dropped)
# Callers define `log` and `cd` to the repository root before sourcing.

bench_admin_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
bench_workdir="$(mktemp -d)"
bench_server_pid=""
bench_db=""
bench_exit_hooks=()

bench_cleanup() {
  trap - INT TERM EXIT
  local hook
  if [ -n "$bench_server_pid" ]; then
    kill "$bench_server_pid" 2>/dev/null || true
    wait "$bench_server_pid" 2>/dev/null || true
  fi
  if [ -n "$bench_db" ]; then
    psql "$bench_admin_url" -qtAc "drop database if exists $bench_db with (force)" >/dev/null 2>&1 || true
  fi
  for hook in "${bench_exit_hooks[@]}"; do eval "$hook" || true; done
  rm -rf "$bench_workdir"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

bench_on_exit() { bench_exit_hooks+=("$1"); }

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
  # The Gemini key only makes its offer sold; extra VAR=VALUE pairs win.
  bench_env=(PATH="$PATH" HOME="$HOME" DATABASE_URL="$bench_db_url" HOST=127.0.0.1 PORT="$port"
    PUBLIC_BASE_URL="http://127.0.0.1:$port" OFFERS_FILE="$root/config/offers.toml" JOBS_ENABLED=false
    GEMINI_API_KEY=bench-unused RUST_LOG=warn "$@")
  (cd "$bench_workdir" && exec env -i "${bench_env[@]}" "$bench_bin") >"$bench_workdir/server.log" 2>&1 &
  bench_server_pid=$!
  local _
  for _ in $(seq 1 150); do
    curl -fsS "http://127.0.0.1:$port/health/live" >/dev/null 2>&1 && return 0
    if ! kill -0 "$bench_server_pid" 2>/dev/null; then
      cat "$bench_workdir/server.log" >&2
      return 1
    fi
    sleep 0.2
  done
  log "the server did not answer on :$port"
  cat "$bench_workdir/server.log" >&2
  return 1
}

bench_cli() {
  (cd "$bench_workdir" && env -i "${bench_env[@]}" "$bench_bin" "$@")
}
