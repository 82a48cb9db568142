// Soak load driver (run by scripts/soak.sh; Node.js 20+, no dependencies): mixed traffic against a
// running vendor-server on loopback for a bounded time, a report every minute, and a verdict.
//
//   node scripts/soak.mjs --base http://127.0.0.1:PORT --pid SERVER_PID --minutes 10 \
//        --purchases FILE --token vst_… [--concurrency 32]
//
// Traffic (weights): GET offer 30, GET suggest 10, initiate 1, validate 5 (one of the last 200 checkouts),
// meter-usage on one of the seeded purchases 36 (unique idempotency keys), Gemini generateContent
// through the server's gateway (a local stand-in upstream) 18.
// Each minute: requests/s, p50/p99 per route, RSS and open sockets of the server process.
// Fails (exit 1) when any request fails (non-2xx or a network error) or when RSS grows more than 20%
// between the end of the first minute (warm-up) and the end.
import { readFileSync, readdirSync, readlinkSync } from "node:fs";
import { randomUUID } from "node:crypto";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith("--") ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
const base = args.base;
const pid = Number(args.pid);
const minutes = Number(args.minutes ?? 10);
const concurrency = Number(args.concurrency ?? 32);
const token = args.token;
const purchases = readFileSync(args.purchases, "utf8").split("\n").filter(Boolean);
if (!base || !pid || !token || purchases.length === 0) {
  console.error("usage: soak.mjs --base URL --pid PID --minutes N --purchases FILE --token TOKEN");
  process.exit(2);
}

const rssMb = () => {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)[1]) / 1024;
};
const sockets = () => {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) n++;
    } catch {}
  }
  return n;
};

let window = new Map(); // route -> latencies (ms) this minute
const failures = [];
let total = 0;
const record = (route, ms) => {
  if (!window.has(route)) window.set(route, []);
  window.get(route).push(ms);
  total++;
};

async function call(route, path, init = {}) {
  const started = performance.now();
  let response;
  try {
    response = await fetch(base + path, {
      ...init,
      headers: { "content-type": "application/json", ...(init.headers ?? {}) },
    });
    const body = await response.text();
    if (!response.ok) {
      failures.push(`${route}: ${response.status} ${body.slice(0, 200)}`);
      return null;
    }
    record(route, performance.now() - started);
    return body ? JSON.parse(body) : null;
  } catch (e) {
    failures.push(`${route}: ${e.cause?.code ?? e.message}`);
    return null;
  }
}

const pick = (list) => list[Math.floor(Math.random() * list.length)];
const flow = "gemini-api-gateway:local:usdc";
const sessions = [];
const ops = [
  [30, () => call("GET /v1/offer/{id}", "/v1/offer/gemini-api-gateway")],
  [10, () => call("GET /v1/appstore/suggest", "/v1/appstore/suggest")],
  // A customer starts a checkout now and then and polls it many times (as officex.app does): new
  // checkouts are 1 in 100 requests, validate polls one of the last 200.
  [1, async () => {
    const init = await call("POST /v1/checkout/initiate", "/v1/checkout/initiate", {
      method: "POST",
      body: JSON.stringify({ checkout_flow_id: flow, email: "soak@example.com" }),
    });
    if (init?.checkout_session_id) {
      sessions.push(init.checkout_session_id);
      if (sessions.length > 200) sessions.shift();
    }
  }],
  [5, () => sessions.length === 0 ? Promise.resolve() : call("POST /v1/checkout/validate", "/v1/checkout/validate", {
    method: "POST",
    body: JSON.stringify({ checkout_flow_id: flow, checkout_session_id: pick(sessions) }),
  })],
  [36, () => call("POST /v1/purchase/{id}/meter-usage", `/v1/purchase/${pick(purchases)}/meter-usage`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "idempotency-key": randomUUID() },
    body: JSON.stringify({ usage_amount: "1", usage_unit: "requests", billed_amount: "0.000100", description: "soak" }),
  })],
  [18, () => {
    const purchase = pick(purchases);
    return call("POST /v1beta/models/{model}:generateContent", "/v1beta/models/gemini-2.5-flash:generateContent", {
      method: "POST",
      headers: { "x-goog-api-key": `vsg_soak_${purchase.replace("CustomerPurchaseID_", "")}` },
      body: JSON.stringify({ contents: [{ role: "user", parts: [{ text: "hello" }] }], generationConfig: { maxOutputTokens: 64 } }),
    });
  }],
];
const weightTotal = ops.reduce((s, [w]) => s + w, 0);
const nextOp = () => {
  let r = Math.random() * weightTotal;
  for (const [w, op] of ops) if ((r -= w) < 0) return op;
  return ops[0][1];
};

const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
const deadline = Date.now() + minutes * 60_000;
let stop = false;
const rss = [];
const report = (minute) => {
  const current = window;
  window = new Map();
  const count = [...current.values()].reduce((s, l) => s + l.length, 0);
  const mb = rssMb();
  rss.push(mb);
  console.log(`minute ${minute}: ${(count / 60).toFixed(0)} req/s, RSS ${mb.toFixed(1)} MB, ${sockets()} open sockets, ${failures.length} failures so far`);
  for (const [route, list] of [...current.entries()].sort()) {
    list.sort((a, b) => a - b);
    console.log(`  ${route.padEnd(48)} ${String(list.length).padStart(7)} req  p50 ${percentile(list, 50).toFixed(1).padStart(6)} ms  p99 ${percentile(list, 99).toFixed(1).padStart(7)} ms`);
  }
};

const workers = Array.from({ length: concurrency }, async () => {
  while (!stop && Date.now() < deadline) await nextOp()();
});
for (let minute = 1; minute <= minutes; minute++) {
  await new Promise((r) => setTimeout(r, Math.max(0, Math.min(60_000, deadline - Date.now()))));
  report(minute);
}
stop = true;
await Promise.all(workers);

const growth = rss.length > 1 ? (rss[rss.length - 1] - rss[0]) / rss[0] : 0;
console.log(`total ${total} requests, ${failures.length} failed; RSS after warm-up ${rss[0]?.toFixed(1)} MB, at the end ${rss.at(-1)?.toFixed(1)} MB (${(growth * 100).toFixed(1)}%)`);
if (failures.length > 0) {
  console.log(`first failures:\n  ${failures.slice(0, 10).join("\n  ")}`);
}
if (failures.length > 0 || growth > 0.2) {
  console.log("soak: FAILED");
  process.exit(1);
}
console.log("soak: passed");
