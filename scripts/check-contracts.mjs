#!/usr/bin/env node
// End-to-end check that contracts/artifacts/*.json work on a real anvil:
//   - deploys TestUSDC and TestUSDT, checks metadata, EIP-712 domain and typehashes
//   - mints, signs an EIP-3009 TransferWithAuthorization with eth_signTypedData_v4
//     (holder pays no gas), relays it from another account, checks balances/events,
//     checks that a replay, a tampered value, an expired authorization and a
//     canceled authorization all fail; receiveWithAuthorization only for the payee
//   - plain ERC-20 on TestUSDT, and that it has no transferWithAuthorization
//   - installs Multicall3's runtime bytecode at 0xcA11...CA11 with anvil_setCode and
//     batches balanceOf / getEthBalance / getBlockNumber / a failing call via aggregate3
//
// No npm dependencies: plain JSON-RPC over fetch; keccak256 via anvil's web3_sha3.
// Usage: node scripts/check-contracts.mjs
// Env:   ANVIL    anvil binary (default $TOOLS_DIR/bin/anvil, then `anvil` on PATH)
//        RPC_URL  use an already running anvil instead of starting one
// Exits non-zero on the first failed check; last line "N passed, 0 failed".

import { spawn, execFileSync } from "node:child_process";
import { readFileSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { randomBytes } from "node:crypto";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const artifact = (n) => JSON.parse(readFileSync(join(ROOT, "contracts", "artifacts", `${n}.json`), "utf8"));
const MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11";

let passed = 0;
function ok(cond, what, detail = "") {
  if (!cond) {
    console.log(`not ok - ${what}${detail ? ` (${detail})` : ""}`);
    console.log(`${passed} passed, 1 failed`);
    cleanup();
    process.exit(1);
  }
  passed++;
  console.log(`ok - ${what}`);
}

// ------------------------------------------------------------------ anvil
function findAnvil() {
  if (process.env.ANVIL) return process.env.ANVIL;
  const tools = process.env.TOOLS_DIR || join(homedir(), ".cache", "vendor-server-tools");
  if (existsSync(join(tools, "bin", "anvil"))) return join(tools, "bin", "anvil");
  return "anvil"; // PATH
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

let anvilProc = null;
function cleanup() {
  if (anvilProc && anvilProc.exitCode === null) anvilProc.kill("SIGTERM");
}
process.on("exit", cleanup);

let RPC = process.env.RPC_URL;
let rpcId = 0;
async function rpcRaw(method, params = []) {
  const res = await fetch(RPC, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: ++rpcId, method, params }),
  });
  return res.json();
}
async function rpc(method, params = []) {
  const j = await rpcRaw(method, params);
  if (j.error) throw new Error(`${method}: ${JSON.stringify(j.error)}`);
  return j.result;
}

// ------------------------------------------------------------------ hashing + minimal ABI codec
const strip = (h) => (h.startsWith("0x") ? h.slice(2) : h);
const hexOf = (s) => "0x" + Buffer.from(s, "utf8").toString("hex");
const keccak = (hex) => rpc("web3_sha3", [hex.startsWith("0x") ? hex : "0x" + hex]);
const keccakStr = (s) => keccak(hexOf(s));
const selector = async (sig) => (await keccakStr(sig)).slice(0, 10);

const word = (n) => BigInt(n).toString(16).padStart(64, "0");
const isDynamic = (t) =>
  t === "bytes" || t === "string" || (typeof t === "object" && (t.array || t.tuple.some(isDynamic)));

function encodeOne(t, v) {
  if (typeof t === "object" && t.array) {
    return word(v.length) + encode(v.map(() => t.array), v);
  }
  if (typeof t === "object") return encode(t.tuple, v);
  switch (t) {
    case "address":
      return strip(v).toLowerCase().padStart(64, "0");
    case "bool":
      return word(v ? 1 : 0);
    case "bytes32":
      return strip(v).padEnd(64, "0");
    case "bytes":
    case "string": {
      const h = t === "string" ? Buffer.from(v, "utf8").toString("hex") : strip(v);
      return word(h.length / 2) + h.padEnd(Math.ceil(h.length / 64) * 64, "0");
    }
    default: // uintN
      return word(v);
  }
}
function encode(types, values) {
  let head = "";
  let tail = "";
  const size = (t) => (!isDynamic(t) && typeof t === "object" ? t.tuple.reduce((a, x) => a + size(x), 0) : 32);
  const headLen = types.reduce((a, t) => a + size(t), 0);
  types.forEach((t, i) => {
    const e = encodeOne(t, values[i]);
    if (isDynamic(t)) {
      head += word(headLen + tail.length / 2);
      tail += e;
    } else head += e; // static tuples of words are inlined
  });
  return head + tail;
}
function decodeAt(t, hex, off) {
  // hex: no 0x; off: byte offset of this value's slot (or start for inlined)
  const at = (o) => hex.slice(o * 2, o * 2 + 64);
  if (isDynamic(t)) {
    return decodeBody(t, hex, off);
  }
  if (typeof t === "object") return decodeTuple(t.tuple, hex, off);
  const w = at(off);
  switch (t) {
    case "address":
      return "0x" + w.slice(24);
    case "bool":
      return BigInt("0x" + w) !== 0n;
    case "bytes32":
      return "0x" + w;
    default:
      return BigInt("0x" + w);
  }
}
function decodeBody(t, hex, start) {
  const at = (o) => BigInt("0x" + hex.slice(o * 2, o * 2 + 64));
  if (typeof t === "object" && t.array) {
    const n = Number(at(start));
    return decodeTuple(Array(n).fill(t.array), hex, start + 32);
  }
  if (typeof t === "object") return decodeTuple(t.tuple, hex, start);
  const len = Number(at(start));
  const data = hex.slice((start + 32) * 2, (start + 32 + len) * 2);
  return t === "string" ? Buffer.from(data, "hex").toString("utf8") : "0x" + data;
}
function decodeTuple(types, hex, base) {
  const out = [];
  let off = base;
  for (const t of types) {
    if (isDynamic(t)) {
      const rel = Number(BigInt("0x" + hex.slice(off * 2, off * 2 + 64)));
      out.push(decodeBody(t, hex, base + rel));
      off += 32;
    } else {
      out.push(decodeAt(t, hex, off));
      off += typeof t === "object" ? t.tuple.length * 32 : 32;
    }
  }
  return out;
}
const decode = (types, hex) => decodeTuple(types, strip(hex), 0);

// sig: "name(type,...)"; types: ABI types for encoding (objects for tuples/arrays)
async function calldata(sig, types = [], args = []) {
  return (await selector(sig)) + encode(types, args);
}
async function call(to, sig, types, args, outTypes) {
  const data = await calldata(sig, types, args);
  return decode(outTypes, await rpc("eth_call", [{ to, data }, "latest"]));
}
async function callError(to, from, sig, types, args) {
  const data = await calldata(sig, types, args);
  const j = await rpcRaw("eth_call", [{ from, to, data }, "latest"]);
  return j.error ? JSON.stringify(j.error) : null;
}
async function waitReceipt(hash) {
  for (let i = 0; i < 200; i++) {
    const r = await rpc("eth_getTransactionReceipt", [hash]);
    if (r) return r;
    await new Promise((res) => setTimeout(res, 25));
  }
  throw new Error(`no receipt for ${hash}`);
}
async function send(from, to, data, extra = {}) {
  const hash = await rpc("eth_sendTransaction", [{ from, to, data, ...extra }]);
  return waitReceipt(hash);
}

// ------------------------------------------------------------------ EIP-712 helpers
function splitSig(sig) {
  const h = strip(sig);
  let v = parseInt(h.slice(128, 130), 16);
  if (v < 27) v += 27;
  return { r: "0x" + h.slice(0, 64), s: "0x" + h.slice(64, 128), v };
}
const AUTH_FIELDS = [
  { name: "from", type: "address" },
  { name: "to", type: "address" },
  { name: "value", type: "uint256" },
  { name: "validAfter", type: "uint256" },
  { name: "validBefore", type: "uint256" },
  { name: "nonce", type: "bytes32" },
];
async function signTyped(signer, domain, primaryType, fields, message) {
  const typed = {
    types: {
      EIP712Domain: [
        { name: "name", type: "string" },
        { name: "version", type: "string" },
        { name: "chainId", type: "uint256" },
        { name: "verifyingContract", type: "address" },
      ],
      [primaryType]: fields,
    },
    primaryType,
    domain,
    message,
  };
  return splitSig(await rpc("eth_signTypedData_v4", [signer, typed]));
}
const AUTH_SIG_TYPES = ["address", "address", "uint256", "uint256", "uint256", "bytes32", "uint8", "bytes32", "bytes32"];
const authArgs = (m, sig) => [m.from, m.to, m.value, m.validAfter, m.validBefore, m.nonce, sig.v, sig.r, sig.s];
const TWA = "transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)";
const RWA = "receiveWithAuthorization(address,address,uint256,uint256,uint256,bytes32,uint8,bytes32,bytes32)";

// ------------------------------------------------------------------ main
async function main() {
  if (!RPC) {
    const anvil = findAnvil();
    const port = await freePort();
    let version = "?";
    try {
      version = execFileSync(anvil, ["--version"]).toString().split("\n")[0];
    } catch (e) {
      console.error(`cannot run anvil (${anvil}): ${e.message}; run scripts/install-tools.sh or set ANVIL`);
      process.exit(1);
    }
    console.log(`# ${version} (${anvil}) on port ${port}`);
    anvilProc = spawn(anvil, ["--port", String(port), "--chain-id", "31337", "--quiet"], { stdio: "ignore" });
    anvilProc.on("exit", (code) => {
      if (code !== null && code !== 0) console.error(`anvil exited with ${code}`);
    });
    RPC = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      try {
        await rpc("eth_chainId");
        break;
      } catch (e) {
        if (i > 200 || anvilProc.exitCode !== null) throw new Error(`anvil did not start: ${e.message}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }
  const chainId = Number(await rpc("eth_chainId"));
  ok(true, `connected to ${RPC}, chain id ${chainId}`);

  const accounts = await rpc("eth_accounts");
  const [deployer, holder, relayer, recipient] = accounts;

  // ---- deploy
  const deploy = async (name) => {
    const r = await send(deployer, undefined, artifact(name).bytecode);
    ok(r.status === "0x1" && r.contractAddress, `deploy ${name} at ${r.contractAddress} (gas ${BigInt(r.gasUsed)})`);
    const code = await rpc("eth_getCode", [r.contractAddress, "latest"]);
    ok(code.toLowerCase() === artifact(name).deployedBytecode.toLowerCase(), `${name} on-chain code == artifact deployedBytecode`);
    return r.contractAddress;
  };
  const usdc = await deploy("TestUSDC");
  const usdt = await deploy("TestUSDT");

  // ---- USDC metadata, domain, typehashes
  const [name] = await call(usdc, "name()", [], [], ["string"]);
  const [symbol] = await call(usdc, "symbol()", [], [], ["string"]);
  const [decimals] = await call(usdc, "decimals()", [], [], ["uint8"]);
  const [version] = await call(usdc, "version()", [], [], ["string"]);
  ok(name === "USD Coin" && symbol === "USDC" && decimals === 6n && version === "2",
    `USDC name/symbol/decimals/version = ${name}/${symbol}/${decimals}/${version}`);

  const [twaHash] = await call(usdc, "TRANSFER_WITH_AUTHORIZATION_TYPEHASH()", [], [], ["bytes32"]);
  ok(twaHash === "0x7c7c6cdb67a18743f49ec6fa9b35f50d52ed05cbed4cc592e13b44501c1a2267" &&
     twaHash === await keccakStr("TransferWithAuthorization(address from,address to,uint256 value,uint256 validAfter,uint256 validBefore,bytes32 nonce)"),
    `TRANSFER_WITH_AUTHORIZATION_TYPEHASH = ${twaHash}`);
  const [rwaHash] = await call(usdc, "RECEIVE_WITH_AUTHORIZATION_TYPEHASH()", [], [], ["bytes32"]);
  ok(rwaHash === "0xd099cc98ef71107a616c4f0f941f04c322d8e254fe26b3c6668db87aae413de8", `RECEIVE_WITH_AUTHORIZATION_TYPEHASH = ${rwaHash}`);
  const [caHash] = await call(usdc, "CANCEL_AUTHORIZATION_TYPEHASH()", [], [], ["bytes32"]);
  ok(caHash === "0x158b0a9edf7a828aad02f63cd515c68ef2f50ba807396f6d12842833a1597429", `CANCEL_AUTHORIZATION_TYPEHASH = ${caHash}`);

  const [domainSep] = await call(usdc, "DOMAIN_SEPARATOR()", [], [], ["bytes32"]);
  const expectedDomain = await keccak(encode(["bytes32", "bytes32", "bytes32", "uint256", "address"], [
    await keccakStr("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
    await keccakStr("USD Coin"),
    await keccakStr("2"),
    chainId,
    usdc,
  ]));
  ok(domainSep === expectedDomain, `DOMAIN_SEPARATOR matches EIP-712 (name "USD Coin", version "2", chainId ${chainId})`);

  // ---- mint
  const bal = async (token, who) => (await call(token, "balanceOf(address)", ["address"], [who], ["uint256"]))[0];
  const ethBal = async (who) => BigInt(await rpc("eth_getBalance", [who, "latest"]));
  const MINT = 1000n * 10n ** 6n;
  let r = await send(deployer, usdc, await calldata("mint(address,uint256)", ["address", "uint256"], [holder, MINT]));
  ok(r.status === "0x1" && (await bal(usdc, holder)) === MINT, `mint 1000 USDC to holder ${holder}`);
  const [supply] = await call(usdc, "totalSupply()", [], [], ["uint256"]);
  ok(supply === MINT, `totalSupply = ${supply}`);

  // ---- transferWithAuthorization relayed by another account
  const domain = { name: "USD Coin", version: "2", chainId, verifyingContract: usdc };
  const now = BigInt((await rpc("eth_getBlockByNumber", ["latest", false])).timestamp);
  const AMOUNT = 250n * 10n ** 6n;
  const msg = {
    from: holder, to: recipient, value: AMOUNT.toString(), validAfter: "0",
    validBefore: (now + 3600n).toString(), nonce: "0x" + randomBytes(32).toString("hex"),
  };
  const sig = await signTyped(holder, domain, "TransferWithAuthorization", AUTH_FIELDS, msg);
  const [stateBefore] = await call(usdc, "authorizationState(address,bytes32)", ["address", "bytes32"], [holder, msg.nonce], ["bool"]);
  ok(stateBefore === false, "authorizationState(holder, nonce) = false before use");

  // a tampered value must not verify
  const tampered = { ...msg, value: (AMOUNT + 1n).toString() };
  let err = await callError(usdc, relayer, TWA, AUTH_SIG_TYPES, authArgs(tampered, sig));
  ok(err && err.includes("FiatTokenV2: invalid signature"), "tampered value -> 'FiatTokenV2: invalid signature'");

  const holderEth = await ethBal(holder);
  const relayerEth = await ethBal(relayer);
  r = await send(relayer, usdc, await calldata(TWA, AUTH_SIG_TYPES, authArgs(msg, sig)));
  ok(r.status === "0x1", `transferWithAuthorization relayed by ${relayer} (gas ${BigInt(r.gasUsed)})`);
  const authUsedTopic = await keccakStr("AuthorizationUsed(address,bytes32)");
  const transferTopic = await keccakStr("Transfer(address,address,uint256)");
  const pad = (a) => "0x" + strip(a).toLowerCase().padStart(64, "0");
  ok(r.logs.some((l) => l.topics[0] === authUsedTopic && l.topics[1] === pad(holder) && l.topics[2] === msg.nonce),
    "AuthorizationUsed(holder, nonce) emitted");
  ok(r.logs.some((l) => l.topics[0] === transferTopic && l.topics[1] === pad(holder) && l.topics[2] === pad(recipient) && BigInt(l.data) === AMOUNT),
    "Transfer(holder, recipient, 250 USDC) emitted");
  ok((await bal(usdc, holder)) === MINT - AMOUNT && (await bal(usdc, recipient)) === AMOUNT,
    `balances: holder ${await bal(usdc, holder)}, recipient ${await bal(usdc, recipient)}`);
  ok((await ethBal(holder)) === holderEth && (await ethBal(relayer)) < relayerEth, "holder paid no gas; relayer paid the gas");
  const [stateAfter] = await call(usdc, "authorizationState(address,bytes32)", ["address", "bytes32"], [holder, msg.nonce], ["bool"]);
  ok(stateAfter === true, "authorizationState(holder, nonce) = true after use");

  // replay: eth_call, and a mined transaction with explicit gas
  err = await callError(usdc, relayer, TWA, AUTH_SIG_TYPES, authArgs(msg, sig));
  ok(err && err.includes("FiatTokenV2: authorization is used or canceled"), "replay (eth_call) -> 'authorization is used or canceled'");
  r = await send(relayer, usdc, await calldata(TWA, AUTH_SIG_TYPES, authArgs(msg, sig)), { gas: "0x30000" });
  ok(r.status === "0x0", "replay transaction mined with status 0 (reverted)");
  ok((await bal(usdc, recipient)) === AMOUNT, "replay moved no tokens");

  // expired authorization
  const expired = { ...msg, nonce: "0x" + randomBytes(32).toString("hex"), validBefore: now.toString() };
  const sigExpired = await signTyped(holder, domain, "TransferWithAuthorization", AUTH_FIELDS, expired);
  err = await callError(usdc, relayer, TWA, AUTH_SIG_TYPES, authArgs(expired, sigExpired));
  ok(err && err.includes("FiatTokenV2: authorization is expired"), "validBefore in the past -> 'authorization is expired'");

  // signature for another chain id must fail
  const otherChain = { ...msg, nonce: "0x" + randomBytes(32).toString("hex") };
  const sigOther = await signTyped(holder, { ...domain, chainId: 1 }, "TransferWithAuthorization", AUTH_FIELDS, otherChain);
  err = await callError(usdc, relayer, TWA, AUTH_SIG_TYPES, authArgs(otherChain, sigOther));
  ok(err && err.includes("FiatTokenV2: invalid signature"), "signature over chainId 1 domain -> 'invalid signature'");

  // receiveWithAuthorization: only the payee may submit
  const recv = { ...msg, to: relayer, value: (10n * 10n ** 6n).toString(), nonce: "0x" + randomBytes(32).toString("hex") };
  const sigRecv = await signTyped(holder, domain, "ReceiveWithAuthorization", AUTH_FIELDS, recv);
  err = await callError(usdc, deployer, RWA, AUTH_SIG_TYPES, authArgs(recv, sigRecv));
  ok(err && err.includes("FiatTokenV2: caller must be the payee"), "receiveWithAuthorization by non-payee -> 'caller must be the payee'");
  r = await send(relayer, usdc, await calldata(RWA, AUTH_SIG_TYPES, authArgs(recv, sigRecv)));
  ok(r.status === "0x1" && (await bal(usdc, relayer)) === 10n * 10n ** 6n, "receiveWithAuthorization by payee moved 10 USDC");

  // cancelAuthorization, then the canceled nonce cannot be used
  const canceled = { ...msg, nonce: "0x" + randomBytes(32).toString("hex") };
  const sigTransfer = await signTyped(holder, domain, "TransferWithAuthorization", AUTH_FIELDS, canceled);
  const sigCancel = await signTyped(holder, domain, "CancelAuthorization",
    [{ name: "authorizer", type: "address" }, { name: "nonce", type: "bytes32" }], { authorizer: holder, nonce: canceled.nonce });
  r = await send(relayer, usdc, await calldata("cancelAuthorization(address,bytes32,uint8,bytes32,bytes32)",
    ["address", "bytes32", "uint8", "bytes32", "bytes32"], [holder, canceled.nonce, sigCancel.v, sigCancel.r, sigCancel.s]));
  const canceledTopic = await keccakStr("AuthorizationCanceled(address,bytes32)");
  ok(r.status === "0x1" && r.logs.some((l) => l.topics[0] === canceledTopic), "cancelAuthorization emitted AuthorizationCanceled");
  err = await callError(usdc, relayer, TWA, AUTH_SIG_TYPES, authArgs(canceled, sigTransfer));
  ok(err && err.includes("authorization is used or canceled"), "transfer with canceled nonce -> 'authorization is used or canceled'");

  // plain ERC-20 on USDC: approve + transferFrom
  r = await send(holder, usdc, await calldata("approve(address,uint256)", ["address", "uint256"], [relayer, 5n * 10n ** 6n]));
  ok(r.status === "0x1", "USDC approve");
  r = await send(relayer, usdc, await calldata("transferFrom(address,address,uint256)", ["address", "address", "uint256"], [holder, recipient, 5n * 10n ** 6n]));
  const [left] = await call(usdc, "allowance(address,address)", ["address", "address"], [holder, relayer], ["uint256"]);
  ok(r.status === "0x1" && left === 0n && (await bal(usdc, recipient)) === AMOUNT + 5n * 10n ** 6n, "USDC transferFrom used the allowance");

  // ---- USDT: plain ERC-20, no EIP-3009
  const [tName] = await call(usdt, "name()", [], [], ["string"]);
  const [tSymbol] = await call(usdt, "symbol()", [], [], ["string"]);
  const [tDecimals] = await call(usdt, "decimals()", [], [], ["uint8"]);
  ok(tName === "Tether USD" && tSymbol === "USDT" && tDecimals === 6n, `USDT name/symbol/decimals = ${tName}/${tSymbol}/${tDecimals}`);
  r = await send(deployer, usdt, await calldata("mint(address,uint256)", ["address", "uint256"], [holder, MINT]));
  ok(r.status === "0x1" && (await bal(usdt, holder)) === MINT, "mint 1000 USDT to holder");
  r = await send(holder, usdt, await calldata("transfer(address,uint256)", ["address", "uint256"], [recipient, 42n * 10n ** 6n]));
  ok(r.status === "0x1" && (await bal(usdt, recipient)) === 42n * 10n ** 6n && (await bal(usdt, holder)) === MINT - 42n * 10n ** 6n,
    "USDT transfer (holder pays gas)");
  const usdtSig = await signTyped(holder, { ...domain, name: "Tether USD", verifyingContract: usdt }, "TransferWithAuthorization", AUTH_FIELDS,
    { ...msg, nonce: "0x" + randomBytes(32).toString("hex") });
  err = await callError(usdt, relayer, TWA, AUTH_SIG_TYPES, authArgs(msg, usdtSig));
  ok(err !== null, "USDT has no transferWithAuthorization (call reverts)");

  // ---- Multicall3 via anvil_setCode at the canonical address
  await rpc("anvil_setCode", [MULTICALL3, artifact("Multicall3").deployedBytecode]);
  const call3 = { array: { tuple: ["address", "bool", "bytes"] } };
  const calls = [
    [usdc, false, await calldata("balanceOf(address)", ["address"], [holder])],
    [usdt, false, await calldata("balanceOf(address)", ["address"], [recipient])],
    [MULTICALL3, false, await calldata("getEthBalance(address)", ["address"], [holder])],
    [MULTICALL3, false, await calldata("getBlockNumber()")],
    [usdt, true, await calldata(TWA, AUTH_SIG_TYPES, authArgs(msg, sig))], // fails, allowed
  ];
  const [results] = decode([{ array: { tuple: ["bool", "bytes"] } }],
    await rpc("eth_call", [{ to: MULTICALL3, data: await calldata("aggregate3((address,bool,bytes)[])", [call3], [calls]) }, "latest"]));
  const u = (h) => BigInt("0x" + strip(h));
  const block = BigInt(await rpc("eth_blockNumber"));
  ok(results.length === 5 &&
     results[0][0] && u(results[0][1]) === await bal(usdc, holder) &&
     results[1][0] && u(results[1][1]) === 42n * 10n ** 6n &&
     results[2][0] && u(results[2][1]) === await ethBal(holder) &&
     results[3][0] && u(results[3][1]) === block &&
     results[4][0] === false,
    `Multicall3.aggregate3 at ${MULTICALL3}: 4 successes + 1 allowed failure (block ${block})`);
  calls[4][1] = false; // the failing call, now not allowed to fail
  const data = await calldata("aggregate3((address,bool,bytes)[])", [call3], [calls]);
  const j = await rpcRaw("eth_call", [{ to: MULTICALL3, data }, "latest"]);
  ok(j.error && JSON.stringify(j.error).includes("Multicall3: call failed"), "aggregate3 reverts 'Multicall3: call failed' when a non-allowed call fails");

  console.log(`${passed} passed, 0 failed`);
}

main()
  .then(() => {
    cleanup();
    process.exit(0);
  })
  .catch((e) => {
    console.log(`not ok - ${e.stack || e}`);
    console.log(`${passed} passed, 1 failed`);
    cleanup();
    process.exit(1);
  });
