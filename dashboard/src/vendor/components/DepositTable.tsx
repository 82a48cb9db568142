// A purchase's deposits as the watcher recorded them.
import type { DepositRow } from '../../api/types';
import { type Column, Table } from '../../components/Table';
import { Field, Money } from '../../components/ui';
import { Hex, Time, TxLink } from '../../components/values';
import { DEPOSIT_STATUS_TEXT, label } from '../../lib/labels';

const COLUMNS: Column<DepositRow>[] = [
  { label: 'Seen', cell: (d) => <Time field="created_at" value={d.created_at} /> },
  { label: 'Amount', num: true, cell: (d) => <Money field="amount_usd" value={d.amount_usd} /> },
  { label: 'Token', cell: (d) => <Field field="token_symbol" value={d.token_symbol}>{d.token_symbol.toUpperCase()}</Field> },
  { label: 'Chain', cell: (d) => <Field field="chain_id" value={d.chain_id} /> },
  { label: 'From', cell: (d) => <Hex field="from_address" value={d.from_address} /> },
  { label: 'Status', cell: (d) => <Field field="status" value={d.status}>{label(DEPOSIT_STATUS_TEXT, d.status)}</Field> },
  { label: 'Credited', cell: (d) => <Time field="credited_at" value={d.credited_at} /> },
  { label: 'Transaction', cell: (d) => <TxLink hash={d.tx_hash} url={d.explorer_url} /> },
];

export function DepositTable(props: { rows: DepositRow[] }) {
  return (
    <Table
      rows={props.rows}
      columns={COLUMNS}
      caption="Deposits"
      empty="No deposit yet."
      rowKey={(d) => String(d.id)}
      rowAttrs={(d) => ({ 'data-deposit-id': String(d.id) })}
    />
  );
}
