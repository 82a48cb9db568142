// The overview's "needs attention": counts from the overview, plus the refunds waiting for
// approval, stuck transactions and recent reconcile alerts (one list call each).
import type { AdminOverview } from '../../api/types';
import { type AttentionInput, attentionItems } from '../../lib/attention';
import { Section } from '../../components/Section';
import { useAdmin, useLoad } from '../hooks';

export function NeedsAttention(props: { overview: AdminOverview }) {
  const o = props.overview;
  const admin = useAdmin();
  const refunds = useLoad(`attention:refunds:${o.generated_at}`, () => admin.refunds('requested', '', 100));
  const waiting = useLoad(`attention:sweeps:${o.generated_at}`, () => admin.sweeps('waiting', '', 500));
  const recent = useLoad(`attention:notifications:${o.generated_at}`, () => admin.notifications('', '', 200));
  const weekAgo = Date.now() - 7 * 86_400_000;
  const input: AttentionInput = {
    sweepsFailed: o.sweeps_failed,
    sweepsStuck: (waiting.data?.items ?? []).filter((s) => typeof s.stuck_at === 'string').length,
    notificationsFailed: o.notifications_failed,
    refundsRequested: { count: refunds.data?.items.length ?? 0, more: Boolean(refunds.data?.next_cursor) },
    reconcileAlerts: (recent.data?.items ?? []).filter((n) => n.event_type === 'reconcile.mismatch' && Date.parse(n.created_at) > weekAgo).length,
    rpcDown: Object.entries(o.rpc)
      .map(([chain, h]) => ({ chain, endpoints: h.endpoints.filter((e) => e.state === 'down').length, allDown: h.status === 'down' }))
      .filter((r) => r.endpoints > 0 || r.allDown),
    gasLow: o.gas.filter((g) => g.low).map((g) => g.chain),
    purchasesFailed: o.purchases_by_status.failed ?? 0,
  };
  const items = attentionItems(input);
  const loading = !refunds.data || !waiting.data || !recent.data;
  return (
    <Section title="Needs attention" section="needs-attention">
      {items.length === 0 ? (
        <p class="muted" data-field="attention_empty">
          {loading ? 'Checking…' : 'Nothing needs you right now.'}
        </p>
      ) : (
        <ul class="attention">
          {items.map((i) => (
            <li key={i.key} data-attention={i.key} data-count={String(i.count)}>
              <span class={`badge badge-${i.tone}`}>{i.count}</span> {i.text.replace(/^\d+\+? /, '')} —{' '}
              <a href={i.href}>{i.fix}</a>
            </li>
          ))}
        </ul>
      )}
    </Section>
  );
}
