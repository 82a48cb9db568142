// The console's refunds: the list (open ones first by default) and, per row, what the signed-in
// role can do with it (components/RefundActions.tsx). Results show without a reload.
import { useState } from 'preact/hooks';
import { errorText, newIdempotencyKey } from '../../lib/api';
import { shortHex } from '../../lib/format';
import type { RefundAction } from '../../api/admin';
import type { AdminRefund as Refund } from '../../api/types';
import { Pager } from '../../components/Pager';
import { ActionMessage, Loading, type Message, Section, StatusFilter } from '../../components/Section';
import { type Column, Table } from '../../components/Table';
import { Field, Money } from '../../components/ui';
import { Time, TxLink } from '../../components/values';
import { RefundActions } from '../components/RefundActions';
import { RefundPayout } from '../components/RefundPayout';
import { useAdmin, useList } from '../hooks';
import { routeParam } from '../route';
import { useSession } from '../session';

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

const PAYOUT_ACTION_TEXT: Partial<Record<RefundAction, string>> = {
  bump: 'Bump requested: the payout job re-signs it with higher fees within seconds.',
  'cancel-payout': 'Cancel requested: the payout job replaces it with a 0-value transfer within seconds.',
};

const SOURCE_TEXT: Record<string, string> = {
  balance: 'Unused balance',
  unclaimed: 'Payment after deletion',
  checkout: 'Checkout never finished',
};

const STATUSES: [string, string][] = ['open', '', 'requested', 'approved', 'paying', 'paid', 'rejected', 'canceled', 'failed'].map(
  (s) => [s, s ? (REFUND_STATUS_TEXT[s] ?? s) : 'Any'],
);

const COLUMNS: Column<Refund>[] = [
  { label: 'Requested', cell: (r) => <Time field="created_at" value={r.created_at} /> },
  {
    label: 'For',
    cell: (r) => (
      <>
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
          <Field field="source" value={r.source}>
            {SOURCE_TEXT[r.source] ?? r.source}
          </Field>
          {r.closes_purchase ? ' · closes the purchase' : ''}
        </div>
      </>
    ),
  },
  {
    label: 'Amount',
    cell: (r) => (
      <>
        <Money field="amount_usd" value={r.amount_usd} />
        <div class="muted small">
          <Field field="token_amount" value={r.token_amount}>
            {r.token_amount} {r.token_symbol.toUpperCase()}
          </Field>{' '}
          · chain <Field field="chain_id" value={r.chain_id} />
        </div>
      </>
    ),
  },
  {
    label: 'To',
    cell: (r) => (
      <Field field="to_address" value={r.to_address}>
        <code>{r.to_address}</code>
      </Field>
    ),
  },
  {
    label: 'Status',
    cell: (r) => (
      <>
        <Field field="status" value={r.status}>
          {REFUND_STATUS_TEXT[r.status] ?? r.status}
        </Field>
        {r.auto_approved && <div class="muted small">auto-approved</div>}
        {r.reason && <div class="muted small">{r.reason}</div>}
        {r.last_error && <div class="small">{r.last_error}</div>}
        {r.tx_hash && (
          <div>
            <TxLink hash={r.tx_hash} url={r.explorer_url} />
          </div>
        )}
        <RefundPayout r={r} />
      </>
    ),
  },
];

export function Refunds() {
  const admin = useAdmin();
  const role = useSession()?.role;
  const [status, setStatus] = useState(() => routeParam(window.location.hash, 'status') || 'open');
  const list = useList(`refunds?${status}`, (cursor) => admin.refunds(status, cursor));
  const [message, setMessage] = useState<Message | null>(null);
  const [busy, setBusy] = useState<string | null>(null);

  const act = async (r: Refund, action: RefundAction, body: Record<string, unknown> = {}) => {
    setBusy(r.refund_id);
    setMessage(null);
    try {
      const done = await admin.refundAction(r.refund_id, action, body, newIdempotencyKey());
      const requested = PAYOUT_ACTION_TEXT[action];
      setMessage({
        tone: 'ok',
        text: requested ?? `Refund ${shortHex(r.refund_id, 8)}: ${REFUND_STATUS_TEXT[done.status] ?? done.status}.`,
      });
      list.reload();
    } catch (e) {
      setMessage({ tone: 'error', text: errorText(e) });
    } finally {
      setBusy(null);
    }
  };

  return (
    <>
      <h1>Refunds</h1>
      <p class="muted">
        Customers ask for unused balance (or unclaimed payments) back; the amount already left their balance. Approve to pay
        it (from the payout wallet, or from your own wallet with the link), reject to credit it back.
      </p>
      <StatusFilter value={status} onChange={setStatus} options={STATUSES} />
      <ActionMessage message={message} />
      <Section title="Refunds, newest first" id="refunds-h">
        {list.data ? (
          <>
            <Table
              name="refunds"
              rows={list.data.items}
              columns={COLUMNS}
              caption="Refunds"
              empty="No refund matches."
              rowKey={(r) => r.refund_id}
              rowAttrs={(r) => ({ 'data-refund-id': r.refund_id, 'data-status': r.status })}
              actions={(r) => <RefundActions r={r} role={role} busy={busy !== null} act={(...a) => void act(...a)} />}
            />
            <Pager cursors={list.cursors} next={list.data.next_cursor} />
          </>
        ) : (
          <Loading error={list.error} what="refunds" />
        )}
      </Section>
    </>
  );
}
