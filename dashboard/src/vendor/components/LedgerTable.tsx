// A purchase's ledger in the console: the detail's first page, then older pages from the admin
// ledger route. Each entry's kind, amount, balance after and transaction.
import type { Page } from '../../api/handwritten';
import type { LedgerItem } from '../../api/types';
import { Pager, useCursors } from '../../components/Pager';
import { Loading } from '../../components/Section';
import { type Column, Table } from '../../components/Table';
import { Money } from '../../components/ui';
import { Time, TxLink } from '../../components/values';
import { useAdmin, useLoad } from '../hooks';

export const KIND_TEXT: Record<string, string> = {
  credit: 'Deposit',
  deposit: 'Deposit',
  usage: 'Usage',
  usage_estimate: 'Usage (estimate)',
  cost: 'Cloud cost',
  adjustment: 'Adjustment',
  refund: 'Refund',
  refund_reversal: 'Refund credited back',
  reversal: 'Deposit reversed',
  sweep_fee: 'Network fee',
};

const COLUMNS: Column<LedgerItem>[] = [
  { label: 'When', cell: (e) => <Time field="created_at" value={e.created_at} /> },
  {
    label: 'What',
    cell: (e) => (
      <span class={`kind kind-${e.kind}`} data-field="kind" data-value={e.kind}>
        {KIND_TEXT[e.kind] ?? e.kind}
      </span>
    ),
  },
  { label: 'Description', cell: (e) => <span data-field="description">{e.description ?? ''}</span> },
  { label: 'Amount', num: true, cell: (e) => <Money field="amount_usd" value={e.amount_usd} /> },
  { label: 'Balance after', num: true, cell: (e) => <Money field="balance_after_usd" value={e.balance_after_usd} /> },
  { label: 'Transaction', cell: (e) => <TxLink hash={e.tx_hash} url={e.explorer_url} /> },
];

export function LedgerPages(props: { purchaseId: string; first: Page<LedgerItem> }) {
  const admin = useAdmin();
  const cursors = useCursors();
  const older = useLoad(cursors.cursor ? `ledger:${props.purchaseId}:${cursors.cursor}` : null, () =>
    admin.ledger(props.purchaseId, cursors.cursor),
  );
  const page = cursors.cursor ? older.data : props.first;
  return (
    <>
      {page ? (
        <Table
          name="ledger"
          rows={page.items}
          columns={COLUMNS}
          caption="Ledger entries, newest first"
          empty="No ledger entry yet."
          rowKey={(e) => String(e.id)}
          rowAttrs={(e) => ({ 'data-ledger-id': String(e.id), 'data-kind': e.kind })}
        />
      ) : (
        <Loading error={older.error} what="older entries" />
      )}
      <Pager cursors={cursors} next={page?.next_cursor} label="Ledger pages" words="ledger" />
    </>
  );
}
