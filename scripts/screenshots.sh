#!/usr/bin/env bash
# Regenerates the README's dashboard screenshots (docs/screenshots/*.png) from a browser-test run:
# the real pages, with a real purchase paid on anvil, metered usage and the vendor console.
# Usage: scripts/screenshots.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out="${CARGO_TARGET_DIR:-$(pwd)/target}/browser-test-screenshots"
BROWSER_TEST_OUT="$out" scripts/browser-test.sh
mkdir -p docs/screenshots
copied=0
for name in customer-usage-desktop customer-usage-phone vendor-overview-desktop vendor-purchase-desktop; do
  if [ -f "$out/screenshots/$name.png" ]; then
    cp "$out/screenshots/$name.png" "docs/screenshots/$name.png"
    copied=$((copied + 1))
  else
    echo "[screenshots] no $name.png in this run (skipped view?)" >&2
  fi
done
echo "[screenshots] $copied screenshot(s) in docs/screenshots/" >&2
