// The customer's credentials on their page (issue #22, SPEC §9 "Customers get what they paid for"):
// a Gemini buyer reveals the receipt's gateway key, reads it from the page and calls the gateway
// with it; a new key made on the page works and the old one is refused at once. An S3 buyer gets a
// new access key pair shown once; a new page link switches the page to the new customer key (the
// old one refused). Every view: axe-core, 390 px, no CSP violation (checkView).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { BASE_URL, call, checkView, closeBrowser, customerUrl, devCheckout, eventually, geminiOn, newPage } from './helpers.mjs';

after(closeBrowser);

/** A generateContent call through the server's gateway with KEY; the status. */
async function gatewayStatus(key) {
  const res = await fetch(`${BASE_URL}/v1beta/models/gemini-2.5-flash:generateContent`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-goog-api-key': key },
    body: JSON.stringify({ contents: [{ parts: [{ text: 'Hello' }] }] }),
  });
  await res.arrayBuffer();
  return res.status;
}

/** The purchase's resource once it is ready. */
function resourceOf(p) {
  return eventually(async () => {
    const r = await call(`/v1/purchase/${p.purchaseId}`, { token: p.key });
    return { ok: Boolean(r.body?.purchase?.resource), value: r.body };
  }, 'the purchase’s resource');
}

/** Makes a new credential of KIND on the page (confirmed first); the new secret's block. */
async function rotateOnPage(page, kind) {
  const card = page.locator('[data-section="credentials"]');
  await card.locator(`[data-action="rotate-credential"][data-kind="${kind}"]`).click();
  const question = card.locator(`[data-confirm-for="rotate-credential"][data-kind="${kind}"]`);
  assert.match((await question.textContent()) ?? '', /stops? working at once/);
  await question.locator('[data-action="confirm"]').click();
  const once = card.locator(`.secret-once[data-kind="${kind}"]`);
  await once.waitFor();
  return once;
}

describe('credentials on the customer page', () => {
  test('a Gemini purchase’s page shows a working key; a new key replaces it at once', async (t) => {
    if (!geminiOn()) {
      t.skip('the test stack sells no Gemini gateway (no GEMINI_API_KEY, no stand-in)');
      return;
    }
    const gemini = devCheckout('gemini-api-gateway', '5');
    await resourceOf(gemini);
    const page = await newPage();
    await page.goto(customerUrl(gemini));
    const key = page.locator('[data-section="how-to-use"] [data-field="gateway_key"]');
    await key.waitFor();
    // Masked until revealed: no secret in the page's text or attributes.
    assert.equal(await key.getAttribute('data-revealed'), 'false');
    assert.equal(await key.getAttribute('data-value'), null);
    assert.match((await key.textContent()) ?? '', /^vsg_•+.{4}$/);
    const listed = await page.locator('[data-section="credentials"] li[data-kind="gateway_key"] [data-field="hint"]').getAttribute('data-value');
    assert.ok((await key.textContent())?.endsWith(listed ?? '?'), 'the mask ends in the listed hint');
    await checkView(page, 'customer-gemini-key');

    await page.click('[data-action="reveal-key"]');
    const secret = await key.getAttribute('data-value');
    assert.match(secret ?? '', /^vsg_/);
    assert.equal(await key.textContent(), secret);
    const snippets = await page.locator('[data-section="how-to-use"] pre').allTextContents();
    assert.ok(snippets.every((s) => s.includes(secret) && !s.includes('YOUR_KEY')), 'the examples carry the shown key');
    assert.equal(await gatewayStatus(secret), 200, 'the key read from the page works at the gateway');

    const once = await rotateOnPage(page, 'gateway_key');
    const fresh = await once.locator('[data-field="secret"]').getAttribute('data-value');
    assert.match(fresh ?? '', /^vsg_/);
    assert.notEqual(fresh, secret);
    assert.equal(await gatewayStatus(fresh), 200, 'the new key works');
    assert.ok([401, 403].includes(await gatewayStatus(secret)), 'the old key is refused at once');
    assert.equal(await key.getAttribute('data-state'), 'replaced');
    await page.locator(`[data-section="credentials"] li[data-kind="gateway_key"] [data-field="hint"][data-value="${fresh.slice(-4)}"]`).waitFor();
    await checkView(page, 'customer-gemini-key-replaced');

    // A later visit: the receipt's key is no longer shown, said plainly, with the way to a new one.
    await page.reload();
    await page.locator('[data-field="gateway_key"][data-state="not-shown"]').waitFor();
    assert.equal(await page.locator('[data-action="reveal-key"]').count(), 0);
    await page.locator('a[data-action="new-key-link"][href="#credentials-h"]').waitFor();
    await checkView(page, 'customer-gemini-key-gone');
    await page.context().close();
  });

  test('S3: a new access key pair shown once; a new page link keeps the page open with the new key', async () => {
    const s3 = devCheckout('aws-s3-storage-giftcard', '2');
    await resourceOf(s3);
    const page = await newPage();
    await page.goto(customerUrl(s3));
    await page.locator('[data-section="credentials"] li[data-kind="s3_access_key"]').waitFor();
    await checkView(page, 'customer-credentials');

    const once = await rotateOnPage(page, 's3_access_key');
    const id = await once.locator('[data-field="access_key_id"]').getAttribute('data-value');
    const secret = await once.locator('[data-field="secret"]').getAttribute('data-value');
    assert.ok(id && secret && secret.length >= 20, `an access key pair: ${id} / ${secret?.length}`);
    await page.locator(`li[data-kind="s3_access_key"] [data-field="hint"][data-value="${id.slice(-4)}"]`).waitFor();
    await checkView(page, 'customer-s3-key-once');
    // Shown once: a reload lists it by hint only.
    await page.reload();
    await page.locator(`li[data-kind="s3_access_key"] [data-field="hint"][data-value="${id.slice(-4)}"]`).waitFor();
    assert.equal(await page.locator('.secret-once').count(), 0);
    assert.doesNotMatch((await page.content()) ?? '', new RegExp(secret.replace(/[^A-Za-z0-9]/g, '.')));

    const link = await rotateOnPage(page, 'customer_key');
    const newKey = await link.locator('[data-field="secret"]').getAttribute('data-value');
    const url = await link.locator('[data-field="customer_url"]').getAttribute('data-value');
    assert.ok(newKey && newKey !== s3.key);
    assert.ok(url?.includes(encodeURIComponent(newKey)) || url?.includes(newKey), url);
    assert.equal((await call(`/v1/purchase/${s3.purchaseId}`, { token: s3.key })).status, 401, 'the old key stops at once');
    assert.equal((await call(`/v1/purchase/${s3.purchaseId}`, { token: newKey })).status, 200);
    // The page goes on with the new key, after a reload too (kept in this tab).
    await page.locator(`li[data-kind="customer_key"] [data-field="hint"][data-value="${newKey.slice(-4)}"]`).waitFor();
    await page.reload();
    await page.locator('[data-field="balance_usd"]').waitFor();
    assert.equal(await page.locator('h1 + p [data-field="id"]').textContent(), s3.purchaseId);
    // The new link opens the page in a new tab.
    const other = await newPage();
    await other.goto(url);
    await other.locator('[data-field="balance_usd"]').waitFor();
    await other.context().close();
    await page.context().close();
  });
});
