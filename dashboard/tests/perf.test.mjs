// First render of each console view (and the customer page) with 1,000 purchases and 90 days of
// ledger history (issue #25's closing figures). Seeds the test server's database directly, so it
// runs only when asked: CONSOLE_PERF=1 scripts/browser-test.sh --test-name-pattern=perf
// Prints `# perf <view>: <ms>` for each: from navigation to the view's data on screen.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { ADMIN_TOKEN, BASE_URL, closeBrowser, newPage } from './helpers.mjs';

const ON = process.env.CONSOLE_PERF === '1';

function psql(sql) {
  const r = spawnSync('psql', [process.env.DATABASE_URL, '-v', 'ON_ERROR_STOP=1', '-qtAc', sql], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

/** 1,000 purchases (two offers), each with a deposit 90 days ago and a usage charge every day since. */
function seed() {
  psql(`
    insert into purchase (purchase_id, offer_id, status, balance_micros, low_trigger_micros, critical_trigger_micros,
                          termination_trigger_micros, title, customer_key_hash, customer_key_prefix, resource_status,
                          created_at)
    select gen_random_uuid(), case when i % 2 = 0 then 'gemini-api-gateway' else 'aws-s3-storage-giftcard' end,
           'active', 50000000 - 90 * 100000, 10000000, 2000000, 50000, 'perf ' || i,
           sha256(convert_to('vsc_perf_' || i, 'UTF8')), 'vsc_perf', 'ready', now() - interval '91 days'
    from generate_series(1, 1000) i;
    insert into ledger_entry (purchase_id, kind, amount_micros, balance_after_micros, description, occurred_at, created_at, reference)
    select purchase_id, 'deposit', 50000000, 50000000, 'perf deposit', now() - interval '90 days', now() - interval '90 days',
           'perf-deposit:' || purchase_id
    from purchase where title like 'perf %';
    insert into ledger_entry (purchase_id, kind, amount_micros, balance_after_micros, usage_amount, usage_unit, description,
                              occurred_at, created_at, reference)
    select p.purchase_id, 'usage', -100000, 50000000 - d * 100000, 1, 'requests', 'perf usage',
           now() - make_interval(days => 90 - d), now() - make_interval(days => 90 - d), 'perf-usage:' || p.purchase_id || ':' || d
    from purchase p, generate_series(1, 90) d where p.title like 'perf %';
    analyze purchase; analyze ledger_entry;`);
  return psql(`select 'CustomerPurchaseID_' || purchase_id from purchase where title = 'perf 1'`);
}

after(closeBrowser);

describe('perf', () => {
  test('first render of each view with 1,000 purchases and 90 days of history', async (t) => {
    if (!ON) {
      t.skip('set CONSOLE_PERF=1 to seed 1,000 purchases and time each view');
      return;
    }
    const started = Date.now();
    const one = seed();
    console.log(`# perf seed: ${Date.now() - started} ms (${psql('select count(*) from ledger_entry')} ledger entries)`);
    const page = await newPage();
    await page.goto(`${BASE_URL}/v1/dashboard/vendor`);
    await page.evaluate((token) => sessionStorage.setItem('vendor-server.admin-token', token), ADMIN_TOKEN);
    const views = [
      ['', '[data-field="daily_chart"] canvas, [data-section="money-over-time"] p'],
      ['purchases', 'table[data-table="purchases"] tbody tr'],
      [`purchases/${one}`, 'table[data-table="ledger"] tbody tr'],
      ['sweeps', 'main section'],
      ['refunds', 'main section'],
      ['notifications', 'main section'],
      ['audit', 'main section'],
      ['gas', '[data-field="gas_balance"]'],
      ['chains', '[data-section="reconcile"]'],
    ];
    for (const [view, ready] of views) {
      // A fresh document each time: the figure includes loading the page's scripts.
      await page.goto('about:blank');
      const t0 = Date.now();
      await page.goto(`${BASE_URL}/v1/dashboard/vendor#/${view}`);
      await page.locator(ready).first().waitFor({ timeout: 60_000 });
      await page.waitForFunction(() => !document.querySelector('main')?.textContent?.includes('Loading'), null, { timeout: 60_000 });
      console.log(`# perf console #/${view || 'overview'}: ${Date.now() - t0} ms`);
    }
    await page.goto('about:blank');
    const t0 = Date.now();
    await page.goto(`${BASE_URL}/v1/dashboard/customer#vendor_purchase_id=${encodeURIComponent(one)}&customer_billing_api_key=vsc_perf_1`);
    await page.locator('table[data-table="usage"] tbody tr').first().waitFor({ timeout: 60_000 });
    await page.locator('table[data-table="ledger"] tbody tr').first().waitFor({ timeout: 60_000 });
    console.log(`# perf customer page (90 days of usage): ${Date.now() - t0} ms`);
    await page.context().close();
  });
});
