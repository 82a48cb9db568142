#!/usr/bin/env bash
# Idempotent installer of the external test tools used by vendor-server's
# integration tests, into a cache dir outside the repo:
#
#   $TOOLS_DIR/bin/anvil            anvil (local EVM node), from the npm package
#                                   @foundry-rs/anvil-linux-amd64 (binary at
#                                   package/bin/anvil inside the tarball)
#   $TOOLS_DIR/venv/bin/moto_server moto[server] (AWS mock) from PyPI
#   $TOOLS_DIR/venv/bin/python      with aiosmtpd (test SMTP server) importable
#
# Each tool is skipped when it is already present and working at the pinned
# version. Works with an empty cache dir; only needs node/npm and python3 (venv).
#
# Usage: scripts/install-tools.sh        (TOOLS_DIR overrides the location)
set -euo pipefail

TOOLS_DIR="${TOOLS_DIR:-$HOME/.cache/vendor-server-tools}"
ANVIL_VERSION="${ANVIL_VERSION:-1.7.1}"
MOTO_VERSION="${MOTO_VERSION:-5.2.5}"
AIOSMTPD_VERSION="${AIOSMTPD_VERSION:-1.4.6}"
PYTHON="${PYTHON:-python3}"

mkdir -p "$TOOLS_DIR/bin"
TOOLS_DIR="$(cd "$TOOLS_DIR" && pwd)"

log() { echo "[install-tools] $*" >&2; }

# ---------------------------------------------------------------- anvil
anvil_ok() {
  [ -x "$TOOLS_DIR/bin/anvil" ] &&
    "$TOOLS_DIR/bin/anvil" --version 2>/dev/null | grep -q "Version: ${ANVIL_VERSION}\b"
}

if anvil_ok; then
  log "anvil ${ANVIL_VERSION} already installed"
else
  case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ANVIL_PKG="@foundry-rs/anvil-linux-amd64" ;;
    Linux-aarch64) ANVIL_PKG="@foundry-rs/anvil-linux-arm64" ;;
    Darwin-arm64) ANVIL_PKG="@foundry-rs/anvil-darwin-arm64" ;;
    Darwin-x86_64) ANVIL_PKG="@foundry-rs/anvil-darwin-amd64" ;;
    *) log "unsupported platform $(uname -s)-$(uname -m)"; exit 1 ;;
  esac
  prefix="$TOOLS_DIR/npm/anvil-${ANVIL_VERSION}"
  log "installing ${ANVIL_PKG}@${ANVIL_VERSION} into ${prefix}"
  rm -rf "$prefix"
  mkdir -p "$prefix"
  # --prefix keeps it out of any package.json; the package has no deps/scripts.
  npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error \
    "${ANVIL_PKG}@${ANVIL_VERSION}" >&2
  bin="$prefix/node_modules/${ANVIL_PKG}/bin/anvil"
  if [ ! -x "$bin" ]; then
    # npm sometimes drops the exec bit on extract; be lenient.
    [ -f "$bin" ] && chmod +x "$bin" || { log "anvil binary not found at $bin"; exit 1; }
  fi
  ln -sfn "$bin" "$TOOLS_DIR/bin/anvil"
  anvil_ok || { log "installed anvil does not run"; "$TOOLS_DIR/bin/anvil" --version || true; exit 1; }
  log "anvil installed"
fi

# ---------------------------------------------------------------- python venv: moto[server] + aiosmtpd
VENV="$TOOLS_DIR/venv"
venv_ok() {
  [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/moto_server" ] &&
    "$VENV/bin/moto_server" --help >/dev/null 2>&1 &&
    "$VENV/bin/python" - "$MOTO_VERSION" "$AIOSMTPD_VERSION" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
import aiosmtpd, moto, flask  # flask: part of moto[server]
assert version("moto") == sys.argv[1], version("moto")
assert version("aiosmtpd") == sys.argv[2], version("aiosmtpd")
EOF
}

if venv_ok; then
  log "moto[server] ${MOTO_VERSION} + aiosmtpd ${AIOSMTPD_VERSION} already installed"
else
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "creating venv ${VENV}"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  log "installing moto[server]==${MOTO_VERSION} aiosmtpd==${AIOSMTPD_VERSION}"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "moto[server]==${MOTO_VERSION}" "aiosmtpd==${AIOSMTPD_VERSION}" >&2
  venv_ok || { log "moto_server/aiosmtpd do not work after install"; exit 1; }
  log "moto[server] + aiosmtpd installed"
fi

echo "tools ready: ANVIL=$TOOLS_DIR/bin/anvil MOTO_SERVER=$VENV/bin/moto_server PYTHON=$VENV/bin/python (aiosmtpd: \$PYTHON -m aiosmtpd)"
