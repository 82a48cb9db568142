// What an operator can do with one refund (lib/gates.ts `refundButtons`): approve (confirmed
// first), reject with a reason, retry a failed payout, bump or cancel a payout transaction not yet
// mined (stuck at the fee cap, typically), and — when the server has no payout key —
// pay it from the vendor's own wallet with the EIP-681 link and QR code, then mark it paid with the
// transaction (checked on chain).
import { renderSVG } from 'uqr';
import type { AdminRefund } from '../../api/types';
import type { RefundAction } from '../../api/admin';
import { ConfirmButton } from '../../components/Confirm';
import { formatUsdCents } from '../../lib/money';
import { refundButtons } from '../../lib/gates';
import { shortHex } from '../../lib/format';

function PaymentQr(props: { uri: string }) {
  const svg = renderSVG(props.uri, { ecc: 'M', border: 2 });
  const src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svg)}`;
  return <img class="qr" src={src} width={160} height={160} alt="QR code paying this refund from a wallet app" data-field="payment_qr" data-value={props.uri} />;
}

export function RefundActions(props: {
  r: AdminRefund;
  role: string | null | undefined;
  busy: boolean;
  act: (r: AdminRefund, action: RefundAction, body?: Record<string, unknown>) => void;
}) {
  const { r, busy, act } = props;
  const buttons = refundButtons(r.status, props.role, r.payout);
  if (buttons.length === 0) return null;
  const field = (e: Event, name: string) => String(new FormData(e.currentTarget as HTMLFormElement).get(name) ?? '').trim();
  return (
    <>
      {buttons.includes('approve') && (
        <ConfirmButton
          action="approve-refund"
          label="Approve"
          disabled={busy}
          confirmLabel="Approve"
          question={
            <>
              Approve paying {formatUsdCents(r.amount_usd)} ({r.token_amount} {r.token_symbol.toUpperCase()}) to{' '}
              <code>{shortHex(r.to_address)}</code>?
            </>
          }
          onConfirm={() => act(r, 'approve')}
        />
      )}
      {buttons.includes('reject') && (
        <form
          class="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            act(r, 'reject', { reason: field(e, 'reason') });
          }}
        >
          <input name="reason" required maxLength={500} placeholder="Reason" aria-label="Reason for rejecting" />
          <button type="submit" class="btn btn-small btn-danger" data-action="reject-refund" disabled={busy}>
            Reject
          </button>
        </form>
      )}
      {buttons.includes('retry') && (
        <button type="button" class="btn btn-small" data-action="retry-refund" disabled={busy} onClick={() => act(r, 'retry')}>
          Retry
        </button>
      )}
      {buttons.includes('bump') && (
        <button
          type="button"
          class={r.payout?.stuck_at ? 'btn btn-small btn-primary' : 'btn btn-small'}
          data-action="bump-payout"
          disabled={busy}
          title="Re-sign the payout at the same nonce with both fees raised 25 % (past the chain's cap if need be)"
          onClick={() => act(r, 'bump')}
        >
          Bump fee
        </button>
      )}
      {buttons.includes('cancel-payout') && (
        <ConfirmButton
          action="cancel-payout"
          label="Cancel payout"
          danger
          disabled={busy}
          confirmLabel="Cancel the payout"
          question="A 0-value transfer of the payout wallet to itself replaces it at the same nonce; once mined the refund fails with nothing paid, and can be retried."
          onConfirm={() => act(r, 'cancel-payout')}
        />
      )}
      {buttons.includes('mark-paid') && r.payment_uri && (
        <div class="pay-by-hand">
          <PaymentQr uri={r.payment_uri} />
          <a href={r.payment_uri} data-field="payment_uri" data-value={r.payment_uri}>
            Pay from your wallet
          </a>
        </div>
      )}
      {buttons.includes('mark-paid') && (
        <form
          class="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            act(r, 'mark-paid', { tx_hash: field(e, 'tx_hash') });
          }}
        >
          <input name="tx_hash" required pattern="^0x[0-9a-fA-F]{64}$" placeholder="0x… transaction" aria-label="Transaction that paid it" />
          <button type="submit" class="btn btn-small" data-action="mark-paid" disabled={busy}>
            Mark paid
          </button>
        </form>
      )}
    </>
  );
}
