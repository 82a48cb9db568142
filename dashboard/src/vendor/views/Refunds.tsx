// The console's refunds: the list (open ones first by default), approve / reject with a reason,
// and, when this server has no payout key, an EIP-681 link and QR code to pay from the vendor's own
// wallet, then mark-paid with the transaction (checked on chain). Failed payouts can be retried.
import { useState } from 'preact/hooks';
import { renderSVG } from 'uqr';
import { errorText, newIdempotencyKey } from '../../lib/api';
import { shortHex } from '../../lib/format';
import { Time } from '../../components/values';
import type { RefundAction } from '../../api/admin';
import type { AdminRefund as Refund } from '../../api/types';
import { Pager } from '../../components/Pager';
import { ActionMessage, type Message } from '../../components/Section';
import { Alert, Field, Money } from '../../components/ui';
import { useAdmin, useList } from '../hooks';

export const REFUND_STATUS_TEXT: Record<string, string> = {
  open: 'Open (requested, approved, paying or failed)',
  requested: 'Waiting for approval',
  approved: 'Approved',
  paying: 'Being paid',
  paid: 'Paid',
  rejected: 'Rejected',
  canceled: 'Canceled by the customer',
  failed: 'Payout failed',
};

const STATUSES = ['open', '', 'requested', 'approved', 'paying', 'paid', 'rejected', 'canceled', 'failed'];

function PaymentQr(props: { uri: string }) {
  const svg = renderSVG(props.uri, { ecc: 'M', border: 2 });
  const src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
  return <img class="qr" src={src} width={160} height={160} alt="QR code paying this refund from a wallet app" data-field="payment_qr" data-value={props.uri} />;
}

export function Refunds() {
  const admin = useAdmin();
  const [status, setStatus] = useState('open');
  const list = useList(`refunds?${status}`, (cursor) => admin.refunds(status, cursor));
  const data = list.data;
  const error = list.error;
  const [message, setMessage] = useState<Message | null>(null);
  const [busy, setBusy] = useState<string | null>(null);

  const act = async (r: Refund, action: RefundAction, body: Record<string, unknown> = {}) => {
    setBusy(r.refund_id);
    setMessage(null);
    try {
      const done = await admin.refundAction(r.refund_id, action, body, newIdempotencyKey());
      setMessage({ tone: 'ok', text: `Refund ${shortHex(r.refund_id, 8)}: ${REFUND_STATUS_TEXT[done.status] ?? done.status}.` });
      list.reload();
    } catch (e) {
      setMessage({ tone: 'error', text: errorText(e) });
    } finally {
      setBusy(null);
    }
  };

  const reject = (r: Refund, e: Event) => {
    e.preventDefault();
    const reason = String(new FormData(e.currentTarget as HTMLFormElement).get('reason') ?? '').trim();
    void act(r, 'reject', { reason });
  };
  const markPaid = (r: Refund, e: Event) => {
    e.preventDefault();
    const tx = String(new FormData(e.currentTarget as HTMLFormElement).get('tx_hash') ?? '').trim();
    void act(r, 'mark-paid', { tx_hash: tx });
  };

  return (
    <>
      <h1>Refunds</h1>
      <p class="muted">
        Customers ask for unused balance (or unclaimed payments) back; the amount already left their balance. Approve to pay
        it (from the payout wallet, or from your own wallet with the link), reject to credit it back.
      </p>
      <label class="form-field card">
        <span>Status</span>
        <select name="status" value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
          {STATUSES.map((o) => (
            <option key={o} value={o}>
              {o ? (REFUND_STATUS_TEXT[o] ?? o) : 'Any'}
            </option>
          ))}
        </select>
      </label>
      <ActionMessage message={message} />
      <section class="card" aria-labelledby="refunds-h">
        <h2 id="refunds-h">Refunds, newest first</h2>
        {error && <Alert tone="error">{error}</Alert>}
        {!data && !error && <p class="muted">Loading refunds…</p>}
        {data && data.items.length === 0 && <p class="muted">No refund matches.</p>}
        {data && data.items.length > 0 && (
          <table data-table="refunds">
            <caption class="sr-only">Refunds</caption>
            <thead>
              <tr>
                <th scope="col">Requested</th>
                <th scope="col">For</th>
                <th scope="col">Amount</th>
                <th scope="col">To</th>
                <th scope="col">Status</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {data.items.map((r) => (
                <tr key={r.refund_id} data-refund-id={r.refund_id} data-status={r.status}>
                  <td>
                    <Time field="created_at" value={r.created_at} />
                  </td>
                  <td>
                    {r.purchase_id ? (
                      <a href={`#/purchases/${encodeURIComponent(r.purchase_id)}`} data-field="purchase_id" data-value={r.purchase_id}>
                        {shortHex(r.purchase_id, 10)}
                      </a>
                    ) : (
                      <Field field="checkout_session_id" value={r.checkout_session_id}>
                        checkout {shortHex(r.checkout_session_id ?? '', 10)}
                      </Field>
                    )}
                    <div class="muted small">
                      <Field field="source" value={r.source} />
                      {r.closes_purchase ? ' · closes the purchase' : ''}
                    </div>
                  </td>
                  <td>
                    <Money field="amount_usd" value={r.amount_usd} />
                    <div class="muted small">
                      <Field field="token_amount" value={r.token_amount} /> {r.token_symbol} · chain {r.chain_id}
                    </div>
                  </td>
                  <td>
                    <Field field="to_address" value={r.to_address}>
                      <code>{r.to_address}</code>
                    </Field>
                  </td>
                  <td>
                    <Field field="status" value={r.status}>
                      {REFUND_STATUS_TEXT[r.status] ?? r.status}
                    </Field>
                    {r.auto_approved && <div class="muted small">auto-approved</div>}
                    {r.reason && <div class="muted small">{r.reason}</div>}
                    {r.last_error && <div class="small">{r.last_error}</div>}
                    {r.tx_hash &&
                      (r.explorer_url ? (
                        <a href={r.explorer_url} data-field="tx_hash" data-value={r.tx_hash} rel="noopener noreferrer" target="_blank">
                          {shortHex(r.tx_hash)}
                        </a>
                      ) : (
                        <Field field="tx_hash" value={r.tx_hash}>
                          <code>{shortHex(r.tx_hash)}</code>
                        </Field>
                      ))}
                  </td>
                  <td>
                    {r.status === 'requested' && (
                      <button type="button" class="btn btn-small btn-primary" data-action="approve-refund" disabled={busy !== null} onClick={() => void act(r, 'approve')}>
                        Approve
                      </button>
                    )}
                    {['requested', 'approved', 'failed'].includes(r.status) && (
                      <form class="inline-form" onSubmit={(e) => reject(r, e)}>
                        <input name="reason" required maxLength={500} placeholder="Reason" aria-label="Reason for rejecting" />
                        <button type="submit" class="btn btn-small btn-danger" data-action="reject-refund" disabled={busy !== null}>
                          Reject
                        </button>
                      </form>
                    )}
                    {r.status === 'failed' && (
                      <button type="button" class="btn btn-small" data-action="retry-refund" disabled={busy !== null} onClick={() => void act(r, 'retry')}>
                        Retry
                      </button>
                    )}
                    {r.payment_uri && (
                      <div class="pay-by-hand">
                        <PaymentQr uri={r.payment_uri} />
                        <a href={r.payment_uri} data-field="payment_uri" data-value={r.payment_uri}>
                          Pay from your wallet
                        </a>
                      </div>
                    )}
                    {['approved', 'failed'].includes(r.status) && (
                      <form class="inline-form" onSubmit={(e) => markPaid(r, e)}>
                        <input name="tx_hash" required pattern="^0x[0-9a-fA-F]{64}$" placeholder="0x… transaction" aria-label="Transaction that paid it" />
                        <button type="submit" class="btn btn-small" data-action="mark-paid" disabled={busy !== null}>
                          Mark paid
                        </button>
                      </form>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
        {data && <Pager cursors={list.cursors} next={data.next_cursor} />}
      </section>
    </>
  );
}
