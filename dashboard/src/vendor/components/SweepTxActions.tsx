// Bump / cancel for a sweep whose transaction is signed or broadcast but not mined (SPEC §9 "Chains
// that recover by themselves"): the sweeper carries the request out on its next pass.
import { useState } from 'preact/hooks';
import { errorText, newIdempotencyKey } from '../../lib/api';
import type { SweepRow } from '../../api/types';
import type { Message } from '../../components/Section';
import { useAdmin } from '../hooks';
import { ConfirmButton } from '../../components/Confirm';

/** The bump and cancel buttons of one sweep row (nothing unless the row is `replaceable`). */
export function SweepTxActions(props: { row: SweepRow; onDone: (m: Message) => void }) {
  const { row, onDone } = props;
  const admin = useAdmin();
  const [busy, setBusy] = useState(false);
  // One key per action until it succeeds: a retry after a network error is not a second request.
  const [keys, setKeys] = useState<Record<string, string>>({});
  if (row.replaceable !== true) return null;
  const act = async (action: 'bump' | 'cancel') => {
    const key = keys[action] ?? newIdempotencyKey();
    setKeys({ ...keys, [action]: key });
    setBusy(true);
    try {
      await admin.sweepAction(row.id, action, key);
      const rest = { ...keys };
      delete rest[action];
      setKeys(rest);
      onDone({
        tone: 'ok',
        text: action === 'bump' ? 'Bump requested: the sweeper re-signs it with higher fees within seconds.' : 'Cancel requested: the sweeper replaces it with a 0-value transfer within seconds.',
      });
    } catch (e) {
      onDone({ tone: 'error', text: errorText(e) });
    } finally {
      setBusy(false);
    }
  };
  const stuck = typeof row.stuck_at === 'string';
  return (
    <>
      <button type="button" class={stuck ? 'btn btn-small btn-primary' : 'btn btn-small'} data-action="bump-tx" disabled={busy} title="Re-sign at the same nonce with both fees raised 25 %" onClick={() => void act('bump')}>
        Bump fee
      </button>
      <ConfirmButton
        action="cancel-tx"
        label="Cancel tx"
        danger
        disabled={busy}
        title="Replace with a 0-value transfer at the same nonce"
        confirmLabel="Cancel the transaction"
        question="A 0-value transfer replaces it at the same nonce; the funds stay on the deposit address and the sweep can be retried."
        onConfirm={() => act('cancel')}
      />
    </>
  );
}
