// The customer's refunds: ask for unused balance (or, once the purchase is deleted, unclaimed
// payments) back to an address, see each refund's status and its transaction (refreshed every 5 s
// while one is on its way), cancel one still waiting for the vendor. POST/GET
// /v1/purchase/{id}/refunds (customer key, Idempotency-Key).
import { useCallback, useEffect, useState } from 'preact/hooks';
import { api, errorText, newIdempotencyKey } from '../../lib/api';
import { shortHex } from '../../lib/format';
import { Time } from '../../components/values';
import { formatUsdCents, toMicros } from '../../lib/money';
import { Alert, Field, Money } from '../../components/ui';
import type { Credentials } from '../credentials';
import type { PurchaseResponse, Refund } from '../../api/types';

/** Statuses the vendor or the chain still moves on, and how often the list is reread meanwhile. */
const MOVING = ['requested', 'approved', 'paying'];
const REFRESH_MOVING_MS = 5_000;

const STATUS_TEXT: Record<string, string> = {
  requested: 'Waiting for the vendor',
  approved: 'Approved, being paid',
  paying: 'Being paid',
  paid: 'Paid',
  rejected: 'Rejected (credited back)',
  canceled: 'Canceled (credited back)',
  failed: 'Payment failed; the vendor retries',
};

export function Refunds(props: { creds: Credentials; data: PurchaseResponse; reloadKey: number; onChange: () => Promise<void> }) {
  const { creds, data } = props;
  const base = `/v1/purchase/${encodeURIComponent(creds.purchaseId)}/refunds`;
  const [items, setItems] = useState<Refund[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [message, setMessage] = useState<{ tone: 'ok' | 'error'; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const [key, setKey] = useState(newIdempotencyKey);
  const accepts = data.checkout_wallet?.accepts ?? [];
  const [choice, setChoice] = useState(0);

  const load = useCallback(async () => {
    try {
      const page = await api<{ items: Refund[] }>(base, { token: creds.key });
      setItems(page.items);
      setError(null);
    } catch (e) {
      setError(errorText(e));
    }
  }, [base, creds.key]);
  useEffect(() => {
    void load();
  }, [load, props.reloadKey]);
  const moving = (items ?? []).some((r) => MOVING.includes(r.status));
  useEffect(() => {
    if (!moving) return;
    const timer = window.setInterval(() => {
      if (document.visibilityState === 'visible') void load();
    }, REFRESH_MOVING_MS);
    return () => window.clearInterval(timer);
  }, [load, moving]);

  const unclaimed = data.unclaimed_usd;
  const deleted = data.purchase.status === 'deleted';
  const available = deleted ? unclaimed : data.purchase.balance_usd;

  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const fields = new FormData(form);
    const amount = String(fields.get('amount_usd') ?? '').trim();
    const to = String(fields.get('to_address') ?? '').trim();
    const token = accepts[choice];
    if (!token) {
      setMessage({ tone: 'error', text: 'This purchase has no payment token to refund in.' });
      return;
    }
    setBusy(true);
    setMessage(null);
    try {
      const refund = await api<Refund>(base, {
        token: creds.key,
        idempotencyKey: key,
        body: {
          amount_usd: amount.toLowerCase() === 'all' || amount === '' ? 'all' : amount,
          chain_id: token.chain_id,
          token: token.token_address,
          to_address: to,
        },
      });
      setMessage({ tone: 'ok', text: `Refund of ${formatUsdCents(refund.amount_usd)} requested: ${STATUS_TEXT[refund.status] ?? refund.status}.` });
      setKey(newIdempotencyKey());
      form.reset();
      await Promise.all([load(), props.onChange()]);
    } catch (err) {
      setMessage({ tone: 'error', text: errorText(err) });
    } finally {
      setBusy(false);
    }
  };

  const cancel = async (id: string) => {
    setBusy(true);
    try {
      await api<Refund>(`${base}/${encodeURIComponent(id)}/cancel`, { token: creds.key, method: 'POST', idempotencyKey: newIdempotencyKey() });
      setMessage({ tone: 'ok', text: 'Refund canceled; the amount is back on your balance.' });
      await Promise.all([load(), props.onChange()]);
    } catch (err) {
      setMessage({ tone: 'error', text: errorText(err) });
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="card" aria-labelledby="refunds-h">
      <h2 id="refunds-h">Refunds</h2>
      {toMicros(unclaimed) > 0n && (
        <Alert tone="warn" title="Unclaimed payment">
          <p>
            <Money field="unclaimed_usd" value={unclaimed} /> reached this purchase after it was deleted. Ask for it back below.
          </p>
        </Alert>
      )}
      <p class="muted small">
        Get unused money back in a stablecoin, to an address you control. The amount leaves your balance at once; the vendor
        approves and pays it. Up to <Money field="refundable_usd" value={available} /> can be refunded
        {deleted ? '' : ' (less what running requests hold); refunding everything closes this purchase once paid'}.
      </p>
      <form class="form-grid" onSubmit={(e) => void submit(e)}>
        <label class="form-field">
          <span>Amount in USD (or "all")</span>
          <input name="amount_usd" inputMode="decimal" placeholder="all" autoComplete="off" />
        </label>
        <label class="form-field">
          <span>Your address (0x…)</span>
          <input name="to_address" required pattern="^0x[0-9a-fA-F]{40}$" autoComplete="off" spellcheck={false} />
        </label>
        {accepts.length > 1 && (
          <label class="form-field">
            <span>Paid in</span>
            <select name="token" value={String(choice)} onChange={(e) => setChoice(Number(e.currentTarget.value))}>
              {accepts.map((t, i) => (
                <option key={`${t.chain_id}:${t.token_address}`} value={String(i)}>
                  {t.token_symbol} on {t.chain}
                </option>
              ))}
            </select>
          </label>
        )}
        <button type="submit" class="btn btn-primary" data-action="request-refund" disabled={busy}>
          Request refund
        </button>
      </form>
      <div aria-live="polite">{message && <Alert tone={message.tone}>{message.text}</Alert>}</div>
      {error && <Alert tone="error">{error}</Alert>}
      {items && items.length > 0 && (
        <div class="table-wrap" tabIndex={0} role="region" aria-label="Your refunds">
          <table data-table="refunds">
            <caption class="sr-only">Your refunds, newest first</caption>
            <thead>
              <tr>
                <th scope="col">Requested</th>
                <th scope="col">Amount</th>
                <th scope="col">To</th>
                <th scope="col">Status</th>
                <th scope="col">Transaction</th>
                <th scope="col">
                  <span class="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {items.map((r) => (
                <tr key={r.refund_id} data-refund-id={r.refund_id}>
                  <td data-label="Requested">
                    <Time field="created_at" value={r.created_at} />
                  </td>
                  <td data-label="Amount">
                    <Money field="amount_usd" value={r.amount_usd} />{' '}
                    <span class="muted small">
                      ({r.token_amount} {r.token_symbol})
                    </span>
                  </td>
                  <td data-label="To">
                    <Field field="to_address" value={r.to_address}>
                      <code>{shortHex(r.to_address)}</code>
                    </Field>
                  </td>
                  <td data-label="Status">
                    <Field field="status" value={r.status}>
                      {STATUS_TEXT[r.status] ?? r.status}
                    </Field>
                    {r.reason && <span class="muted small"> — {r.reason}</span>}
                  </td>
                  <td data-label="Transaction">
                    {r.tx_hash ? (
                      r.explorer_url ? (
                        <a href={r.explorer_url} data-field="tx_hash" data-value={r.tx_hash} rel="noopener noreferrer" target="_blank">
                          {shortHex(r.tx_hash)}
                        </a>
                      ) : (
                        <Field field="tx_hash" value={r.tx_hash}>
                          <code>{shortHex(r.tx_hash)}</code>
                        </Field>
                      )
                    ) : (
                      <span class="muted">—</span>
                    )}
                  </td>
                  <td data-label="Actions">
                    {r.status === 'requested' && (
                      <button type="button" class="btn btn-small" data-action="cancel-refund" disabled={busy} onClick={() => void cancel(r.refund_id)}>
                        Cancel
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
