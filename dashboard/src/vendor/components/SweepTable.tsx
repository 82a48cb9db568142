// Sweeps (the console's Sweeps view and a purchase's page): token, amount, step, transaction (and
// the batch a batched sweep was relayed in) and, per row, what an operator can do (retry a failed
// one, bump or cancel a stuck transaction; for a batched sweep, its whole batch).
import type { ComponentChildren } from 'preact';
import type { SweepRow } from '../../api/types';
import { type Column, Table } from '../../components/Table';
import { Field } from '../../components/ui';
import { Time, TxLink } from '../../components/values';
import { formatNative, formatToken } from '../../lib/units';

export const SWEEP_STATUS_TEXT: Record<string, string> = {
    planned: 'Planned',
  signed: 'Signed',
  broadcast: 'Sent, not mined yet',
  confirmed: 'Done',
  failed: 'Failed',
};

const METHOD_TEXT: Record<string, string> = {
  transfer: 'Transfer (gas topped up first)',
  eip3009: 'Signed authorization (EIP-3009)',
};

const COLUMNS: Column<SweepRow>[] = [
  { label: 'Sweep', cell: (s) => <Field field="id" value={s.id} /> },
  { label: 'Chain', cell: (s) => <Field field="chain" value={s.chain ?? s.chain_id}>{s.chain ?? `chain ${s.chain_id}`}</Field> },
  {
    label: 'Amount',
    num: true,
    cell: (s) => (
      <>
        <Field field="amount_units" value={s.amount_units}>
          {formatToken(s.amount_units, s.token_symbol)}
        </Field>
      </>
    ),
  },
  { label: 'Method', cell: (s) => <Field field="method" value={s.method}>{METHOD_TEXT[s.method] ?? s.method}</Field> },
  {
    label: 'Status',
    cell: (s) => (
      <>
        <Field field="status" value={s.status}>
          {SWEEP_STATUS_TEXT[s.status] ?? s.status}
        </Field>
        {s.fee_wei && (
          <div class="muted small">
            fee <Field field="fee_wei" value={s.fee_wei}>{formatNative(s.fee_wei, s.chain_id)}</Field>
          </div>
        )}
      </>
    ),
  },
  {
    label: 'Transaction',
    cell: (s) => (
      <>
        <TxLink hash={s.tx_hash} url={s.explorer_url} />
        {s.batch_id != null && (
          <div class="muted small">
            in batch <Field field="batch_id" value={s.batch_id}>#{s.batch_id}</Field>
            {s.batch_size != null && (
              <>
                {' '}
                of <Field field="batch_size" value={s.batch_size} /> sweeps
              </>
            )}
            {s.batch_status && (
              <>
                {' '}
                · <Field field="batch_status" value={s.batch_status}>{SWEEP_STATUS_TEXT[s.batch_status] ?? s.batch_status}</Field>
              </>
            )}
            {s.batch_tx_hash && (
              <>
                {' '}
                · <TxLink field="batch_tx_hash" hash={s.batch_tx_hash} url={s.batch_tx_hash === s.tx_hash ? s.explorer_url : null} />
              </>
            )}
          </div>
        )}
      </>
    ),
  },
  { label: 'Attempts', num: true, cell: (s) => <Field field="attempts" value={s.attempts} /> },
  { label: 'Stuck since', cell: (s) => <Time field="stuck_at" value={s.stuck_at} /> },
  { label: 'Last error', cell: (s) => (s.last_error ? <Field field="last_error" value={s.last_error} /> : <span class="muted">—</span>) },
  { label: 'Updated', cell: (s) => <Time field="updated_at" value={s.updated_at} /> },
];

export function SweepTable(props: { rows: SweepRow[]; actions?: (s: SweepRow) => ComponentChildren; empty?: string }) {
  return (
    <Table
      rows={props.rows}
      columns={COLUMNS}
      caption="Sweeps"
      empty={props.empty ?? 'No sweep yet.'}
      rowKey={(s) => String(s.id)}
      rowAttrs={(s) => ({ 'data-sweep-id': String(s.id), 'data-status': s.status })}
      actions={props.actions}
    />
  );
}
