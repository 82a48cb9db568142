// Payments to the deposit address that are not in the balance yet, with their confirmations.
import { shortHex } from '../../lib/format';
import type { AcceptedToken, Incoming } from '../../api/types';
import { Money } from '../../components/ui';

export function PendingDeposits(props: { deposits: Incoming[]; accepts: AcceptedToken[] }) {
  const { deposits } = props;
  const chainName = (id: number) => props.accepts.find((t) => t.chain_id === id)?.chain ?? `chain ${id}`;
  return (
    <div class="pending" data-section="pending-deposits" data-count={String(deposits.length)}>
      <h3 id="pending-h">Payments on their way</h3>
      {deposits.length === 0 ? (
        <p class="muted small" data-field="pending_empty">
          None right now. A payment shows up here once it is in a block, then counts its confirmations.
        </p>
      ) : (
        <ul class="pending-list" aria-labelledby="pending-h">
          {deposits.map((d) => {
            const have = d.confirmations ?? null;
            const need = d.required_confirmations;
            const shown = have === null ? 0 : Math.min(have, need);
            return (
              <li key={d.tx_hash} class="pending-item" data-tx-hash={d.tx_hash} data-status={d.status}>
                <div class="pending-main">
                  <strong>
                    <Money field="amount_usd" value={d.amount_usd} />
                  </strong>{' '}
                  <span data-field="token_symbol" data-value={d.token_symbol}>
                    {d.token_symbol.toUpperCase()}
                  </span>{' '}
                  on{' '}
                  <span data-field="chain_id" data-value={String(d.chain_id)}>
                    {chainName(d.chain_id)}
                  </span>
                  <span class={`badge ${d.status === 'confirmed' ? 'badge-ok' : 'badge-info'}`} data-field="status" data-value={d.status}>
                    {d.status === 'confirmed' ? 'Confirmed, being credited' : 'Waiting for confirmations'}
                  </span>
                </div>
                <div class="pending-confs">
                  <progress max={need || 1} value={need ? shown : 1} aria-label={`Confirmations of the ${d.token_symbol.toUpperCase()} payment`} />
                  <span>
                    {have === null ? (
                      <span data-field="confirmations" data-value="">
                        ? (the chain's node did not answer)
                      </span>
                    ) : (
                      <span data-field="confirmations" data-value={String(have)}>
                        {have}
                      </span>
                    )}{' '}
                    of{' '}
                    <span data-field="required_confirmations" data-value={String(need)}>
                      {need}
                    </span>{' '}
                    confirmations
                  </span>
                </div>
                <div class="small">
                  {d.explorer_url ? (
                    <a href={d.explorer_url} rel="noreferrer" target="_blank" data-field="tx_hash" data-value={d.tx_hash}>
                      tx {shortHex(d.tx_hash)}
                      <span class="sr-only"> (opens the block explorer in a new tab)</span>
                    </a>
                  ) : (
                    <code data-field="tx_hash" data-value={d.tx_hash} title={d.tx_hash}>
                      tx {shortHex(d.tx_hash)}
                    </code>
                  )}
                </div>
              </li>
            );
          })}
        </ul>
      )}
    </div>
  );
}
