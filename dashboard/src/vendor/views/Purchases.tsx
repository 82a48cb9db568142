// Purchases: search (id, email, OfficeX purchase id), filter by status and offer, sort, pages.
import { useState } from 'preact/hooks';
import type { AdminPurchase } from '../../api/types';
import { Pager } from '../../components/Pager';
import { Loading, Section } from '../../components/Section';
import { type Column, Table } from '../../components/Table';
import { Field, Money, STATUS_TEXT, StatusBadge } from '../../components/ui';
import { Time } from '../../components/values';
import { useAdmin, useList } from '../hooks';
import { routeParam } from '../route';

const STATUSES = ['', 'provisioning', 'active', 'low', 'critical', 'suspended', 'deleted', 'failed'];

const COLUMNS: Column<AdminPurchase>[] = [
  {
    label: 'Purchase',
    cell: (p) => (
      <>
        <a href={`#/purchases/${encodeURIComponent(p.id)}`} data-field="id" data-value={p.id}>
          {p.title ?? p.id}
        </a>
        <div class="muted small">
          <code>{p.id}</code>
        </div>
      </>
    ),
  },
  { label: 'Offer', cell: (p) => <Field field="offer_id" value={p.offer_id} /> },
  {
    label: 'Customer',
    cell: (p) => (p.customer_email ? <Field field="customer_email" value={p.customer_email} /> : <span class="muted">—</span>),
  },
  { label: 'Status', cell: (p) => <StatusBadge status={p.status} /> },
  { label: 'Balance', num: true, cell: (p) => <Money field="balance_usd" value={p.balance_usd} /> },
  { label: 'Last activity', cell: (p) => <Time field="last_activity_at" value={p.last_activity_at ?? p.created_at} /> },
];

export function Purchases() {
  const admin = useAdmin();
  const [filters, setFilters] = useState(() => ({ q: '', status: routeParam(window.location.hash, 'status'), offer_id: '', sort: 'created:desc' }));
  const [sort, order] = filters.sort.split(':');
  const f = { q: filters.q, status: filters.status, offer_id: filters.offer_id, sort: sort ?? 'created', order: order ?? 'desc' };
  const list = useList(`purchases?${JSON.stringify(f)}`, (cursor) => admin.purchases(f, cursor));
  const submit = (e: Event) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget as HTMLFormElement);
    setFilters({
      q: String(form.get('q') ?? '').trim(),
      status: String(form.get('status') ?? ''),
      offer_id: String(form.get('offer_id') ?? '').trim(),
      sort: String(form.get('sort') ?? ''),
    });
  };
  return (
    <>
      <h1>Purchases</h1>
      <form class="card form-grid" role="search" onSubmit={submit} aria-label="Find purchases">
        <label class="form-field">
          <span>Search</span>
          <input type="search" name="q" placeholder="Purchase id, email or OfficeX purchase id" defaultValue={filters.q} />
        </label>
        <label class="form-field">
          <span>Status</span>
          <select name="status" defaultValue={filters.status}>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s ? (STATUS_TEXT[s]?.label ?? s) : 'Any'}
              </option>
            ))}
          </select>
        </label>
        <label class="form-field">
          <span>Offer</span>
          <input type="text" name="offer_id" placeholder="e.g. gemini-api-gateway" defaultValue={filters.offer_id} />
        </label>
        <label class="form-field">
          <span>Sort</span>
          <select name="sort" defaultValue={filters.sort}>
            <option value="created:desc">Newest first</option>
            <option value="balance:asc">Balance, lowest first</option>
            <option value="balance:desc">Balance, highest first</option>
            <option value="activity:desc">Last activity, most recent first</option>
            <option value="activity:asc">Last activity, least recent first</option>
          </select>
        </label>
        <div>
          <button type="submit" class="btn btn-primary" data-action="search">
            Search
          </button>
        </div>
      </form>
      <Section title="Results">
        {!list.data ? (
          <Loading error={list.error} what="purchases" />
        ) : (
          <>
            <Table
              name="purchases"
              rows={list.data.items}
              columns={COLUMNS}
              caption="Purchases"
              empty="No purchase matches."
              rowKey={(p) => p.id}
              rowAttrs={(p) => ({ 'data-purchase-id': p.id })}
            />
            <Pager cursors={list.cursors} next={list.data.next_cursor} />
          </>
        )}
      </Section>
    </>
  );
}
