#!/usr/bin/env bash
# Runs the whole main job on this machine without any account: PostgreSQL, a local chain (anvil, with
# the project's test USDC (EIP-3009) and USDT at fixed addresses), a local AWS (moto_server) so the S3
# offer really provisions buckets, a generated development .env, and the server. Ctrl-C stops
# everything it started.
#
# An existing .env is used as it is (never overwritten); without one, `vendor-server dev env` writes a
# development .env (fresh random deposit mnemonic, data key and admin token).
#
# Env: PORT (3001), DEV_ANVIL_PORT (8545), DEV_MOTO_PORT (5000) and DATABASE_URL choose what a new .env
#      gets; VENDOR_SERVER_BIN = a prebuilt binary (skips `cargo build`); TOOLS_DIR = where anvil and
#      moto are installed ($HOME/.cache/vendor-server-tools); DEV_STATE_DIR = where .env and .dev/ live
#      (default: the repository; scripts/browser-test.sh and scripts/schemathesis.sh run separate
#      ones). Extra arguments go to `cargo build` (e.g. --release).
set -euo pipefail
cd "$(dirname "$0")/.."
export TOOLS_DIR="${TOOLS_DIR:-$HOME/.cache/vendor-server-tools}"
log() { echo "[dev-server] $*" >&2; }

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  log "stopped"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/install-tools.sh
scripts/ensure-postgres.sh
repo="$(pwd)"
# The dashboard (/v1/dashboard/…): built when its sources changed; without npm the pages say so.
scripts/build-dashboard.sh || log "warning: the dashboard was not built (see above); its pages answer 503"

if [ -n "${VENDOR_SERVER_BIN:-}" ]; then
  bin="$VENDOR_SERVER_BIN"
else
  log "building (the first build takes about 5 minutes on a 2-core machine; later ones seconds)"
  SQLX_OFFLINE=true cargo build --quiet "$@"
  profile=debug
  case " $* " in *" --release "*) profile=release ;; esac
  bin="${CARGO_TARGET_DIR:-target}/$profile/vendor-server"
fi
case "$bin" in /*) ;; */*) bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")" ;; esac

# Everything below runs in the state folder (its .env, its .dev/); a separate one keeps the repository's
# files, and the server finds the repository's offers and dashboard by absolute paths.
state="${DEV_STATE_DIR:-$repo}"
mkdir -p "$state"
state="$(cd "$state" && pwd)"
if [ "$state" != "$repo" ]; then
  export OFFERS_FILE="${OFFERS_FILE:-$repo/config/offers.toml}"
  export DASHBOARD_DIR="${DASHBOARD_DIR:-$repo/dashboard/dist}"
fi
cd "$state"

if [ ! -f .env ]; then
  "$bin" dev env \
    --port "${PORT:-3001}" \
    --database-url "${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/vendor_server}" \
    --rpc "http://127.0.0.1:${DEV_ANVIL_PORT:-8545}" \
    --aws-endpoint "http://127.0.0.1:${DEV_MOTO_PORT:-5000}" >.env
  log "wrote .env with development settings (a local chain and a local AWS; see .env.example for production)"
else
  log "using the existing .env as it is"
fi
setting() { { grep -E "^$1=" .env || true; } | tail -n 1 | cut -d= -f2- | tr -d '"'; }
url="${DATABASE_URL:-$(setting DATABASE_URL)}"
rpc="${RPC_ENDPOINT:-$(setting RPC_ENDPOINT)}"
aws="${AWS_ENDPOINT_URL:-$(setting AWS_ENDPOINT_URL)}"
port="${PORT:-$(setting PORT)}"; port="${port:-3001}"
base="${PUBLIC_BASE_URL:-$(setting PUBLIC_BASE_URL)}"; base="${base:-http://localhost:$port}"

db="${url##*/}"; db="${db%%\?*}"
if ! psql "${url%/*}/postgres" -tAc "select 1 from pg_database where datname = '$db'" | grep -q 1; then
  psql "${url%/*}/postgres" -q -c "create database \"$db\"" && log "created database $db"
fi

local_port() { # the port of a http://127.0.0.1:N or http://localhost:N URL, else nothing
  case "$1" in http://127.0.0.1:* | http://localhost:*) echo "${1##*:}" | tr -cd '0-9' ;; esac
}
answers() { curl -s -o /dev/null --max-time 2 "$@"; }
mkdir -p .dev

anvil_port="$(local_port "$rpc")"
if [ -n "$anvil_port" ]; then
  if answers -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "$rpc"; then
    log "a chain already answers on $rpc; using it"
  else
    # The chain's state is kept in .dev/ so the database and the chain agree across restarts.
    "$TOOLS_DIR/bin/anvil" --host 127.0.0.1 --port "$anvil_port" --chain-id 31337 --silent \
      --state ".dev/anvil-$anvil_port.json" --state-interval 5 >.dev/anvil.log 2>&1 &
    pids+=($!)
    for _ in $(seq 1 100); do
      answers -H 'content-type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "$rpc" && break
      sleep 0.1
    done
    log "started anvil on $rpc (chain id 31337; log .dev/anvil.log)"
  fi
  "$bin" dev chain --rpc "$rpc" >&2
fi

moto_port="$(local_port "$aws")"
if [ -n "$moto_port" ]; then
  if answers "$aws"; then
    log "a local AWS already answers on $aws; using it"
  else
    "$TOOLS_DIR/venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >.dev/moto.log 2>&1 &
    pids+=($!)
    for _ in $(seq 1 300); do answers "$aws" && break; sleep 0.2; done
    log "started moto_server on $aws (buckets live in memory until it stops; log .dev/moto.log)"
  fi
fi

"$bin" serve &
pids+=($!)
server=$!
for _ in $(seq 1 600); do
  if answers "http://127.0.0.1:$port/health"; then break; fi
  kill -0 "$server" 2>/dev/null || { log "the server stopped; see the lines above"; exit 1; }
  sleep 0.2
done

cat >&2 <<EOF

[dev-server] ready: $base   (the binary is $bin)
  offers:             curl $base/v1/offer/aws-s3-storage-giftcard
  buy one (S3, USDC): $bin dev checkout --offer aws-s3-storage-giftcard
  pay in USDT:        $bin dev checkout --token usdt
  pay a checkout:     $bin dev pay --to 0xDEPOSIT_ADDRESS --amount 5 [--token usdt]
  meter usage:        $bin tokens create --label my-ai-server   (then POST $base/v1/purchase/ID/meter-usage)
  customer page:      the link \`dev checkout\` prints ($base/v1/dashboard/customer#…)
  vendor console:     $base/v1/dashboard/vendor   (sign in with ADMIN_TOKEN from $state/.env)
Ctrl-C stops the server, anvil and moto.
EOF
wait "$server"
