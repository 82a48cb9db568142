import { describe, expect, it } from 'vitest';
import { type AttentionInput, attentionItems } from './attention';

const calm: AttentionInput = {
  sweepsFailed: 0,
  sweepsStuck: 0,
  notificationsFailed: 0,
  refundsRequested: { count: 0, more: false },
  reconcileAlerts: 0,
  rpcDown: [],
  gasLow: [],
  purchasesFailed: 0,
};

describe('needs attention', () => {
  it('lists nothing when nothing needs doing', () => {
    expect(attentionItems(calm)).toEqual([]);
  });

  it('lists each problem with the view where it is fixed', () => {
    const items = attentionItems({
      sweepsFailed: 2,
      sweepsStuck: 1,
      notificationsFailed: 3,
      refundsRequested: { count: 100, more: true },
      reconcileAlerts: 1,
      rpcDown: [{ chain: 'base', endpoints: 2, allDown: true }],
      gasLow: ['base'],
      purchasesFailed: 1,
    });
    expect(items.map((i) => [i.key, i.href])).toEqual([
      ['refunds', '#/refunds?status=requested'],
      ['sweeps-failed', '#/sweeps?status=failed'],
      ['sweeps-stuck', '#/sweeps?status=waiting'],
      ['notifications-failed', '#/notifications?status=failed'],
      ['reconcile', '#/chains'],
      ['rpc-base', '#/chains'],
      ['gas', '#/gas'],
      ['purchases-failed', '#/purchases?status=failed'],
    ]);
    expect(items[0]?.text).toBe('100+ refunds wait for approval');
    expect(items[2]?.text).toBe('1 transaction is stuck at the fee cap');
    expect(items[5]?.text).toMatch(/Every RPC endpoint of base is down/);
  });

  it('says one refund in the singular', () => {
    expect(attentionItems({ ...calm, refundsRequested: { count: 1, more: false } })[0]?.text).toBe('1 refund waits for approval');
  });
});
