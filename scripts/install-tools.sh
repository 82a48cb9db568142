#!/usr/bin/env bash
# Idempotent installer of the external test tools used by vendor-server's
# integration tests, into a cache dir outside the repo:
#
#   $TOOLS_DIR/bin/anvil            anvil (local EVM node), from the npm package
#                                   @foundry-rs/anvil-linux-amd64 (binary at
#                                   package/bin/anvil inside the tarball)
#   $TOOLS_DIR/venv/bin/moto_server moto[server] (AWS mock) from PyPI
#   $TOOLS_DIR/venv/bin/python      with aiosmtpd (test SMTP server) importable, and the
#                                   Gemini gateway's client SDKs google-genai and openai
#   $TOOLS_DIR/npm/google-genai-<v>/node_modules/@google/genai
#                                   Google's JavaScript SDK (the gateway's SDK tests)
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
GOOGLE_GENAI_PY_VERSION="${GOOGLE_GENAI_PY_VERSION:-3.6.1}"
OPENAI_PY_VERSION="${OPENAI_PY_VERSION:-3.63.0}"
GOOGLE_GENAI_JS_VERSION="${GOOGLE_GENAI_JS_VERSION:-3.6.1}"
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
    "$VENV/bin/python" - "$MOTO_VERSION" "$AIOSMTPD_VERSION" "$GOOGLE_GENAI_PY_VERSION" "$OPENAI_PY_VERSION" <<'EOF' >/dev/null 2>&1
import sys
from importlib.metadata import version
import aiosmtpd, moto, flask  # flask: part of moto[server]
import google.genai, openai
assert version("moto") == sys.argv[1], version("moto")
assert version("aiosmtpd") == sys.argv[2], version("aiosmtpd")
assert version("google-genai") == sys.argv[3], version("google-genai")
assert version("openai") == sys.argv[4], version("openai")
EOF
}

if venv_ok; then
  log "moto[server] ${MOTO_VERSION} + aiosmtpd ${AIOSMTPD_VERSION} + google-genai ${GOOGLE_GENAI_PY_VERSION} + openai ${OPENAI_PY_VERSION} already installed"
else
  if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "creating venv ${VENV}"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  log "installing moto[server]==${MOTO_VERSION} aiosmtpd==${AIOSMTPD_VERSION} google-genai==${GOOGLE_GENAI_PY_VERSION} openai==${OPENAI_PY_VERSION}"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "moto[server]==${MOTO_VERSION}" "aiosmtpd==${AIOSMTPD_VERSION}" \
    "google-genai==${GOOGLE_GENAI_PY_VERSION}" "openai==${OPENAI_PY_VERSION}" >&2
  venv_ok || { log "moto_server/aiosmtpd/google-genai/openai do not work after install"; exit 1; }
  log "moto[server] + aiosmtpd + google-genai + openai installed"
fi

# ---------------------------------------------------------------- @google/genai (npm)
GENAI_JS="$TOOLS_DIR/npm/google-genai-${GOOGLE_GENAI_JS_VERSION}"
genai_js_ok() {
  [ -f "$GENAI_JS/node_modules/@google/genai/package.json" ] &&
    (cd "$GENAI_JS" && node -e '
      const v = require("./node_modules/@google/genai/package.json").version;
      if (v !== process.argv[1]) process.exit(1);
      import("@google/genai").then((m) => process.exit(m.GoogleGenAI ? 0 : 1), () => process.exit(1));
    ' "$GOOGLE_GENAI_JS_VERSION") >/dev/null 2>&1
}

if genai_js_ok; then
  log "@google/genai ${GOOGLE_GENAI_JS_VERSION} already installed"
else
  log "installing @google/genai@${GOOGLE_GENAI_JS_VERSION} into ${GENAI_JS}"
  rm -rf "$GENAI_JS"
  mkdir -p "$GENAI_JS"
  npm install --prefix "$GENAI_JS" --no-save --no-audit --no-fund --loglevel=error \
    "@google/genai@${GOOGLE_GENAI_JS_VERSION}" >&2
  genai_js_ok || { log "@google/genai does not load after install"; exit 1; }
  log "@google/genai installed"
fi

echo "tools ready: ANVIL=$TOOLS_DIR/bin/anvil MOTO_SERVER=$VENV/bin/moto_server PYTHON=$VENV/bin/python (aiosmtpd: \$PYTHON -m aiosmtpd; google-genai, openai) GOOGLE_GENAI_JS=$GENAI_JS/node_modules/@google/genai"
