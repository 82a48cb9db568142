// A refund end to end in the browser (issue #22): requested on the customer page, listed in the
// vendor console and approved there, paid by the payout wallet (scripts/browser-test.sh gives the
// server VENDOR_PAYOUT_PRIVATE_KEY, funded with the test tokens) on anvil, and shown `paid` with its
// transaction link on the customer page, which rereads its refunds while one is on its way.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ADMIN_TOKEN, call, checkView, closeBrowser, customerUrl, devCheckout, eventually, newPage, rpc, signIn } from './helpers.mjs';

after(closeBrowser);

test('a refund requested on the page is approved in the console and shown paid with its transaction', async (t) => {
  if ((await call('/v1/admin/overview', { token: ADMIN_TOKEN })).status !== 200) {
    t.skip('no admin API in this build');
    return;
  }
  const purchase = devCheckout('aws-s3-storage-giftcard', '5');
  const to = `0x${randomBytes(20).toString('hex')}`;

  const customer = await newPage();
  await customer.goto(customerUrl(purchase));
  const form = customer.locator('form:has([data-action="request-refund"])');
  await form.waitFor();
  await form.locator('input[name="amount_usd"]').fill('1.5');
  await form.locator('input[name="to_address"]').fill(to);
  await form.locator('[data-action="request-refund"]').click();
  const mine = customer.locator(`table[data-table="refunds"] tr[data-refund-id]:has([data-field="to_address"][data-value="${to}"])`);
  await mine.waitFor();
  const id = await mine.getAttribute('data-refund-id');
  assert.equal(await mine.locator('[data-field="status"]').getAttribute('data-value'), 'requested');
  assert.equal(await mine.locator('[data-field="amount_usd"]').getAttribute('data-value'), '1.500000');
  await checkView(customer, 'customer-refund-requested');

  const started = Date.now();
  const vendor = await newPage();
  await signIn(vendor, ADMIN_TOKEN, 'refunds');
  const row = vendor.locator(`tr[data-refund-id="${id}"]`);
  await row.waitFor();
  await row.locator('[data-action="approve-refund"]').click();
  await row.locator('[data-action="confirm"]').click();
  await vendor.getByText(`Refund ${id.slice(0, 10)}`).first().waitFor();

  // The payout job signs and sends it; the chain needs its confirmations (anvil mines on demand).
  const paid = await eventually(async () => {
    await rpc('anvil_mine', ['0x1']);
    const r = await call(`/v1/purchase/${purchase.purchaseId}/refunds`, { token: purchase.key });
    const refund = r.body.items.find((x) => x.refund_id === id);
    return { ok: refund.status === 'paid', value: refund };
  }, `refund ${id} paid`, 90_000);
  console.log(`# approve → paid on anvil: ${Date.now() - started} ms (incl. the console's approval)`);
  assert.match(paid.tx_hash, /^0x[0-9a-f]{64}$/);
  const receipt = await rpc('eth_getTransactionReceipt', [paid.tx_hash]);
  assert.equal(receipt.status, '0x1');

  // The customer page follows by itself: paid, with the transaction linked.
  await mine.locator('[data-field="status"][data-value="paid"]').waitFor({ timeout: 30_000 });
  const link = mine.locator(`a[data-field="tx_hash"][data-value="${paid.tx_hash}"]`);
  await link.waitFor();
  assert.equal(await link.getAttribute('href'), paid.explorer_url);
  assert.ok(paid.explorer_url?.endsWith(paid.tx_hash), paid.explorer_url);
  await checkView(customer, 'customer-refund-paid');
  await vendor.context().close();
  await customer.context().close();
});
