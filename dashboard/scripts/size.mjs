#!/usr/bin/env node
// Prints each page's JavaScript + CSS gzipped (what a browser downloads for it: the HTML's scripts,
// styles and module preloads) and fails when the customer page is over its 150 kB budget.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { fileURLToPath } from 'node:url';

const dist = fileURLToPath(new URL('../dist/', import.meta.url));
const BUDGET = { customer: 150 * 1000, vendor: 150 * 1000 };
let failed = false;
for (const page of ['customer', 'vendor']) {
  const html = readFileSync(join(dist, `${page}.html`), 'utf8');
  const refs = new Set(
    [...html.matchAll(/(?:src|href)="\/v1\/dashboard\/(assets\/[^"]+\.(?:js|css))"/g)].map((m) => m[1]),
  );
  let raw = 0;
  let gz = 0;
  for (const ref of refs) {
    const bytes = readFileSync(join(dist, ref));
    raw += bytes.length;
    gz += gzipSync(bytes, { level: 9 }).length;
  }
  const over = gz > BUDGET[page];
  failed ||= over;
  console.log(
    `dashboard size: ${page} page JS+CSS ${(gz / 1000).toFixed(1)} kB gzipped (${(raw / 1000).toFixed(1)} kB raw, ${refs.size} files; budget ${BUDGET[page] / 1000} kB)${over ? '  OVER BUDGET' : ''}`,
  );
}
if (failed) process.exit(1);
