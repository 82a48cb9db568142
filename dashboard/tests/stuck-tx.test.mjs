// A sweep transaction stuck at the fee cap, seen on the overview's "needs attention" and bumped from
// the console by an operator (the audit row names them). Runs after the other files (the sweeper
// then works on a transaction it never sent, which may leave it failed).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { ADMIN_TOKEN, BASE_URL, call, checkView, cli, closeBrowser, devCheckout, newPage } from './helpers.mjs';

after(closeBrowser);

function psql(sql) {
  const r = spawnSync('psql', [process.env.DATABASE_URL, '-v', 'ON_ERROR_STOP=1', '-qtAc', sql], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

/** An operator's token (`vendor-server operators create`), or ADMIN_TOKEN on a build without them. */
function operatorToken() {
  try {
    const out = cli('operators', 'create', '--name', `olga-${Date.now().toString(36)}`, '--role', 'operator');
    return /vso_[A-Za-z0-9_-]+/.exec(out)?.[0] ?? ADMIN_TOKEN;
  } catch {
    return ADMIN_TOKEN;
  }
}

test('a stuck sweep is listed as needing attention and bumped by the operator', async (t) => {
  if ((await call('/v1/admin/overview', { token: ADMIN_TOKEN })).status !== 200) {
    t.skip('no admin API in this build');
    return;
  }
  const purchase = devCheckout('aws-s3-storage-giftcard', '2');
  const wallet = (await call(`/v1/purchase/${purchase.purchaseId}`, { token: purchase.key })).body.checkout_wallet;
  // The deposit's own sweep is planned by the sweeper shortly after the payment.
  const deadline = Date.now() + 60_000;
  while (psql(`select count(*) from sweep where lower(deposit_address) = lower('${wallet.evm_address}')`) === '0') {
    assert.ok(Date.now() < deadline, 'the sweeper planned no sweep for the payment');
    await new Promise((r) => setTimeout(r, 500));
  }
  // In USDT: one unfinished sweep per address and token, and the payment's own sweep is in USDC.
  const usdt = wallet.accepts.find((a) => a.token_symbol === 'USDT');
  assert.ok(usdt, 'the dev chain accepts USDT');
  // A broadcast transaction whose fees reached the chain's cap unmined, as the sweeper leaves it.
  const id = psql(`insert into sweep (chain_id, token_address, token_symbol, deposit_address, deposit_index,
        treasury_address, amount_units, method, status, from_address, nonce, tx_hash, broadcast_at, stuck_at)
      select chain_id, '${usdt.token_address}', 'usdt', deposit_address, deposit_index, treasury_address, amount_units,
             'transfer', 'broadcast', deposit_address, 4242, '0x' || repeat('ab', 32), now(), now()
      from sweep where lower(deposit_address) = lower('${wallet.evm_address}') order by sweep_id limit 1
      returning sweep_id`).split('\n')[0];
  assert.match(id, /^\d+$/, 'a sweep of the paid purchase to copy');

  const token = operatorToken();
  const page = await newPage();
  await page.goto(`${BASE_URL}/v1/dashboard/vendor`);
  await page.fill('input[name="token"]', token);
  await page.click('[data-action="sign-in"]');
  const item = page.locator('[data-section="needs-attention"] [data-attention="sweeps-stuck"]');
  await item.waitFor();
  await item.locator('a').click();
  const row = page.locator(`tr[data-sweep-id="${id}"]`);
  await row.waitFor();
  await checkView(page, 'vendor-stuck-sweep');
  await row.locator('[data-action="bump-tx"]').click();
  await page.getByText('Bump requested').waitFor();
  const me = await call('/v1/admin/me', { token });
  const audit = await call(`/v1/admin/audit?target_type=sweep&target_id=${id}`, { token });
  const entry = audit.body.items.find((e) => e.action === 'sweep.bump');
  assert.ok(entry, JSON.stringify(audit.body));
  if (me.status === 200) assert.equal(entry.operator_name, me.body.name);
  await page.context().close();
});
