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
# Debian's pngquant (when present) makes them about three times smaller.
for name in customer-usage-desktop customer-usage-phone vendor-overview-cockpit-desktop vendor-overview-cockpit-phone \
  vendor-purchases-desktop vendor-refunds-desktop; do
  if [ -f "$out/screenshots/$name.png" ]; then
    if command -v pngquant >/dev/null 2>&1; then
      pngquant --force --quality=60-85 --output "docs/screenshots/$name.png" "$out/screenshots/$name.png"
    else
      cp "$out/screenshots/$name.png" "docs/screenshots/$name.png"
    fi
    copied=$((copied + 1))
  else
    echo "[screenshots] no $name.png in this run (the vendor views need the admin API)" >&2
  fi
done
echo "[screenshots] $copied screenshot(s) in docs/screenshots/" >&2
