// The history: the purchase's ledger, newest first, page by page.
import { useEffect, useState } from 'preact/hooks';
import { ApiError, errorText } from '../../lib/api';
import { shortHex } from '../../lib/format';
import { Time } from '../../components/values';
import { toMicros } from '../../lib/money';
import * as customer from '../../api/customer';
import type { Page } from '../../api/handwritten';
import type { LedgerItem } from '../../api/types';
import { Alert, Money } from '../../components/ui';
import { Pager, useCursors } from '../../components/Pager';
import type { Credentials } from '../credentials';

const KIND_TEXT: Record<string, string> = {
  credit: 'Deposit',
  deposit: 'Deposit',
  usage: 'Usage',
  cost: 'Cloud cost',
  adjustment: 'Adjustment',
  refund: 'Refund',
  sweep_fee: 'Network fee',
};

export function LedgerCard(props: { creds: Credentials; reloadKey: number }) {
  const cursors = useCursors();
  const [page, setPage] = useState<Page<LedgerItem> | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [missing, setMissing] = useState(false);
  const cursor = cursors.cursor;

  useEffect(() => {
    customer
      .ledger(props.creds, cursor || null)
      .then((p) => {
        setPage(p);
        setError(null);
      })
      .catch((e: unknown) => {
        if (e instanceof ApiError && e.status === 404 && e.code === 'not_found') setMissing(true);
        else setError(errorText(e));
      });
  }, [props.creds, cursor, props.reloadKey]);

  return (
    <section class="card" aria-labelledby="ledger-h">
      <h2 id="ledger-h">History</h2>
      {missing && <p class="muted">This server does not show the history yet.</p>}
      {error && <Alert tone="error">{error}</Alert>}
      {page && (
        <>
          {page.items.length === 0 ? (
            <p class="muted">No entries yet.</p>
          ) : (
            <div class="table-wrap" tabIndex={0} role="region" aria-label="Ledger entries">
              <table data-table="ledger">
                <caption class="sr-only">Ledger entries, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">When</th>
                    <th scope="col">What</th>
                    <th scope="col" class="num">
                      Amount
                    </th>
                    <th scope="col" class="num">
                      Balance after
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {page.items.map((e) => (
                    <tr key={String(e.id)} data-ledger-id={String(e.id)} data-kind={e.kind}>
                      <td data-label="When">
                        <Time field="created_at" value={e.created_at} />
                      </td>
                      <td data-label="What">
                        <span class={`kind kind-${e.kind}`} data-field="kind" data-value={e.kind}>
                          {KIND_TEXT[e.kind] ?? e.kind}
                        </span>{' '}
                        <span data-field="description">{e.description ?? ''}</span>
                        {e.tx_hash && (
                          <>
                            {' '}
                            {e.explorer_url ? (
                              <a href={e.explorer_url} rel="noreferrer" target="_blank" data-field="tx_hash" data-value={e.tx_hash}>
                                tx {shortHex(e.tx_hash)}
                                <span class="sr-only"> (opens the block explorer in a new tab)</span>
                              </a>
                            ) : (
                              <code data-field="tx_hash" data-value={e.tx_hash} title={e.tx_hash}>
                                tx {shortHex(e.tx_hash)}
                              </code>
                            )}
                          </>
                        )}
                      </td>
                      <td class="num" data-label="Amount">
                        <Money field="amount_usd" value={e.amount_usd} class={toMicros(e.amount_usd) < 0n ? 'negative' : 'positive'} />
                      </td>
                      <td class="num" data-label="Balance after">
                        <Money field="balance_after_usd" value={e.balance_after_usd} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <Pager cursors={cursors} next={page.next_cursor} label="History pages" words="ledger" />
        </>
      )}
    </section>
  );
}
