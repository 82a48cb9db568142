// Sweeps: each detected deposit swept to the treasury. Retry a failed one; bump or cancel a
// transaction that is not being mined.
import { useState } from 'preact/hooks';
import { errorText, newIdempotencyKey } from '../../lib/api';
import { Pager } from '../../components/Pager';
import { ActionMessage, Loading, type Message, Section, StatusFilter } from '../../components/Section';
import { SweepTable } from '../components/SweepTable';
import { SweepTxActions } from '../components/SweepTxActions';
import { useAdmin, useList } from '../hooks';
import { routeParam } from '../route';
import { useSession } from '../session';
import { sweepButtons } from '../../lib/gates';

const STATUSES: [string, string][] = [
  ['', 'Any'],
  ['waiting', 'Waiting'],
  ['planned', 'Planned'],
  ['signed', 'Signed'],
  ['broadcast', 'Broadcast'],
  ['confirmed', 'Confirmed'],
  ['failed', 'Failed'],
];

export function Sweeps() {
  const admin = useAdmin();
  const [status, setStatus] = useState(() => routeParam(window.location.hash, 'status') || '');
  const list = useList(`sweeps?${status}`, (cursor) => admin.sweeps(status, cursor));
  const [message, setMessage] = useState<Message | null>(null);
  const role = useSession()?.role;
  const retry = async (id: number) => {
    setMessage(null);
    try {
      await admin.sweepAction(id, 'retry', newIdempotencyKey());
      setMessage({ tone: 'ok', text: 'Sweep queued for another attempt.' });
      list.reload();
    } catch (e) {
      setMessage({ tone: 'error', text: errorText(e) });
    }
  };
  return (
    <>
      <h1>Sweeps</h1>
      <p class="muted">Each detected deposit is swept to the treasury. A failed sweep can be retried; low gas makes sweeps wait.</p>
      <StatusFilter value={status} onChange={setStatus} options={STATUSES} />
      <ActionMessage message={message} />
      <Section title="Sweeps, newest first" id="sweeps-h">
        {list.data ? (
          <>
            <SweepTable
              rows={list.data.items}
              empty="No sweep matches."
              actions={(r) => {
                const buttons = sweepButtons(r, role);
                if (buttons.includes('retry')) {
                  return (
                    <button type="button" class="btn btn-small" data-action="retry-sweep" onClick={() => void retry(r.id)}>
                      Retry
                    </button>
                  );
                }
                if (buttons.includes('bump')) {
                  return (
                    <SweepTxActions
                      row={r}
                      onDone={(m) => {
                        setMessage(m);
                        list.reload();
                      }}
                    />
                  );
                }
                return null;
              }}
            />
            <Pager cursors={list.cursors} next={list.data.next_cursor} />
          </>
        ) : (
          <Loading error={list.error} what="sweeps" />
        )}
      </Section>
    </>
  );
}
