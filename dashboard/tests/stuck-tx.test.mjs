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

test('a stuck refund payout shows its state in the console and is bumped by the operator', async (t) => {
  if ((await call('/v1/admin/overview', { token: ADMIN_TOKEN })).status !== 200) {
    t.skip('no admin API in this build');
    return;
  }
  const purchase = devCheckout('aws-s3-storage-giftcard', '2');
  const uuid = purchase.purchaseId.replace('CustomerPurchaseID_', '');
  const wallet = (await call(`/v1/purchase/${purchase.purchaseId}`, { token: purchase.key })).body.checkout_wallet;
  const usdc = wallet.accepts.find((a) => a.token_symbol === 'USDC');
  assert.ok(usdc, 'the dev chain accepts USDC');
  // A payout signed and sent, re-signed twice, whose fees reached the chain's cap unmined, as the
  // payout job leaves it.
  const id = psql(`insert into refund (refund_id, purchase_id, source, amount_micros, chain_id, token_address,
        token_symbol, token_decimals, token_amount, to_address, status, approved_at, from_address, nonce, tx_hash,
        raw_tx, gas_limit, max_fee_per_gas, max_priority_fee_per_gas, broadcast_at, broadcast_block, replacements,
        replaced_tx_hashes, stuck_at, last_error)
      values (gen_random_uuid(), '${uuid}', 'balance', 1000000, ${usdc.chain_id}, '${usdc.token_address}', 'usdc', 6,
              1000000, '0x00000000000000000000000000000000000000b0', 'paying', now(),
              '0x00000000000000000000000000000000000000b1', 4243, '0x' || repeat('cd', 32), '\\x00', 60000,
              500000000000, 1000000000, now(), 1, 2, array['0x' || repeat('c1', 32), '0x' || repeat('c2', 32)], now(),
              'transaction is not mined: its max fee reached the chain''s max_fee_gwei')
      returning refund_id`).split('\n')[0];
  assert.match(id, /^[0-9a-f-]{36}$/, id);
  const refundId = `RefundID_${id}`;

  const token = operatorToken();
  const page = await newPage();
  await page.goto(`${BASE_URL}/v1/dashboard/vendor#/refunds?status=paying`);
  await page.fill('input[name="token"]', token);
  await page.click('[data-action="sign-in"]');
  const row = page.locator(`tr[data-refund-id="${refundId}"]`);
  await row.waitFor();
  assert.equal(await row.locator('[data-section="payout"] [data-field="nonce"]').getAttribute('data-value'), '4243');
  assert.equal(await row.locator('[data-section="payout"] [data-field="replacements"]').getAttribute('data-value'), '2');
  assert.ok(await row.locator('[data-section="payout"] [data-field="stuck_at"]').count());
  await checkView(page, 'vendor-stuck-refund-payout');
  await row.locator('[data-action="bump-payout"]').click();
  await page.getByText('Bump requested').first().waitFor();
  const listed = await call('/v1/admin/refunds?status=paying', { token });
  const refund = listed.body.items.find((r) => r.refund_id === refundId);
  assert.equal(refund?.payout?.operator_action, 'bump', JSON.stringify(refund));
  const audit = await call(`/v1/admin/audit?target_type=refund&target_id=${refundId}`, { token });
  assert.ok(audit.body.items.some((e) => e.action === 'refund.bump'), JSON.stringify(audit.body));
  await page.context().close();
});
