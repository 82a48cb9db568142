// Cost imports: each run of the daily AWS cost import, what it read and what it charged.
import type { CostImportRow } from '../../api/types';
import { Pager } from '../../components/Pager';
import { Loading, Section } from '../../components/Section';
import { type Column, Table } from '../../components/Table';
import { Field, Money } from '../../components/ui';
import { Json, Time } from '../../components/values';
import { IMPORT_STATUS_TEXT, label } from '../../lib/labels';
import { useAdmin, useList } from '../hooks';

const COLUMNS: Column<CostImportRow>[] = [
  { label: 'Day', cell: (c) => <Field field="day" value={c.day} /> },
  { label: 'Status', cell: (c) => <Field field="status" value={c.status}>{label(IMPORT_STATUS_TEXT, c.status)}</Field> },
  { label: 'Started by', cell: (c) => <Field field="trigger" value={c.trigger} /> },
  { label: 'Source', cell: (c) => <Field field="source" value={c.source} /> },
  { label: 'Charged', num: true, cell: (c) => <Money field="charged_usd" value={c.charged_usd} /> },
  { label: 'Purchases charged', num: true, cell: (c) => <Field field="purchases_charged" value={c.purchases_charged} /> },
  {
    label: 'Rows (read / matched / skipped)',
    cell: (c) => (
      <>
        <Field field="rows_read" value={c.rows_read} /> / <Field field="rows_matched" value={c.rows_matched} /> /{' '}
        <Field field="rows_skipped" value={c.rows_skipped} />
      </>
    ),
  },
  {
    label: 'Untagged / unknown tags',
    cell: (c) => (
      <>
        <Field field="untagged_rows" value={c.untagged_rows} /> / <Field field="unknown_tag_rows" value={c.unknown_tag_rows} />
      </>
    ),
  },
  { label: 'Finished', cell: (c) => <Time field="finished_at" value={c.finished_at} /> },
  { label: 'Errors', cell: (c) => (c.error_rows > 0 ? <Json field="errors" value={c.errors} summary={`${c.error_rows} rows`} /> : <span class="muted">none</span>) },
];

export function CostImports() {
  const admin = useAdmin();
  const list = useList('cost-imports', (cursor) => admin.costImports(cursor));
  return (
    <>
      <h1>Cost imports</h1>
      <Section title="Cost import runs" id="list-h">
        {list.data ? (
          <>
            <Table
              rows={list.data.items}
              columns={COLUMNS}
              caption="Cost import runs"
              empty="No cost import has run yet."
              rowKey={(c) => String(c.id)}
              rowAttrs={(c) => ({ 'data-cost-import-id': String(c.id) })}
            />
            <Pager cursors={list.cursors} next={list.data.next_cursor} />
          </>
        ) : (
          <Loading error={list.error} what="cost imports" />
        )}
      </Section>
    </>
  );
}
