// The audit log: every admin action, newest first, with who did it; filter by operator and action.
import { useState } from 'preact/hooks';
import { AUDIT_ACTION_TEXT } from '../../lib/labels';
import { Pager } from '../../components/Pager';
import { Loading, Section } from '../../components/Section';
import { AuditTable } from '../components/AuditTable';
import { useAdmin, useList } from '../hooks';
import { routeParam } from '../route';

export function Audit() {
  const admin = useAdmin();
  const [filter, setFilter] = useState(() => ({ operator_name: routeParam(window.location.hash, 'operator_name'), action: '' }));
  const list = useList(`audit?${JSON.stringify(filter)}`, (cursor) => admin.audit(filter, cursor));
  const submit = (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    setFilter({ operator_name: String(f.get('operator_name') ?? '').trim(), action: String(f.get('action') ?? '') });
  };
  return (
    <>
      <h1>Audit log</h1>
      <form class="card form-grid" role="search" aria-label="Filter the audit log" onSubmit={submit}>
        <label class="form-field">
          <span>By (operator name)</span>
          <input type="search" name="operator_name" defaultValue={filter.operator_name} placeholder="e.g. alice" autoComplete="off" />
        </label>
        <label class="form-field">
          <span>Action</span>
          <select name="action" defaultValue={filter.action}>
            <option value="">Any</option>
            {Object.entries(AUDIT_ACTION_TEXT).map(([value, text]) => (
              <option key={value} value={value}>
                {text}
              </option>
            ))}
          </select>
        </label>
        <div>
          <button type="submit" class="btn btn-primary" data-action="filter-audit">
            Filter
          </button>
        </div>
      </form>
      <Section title="Admin actions, newest first" id="list-h">
        {list.data ? (
          <>
            <AuditTable rows={list.data.items} />
            <Pager cursors={list.cursors} next={list.data.next_cursor} />
          </>
        ) : (
          <Loading error={list.error} what="the audit log" />
        )}
      </Section>
    </>
  );
}
