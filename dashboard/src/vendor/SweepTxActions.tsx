// Bump / cancel for a sweep whose transaction is signed or broadcast but not mined (SPEC §9 "Chains
// that recover by themselves"): the sweeper carries the request out on its next pass.
import { useState } from 'preact/hooks';
import { errorText, newIdempotencyKey } from '../lib/api';
import type { Row } from '../api/handwritten';

type Call = <T>(path: string, opts?: { method?: 'GET' | 'POST' | 'DELETE'; body?: unknown; idempotencyKey?: string }) => Promise<T>;

export type TxActionMessage = { tone: 'ok' | 'error'; text: string };

/** The bump and cancel buttons of one sweep row (nothing unless the row is `replaceable`). */
export function SweepTxActions(props: { row: Row; call: Call; onDone: (m: TxActionMessage) => void }) {
  const { row, call, onDone } = props;
  const [busy, setBusy] = useState(false);
  // One key per action until it succeeds: a retry after a network error is not a second request.
  const [keys, setKeys] = useState<Record<string, string>>({});
  if (row.replaceable !== true) return null;
  const id = encodeURIComponent(String(row.id ?? ''));
  const act = async (action: 'bump' | 'cancel') => {
    if (action === 'cancel' && !window.confirm('Cancel this sweep transaction? A 0-value transfer replaces it at the same nonce; the funds stay on the deposit address and the sweep can be retried.')) {
      return;
    }
    const key = keys[action] ?? newIdempotencyKey();
    setKeys({ ...keys, [action]: key });
    setBusy(true);
    try {
      await call(`/v1/admin/sweeps/${id}/${action}`, { method: 'POST', body: {}, idempotencyKey: key });
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
      <button type="button" class="btn btn-small" data-action="cancel-tx" disabled={busy} title="Replace with a 0-value transfer at the same nonce" onClick={() => void act('cancel')}>
        Cancel tx
      </button>
    </>
  );
}
