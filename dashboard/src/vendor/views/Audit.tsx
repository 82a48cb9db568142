// The audit log: every admin action, newest first.
import { Pager } from '../../components/Pager';
import { Loading, Section } from '../../components/Section';
import { AuditTable } from '../components/AuditTable';
import { useAdmin, useList } from '../hooks';

export function Audit() {
  const admin = useAdmin();
  const list = useList('audit', (cursor) => admin.audit({}, cursor));
  return (
    <>
      <h1>Audit log</h1>
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
