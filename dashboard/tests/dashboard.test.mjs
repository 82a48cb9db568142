// The dashboard in a real browser against a real server (scripts/browser-test.sh starts it with
// PostgreSQL, anvil and moto). Customer: a wrong link, the purchase page, a payment on anvil seen
// without a reload, metered usage whose chart/table totals equal the API's sums exactly. Vendor
// console: sign in, find a purchase, adjust its balance, suspend and resume it, create and revoke a
// billing token, retry a failed sweep. Every view: axe-core (0 serious/critical), 390 px without
// horizontal scroll, no CSP violation, screenshots at desktop and phone width.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  ADMIN_TOKEN,
  BASE_URL,
  call,
  checkView,
  cli,
  closeBrowser,
  customerUrl,
  devCheckout,
  eventually,
  geminiOn,
  newPage,
  rpc,
  setting,
  sumMicros,
  valueOf,
  waitForValue,
} from './helpers.mjs';

let purchase;
let billingToken;

before(() => {
  purchase = devCheckout();
  const out = cli('tokens', 'create', '--label', `browser-test-${Date.now()}`);
  billingToken = /vst_[A-Za-z0-9_-]+/.exec(out)?.[0];
  assert.ok(billingToken, `no token in: ${out}`);
});
after(closeBrowser);

async function apiPurchase(p = purchase) {
  const r = await call(`/v1/purchase/${p.purchaseId}`, { token: p.key });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

const word = (hex) => hex.replace(/^0x/, '').toLowerCase().padStart(64, '0');

/**
 * Pays AMOUNT test USDC (6 decimals) to TO from one of anvil's unlocked accounts (not the server's
 * gas or treasury account), mining only the blocks of the two transactions themselves: the deposit
 * then waits for its confirmations. Returns the transfer's hash.
 */
async function payWithoutConfirmations(to, amount) {
  const usdc = setting('USDC_ADDRESS');
  const accounts = await rpc('eth_accounts');
  const from = accounts[6];
  const units = (BigInt(Math.round(amount * 1e6))).toString(16);
  const send = async (data) => {
    const hash = await rpc('eth_sendTransaction', [{ from, to: usdc, data, gas: '0x30000' }]);
    const receipt = await eventually(async () => {
      const r = await rpc('eth_getTransactionReceipt', [hash]);
      return { ok: r !== null, value: r };
    }, `receipt of ${hash}`);
    assert.equal(receipt.status, '0x1', `${hash} reverted`);
    return hash;
  };
  await send(`0x40c10f19${word(from)}${word(units)}`); // mint(from, units)
  return send(`0xa9059cbb${word(to)}${word(units)}`); // transfer(to, units)
}

describe('served pages', () => {
  test('HTML is no-store with a strict CSP; assets are immutable; no inline script', async () => {
    for (const page of ['customer', 'vendor']) {
      const res = await fetch(`${BASE_URL}/v1/dashboard/${page}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('cache-control'), 'no-store');
      assert.equal(res.headers.get('referrer-policy'), 'no-referrer');
      const csp = res.headers.get('content-security-policy') ?? '';
      assert.match(csp, /script-src 'self';/);
      assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
      const html = await res.text();
      assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, 'an inline script');
      const asset = /src="(\/v1\/dashboard\/assets\/[^"]+\.js)"/.exec(html)?.[1];
      assert.ok(asset, html);
      const a = await fetch(`${BASE_URL}${asset}`);
      assert.equal(a.status, 200);
      assert.equal(a.headers.get('cache-control'), 'public, max-age=31536000, immutable');
      assert.match(a.headers.get('content-type') ?? '', /javascript/);
    }
  });
});

describe('customer page', () => {
  test('a wrong key or an incomplete link shows a clear message and a support link', async () => {
    const page = await newPage();
    await page.goto(customerUrl(purchase, 'vsc_wrong_key'));
    await page.getByRole('heading', { name: 'This link is wrong or has expired' }).waitFor();
    assert.equal(await page.evaluate(() => window.location.hash), '', 'the fragment left the address bar');
    assert.ok(await page.locator('a[data-action="support"]').isVisible());
    await checkView(page, 'customer-wrong-key');
    await page.goto(`${BASE_URL}/v1/dashboard/customer`);
    await page.getByRole('heading', { name: 'This link is incomplete' }).waitFor();
    await checkView(page, 'customer-incomplete-link');
    await page.context().close();
  });

  test('shows the purchase as the API does, and a payment on anvil becomes the new balance without a reload', async () => {
    const page = await newPage();
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE_URL });
    // The S3 bucket (moto) is ready before the page opens, so "How to use it" shows it at once.
    const resource = await eventually(async () => {
      const r = (await apiPurchase()).purchase.resource;
      return { ok: Boolean(r), value: r };
    }, 'the purchase\'s resource');
    const started = Date.now();
    await page.goto(customerUrl(purchase));
    await page.locator('[data-field="balance_usd"]').waitFor();
    console.log(`# first render with data: ${Date.now() - started} ms`);
    assert.equal(await page.evaluate(() => window.location.hash), '', 'credentials left the address bar');
    assert.ok(!page.url().includes('customer_billing_api_key'));
    const stored = await page.evaluate(() => sessionStorage.getItem('vendor-server.customer'));
    assert.ok(stored?.includes(purchase.key), 'credentials kept in sessionStorage');

    const api = await apiPurchase();
    const p = api.purchase;
    assert.equal(await valueOf(page, 'balance_usd'), p.balance_usd);
    assert.equal(await valueOf(page, 'status'), p.status);
    for (const f of ['balance_low_trigger', 'balance_critical_trigger', 'balance_termination_trigger']) {
      assert.equal(await valueOf(page, f), p[f] ?? '', f);
    }
    const wallet = api.checkout_wallet;
    assert.equal(await valueOf(page, 'evm_address'), wallet.evm_address);
    const first = wallet.accepts[0];
    assert.equal(
      await valueOf(page, 'deposit_qr'),
      `ethereum:${first.token_address}@${first.chain_id}/transfer?address=${wallet.evm_address}`,
    );
    // Every accepted chain/token is offered; choosing another one re-draws the QR code for it.
    assert.equal(await page.locator('input[name="token"]').count(), wallet.accepts.length);
    if (wallet.accepts.length > 1) {
      const second = wallet.accepts[1];
      await page.locator('input[name="token"]').nth(1).check();
      assert.equal(
        await valueOf(page, 'deposit_qr'),
        `ethereum:${second.token_address}@${second.chain_id}/transfer?address=${wallet.evm_address}`,
      );
    }
    const qrLoaded = await page.locator('[data-field="deposit_qr"]').evaluate((img) => img.complete && img.naturalWidth > 0);
    assert.ok(qrLoaded, 'the QR image renders');
    await page.click('[data-action="copy-address"]');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), wallet.evm_address);

    // How to use it: decided by the resource's kind (S3 on moto here), its settings as the API has them.
    assert.equal(resource.kind, 's3');
    const use = '[data-section="how-to-use"]';
    await page.locator(`${use}[data-state="ready"][data-kind="s3"]`).waitFor();
    for (const f of ['bucket', 'endpoint', 'region']) {
      assert.ok(resource[f], `the API gives the ${f}`);
      assert.equal(await valueOf(page, f, use), resource[f], f);
    }
    await page.click(`${use} [data-action="copy-bucket"]`);
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), resource.bucket);
    const secret = setting('AWS_SECRET_ACCESS_KEY');
    assert.ok(secret && !((await page.locator('body').textContent()) ?? '').includes(secret), 'never the secret');
    assert.equal(await page.locator('[data-section="pending-deposits"]').getAttribute('data-count'), '0');
    await checkView(page, 'customer');

    // A payment on its way: in a block but short of the chain's confirmations (the test stack requires
    // BROWSER_TEST_CONFIRMATIONS of them), so it is listed with its confirmations and not credited.
    const before = (await apiPurchase()).purchase.balance_usd;
    const tx = await payWithoutConfirmations(wallet.evm_address, 3);
    await page.click('[data-action="check-payment"]');
    const item = page.locator(`[data-section="pending-deposits"] li[data-tx-hash="${tx}"]`);
    await item.waitFor({ timeout: 30_000 });
    const confs = async () => Number(await item.locator('[data-field="confirmations"]').getAttribute('data-value'));
    const required = Number(await item.locator('[data-field="required_confirmations"]').getAttribute('data-value'));
    const firstConfs = await confs();
    assert.ok(firstConfs >= 1 && firstConfs < required, `confirmations ${firstConfs} of ${required}`);
    assert.equal(await item.locator('[data-field="amount_usd"]').getAttribute('data-value'), '3.000000');
    assert.equal(await item.locator('[data-field="tx_hash"]').getAttribute('data-value'), tx);
    assert.equal(await item.locator('[data-field="status"]').getAttribute('data-value'), 'pending');
    assert.match((await item.textContent()) ?? '', new RegExp(`of ${required} confirmations`));
    const listed = (await apiPurchase()).pending_deposits.find((d) => d.tx_hash === tx);
    assert.ok(listed, 'the API lists the pending deposit');
    assert.equal(await item.locator('[data-field="token_symbol"]').getAttribute('data-value'), listed.token_symbol);
    assert.equal(listed.token_symbol.toUpperCase(), 'USDC');
    assert.equal(await item.locator('[data-field="confirmations"]').getAttribute('data-value') !== null, true);
    assert.equal(required, listed.required_confirmations);
    assert.equal(await valueOf(page, 'balance_usd'), before, 'not credited yet');
    await checkView(page, 'customer-pending-deposit');

    // One more block: the counter goes up by itself (the page refreshes while payments are on their way).
    await rpc('anvil_mine', ['0x1']);
    await page.waitForFunction(
      ([hash, n]) =>
        Number(
          document.querySelector(`[data-section="pending-deposits"] li[data-tx-hash="${hash}"] [data-field="confirmations"]`)
            ?.getAttribute('data-value') ?? 0,
        ) > n,
      [tx, firstConfs],
      { timeout: 30_000 },
    );

    // Enough blocks: "check for payment" credits it; the balance includes it and the list is empty.
    await rpc('anvil_mine', [`0x${required.toString(16)}`]);
    const expected = sumMicros([before, '3']);
    await page.click('[data-action="check-payment"]');
    await waitForValue(page, 'balance_usd', expected, 60_000);
    await page.locator('[data-section="pending-deposits"][data-count="0"]').waitFor({ timeout: 30_000 });
    assert.equal(page.url(), `${BASE_URL}/v1/dashboard/customer`, 'no reload, no navigation');
    const after = await apiPurchase();
    assert.equal(after.purchase.balance_usd, expected);
    assert.ok(!after.pending_deposits.some((d) => d.tx_hash === tx), 'no longer pending in the API');
    await page.locator('[data-field="topup_result"] .alert').waitFor();
    await checkView(page, 'customer-after-payment');
    await page.context().close();
  });

  test('a Gemini purchase shows the gateway base URL and snippets for it', async (t) => {
    if (!geminiOn()) {
      t.skip('the test stack has no Gemini key (GEMINI_API_KEY), so it sells no Gemini gateway');
      return;
    }
    const gemini = devCheckout('gemini-api-gateway');
    const resource = await eventually(async () => {
      const r = (await apiPurchase(gemini)).purchase.resource;
      return { ok: Boolean(r), value: r };
    }, 'the Gemini purchase’s resource');
    assert.equal(resource.kind, 'gemini');
    const page = await newPage();
    await page.goto(customerUrl(gemini));
    const use = '[data-section="how-to-use"][data-kind="gemini"]';
    await page.locator(use).waitFor();
    const base = resource.gateway_base_url.replace(/\/+$/, '');
    assert.equal(await valueOf(page, 'gateway_base_url', use), resource.gateway_base_url);
    const snippets = await page.locator(`${use} pre`).allTextContents();
    assert.ok(snippets[0].includes(`"${base}/v1beta/models/`), snippets[0]);
    assert.ok(snippets.every((s) => s.includes('YOUR_KEY')));
    await checkView(page, 'customer-gemini');
    await page.context().close();
  });

  test('keyboard only: Tab reaches "Check for payment" and Enter runs it', async () => {
    const page = await newPage();
    await page.goto(customerUrl(purchase));
    await page.locator('[data-field="balance_usd"]').waitFor();
    let reached = false;
    for (let i = 0; i < 40 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement?.getAttribute('data-action') === 'check-payment');
    }
    assert.ok(reached, 'Tab reaches the check-payment button');
    const focusVisible = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle !== 'none');
    assert.ok(focusVisible, 'the focused button shows a focus ring');
    await page.keyboard.press('Enter');
    await page.locator('[data-field="topup_result"] .alert').waitFor();
    await page.context().close();
  });

  test('metered usage: chart and table totals equal the API for every bucket size', async () => {
    const now = Date.now();
    const records = [
      ['0.100000', 'gb', 0],
      ['0.200000', 'gb', 1],
      ['0.000001', 'requests', 2],
      ['1.234567', 'gb', 3],
      ['0.3', 'requests', 9],
      ['0.033333', 'gb', 40],
    ];
    for (const [i, [billed, unit, daysBack]] of records.entries()) {
      const r = await call(`/v1/purchase/${purchase.purchaseId}/meter-usage`, {
        token: billingToken,
        headers: { 'idempotency-key': `browser-${now}-${i}` },
        body: {
          usage_amount: String(i + 1),
          usage_unit: unit,
          billed_amount: billed,
          timestamp: new Date(now - daysBack * 86_400_000 - i * 3_600_000).toISOString(),
          description: `browser test ${i}`,
        },
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
    }

    const page = await newPage();
    await page.goto(customerUrl(purchase));
    await page.locator('[data-field="total_billed_amount"]').waitFor();
    for (const interval of ['daily', 'hourly', 'weekly', 'monthly']) {
      await page.click(`[data-action="interval"][data-value="${interval}"]`);
      await page.locator(`[data-section="usage"][data-interval="${interval}"][data-state="ready"]`).waitFor();
      const start = await page.inputValue('input[name="start_date"]');
      const end = await page.inputValue('input[name="end_date"]');
      const r = await call(`/v1/purchase/${purchase.purchaseId}/historical-billing`, {
        token: purchase.key,
        body: { interval, start_date: start, end_date: end },
      });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      const expected = sumMicros(r.body.map((b) => b.total_billed_amount));
      assert.notEqual(expected, '0.000000', `${interval}: usage in range`);
      await waitForValue(page, 'total_billed_amount', expected);
      const rows = page.locator('table[data-table="usage"] tbody tr');
      assert.equal(await rows.count(), r.body.length, `${interval}: one row per bucket`);
      const shown = await rows.locator('[data-field="bucket_billed_amount"]').evaluateAll((els) => els.map((e) => e.getAttribute('data-value')));
      assert.deepEqual(shown, r.body.map((b) => b.total_billed_amount), `${interval}: each bucket`);
      assert.ok(await page.locator('[data-field="usage_chart"] canvas').count(), 'a chart');
    }
    // A narrower date range: the total follows.
    await page.click('[data-action="interval"][data-value="daily"]');
    const from = new Date(now - 2 * 86_400_000).toISOString().slice(0, 10);
    await page.fill('input[name="start_date"]', from);
    await page.locator('[data-section="usage"][data-state="ready"]').waitFor();
    const end = await page.inputValue('input[name="end_date"]');
    const narrow = await call(`/v1/purchase/${purchase.purchaseId}/historical-billing`, {
      token: purchase.key,
      body: { interval: 'daily', start_date: from, end_date: end },
    });
    await waitForValue(page, 'total_billed_amount', sumMicros(narrow.body.map((b) => b.total_billed_amount)));

    // The balance and the ledger as the API has them.
    const api = await apiPurchase();
    await page.reload();
    await waitForValue(page, 'balance_usd', api.purchase.balance_usd);
    const ledger = await call(`/v1/purchase/${purchase.purchaseId}/ledger?limit=20`, { token: purchase.key });
    if (ledger.status === 200) {
      await page.locator('table[data-table="ledger"] tbody tr').first().waitFor();
      const shown = await page
        .locator('table[data-table="ledger"] tbody [data-field="amount_usd"]')
        .evaluateAll((els) => els.map((e) => e.getAttribute('data-value')));
      assert.deepEqual(shown, ledger.body.items.map((e) => e.amount_usd));
      const kinds = await page.locator('table[data-table="ledger"] tbody tr').evaluateAll((els) => els.map((e) => e.getAttribute('data-kind')));
      assert.ok(kinds.length > 0);
    } else {
      console.log(`# ledger route answers ${ledger.status}: the ledger table check waits for it`);
    }
    await checkView(page, 'customer-usage');
    await page.context().close();
  });
});

describe('vendor console', () => {
  let adminOn = false;
  let page;
  before(async () => {
    assert.ok(ADMIN_TOKEN, 'the test server has an ADMIN_TOKEN');
    const r = await call('/v1/admin/overview', { token: ADMIN_TOKEN });
    adminOn = r.status !== 404;
    if (!adminOn) {
      console.log('# SKIPPING the vendor console scenarios: GET /v1/admin/overview answers 404 with ADMIN_TOKEN set (this build has no admin API)');
    }
    page = await newPage();
  });
  after(async () => page?.context().close());
  const skip = (t) => {
    if (!adminOn) {
      t.skip('no admin API in this build (GET /v1/admin/overview answers 404 with the token)');
      return true;
    }
    return false;
  };

  test('sign in: a wrong token is refused, the right one opens the overview', async (t) => {
    await page.goto(`${BASE_URL}/v1/dashboard/vendor`);
    await page.locator('input[name="token"]').waitFor();
    await checkView(page, 'vendor-sign-in');
    if (skip(t)) return;
    await page.fill('input[name="token"]', 'not-the-admin-token-000');
    await page.click('[data-action="sign-in"]');
    await page.getByText('That token is not the server’s ADMIN_TOKEN.').waitFor();
    // Keyboard: type the token and press Enter.
    await page.fill('input[name="token"]', ADMIN_TOKEN);
    await page.press('input[name="token"]', 'Enter');
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    assert.equal(await page.evaluate(() => sessionStorage.getItem('vendor-server.admin-token')), ADMIN_TOKEN);
    await page.locator('.stat, .card').first().waitFor();
    await checkView(page, 'vendor-overview');
  });

  test('gas balances per chain', async (t) => {
    if (skip(t)) return;
    await page.goto(`${BASE_URL}/v1/dashboard/vendor#/gas`);
    const cell = page.locator('[data-field="gas_balance"][data-chain-id="31337"]').first();
    await cell.waitFor();
    assert.ok((await cell.getAttribute('data-value')) !== null);
    await checkView(page, 'vendor-gas');
  });

  test('RPC endpoints per chain: state as the API says, host:port only', async (t) => {
    if (skip(t)) return;
    await page.goto(`${BASE_URL}/v1/dashboard/vendor#/`);
    const state = page.locator('[data-field="rpc_state"]').first();
    await state.waitFor();
    const res = await fetch(`${BASE_URL}/v1/admin/overview`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
    const overview = await res.json();
    const [chain] = Object.values(overview.rpc);
    assert.equal(await state.getAttribute('data-value'), chain.endpoints[0].state);
    const endpoint = await page.locator('tr[data-endpoint] code').first().textContent();
    assert.equal(endpoint, chain.endpoints[0].endpoint);
    assert.ok(!endpoint.includes('://'), endpoint);
  });

  test('find the purchase, adjust its balance, suspend and resume it', async (t) => {
    if (skip(t)) return;
    await page.goto(`${BASE_URL}/v1/dashboard/vendor#/purchases`);
    await page.fill('input[name="q"]', purchase.purchaseId);
    await page.click('[data-action="search"]');
    const row = page.locator(`tr[data-purchase-id="${purchase.purchaseId}"]`);
    await row.waitFor();
    const before = (await apiPurchase()).purchase;
    assert.equal(await row.locator('[data-field="balance_usd"]').getAttribute('data-value'), before.balance_usd);
    assert.equal(await row.locator('[data-field="status"]').getAttribute('data-value'), before.status);
    await checkView(page, 'vendor-purchases');

    await row.locator('a').first().click();
    await page.locator('[data-action="adjust"]').waitFor();
    await checkView(page, 'vendor-purchase');
    await page.fill('input[name="amount_usd"]', '2.5');
    await page.fill('input[name="reason"]', 'browser test goodwill credit');
    await page.click('[data-action="adjust"]');
    const expected = sumMicros([before.balance_usd, '2.5']);
    await eventually(async () => {
      const b = (await apiPurchase()).purchase.balance_usd;
      return { ok: b === expected, value: b };
    }, 'balance after the adjustment');
    await waitForValue(page, 'balance_usd', expected);
    // The adjustment is a ledger entry of its own kind on the purchase's page.
    await page.waitForFunction(() =>
      [...document.querySelectorAll('[data-field="kind"]')].some((e) => e.getAttribute('data-value') === 'adjustment'),
    );

    // Delete needs the purchase id typed in full.
    const del = page.locator('[data-action="delete"]');
    assert.ok(await del.isDisabled());
    await page.fill('input[name="confirm"]', purchase.purchaseId);
    assert.ok(await del.isEnabled());
    await page.fill('input[name="confirm"]', '');

    await page.click('[data-action="suspend"]');
    await eventually(async () => {
      const s = (await apiPurchase()).purchase.status;
      return { ok: s === 'suspended', value: s };
    }, 'status after suspend');
    await page.click('[data-action="resume"]');
    await eventually(async () => {
      const s = (await apiPurchase()).purchase.status;
      return { ok: s !== 'suspended', value: s };
    }, 'status after resume');
  });

  test('billing tokens: created once, then revoked (a meter call with it gets 401)', async (t) => {
    if (skip(t)) return;
    await page.goto(`${BASE_URL}/v1/dashboard/vendor#/tokens`);
    const label = `console-${Date.now()}`;
    await page.fill('input[name="label"]', label);
    await page.click('[data-action="create-token"]');
    const shown = page.locator('[data-field="token"]');
    await shown.waitFor();
    const token = await shown.getAttribute('data-value');
    assert.match(token ?? '', /^vst_/);
    const meter = (key) =>
      call(`/v1/purchase/${purchase.purchaseId}/meter-usage`, {
        token: key,
        body: { usage_amount: '1', usage_unit: 'requests', billed_amount: '0.000001' },
      });
    assert.equal((await meter(token)).status, 200);
    await checkView(page, 'vendor-tokens');
    const row = page.locator(`tr[data-token-label="${label}"]`);
    await row.waitFor();
    // Revoking is confirmed in the page first.
    await row.locator('[data-action="revoke-token"]').click();
    await row.locator('[data-action="confirm"]').click();
    await row.locator('.badge', { hasText: 'Revoked' }).waitFor();
    assert.equal((await meter(token)).status, 401);
  });

  test('a failed sweep is retried from the console', async (t) => {
    if (skip(t)) return;
    // A failed sweep of this purchase's address, as a reverted transaction leaves it: in USDT, so no
    // other sweep of the same token and address is still running (the USDC ones wait for blocks).
    const wallet = (await apiPurchase()).checkout_wallet;
    const usdt = wallet.accepts.find((t) => t.token_symbol === 'USDT');
    assert.ok(usdt, 'the dev chain accepts USDT');
    const sql = `insert into sweep (chain_id, token_address, token_symbol, deposit_address, deposit_index,
        treasury_address, amount_units, method, status, last_error)
      select chain_id, '${usdt.token_address}', 'usdt', deposit_address, deposit_index, treasury_address,
        amount_units, 'transfer', 'failed', 'browser test: reverted'
      from sweep where lower(deposit_address) = lower('${wallet.evm_address}') order by sweep_id limit 1
      returning sweep_id`;
    const psql = spawnSync('psql', [process.env.DATABASE_URL, '-tAc', sql], { encoding: 'utf8' });
    assert.equal(psql.status, 0, psql.stderr);
    const sweepId = psql.stdout.trim().split('\n')[0];
    assert.match(sweepId, /^\d+$/, `no sweep to copy: ${psql.stdout}`);

    await page.goto(`${BASE_URL}/v1/dashboard/vendor#/sweeps`);
    const row = page.locator(`tr[data-sweep-id="${sweepId}"]`);
    await row.waitFor();
    await checkView(page, 'vendor-sweeps');
    await row.locator('[data-action="retry-sweep"]').click();
    await page.getByText('Sweep queued for another attempt.').waitFor();
    // The retry is recorded (the sweeper then works on it; with no USDT there it may fail again).
    const audit = await call(`/v1/admin/audit?target_type=sweep&target_id=${sweepId}`, { token: ADMIN_TOKEN });
    assert.equal(audit.status, 200, JSON.stringify(audit.body));
    assert.ok(
      audit.body.items.some((e) => e.action === 'sweep.retry' && String(e.target_id) === sweepId),
      JSON.stringify(audit.body),
    );
  });

  test('notifications, cost imports and the audit log render', async (t) => {
    if (skip(t)) return;
    for (const [view, name] of [
      ['notifications', 'vendor-notifications'],
      ['cost-imports', 'vendor-cost-imports'],
      ['audit', 'vendor-audit'],
    ]) {
      await page.goto(`${BASE_URL}/v1/dashboard/vendor#/${view}`);
      await page.locator('main h1').waitFor();
      await page.waitForFunction(() => !document.querySelector('main')?.textContent?.includes('Loading'));
      await checkView(page, name);
    }
    const text = await page.locator('main').textContent();
    assert.match(text ?? '', /adjust/i, 'the audit log lists the adjustment');
  });
});
