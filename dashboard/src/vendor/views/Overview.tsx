// The overview, the vendor's cockpit: what needs attention, money over time, what is held and
// owed, then the counts, gas wallets, RPC endpoints and purchases by status.
import type { AdminOverview } from '../../api/types';
import { Facts } from '../../components/Table';
import { Loading, Section } from '../../components/Section';
import { Field, Money, StatusBadge } from '../../components/ui';
import { Time } from '../../components/values';
import { GasTable } from '../components/GasTable';
import { Holdings } from '../components/Holdings';
import { MoneyOverTime } from '../components/MoneyOverTime';
import { MoneyTable } from '../components/MoneyTable';
import { NeedsAttention } from '../components/NeedsAttention';
import { RpcTable } from '../components/RpcTable';
import { WatcherPasses } from '../components/WatcherPasses';
import { useAdmin, useLoad } from '../hooks';

/** Purchases by status in their lifecycle's order. */
const STATUS_ORDER = ['provisioning', 'active', 'low', 'critical', 'suspended', 'failed', 'deleted'];

function Stat(props: { label: string; field: string; value: number; href?: string }) {
  return (
    <div class="stat">
      <div class="stat-label">{props.href ? <a href={props.href}>{props.label}</a> : props.label}</div>
      <div class="stat-value">
        <Field field={props.field} value={props.value} />
      </div>
    </div>
  );
}

export function Overview() {
  const admin = useAdmin();
  const { data, error } = useLoad<AdminOverview>('overview', admin.overview);
  return (
    <>
      <h1>Overview</h1>
      {!data ? <Loading error={error} what="the overview" /> : <OverviewBody data={data} />}
    </>
  );
}

function OverviewBody(props: { data: AdminOverview }) {
  const o = props.data;
  const imp = o.last_cost_import;
  return (
    <>
      <NeedsAttention overview={o} />
      <MoneyOverTime />
      <Section title="Held and owed" section="holdings">
        <Holdings money={o} gas={o.gas} />
        <p class="muted small">
          As of <Time field="generated_at" value={o.generated_at} />
        </p>
      </Section>
      <div class="stats">
        <Stat label="Purchases" field="purchases_total" value={o.purchases_total} href="#/purchases" />
        <Stat label="Sweeps waiting" field="sweeps_waiting" value={o.sweeps_waiting} href="#/sweeps?status=waiting" />
        <Stat label="Sweeps failed" field="sweeps_failed" value={o.sweeps_failed} href="#/sweeps?status=failed" />
        <Stat label="Notifications pending" field="notifications_pending" value={o.notifications_pending} href="#/notifications?status=pending" />
        <Stat label="Notifications failed" field="notifications_failed" value={o.notifications_failed} href="#/notifications?status=failed" />
      </div>
      <Section title="Money">
        <MoneyTable windows={o.money} />
      </Section>
      <Section title="Gas wallets">
        <GasTable rows={o.gas} />
      </Section>
      <Section title="RPC endpoints">
        <RpcTable chains={o.rpc} />
        <WatcherPasses chains={o.watcher} />
      </Section>
      <Section title="Purchases by status">
        <ul class="status-counts" data-field="purchases_by_status">
          {Object.entries(o.purchases_by_status)
            .sort(([a], [b]) => STATUS_ORDER.indexOf(a) - STATUS_ORDER.indexOf(b))
            .map(([status, n]) => (
            <li key={status}>
              <a href={`#/purchases?status=${encodeURIComponent(status)}`}>
                <StatusBadge status={status} />
              </a>{' '}
              <span data-field={`purchases_by_status.${status}`} data-value={String(n)}>
                {n}
              </span>
            </li>
          ))}
        </ul>
      </Section>
      <Section title="Last cost import">
        {imp ? (
          <Facts
            items={[
              ['Day', <Field field="day" value={imp.day} />],
              ['Status', <Field field="status" value={imp.status} />],
              ['Charged', <Money field="charged_usd" value={imp.charged_usd} />],
              ['Purchases charged', <Field field="purchases_charged" value={imp.purchases_charged} />],
              ['Finished', <Time field="finished_at" value={imp.finished_at} />],
            ]}
          />
        ) : (
          <p class="muted">No cost import has run yet.</p>
        )}
        <p class="small">
          <a href="#/cost-imports">All cost imports</a>
        </p>
      </Section>
    </>
  );
}
