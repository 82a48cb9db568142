#!/usr/bin/env bash
# Builds the dashboard (dashboard/ → dashboard/dist, served under /v1/dashboard/ by the server):
# `npm ci` when node_modules does not match package-lock.json, then `vite build` (type check, build,
# size budget). Skipped when dist/ was built from exactly the current sources.
# Usage: scripts/build-dashboard.sh [--force]
set -euo pipefail
cd "$(dirname "$0")/../dashboard"
log() { echo "[build-dashboard] $*" >&2; }

if ! command -v npm >/dev/null 2>&1; then
  log "error: npm not found: install Node.js 20+ (with npm) to build the dashboard; without a build"
  log "       the server answers /v1/dashboard/* with a 503 that says so"
  exit 1
fi

# Everything the build reads, hashed: a change to any of them rebuilds.
stamp() {
  { cat package.json package-lock.json vite.config.ts tsconfig.json ./*.html
    find src -type f | LC_ALL=C sort | xargs cat; } | sha256sum | cut -d' ' -f1
}

lock_hash="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -f node_modules/.lock-hash ] || [ "$(cat node_modules/.lock-hash)" != "$lock_hash" ]; then
  log "npm ci (dependencies from package-lock.json)"
  npm ci --no-audit --no-fund --loglevel=error >&2
  echo "$lock_hash" >node_modules/.lock-hash
fi

want="$(stamp)"
if [ "${1:-}" != "--force" ] && [ -f dist/.build-stamp ] && [ "$(cat dist/.build-stamp)" = "$want" ] \
  && [ -f dist/customer.html ] && [ -f dist/vendor.html ]; then
  log "dist/ is up to date"
  exit 0
fi
log "building dashboard/dist"
npm run --silent build >&2
echo "$want" >dist/.build-stamp
