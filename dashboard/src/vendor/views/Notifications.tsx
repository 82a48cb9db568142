// The outbox: emails, webhooks and OfficeX record updates with their attempts; retry one now.
import { useState } from 'preact/hooks';
import { errorText, newIdempotencyKey } from '../../lib/api';
import { Pager } from '../../components/Pager';
import { ActionMessage, Loading, type Message, Section, StatusFilter } from '../../components/Section';
import { NotificationList } from '../components/NotificationList';
import { useAdmin, useList } from '../hooks';
import { routeParam } from '../route';
import { useSession } from '../session';
import { canRetryNotification } from '../../lib/gates';

const STATUSES: [string, string][] = [
  ['', 'Any'],
  ['pending', 'Pending'],
  ['failed', 'Failed'],
  ['delivered', 'Delivered'],
  ['skipped', 'Skipped'],
];

export function Notifications() {
  const admin = useAdmin();
  const [status, setStatus] = useState(() => routeParam(window.location.hash, 'status') || '');
  const list = useList(`notifications?${status}`, (cursor) => admin.notifications(status, cursor));
  const [message, setMessage] = useState<Message | null>(null);
  const role = useSession()?.role;
  const retry = async (id: number) => {
    setMessage(null);
    try {
      await admin.retryNotification(id, newIdempotencyKey());
      setMessage({ tone: 'ok', text: 'Notification queued for another attempt.' });
      list.reload();
    } catch (e) {
      setMessage({ tone: 'error', text: errorText(e) });
    }
  };
  return (
    <>
      <h1>Notifications</h1>
      <p class="muted">Emails, webhooks and OfficeX record updates waiting in the outbox, with their attempts.</p>
      <StatusFilter value={status} onChange={setStatus} options={STATUSES} />
      <ActionMessage message={message} />
      <Section title="Outbox, newest first" id="outbox-h">
        {!list.data ? (
          <Loading error={list.error} what="notifications" />
        ) : (
          <>
            <NotificationList
              rows={list.data.items}
              empty="No notification matches."
              action={(n) =>
                canRetryNotification(n, role) && (
                  <button type="button" class="btn btn-small" data-action="retry-notification" onClick={() => void retry(n.id)}>
                    Retry now
                  </button>
                )
              }
            />
            <Pager cursors={list.cursors} next={list.data.next_cursor} />
          </>
        )}
      </Section>
    </>
  );
}
