#!/usr/bin/env bash
# Supply chain: `cargo deny check licenses bans sources` against deny.toml. Installs cargo-deny (pinned)
# into the tools cache the first time (a few minutes of compiling on a 2-core machine).
# The advisories check needs the RustSec database from GitHub: where the network allows it, run
# `scripts/deny.sh advisories` (or `cargo deny check advisories`).
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS_DIR="${TOOLS_DIR:-$HOME/.cache/vendor-server-tools}"
VERSION="${CARGO_DENY_VERSION:-0.20.2}"
deny="$TOOLS_DIR/cargo-deny/bin/cargo-deny"
if ! "$deny" --version 2>/dev/null | grep -q " $VERSION\$"; then
  echo "[deny] installing cargo-deny $VERSION into $TOOLS_DIR/cargo-deny" >&2
  cargo install --quiet --locked --root "$TOOLS_DIR/cargo-deny" "cargo-deny@$VERSION"
fi
checks=("$@")
[ ${#checks[@]} -gt 0 ] || checks=(licenses bans sources)
# Warnings (several versions of one crate) are listed by `cargo deny check` without --log-level.
"$deny" --log-level error check "${checks[@]}"
echo "[deny] ok: ${checks[*]}"
