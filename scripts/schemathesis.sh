#!/usr/bin/env bash
# Fuzzes the running server against its own OpenAPI document with Schemathesis: the full stack
# (PostgreSQL, anvil, moto and the server, started by scripts/dev-server.sh in a temporary state
# directory on free ports), one S3 purchase bought and paid through `vendor-server dev checkout`, a
# billing token, then `st run` with the checks not_a_server_error, status_code_conformance and
# response_schema_conformance: no 5xx, no status the document does not list for the operation, no
# body that does not match its schema. Keyed routes get the purchase's id and the right key per
# security scheme (customer key, billing token, admin token), so they are exercised past the 401;
# the admin routes get a second purchase, sweep and notification 1 and a spare billing token.
# The Gemini gateway is not configured here: its routes answer 404 in Google's shape.
#
# Env: ST_MAX_EXAMPLES (100; about a minute) examples per operation and phase; ST_WORKERS (1: Python 3.11's ast module
#      is not thread-safe and Hypothesis trips over it with more); ST_KEEP=1 keeps the
#      temporary state directory (the stack's log, .env, schemathesis.toml); VENDOR_SERVER_BIN = a
#      prebuilt binary (else `cargo build`); TOOLS_DIR as scripts/install-tools.sh; DATABASE_URL = the
#      PostgreSQL server (a fresh database is created on it and dropped afterwards).
# Schemathesis (pinned) is installed into its own venv, $TOOLS_DIR/venv-schemathesis, apart from the
# moto venv so their dependencies never meet.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
export TOOLS_DIR="${TOOLS_DIR:-$HOME/.cache/vendor-server-tools}"
SCHEMATHESIS_VERSION="${SCHEMATHESIS_VERSION:-4.32.5}"
log() { echo "[schemathesis] $*" >&2; }

scripts/install-tools.sh
scripts/ensure-postgres.sh

venv="$TOOLS_DIR/venv-schemathesis"
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into $venv"
  rm -rf "$venv"
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

if [ -n "${VENDOR_SERVER_BIN:-}" ]; then
  bin="$VENDOR_SERVER_BIN"
else
  SQLX_OFFLINE=true cargo build --quiet
  bin="${CARGO_TARGET_DIR:-target}/debug/vendor-server"
fi
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port="$(free_port)"; anvil_port="$(free_port)"; moto_port="$(free_port)"
admin_url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
database="vs_schemathesis_$$_$RANDOM"
state="$(mktemp -d)"
base="http://127.0.0.1:$port"

server=""
cleanup() {
  trap - INT TERM EXIT
  if [ -n "$server" ]; then
    kill -TERM "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  psql "$admin_url" -q -c "drop database if exists \"$database\" with (force)" >/dev/null 2>&1 || true
  if [ -n "${ST_KEEP:-}" ]; then log "kept $state"; else rm -rf "$state"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting the stack in $state (server $base, anvil :$anvil_port, moto :$moto_port)"
PORT="$port" DEV_ANVIL_PORT="$anvil_port" DEV_MOTO_PORT="$moto_port" \
  DATABASE_URL="${admin_url%/*}/$database" VENDOR_SERVER_BIN="$bin" DEV_STATE_DIR="$state" \
  scripts/dev-server.sh >"$state/stack.log" 2>&1 &
server=$!
for _ in $(seq 1 600); do
  curl -sf -o /dev/null --max-time 2 "$base/health" && break
  kill -0 "$server" 2>/dev/null || { cat "$state/stack.log" >&2; log "the stack did not start"; exit 1; }
  sleep 0.2
done
curl -sf -o /dev/null "$base/health" || { cat "$state/stack.log" >&2; log "the server does not answer"; exit 1; }

# A paid purchase with its keys (the commands read the stack's .env in $state). DATABASE_URL is the
# stack's database: the caller's (the PostgreSQL server's) would win over the .env, and the tokens
# would be created in another database.
export DATABASE_URL="${admin_url%/*}/$database"
receipt="$(cd "$state" && "$bin" dev checkout --offer aws-s3-storage-giftcard --url "$base")"
field() { printf '%s\n' "$receipt" | sed -n "s/.*\"$1\": *\"\([^\"]*\)\".*/\1/p" | head -n 1; }
export VS_PURCHASE_ID VS_CUSTOMER_KEY VS_BILLING_TOKEN VS_ADMIN_TOKEN VS_ADMIN_PURCHASE_ID VS_SPARE_TOKEN_ID
VS_PURCHASE_ID="$(field vendor_purchase_id)"
VS_CUSTOMER_KEY="$(field customer_billing_api_key)"
VS_BILLING_TOKEN="$(cd "$state" && "$bin" tokens create --label schemathesis | tail -n 1)"
VS_ADMIN_TOKEN="$(grep -E '^ADMIN_TOKEN=' "$state/.env" | cut -d= -f2-)"
# The admin routes act on a purchase and a billing token of their own: they may suspend or delete
# that purchase and revoke that token without taking the keyed routes' purchase and token away.
receipt="$(cd "$state" && "$bin" dev checkout --offer aws-s3-storage-giftcard --url "$base")"
VS_ADMIN_PURCHASE_ID="$(field vendor_purchase_id)"
VS_SPARE_TOKEN_ID="$(cd "$state" && "$bin" tokens create --label schemathesis-spare 2>&1 >/dev/null |
  sed -n 's/^created billing token \([0-9]*\) .*/\1/p')"
if [ -z "$VS_PURCHASE_ID" ] || [ -z "$VS_CUSTOMER_KEY" ] || [ -z "$VS_ADMIN_PURCHASE_ID" ] ||
  [ -z "$VS_ADMIN_TOKEN" ] || [ -z "$VS_SPARE_TOKEN_ID" ]; then
  printf '%s\n' "$receipt" >&2
  log "the checkout gave no purchase or key, or no admin token / spare billing token"
  exit 1
fi
# The billing token must pass meter-usage's auth (an empty record is then a 400, never a 401).
token_check="$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $VS_BILLING_TOKEN" \
  -H 'Content-Type: application/json' -d '{}' "$base/v1/purchase/$VS_PURCHASE_ID/meter-usage")"
if [ "$token_check" = 401 ]; then
  log "the billing token is refused by meter-usage"
  exit 1
fi
log "purchase $VS_PURCHASE_ID bought; running schemathesis"

cat >"$state/schemathesis.toml" <<'EOF'
[parameters]
"path.id" = "${VS_PURCHASE_ID}"

[auth.openapi.customer_key]
bearer = "${VS_CUSTOMER_KEY}"

[auth.openapi.billing_token]
bearer = "${VS_BILLING_TOKEN}"

[auth.openapi.admin_token]
bearer = "${VS_ADMIN_TOKEN}"

# Admin routes: their own purchase, the first sweep and notification of the stack, a spare token.
[[operations]]
include-path-regex = "^/v1/admin/purchases/"
parameters = { "path.id" = "${VS_ADMIN_PURCHASE_ID}" }

[[operations]]
include-path-regex = "^/v1/admin/(sweeps|notifications)/"
parameters = { "path.id" = "1" }

[[operations]]
include-path-regex = "^/v1/admin/tokens/"
parameters = { "path.id" = "${VS_SPARE_TOKEN_ID}" }

[generation]
allow-x00 = true
EOF

status=0
# Run from the state directory: Hypothesis and Schemathesis keep their caches in the working directory.
cd "$state"
"$venv/bin/st" --config-file "$state/schemathesis.toml" run "$base/v1/openapi.json" \
  --url "$base" \
  --checks not_a_server_error,status_code_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "${ST_MAX_EXAMPLES:-100}" \
  --workers "${ST_WORKERS:-1}" \
  --request-timeout 30 \
  --no-color || status=$?
# What the server answered, per route and status (keyed routes should show 200s, not only 401s).
log "answers per route (from the server's log):"
sed 's/\x1b\[[0-9;]*m//g' "$state/stack.log" | grep ' response status=' |
  sed -E 's/.*method=([A-Z]+) path="?([^" ]+)"? .* status=([0-9]+).*/\1 \2 \3/' |
  grep -E '^(GET|POST|DELETE) /(health|metrics|v1)' | sort | uniq -c | sort -k3,3 -k2,2 -k4,4 >&2 || true
if [ "$status" -ne 0 ]; then
  log "failures; the server's log:"
  grep -iE ' (ERROR|WARN) ' "$state/stack.log" | tail -n 40 >&2 || true
fi
exit "$status"
