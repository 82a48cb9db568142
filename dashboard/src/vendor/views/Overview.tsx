// The overview: counts that need a look, money in and billed, gas wallets, RPC endpoints and the
// deposit watcher, purchases by status and the last cost import.
import type { AdminOverview } from '../../api/types';
import { Facts } from '../../components/Table';
import { Loading, Section } from '../../components/Section';
import { Field, Money, StatusBadge } from '../../components/ui';
import { Time } from '../../components/values';
import { GasTable } from '../components/GasTable';
import { MoneyTable } from '../components/MoneyTable';
import { RpcTable } from '../components/RpcTable';
import { WatcherPasses } from '../components/WatcherPasses';
import { useAdmin, useLoad } from '../hooks';

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
      <div class="stats">
        <Stat label="Purchases" field="purchases_total" value={o.purchases_total} href="#/purchases" />
        <Stat label="Sweeps waiting" field="sweeps_waiting" value={o.sweeps_waiting} href="#/sweeps" />
        <Stat label="Sweeps failed" field="sweeps_failed" value={o.sweeps_failed} href="#/sweeps" />
        <Stat label="Notifications pending" field="notifications_pending" value={o.notifications_pending} href="#/notifications" />
        <Stat label="Notifications failed" field="notifications_failed" value={o.notifications_failed} href="#/notifications" />
      </div>
      <p class="muted small">
        As of <Time field="generated_at" value={o.generated_at} />
      </p>
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
          {Object.entries(o.purchases_by_status).map(([status, n]) => (
            <li key={status}>
              <a href={`#/purchases`}>
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
