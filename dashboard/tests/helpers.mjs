// Shared pieces of the browser tests: the server started by scripts/browser-test.sh (BASE_URL,
// STATE_DIR with its .env, VENDOR_SERVER_BIN), Chromium through playwright-core, axe-core, screenshots.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);

export const BASE_URL = need('BASE_URL');
export const STATE_DIR = need('STATE_DIR');
export const BIN = need('VENDOR_SERVER_BIN');
export const ADMIN_TOKEN = process.env.ADMIN_TOKEN ?? '';
export const SCREENSHOT_DIR = process.env.SCREENSHOT_DIR ?? join(STATE_DIR, '..', 'screenshots');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

export const DESKTOP = { width: 1280, height: 900 };
export const PHONE = { width: 390, height: 844 };

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the browser tests with scripts/browser-test.sh`);
  return v;
}

/** Runs `vendor-server ARGS` in the test server's state folder (its .env); returns stdout. */
export function cli(...args) {
  const r = spawnSync(BIN, args, { cwd: STATE_DIR, encoding: 'utf8', timeout: 180_000 });
  if (r.status !== 0) {
    throw new Error(`vendor-server ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  }
  return r.stdout;
}

/** `dev checkout`: a paid, finalized purchase; its id, customer key and customer link. */
export function devCheckout(offer = 'aws-s3-storage-giftcard', amount = '5') {
  const out = cli('dev', 'checkout', '--offer', offer, '--amount', amount);
  const start = out.indexOf('receipt\n') + 'receipt\n'.length;
  const end = out.indexOf('\n\ncustomer page:');
  const receipt = JSON.parse(out.slice(start, end));
  assert.equal(receipt.status, 'RUNNING', out);
  return {
    purchaseId: receipt.vendor_purchase_id,
    key: receipt.customer_billing_api_key,
    link: receipt.billing_url,
  };
}

/** The customer page's link for purchase P (with KEY, the link's customer key by default). */
export const customerUrl = (p, key = p.key) =>
  `${BASE_URL}/v1/dashboard/customer#vendor_purchase_id=${encodeURIComponent(p.purchaseId)}&customer_billing_api_key=${encodeURIComponent(key)}`;

/** A setting of the test server's .env (as scripts/dev-server.sh wrote it). */
export function setting(name) {
  const env = readFileSync(join(STATE_DIR, '.env'), 'utf8');
  const line = env.split('\n').filter((l) => l.startsWith(`${name}=`)).pop();
  return line ? line.slice(name.length + 1).replace(/^"|"$/g, '') : '';
}

/** Whether the test server sells the Gemini gateway (scripts/browser-test.sh gives it a stand-in). */
export function geminiOn() {
  return Boolean(process.env.GEMINI_STAND_IN || setting('GEMINI_API_KEY'));
}

/** A JSON-RPC call to the test stack's anvil. */
export async function rpc(method, params = []) {
  const res = await fetch(setting('RPC_ENDPOINT'), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const body = await res.json();
  if (body.error) throw new Error(`${method}: ${JSON.stringify(body.error)}`);
  return body.result;
}

/** FN until it answers {ok: true, value}; that value. Fails after TIMEOUT ms with the last value. */
export async function eventually(fn, what, timeout = 30_000) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await fn();
    if (last.ok) return last.value;
    if (Date.now() > deadline) assert.fail(`${what}: still ${JSON.stringify(last.value)}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}

/** A JSON call to the server; answers {status, body}. */
export async function call(path, { method, body, token, headers = {} } = {}) {
  const res = await fetch(`${BASE_URL}${path}`, {
    method: method ?? (body === undefined ? 'GET' : 'POST'),
    headers: {
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  return { status: res.status, body: json, headers: res.headers };
}

/** Exact decimal sum through integer micro-units (the same rule the page must follow). */
export function sumMicros(values) {
  let total = 0n;
  for (const v of values) {
    const m = /^(-)?(\d+)(?:\.(\d{1,6}))?$/.exec(String(v));
    assert.ok(m, `not a decimal: ${v}`);
    const micros = BigInt(m[2]) * 1_000_000n + BigInt(((m[3] ?? '') + '000000').slice(0, 6));
    total += m[1] ? -micros : micros;
  }
  const neg = total < 0n;
  const abs = neg ? -total : total;
  return `${neg ? '-' : ''}${abs / 1_000_000n}.${(abs % 1_000_000n).toString().padStart(6, '0')}`;
}

let browser;
export async function launch() {
  browser ??= await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return browser;
}

export async function closeBrowser() {
  await browser?.close();
  browser = undefined;
}

/**
 * A new page at a viewport. Collects console errors and CSP violations: a page that breaks its own
 * Content-Security-Policy (an inline script or style, a foreign resource) fails the test.
 */
export async function newPage(viewport = DESKTOP) {
  const b = await launch();
  const context = await b.newContext({ viewport, permissions: [] });
  const page = await context.newPage();
  page.problems = [];
  page.on('console', (msg) => {
    const text = msg.text();
    if (/Content Security Policy|Refused to (load|execute|apply)/i.test(text)) page.problems.push(`CSP: ${text}`);
  });
  page.on('pageerror', (err) => page.problems.push(`page error: ${err.message}`));
  return page;
}

export function assertNoProblems(page) {
  assert.deepEqual(page.problems, [], 'the page broke its CSP or threw');
}

const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/** axe-core on the current view: no serious or critical violation. */
export async function axe(page, name) {
  // Evaluated through the DevTools protocol, so the page's CSP (no inline script) does not block it.
  const loaded = await page.evaluate(() => typeof window.axe !== 'undefined');
  if (!loaded) await page.evaluate(`${AXE_SOURCE};0`);
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')),
    }));
  });
  const serious = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  assert.deepEqual(serious, [], `axe-core: serious/critical violations on ${name}`);
  return result;
}

/** No horizontal scrolling at the page's width. */
export async function assertNoHorizontalScroll(page, name) {
  const { scroll, width } = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    width: window.innerWidth,
  }));
  assert.ok(scroll <= width, `${name}: content is ${scroll}px wide in a ${width}px viewport`);
}

export async function screenshot(page, name) {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const w = page.viewportSize()?.width ?? 0;
  const kind = w <= 500 ? 'phone' : 'desktop';
  await page.screenshot({ path: join(SCREENSHOT_DIR, `${name}-${kind}.png`), fullPage: true });
}

/**
 * Every check a view gets: axe-core, screenshot at this width, then the same at phone width
 * (no horizontal scroll) by resizing the same page.
 */
export async function checkView(page, name) {
  await axe(page, name);
  await screenshot(page, name);
  const before = page.viewportSize();
  await page.setViewportSize(PHONE);
  await page.waitForTimeout(150);
  await assertNoHorizontalScroll(page, `${name} at 390 px`);
  await axe(page, `${name} (phone)`);
  await screenshot(page, name);
  if (before) await page.setViewportSize(before);
  assertNoProblems(page);
}

/** Signs in to the vendor console with TOKEN (a fresh session) at VIEW (`#/VIEW`). */
export async function signIn(page, token, view = '') {
  await page.goto(`${BASE_URL}/v1/dashboard/vendor`);
  await page.evaluate(() => sessionStorage.clear());
  await page.goto(`${BASE_URL}/v1/dashboard/vendor#/${view}`);
  await page.fill('input[name="token"]', token);
  await page.click('[data-action="sign-in"]');
  await page.locator('[data-field="operator_name"]').waitFor();
}

/** The data-value of the first element with data-field=FIELD under ROOT (a selector). */
export async function valueOf(page, field, root = 'body') {
  const el = page.locator(`${root} [data-field="${field}"]`).first();
  await el.waitFor({ state: 'attached' });
  return el.getAttribute('data-value');
}

/** Waits until the data-value of FIELD equals EXPECTED (the page polls or reacts). */
export async function waitForValue(page, field, expected, timeout = 30_000) {
  await page.waitForFunction(
    ([f, v]) => document.querySelector(`[data-field="${f}"]`)?.getAttribute('data-value') === v,
    [field, expected],
    { timeout },
  );
}
