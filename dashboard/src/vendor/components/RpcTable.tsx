// Each chain's JSON-RPC endpoints: state, calls and the last error (never a URL: the server shows
// only host:port). A chain with every endpoint down holds its checkouts and sweeps.
import type { ChainHealth, EndpointReport } from '../../api/types';
import { type Column, Table } from '../../components/Table';
import { Time } from '../../components/values';

/** `reason`/`chain_id`: an endpoint answering another chain id is marked down and never used. */
type Row = EndpointReport & { chain: string; chainStatus: string };

const COLUMNS: Column<Row>[] = [
  {
    label: 'Chain',
    cell: (r) => (
      <>
        {r.chain}
        {r.chainStatus === 'down' && <span class="badge badge-bad">All endpoints down</span>}
      </>
    ),
  },
  { label: 'Endpoint', cell: (r) => <code>{r.endpoint}</code> },
  {
    label: 'State',
    cell: (r) => (
      <span
        data-field="rpc_state"
        data-value={r.state}
        class={`badge ${r.state === 'up' ? 'badge-ok' : r.state === 'down' ? 'badge-bad' : ''}`}
      >
        {r.state === 'up' ? 'Up' : r.state === 'down' ? 'Down' : 'Not called yet'}
      </span>
    ),
  },
  {
    label: 'Why',
    cell: (r) =>
      r.reason === 'chain_id_mismatch' ? (
        <span class="badge badge-bad" data-field="rpc_reason" data-value={r.reason}>
          Wrong chain{r.chain_id != null ? ` (id ${r.chain_id})` : ''}: not used
        </span>
      ) : r.reason ? (
        <span data-field="rpc_reason" data-value={r.reason}>
          {r.reason.replace(/_/g, ' ')}
        </span>
      ) : (
        <span class="muted">—</span>
      ),
  },
  { label: 'Calls', num: true, cell: (r) => r.requests },
  { label: 'Errors', num: true, cell: (r) => r.errors },
  {
    label: 'Last error',
    cell: (r) =>
      r.last_error ? (
        <span class="small">
          {r.last_error}
          {r.last_error_at && (
            <span class="muted">
              {' '}
              (<Time field="last_error_at" value={r.last_error_at} />)
            </span>
          )}
        </span>
      ) : (
        <span class="muted">—</span>
      ),
  },
];

export function RpcTable(props: { chains: Record<string, ChainHealth> }) {
  const rows: Row[] = Object.entries(props.chains).flatMap(([chain, health]) =>
    health.endpoints.map((e) => ({ chain, chainStatus: health.status, ...e })),
  );
  if (rows.length === 0) return <p class="muted">No chain is configured.</p>;
  return (
    <Table
      rows={rows}
      columns={COLUMNS}
      caption="JSON-RPC endpoints per chain"
      rowKey={(r) => `${r.chain}#${r.index}`}
      rowAttrs={(r) => ({ 'data-chain': r.chain, 'data-endpoint': r.endpoint })}
    />
  );
}
