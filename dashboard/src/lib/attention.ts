// "Needs attention" on the overview: each kind of problem with its count and the view where it is
// fixed; only those with something to do. Pure, so tests can feed it any state.

export interface AttentionInput {
  sweepsFailed: number;
  /** Sweeps whose transaction reached the fee cap unmined (`stuck_at`), from the unfinished ones. */
  sweepsStuck: number;
  notificationsFailed: number;
  /** Refunds waiting for an operator (`requested`); `more` when the first page was full. */
  refundsRequested: { count: number; more: boolean };
  /** `reconcile.mismatch` alerts among the recent notifications. */
  reconcileAlerts: number;
  /** RPC endpoints marked down, per chain name. */
  rpcDown: { chain: string; endpoints: number; allDown: boolean }[];
  /** Chains whose gas wallet is low. */
  gasLow: string[];
  purchasesFailed: number;
}

export interface AttentionItem {
  key: string;
  count: number;
  text: string;
  href: string;
  fix: string;
  tone: 'bad' | 'warn';
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

export function attentionItems(a: AttentionInput): AttentionItem[] {
  const items: AttentionItem[] = [];
  const add = (item: AttentionItem) => item.count > 0 && items.push(item);
  add({
    key: 'refunds',
    count: a.refundsRequested.count,
    text: `${a.refundsRequested.more ? `${a.refundsRequested.count}+` : a.refundsRequested.count} ${a.refundsRequested.count === 1 && !a.refundsRequested.more ? 'refund waits' : 'refunds wait'} for approval`,
    href: '#/refunds?status=requested',
    fix: 'Approve or reject',
    tone: 'warn',
  });
  add({ key: 'sweeps-failed', count: a.sweepsFailed, text: `${plural(a.sweepsFailed, 'sweep', 'sweeps')} failed`, href: '#/sweeps?status=failed', fix: 'Retry', tone: 'bad' });
  add({
    key: 'sweeps-stuck',
    count: a.sweepsStuck,
    text: `${plural(a.sweepsStuck, 'transaction is', 'transactions are')} stuck at the fee cap`,
    href: '#/sweeps?status=waiting',
    fix: 'Bump or cancel',
    tone: 'bad',
  });
  add({
    key: 'notifications-failed',
    count: a.notificationsFailed,
    text: `${plural(a.notificationsFailed, 'notification', 'notifications')} failed`,
    href: '#/notifications?status=failed',
    fix: 'Retry',
    tone: 'bad',
  });
  add({
    key: 'reconcile',
    count: a.reconcileAlerts,
    text: `${plural(a.reconcileAlerts, 'deposit address differs', 'deposit addresses differ')} from the chain (recent alerts)`,
    href: '#/chains',
    fix: 'Compare and rescan',
    tone: 'bad',
  });
  for (const r of a.rpcDown) {
    add({
      key: `rpc-${r.chain}`,
      count: r.endpoints,
      text: r.allDown ? `Every RPC endpoint of ${r.chain} is down: its checkouts and sweeps wait` : `${plural(r.endpoints, 'RPC endpoint', 'RPC endpoints')} of ${r.chain} down`,
      href: '#/chains',
      fix: 'Check the endpoints',
      tone: r.allDown ? 'bad' : 'warn',
    });
  }
  add({ key: 'gas', count: a.gasLow.length, text: `Gas is low on ${a.gasLow.join(', ')}: sweeps wait`, href: '#/gas', fix: 'Top up the gas wallet', tone: 'warn' });
  add({
    key: 'purchases-failed',
    count: a.purchasesFailed,
    text: `${plural(a.purchasesFailed, 'purchase', 'purchases')} could not be set up`,
    href: '#/purchases?status=failed',
    fix: 'Retry provisioning or refund',
    tone: 'bad',
  });
  return items;
}
