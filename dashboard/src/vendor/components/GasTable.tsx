// The gas wallet of each chain: its balance, whether it is low, and what that means for sweeps.
import type { GasBalance } from '../../api/types';
import { runwayText } from './Holdings';
import { type Column, Table } from '../../components/Table';
import { Field } from '../../components/ui';
import { Hex, Time } from '../../components/values';
import { formatNative } from '../../lib/units';

/** The exact balance in wei (the API's `balance_wei`), '' when it could not be read. */
function gasWei(g: GasBalance): string {
  return g.balance_wei ?? '';
}

type Row = GasBalance;

const COLUMNS: Column<Row>[] = [
  {
    label: 'Chain',
    cell: (g) => (
      <span>
        {g.chain ?? 'chain'} (<Field field="chain_id" value={g.chain_id} />)
      </span>
    ),
  },
  { label: 'Wallet', cell: (g) => <Hex field="address" value={g.address} /> },
  {
    label: 'Balance',
    num: true,
    cell: (g) => (
      <span data-field="gas_balance" data-chain-id={String(g.chain_id)} data-value={gasWei(g)} title={g.balance_wei ? `${g.balance_wei} wei` : undefined}>
        {gasWei(g) ? formatNative(gasWei(g), g.chain_id) : '—'}
      </span>
    ),
  },
  {
    label: 'State',
    cell: (g) => (
      <>
        {g.low ? <span class="badge badge-bad">Low gas</span> : <span class="badge badge-ok">OK</span>}
        {g.low_since && (
          <div class="small">
            <span class="muted">Low since</span> <Time field="low_since" value={g.low_since} />
          </div>
        )}
        {'gas_runway_days' in g && (
          <div class="small">
            <span class="muted">Lasts:</span>{' '}
            <Field field="gas_runway_days" value={g.gas_runway_days ?? ''}>
              {runwayText(g.gas_runway_days)}
            </Field>
          </div>
        )}
        <div class="small">
          <span class="muted">Sweeps waiting for gas:</span> <Field field="sweeps_waiting" value={g.sweeps_waiting} />
        </div>
        {g.sweeps_covered && (
          <div class="small">
            <span class="muted">Sweeps the balance covers:</span> <Field field="sweeps_covered" value={g.sweeps_covered} />
          </div>
        )}
        {g.sweep_cost_wei && (
          <div class="small">
            <span class="muted">Cost of one sweep:</span>{' '}
            <Field field="sweep_cost_wei" value={g.sweep_cost_wei}>
              {formatNative(g.sweep_cost_wei, g.chain_id)}
            </Field>
          </div>
        )}
        {g.error && (
          <div class="small">
            <span class="muted">Could not read the balance:</span> <Field field="error" value={g.error} />
          </div>
        )}
      </>
    ),
  },
];

export function GasTable(props: { rows: Row[] }) {
  if (props.rows.length === 0) return <p class="muted">No chain is configured.</p>;
  return (
    <Table
      rows={props.rows}
      columns={COLUMNS}
      caption="Gas wallet balance per chain"
      rowKey={(g) => String(g.chain_id)}
      rowAttrs={(g) => ({ 'data-chain-id': String(g.chain_id) })}
    />
  );
}
