#!/usr/bin/env bash
# Compile contracts/*.sol (TestUSDC, TestUSDT, Multicall3) with the npm `solc`
# package (solc-js, pinned) and write contracts/artifacts/<Name>.json, each
#   {"abi": [...], "bytecode": "0x...", "deployedBytecode": "0x..."}
# Settings: optimizer on (200 runs), evmVersion shanghai.
#
# solc is installed into ${TOOLS_DIR:-$HOME/.cache/vendor-server-tools}/npm/solc-<ver>,
# never into the repo. The artifacts are committed, so running this is only needed
# after changing a .sol file.
#
# Usage: scripts/build-contracts.sh           rebuild artifacts
#        scripts/build-contracts.sh --check   exit 1 if committed artifacts are stale
set -euo pipefail

SOLC_VERSION="0.8.26"
TOOLS_DIR="${TOOLS_DIR:-$HOME/.cache/vendor-server-tools}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONTRACTS=(TestUSDC TestUSDT Multicall3)

MODE="build"
case "${1:-}" in
  "") ;;
  --check) MODE="check" ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

SOLC_PREFIX="$TOOLS_DIR/npm/solc-$SOLC_VERSION"
SOLC_PKG="$SOLC_PREFIX/node_modules/solc"
if ! node -e 'const s=require(process.argv[1]); if(!s.version().startsWith(process.argv[2]+"+")) process.exit(1)' \
     "$SOLC_PKG" "$SOLC_VERSION" >/dev/null 2>&1; then
  echo "[build-contracts] installing solc@$SOLC_VERSION into $SOLC_PREFIX" >&2
  rm -rf "$SOLC_PREFIX"
  mkdir -p "$SOLC_PREFIX"
  npm install --prefix "$SOLC_PREFIX" --no-save --no-audit --no-fund --loglevel=error \
    "solc@$SOLC_VERSION" >&2
fi

OUT_DIR="$ROOT/contracts/artifacts"
if [ "$MODE" = check ]; then
  OUT_DIR="$(mktemp -d)"
  trap 'rm -rf "$OUT_DIR"' EXIT
fi
mkdir -p "$OUT_DIR"

cd "$ROOT"
node - "$SOLC_PKG" "$OUT_DIR" "${CONTRACTS[@]}" <<'EOF'
const fs = require("fs");
const path = require("path");
const [solcPath, outDir, ...names] = process.argv.slice(2);
const solc = require(solcPath);

const sources = {};
for (const n of names) {
  const p = `contracts/${n}.sol`; // repo-relative source names keep metadata reproducible
  sources[p] = { content: fs.readFileSync(p, "utf8") };
}
const input = {
  language: "Solidity",
  sources,
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "shanghai",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};
const out = JSON.parse(solc.compile(JSON.stringify(input)));
let failed = false;
for (const e of out.errors || []) {
  console.error(e.formattedMessage || e.message);
  if (e.severity === "error") failed = true;
}
if (failed) process.exit(1);

for (const n of names) {
  const c = out.contracts[`contracts/${n}.sol`][n];
  const artifact = {
    abi: c.abi,
    bytecode: "0x" + c.evm.bytecode.object,
    deployedBytecode: "0x" + c.evm.deployedBytecode.object,
  };
  fs.writeFileSync(path.join(outDir, `${n}.json`), JSON.stringify(artifact, null, 2) + "\n");
  console.error(`[build-contracts] ${n}: ${(c.evm.deployedBytecode.object.length / 2)} bytes runtime`);
}
console.error(`[build-contracts] solc ${solc.version()}`);
EOF

if [ "$MODE" = check ]; then
  stale=0
  for n in "${CONTRACTS[@]}"; do
    if ! cmp -s "$OUT_DIR/$n.json" "$ROOT/contracts/artifacts/$n.json"; then
      echo "[build-contracts] contracts/artifacts/$n.json is stale: run scripts/build-contracts.sh" >&2
      stale=1
    fi
  done
  [ "$stale" = 0 ] && echo "[build-contracts] artifacts up to date"
  exit "$stale"
fi
echo "[build-contracts] wrote $(printf 'contracts/artifacts/%s.json ' "${CONTRACTS[@]}")"
