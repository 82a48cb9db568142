// The deposit watcher per chain, shown on the console's RPC card: when its last full pass read the
// chain (any replica), how far every block was read, and the block ranges it could not read yet.
import type { WatcherStatus } from '../../api/types';
import { Time } from '../../components/values';

export function WatcherPasses(props: { chains: Record<string, WatcherStatus> | undefined }) {
  const rows = Object.entries(props.chains ?? {});
  if (rows.length === 0) return null;
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label="Deposit watcher">
      <table>
        <caption class="sr-only">Deposit watcher: last good pass per chain</caption>
        <thead>
          <tr>
            <th scope="col">Chain</th>
            <th scope="col">Last good pass</th>
            <th scope="col" class="num">
              Read up to block
            </th>
            <th scope="col" class="num">
              Unread ranges
            </th>
            <th scope="col">Mode</th>
          </tr>
        </thead>
        <tbody>
          {rows.map(([chain, w]) => (
            <tr key={chain} data-chain={chain}>
              <td data-label="Chain">{chain}</td>
              <td data-label="Last good pass" data-field="watcher_last_pass">
                {w.last_pass_at ? <Time field="last_pass_at" value={w.last_pass_at} /> : <span class="badge badge-bad">No pass yet</span>}
              </td>
              <td class="num" data-label="Read up to block">
                {w.scanned_to ?? '—'}
              </td>
              <td class="num" data-label="Unread ranges">
                {w.gaps > 0 ? <span class="badge badge-bad">{w.gaps}</span> : 0}
              </td>
              <td data-label="Mode">{w.mode === 'addresses' ? 'address filters' : 'all transfers'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
