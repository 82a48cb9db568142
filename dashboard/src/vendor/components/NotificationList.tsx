// Notifications in the outbox (emails, webhooks, OfficeX record updates) with their attempts; a
// retry button on the ones that can be retried.
import type { ComponentChildren } from 'preact';
import type { NotificationRow } from '../../api/types';
import { type Column, Facts, Table } from '../../components/Table';
import { Field } from '../../components/ui';
import { Time } from '../../components/values';
import { NOTIFICATION_STATUS_TEXT, label } from '../../lib/labels';

const CHANNEL_TEXT: Record<string, string> = { email: 'Email', webhook: 'Webhook', officex: 'OfficeX record' };

export function NotificationList(props: { rows: NotificationRow[]; action?: (n: NotificationRow) => ComponentChildren; empty?: string }) {
  if (props.rows.length === 0) return <p class="muted">{props.empty ?? 'No notification yet.'}</p>;
  return (
    <ul class="plain-list">
      {props.rows.map((n) => (
        <li key={n.id} class="card" data-notification-id={String(n.id)} data-status={n.status}>
          <Facts
            items={[
              ['Event', <Field field="event_type" value={n.event_type} />],
              ['Channel', <Field field="channel" value={n.channel}>{CHANNEL_TEXT[n.channel] ?? n.channel}</Field>],
              ['Status', <Field field="status" value={n.status}>{label(NOTIFICATION_STATUS_TEXT, n.status)}</Field>],
              ['Attempts', <Field field="attempt_count" value={n.attempt_count} />],
              [
                'Purchase',
                n.purchase_id ? (
                  <a href={`#/purchases/${encodeURIComponent(n.purchase_id)}`} data-field="purchase_id" data-value={n.purchase_id}>
                    {n.purchase_id}
                  </a>
                ) : (
                  <span class="muted">—</span>
                ),
              ],
              ['Created', <Time field="created_at" value={n.created_at} />],
              [n.delivered_at ? 'Delivered' : 'Next attempt', n.delivered_at ? <Time field="delivered_at" value={n.delivered_at} /> : <Time field="next_attempt_at" value={n.next_attempt_at} />],
            ]}
          />
          {n.last_error && (
            <p>
              <strong>Last error:</strong> <Field field="last_error" value={n.last_error} />
            </p>
          )}
          <details>
            <summary>Payload</summary>
            <pre tabIndex={0}>
              <code data-field="payload">{JSON.stringify(n.payload, null, 2)}</code>
            </pre>
          </details>
          {props.action && <div class="actions-row">{props.action(n)}</div>}
        </li>
      ))}
    </ul>
  );
}

const TABLE_COLUMNS: Column<NotificationRow>[] = [
  { label: 'Event', cell: (n) => <Field field="event_type" value={n.event_type} /> },
  { label: 'Channel', cell: (n) => <Field field="channel" value={n.channel}>{CHANNEL_TEXT[n.channel] ?? n.channel}</Field> },
  { label: 'Status', cell: (n) => <Field field="status" value={n.status}>{label(NOTIFICATION_STATUS_TEXT, n.status)}</Field> },
  { label: 'Attempts', num: true, cell: (n) => <Field field="attempt_count" value={n.attempt_count} /> },
  { label: 'Created', cell: (n) => <Time field="created_at" value={n.created_at} /> },
  { label: 'Last error', cell: (n) => (n.last_error ? <Field field="last_error" value={n.last_error} /> : <span class="muted">—</span>) },
];

/** The same, one line each (a purchase's page); the outbox view has the payloads and retries. */
export function NotificationTable(props: { rows: NotificationRow[] }) {
  return (
    <Table
      rows={props.rows}
      columns={TABLE_COLUMNS}
      caption="Notifications"
      empty="No notification yet."
      rowKey={(n) => String(n.id)}
      rowAttrs={(n) => ({ 'data-notification-id': String(n.id), 'data-status': n.status })}
    />
  );
}
