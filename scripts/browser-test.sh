#!/usr/bin/env bash
# Browser tests of the dashboard in a real Chromium (Debian's package, driven by playwright-core; no
# browser download), against a real server with its own PostgreSQL database, anvil and moto: started
# by scripts/dev-server.sh with a separate state folder and free ports, stopped at the end. The server
# sells the Gemini gateway in front of a local stand-in for Google's API (scripts/soak-gemini-upstream.mjs)
# and pays approved refunds from a payout wallet (anvil's dev account 7, funded with the test tokens);
# its chain names an explorer (never loaded) so the pages link transactions.
# Screenshots of every view (desktop and phone width) and the logs go to $CARGO_TARGET_DIR/browser-test/.
#
# Usage: scripts/browser-test.sh [node --test args, e.g. --test-name-pattern=customer]
# Env:   VENDOR_SERVER_BIN (a prebuilt binary; else `cargo build`), CHROMIUM (/usr/bin/chromium),
#        BROWSER_TEST_OUT (where screenshots and logs go), BROWSER_TEST_CONFIRMATIONS (5: the test
#        chain's deposit confirmations).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
export TOOLS_DIR="${TOOLS_DIR:-$HOME/.cache/vendor-server-tools}"
log() { echo "[browser-test] $*" >&2; }
target="${CARGO_TARGET_DIR:-$repo/target}"
out="${BROWSER_TEST_OUT:-$target/browser-test}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
# Deposits on the test chain need this many confirmations (the real environment wins over the state
# folder's .env, for the server and the CLI alike): enough that the customer page can be watched
# counting a payment's confirmations up before it is credited. `dev pay`/`dev checkout` mine them all.
export DEFAULT_BLOCK_CONFIRMATIONS="${BROWSER_TEST_CONFIRMATIONS:-5}"

if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing Debian's chromium"
    apt-get install -y --no-install-recommends chromium >/dev/null \
      || { apt-get update -qq && apt-get install -y --no-install-recommends chromium >/dev/null; }
  fi
  [ -x "$CHROMIUM" ] || { log "error: no Chromium at $CHROMIUM (apt-get install chromium, or set CHROMIUM)"; exit 1; }
fi

scripts/install-tools.sh
scripts/ensure-postgres.sh
scripts/build-dashboard.sh

if [ -n "${VENDOR_SERVER_BIN:-}" ]; then
  bin="$VENDOR_SERVER_BIN"
else
  SQLX_OFFLINE=true cargo build --quiet --bin vendor-server
  bin="$target/debug/vendor-server"
fi
case "$bin" in /*) ;; *) bin="$repo/$bin" ;; esac
export VENDOR_SERVER_BIN="$bin"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="$(free_port)"; anvil_port="$(free_port)"; moto_port="$(free_port)"; gemini_port="$(free_port)"
admin_url="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
db="vs_browser_$$"
database_url="${admin_url%/*}/$db"

rm -rf "$out/state" "$out/screenshots"
mkdir -p "$out/state" "$out/screenshots"
state="$out/state"

server_pid=""
gemini_pid=""
cleanup() {
  if [ -n "$gemini_pid" ]; then kill -TERM "$gemini_pid" 2>/dev/null || true; fi
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  psql "$admin_url" -q -c "drop database if exists \"$db\" with (force)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Google's Gemini API stand-in: the gateway forwards the customers' calls there (with this key).
node scripts/soak-gemini-upstream.mjs "$gemini_port" >"$out/gemini-upstream.log" 2>&1 &
gemini_pid=$!
# The payout wallet: anvil's dev account 7 (a public development key, refused by the server on any
# chain but a local one; never printed). Its address gets test USDC and USDT once the chain is up.
payout_key=0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356
payout_address=0x14dC79964da2C08b23698B3D3cc7Ca32193d9955

log "starting the server with PostgreSQL ($db), anvil (:$anvil_port), moto (:$moto_port) and the Gemini stand-in (:$gemini_port) on :$port"
env -u RUST_LOG -u LOG_LEVEL DEV_STATE_DIR="$state" PORT="$port" DEV_ANVIL_PORT="$anvil_port" \
  DEV_MOTO_PORT="$moto_port" DATABASE_URL="$database_url" DASHBOARD_DIR="$repo/dashboard/dist" \
  GEMINI_API_KEY=browser-test-upstream-key GEMINI_UPSTREAM_URL="http://127.0.0.1:$gemini_port" \
  VENDOR_PAYOUT_PRIVATE_KEY="$payout_key" \
  CHAIN_EXPLORER_URL=https://explorer.example \
  scripts/dev-server.sh >"$out/dev-server.log" 2>&1 &
server_pid=$!
for i in $(seq 1 600); do
  curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/health" && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    log "the server did not start; its log:"; cat "$out/dev-server.log" >&2; exit 1
  fi
  [ "$i" = 600 ] && { log "the server did not answer within 120 s; its log:"; cat "$out/dev-server.log" >&2; exit 1; }
  sleep 0.2
done

setting() { { grep -E "^$1=" "$state/.env" || true; } | tail -n 1 | cut -d= -f2- | tr -d '"'; }

# Fund the payout wallet: anyone may mint the test tokens (mint(address,uint256) = 0x40c10f19); anvil
# signs for its unlocked dev accounts and mines each transaction at once.
word() { printf '%064s' "${1#0x}" | tr ' ' 0; }
for token in "$(setting USDC_ADDRESS)" "$(setting USDT_ADDRESS)"; do
  data="0x40c10f19$(word "$payout_address")$(word "$(printf '%x' $((1000000 * 1000000)))")"
  curl -sf -H 'content-type: application/json' "$(setting RPC_ENDPOINT)" \
    -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_sendTransaction\",\"params\":[{\"from\":\"$payout_address\",\"to\":\"$token\",\"data\":\"$data\"}]}" \
    | grep -q '"result"' || { log "could not fund the payout wallet with $token"; exit 1; }
done
export GEMINI_STAND_IN="http://127.0.0.1:$gemini_port"
export BASE_URL="http://127.0.0.1:$port"
export STATE_DIR="$state"
export ADMIN_TOKEN="$(setting ADMIN_TOKEN)"
export DATABASE_URL="$database_url"
export SCREENSHOT_DIR="$out/screenshots"
log "server ready at $BASE_URL; running dashboard/tests (screenshots: $SCREENSHOT_DIR)"
cd dashboard
status=0
node --test --test-concurrency=1 --test-reporter=spec "$@" tests/*.test.mjs || status=$?
if [ "$status" -ne 0 ]; then
  log "failed; the server's log is $out/dev-server.log (last lines below)"
  tail -n 40 "$out/dev-server.log" >&2 || true
fi
exit "$status"
