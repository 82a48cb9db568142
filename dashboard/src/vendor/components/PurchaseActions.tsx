// A purchase's actions: adjust the balance (signed USD amount and a reason), suspend, resume, and
// delete (the purchase id typed in full to confirm). Each sends its own Idempotency-Key.
import { useState } from 'preact/hooks';
import { errorText } from '../../lib/api';
import { formatUsdCents } from '../../lib/money';
import type { StatusAction } from '../../api/admin';
import { type Message, Section } from '../../components/Section';
import { useActionKey, useAdmin } from '../hooks';
import type { PurchaseButton } from '../../lib/gates';

const DONE_TEXT: Record<'adjust' | StatusAction, string> = {
  adjust: 'Adjustment done.',
  suspend: 'Suspended.',
  resume: 'Resumed.',
  delete: 'Deleted.',
};

export function PurchaseActions(props: { id: string; buttons: PurchaseButton[]; onDone: (m: Message, changed: boolean) => void }) {
  const { id, onDone, buttons } = props;
  const admin = useAdmin();
  const [busy, setBusy] = useState<string | null>(null);
  const [adjustKey, nextAdjustKey] = useActionKey();
  const [statusKey, nextStatusKey] = useActionKey();
  const [confirmText, setConfirmText] = useState('');
  const [reason, setReason] = useState('');

  const run = async (action: 'adjust' | StatusAction, send: () => Promise<{ balance_usd?: string }>, done: () => void) => {
    setBusy(action);
    try {
      const res = await send();
      done();
      const balance = typeof res?.balance_usd === 'string' ? ` Balance now ${formatUsdCents(res.balance_usd)}.` : '';
      onDone({ tone: 'ok', text: `${DONE_TEXT[action]}${balance}` }, true);
    } catch (e) {
      onDone({ tone: 'error', text: errorText(e) }, false);
    } finally {
      setBusy(null);
    }
  };

  const adjust = (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const f = new FormData(form);
    const amount = String(f.get('amount_usd') ?? '').trim();
    const why = String(f.get('reason') ?? '').trim();
    if (!/^[+-]?\d+(\.\d{1,6})?$/.test(amount) || /^[+-]?0+(\.0+)?$/.test(amount)) {
      onDone({ tone: 'error', text: 'Amount: a signed USD amount with up to 6 decimals, e.g. 5 or -2.50.' }, false);
      return;
    }
    if (!why) {
      onDone({ tone: 'error', text: 'A reason is required (it is written to the ledger and the audit log).' }, false);
      return;
    }
    void run('adjust', () => admin.adjust(id, amount.replace(/^\+/, ''), why, adjustKey), () => {
      nextAdjustKey();
      form.reset();
    });
  };
  const statusAction = (action: StatusAction) => {
    const body: Record<string, string> = reason.trim() ? { reason: reason.trim() } : {};
    if (action === 'delete') body.confirm = confirmText.trim();
    void run(action, () => admin.statusAction(id, action, body, statusKey), () => {
      nextStatusKey();
      setConfirmText('');
    });
  };

  const canStatus = buttons.includes('suspend');
  const canDelete = buttons.includes('delete');
  if (!buttons.includes('adjust') && !canStatus && !canDelete) return null;
  return (
    <div class="grid">
      {buttons.includes('adjust') && <Section title="Adjust the balance">
        <form onSubmit={adjust} class="form-grid">
          <label class="form-field">
            <span>Amount (USD, negative to debit)</span>
            <input type="text" name="amount_usd" inputMode="decimal" placeholder="e.g. 5 or -2.50" required />
          </label>
          <label class="form-field">
            <span>Reason</span>
            <input type="text" name="reason" placeholder="Shown in the ledger and the audit log" required />
          </label>
          <div>
            <button type="submit" class="btn btn-primary" data-action="adjust" disabled={busy !== null}>
              {busy === 'adjust' ? 'Adjusting…' : 'Adjust'}
            </button>
          </div>
        </form>
      </Section>}
      {(canStatus || canDelete) && <Section title="Status">
        {canStatus && <>
        <label class="form-field">
          <span>Reason (optional)</span>
          <input type="text" name="status_reason" placeholder="For the audit log" value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
        </label>
        <div class="actions-row">
          <button type="button" class="btn" data-action="suspend" disabled={busy !== null} onClick={() => statusAction('suspend')}>
            Suspend
          </button>
          <button type="button" class="btn" data-action="resume" disabled={busy !== null} onClick={() => statusAction('resume')}>
            Resume
          </button>
        </div>
        </>}
        {canDelete && <>
        <h3>Delete</h3>
        <p class="small muted">Deletes the resource and its data now (bucket, keys / gateway key). Type the purchase id to confirm.</p>
        <label class="form-field">
          <span>Type {id} to confirm</span>
          <input type="text" name="confirm" value={confirmText} onInput={(e) => setConfirmText(e.currentTarget.value)} autoComplete="off" />
        </label>
        <div class="actions-row">
          <button
            type="button"
            class="btn btn-danger"
            data-action="delete"
            disabled={busy !== null || confirmText.trim() !== id}
            onClick={() => statusAction('delete')}
          >
            Delete
          </button>
        </div>
        </>}
      </Section>}
    </div>
  );
}
