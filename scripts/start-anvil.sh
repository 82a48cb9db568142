#!/usr/bin/env bash
# Start anvil in the background for local development: chain id 31337, the
# standard dev mnemonic ("test test ... junk", 10 accounts with 10000 ETH each),
# auto-mining on every transaction. Deploys nothing.
#
# Usage: scripts/start-anvil.sh [PORT] [extra anvil args...]     (PORT default 8545)
#        scripts/start-anvil.sh stop [PORT]
# Env:   ANVIL      anvil binary (default: $TOOLS_DIR/bin/anvil, then `anvil` on PATH)
#        TOOLS_DIR  default $HOME/.cache/vendor-server-tools (see scripts/install-tools.sh)
#        ANVIL_HOST default 127.0.0.1
# Prints the RPC URL on stdout. Log: $TOOLS_DIR/run/anvil-<PORT>.log, pid in anvil-<PORT>.pid.
set -euo pipefail

TOOLS_DIR="${TOOLS_DIR:-$HOME/.cache/vendor-server-tools}"
RUN_DIR="$TOOLS_DIR/run"
HOST="${ANVIL_HOST:-127.0.0.1}"

if [ "${1:-}" = stop ]; then
  PORT="${2:-8545}"
  PID_FILE="$RUN_DIR/anvil-$PORT.pid"
  if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    kill "$(cat "$PID_FILE")"
    echo "stopped anvil on port $PORT (pid $(cat "$PID_FILE"))" >&2
  else
    echo "no anvil started by this script on port $PORT" >&2
  fi
  rm -f "$PID_FILE"
  exit 0
fi

PORT="${1:-8545}"
[ $# -gt 0 ] && shift
case "$PORT" in *[!0-9]* | "") echo "usage: $0 [PORT] [anvil args...] | stop [PORT]" >&2; exit 2 ;; esac

if [ -z "${ANVIL:-}" ]; then
  if [ -x "$TOOLS_DIR/bin/anvil" ]; then
    ANVIL="$TOOLS_DIR/bin/anvil"
  elif command -v anvil >/dev/null 2>&1; then
    ANVIL="$(command -v anvil)"
  else
    echo "anvil not found: run scripts/install-tools.sh (or set ANVIL=/path/to/anvil)" >&2
    exit 1
  fi
fi

URL="http://$HOST:$PORT"
rpc_chain_id() {
  curl -s --max-time 2 -H 'content-type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "$URL" 2>/dev/null || true
}

mkdir -p "$RUN_DIR"
PID_FILE="$RUN_DIR/anvil-$PORT.pid"
LOG_FILE="$RUN_DIR/anvil-$PORT.log"

if [ -n "$(rpc_chain_id)" ]; then
  echo "something already answers JSON-RPC on $URL (stop it first: $0 stop $PORT)" >&2
  exit 1
fi

# setsid + nohup: keep running after this shell exits.
setsid nohup "$ANVIL" --host "$HOST" --port "$PORT" --chain-id 31337 "$@" >"$LOG_FILE" 2>&1 </dev/null &
echo $! >"$PID_FILE"

for _ in $(seq 1 100); do
  if rpc_chain_id | grep -q '"result":"0x7a69"'; then
    echo "anvil $("$ANVIL" --version | head -n1 | sed 's/^anvil Version: //') pid $(cat "$PID_FILE"), log $LOG_FILE" >&2
    echo "$URL"
    exit 0
  fi
  if ! kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    echo "anvil exited; log:" >&2
    cat "$LOG_FILE" >&2
    rm -f "$PID_FILE"
    exit 1
  fi
  sleep 0.1
done
echo "anvil did not answer on $URL within 10s; log: $LOG_FILE" >&2
exit 1
