// Audit records: who did what to which target, when, and why.
import type { AuditRecord } from '../../api/types';
import { type Column, Table } from '../../components/Table';
import { Field } from '../../components/ui';
import { Json, Time } from '../../components/values';
import { AUDIT_ACTION_TEXT, label } from '../../lib/labels';

const COLUMNS: Column<AuditRecord>[] = [
  { label: 'When', cell: (a) => <Time field="created_at" value={a.created_at} /> },
  {
    label: 'By',
    cell: (a) => (
      <>
        <Field field="operator_name" value={a.operator_name}>
          {a.operator_name === 'admin-token' ? 'the admin token' : a.operator_name}
        </Field>
        {a.actor !== 'admin' && (
          <span class="muted small">
            {' '}
            (<Field field="actor" value={a.actor}>{a.actor === 'cli' ? 'command line' : a.actor}</Field>)
          </span>
        )}
      </>
    ),
  },
  { label: 'Action', cell: (a) => <Field field="action" value={a.action}>{label(AUDIT_ACTION_TEXT, a.action)}</Field> },
  {
    label: 'Target',
    cell: (a) =>
      a.target_type === 'purchase' ? (
        <a href={`#/purchases/${encodeURIComponent(a.target_id)}`} data-field="target_id" data-value={a.target_id}>
          {a.target_id}
        </a>
      ) : (
        <>
          <Field field="target_type" value={a.target_type} /> <Field field="target_id" value={a.target_id} />
        </>
      ),
  },
  { label: 'Reason', cell: (a) => (a.reason ? <Field field="reason" value={a.reason} /> : <span class="muted">—</span>) },
  { label: 'From', cell: (a) => (a.client_ip ? <Field field="client_ip" value={a.client_ip} /> : <span class="muted">—</span>) },
  { label: 'Details', cell: (a) => <Json field="details" value={a.details} /> },
];

export function AuditTable(props: { rows: AuditRecord[]; empty?: string }) {
  return (
    <Table
      name="audit"
      rows={props.rows}
      columns={COLUMNS}
      caption="Admin actions, newest first"
      empty={props.empty ?? 'No admin action yet.'}
      rowKey={(a) => String(a.id)}
      rowAttrs={(a) => ({ 'data-audit-id': String(a.id), 'data-operator-name': a.operator_name })}
    />
  );
}
