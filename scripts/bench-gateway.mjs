// Gemini gateway overhead per call, driven by scripts/bench-gateway.sh: the same generateContent
// request sent N times straight to the upstream stand-in and N times through the gateway,
// alternating (so both see the same machine load), one at a time over kept-alive connections.
// Prints p50/p99 of each and of the difference.
//   node scripts/bench-gateway.mjs --gateway URL --upstream URL --key KEY [--calls N] [--warmup N]
const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith('--') ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []),
);
const calls = Number(args.calls ?? 2000);
const warmup = Number(args.warmup ?? 200);
const body = JSON.stringify({
  contents: [{ role: 'user', parts: [{ text: 'Say hello in one short sentence.' }] }],
  generationConfig: { maxOutputTokens: 64 },
});
const path = '/v1beta/models/gemini-2.5-flash:generateContent';

async function once(base, key) {
  const started = process.hrtime.bigint();
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-goog-api-key': key },
    body,
  });
  const text = await res.text();
  const micros = Number(process.hrtime.bigint() - started) / 1000;
  if (res.status !== 200) throw new Error(`${base}: ${res.status} ${text}`);
  return micros;
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
const ms = (us) => (us / 1000).toFixed(2);

for (let i = 0; i < warmup; i++) {
  await once(args.upstream, 'bench-upstream-key');
  await once(args.gateway, args.key);
}
const direct = [];
const gateway = [];
for (let i = 0; i < calls; i++) {
  direct.push(await once(args.upstream, 'bench-upstream-key'));
  gateway.push(await once(args.gateway, args.key));
}
const d = [...direct].sort((a, b) => a - b);
const g = [...gateway].sort((a, b) => a - b);
const result = {
  calls,
  direct_ms: { p50: ms(pct(d, 50)), p99: ms(pct(d, 99)) },
  gateway_ms: { p50: ms(pct(g, 50)), p99: ms(pct(g, 99)) },
  overhead_ms: { p50: ms(pct(g, 50) - pct(d, 50)), p99: ms(pct(g, 99) - pct(d, 99)) },
};
console.log(JSON.stringify(result));
