// Operators (owners only): who can sign in to this console and with which role. A new operator's
// token is shown once; revoking one stops it at the very next request.
import { useState } from 'preact/hooks';
import { errorText, newIdempotencyKey } from '../../lib/api';
import { ROLE_TEXT, type Role } from '../../lib/roles';
import type { OperatorCreated, OperatorRow } from '../../api/types';
import { ConfirmButton } from '../../components/Confirm';
import { ActionMessage, Loading, type Message, Section } from '../../components/Section';
import { type Column, Table } from '../../components/Table';
import { CopyButton, Field } from '../../components/ui';
import { Time } from '../../components/values';
import { useActionKey, useAdmin, useLoad } from '../hooks';
import { useCan, useSession } from '../session';

const ROLES: Role[] = ['viewer', 'operator', 'owner'];

const COLUMNS: Column<OperatorRow>[] = [
  { label: 'Name', cell: (o) => <Field field="name" value={o.name} /> },
  { label: 'Role', cell: (o) => <Field field="role" value={o.role}>{ROLE_TEXT[o.role] ?? o.role}</Field> },
  { label: 'Token starts with', cell: (o) => <Field field="display_prefix" value={o.display_prefix}><code>{o.display_prefix}…</code></Field> },
  { label: 'Added', cell: (o) => <Time field="created_at" value={o.created_at} /> },
  { label: 'Revoked', cell: (o) => <Time field="revoked_at" value={o.revoked_at} /> },
];

export function Operators() {
  const admin = useAdmin();
  const allowed = useCan('manage-operators');
  const me = useSession();
  const list = useLoad(allowed ? 'operators' : null, admin.operators);
  const [created, setCreated] = useState<OperatorCreated | null>(null);
  const [message, setMessage] = useState<Message | null>(null);
  const [key, nextKey] = useActionKey();
  if (!allowed) {
    return (
      <>
        <h1>Operators</h1>
        <p class="muted">Only owners manage operators.</p>
      </>
    );
  }
  const create = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const f = new FormData(form);
    const name = String(f.get('name') ?? '').trim();
    const role = String(f.get('role') ?? 'viewer') as Role;
    setMessage(null);
    try {
      const out = await admin.createOperator(name, role, key);
      nextKey();
      form.reset();
      setCreated(out);
      list.reload();
    } catch (err) {
      setMessage({ tone: 'error', text: errorText(err) });
    }
  };
  const revoke = async (o: OperatorRow) => {
    setMessage(null);
    try {
      await admin.revokeOperator(o.id, newIdempotencyKey());
      setMessage({ tone: 'ok', text: `${o.name} revoked: their token no longer signs in.` });
      list.reload();
    } catch (err) {
      setMessage({ tone: 'error', text: errorText(err) });
    }
  };
  const secret = created?.token ?? '';
  return (
    <>
      <h1>Operators</h1>
      <p class="muted">
        Viewers read; operators also act (adjust, suspend, refunds, retries, rescans); owners also manage operators and
        billing tokens. Every action is in the audit log under the operator’s name.
      </p>
      <Section title="Add an operator">
        <form class="form-grid" onSubmit={create}>
          <label class="form-field">
            <span>Name</span>
            <input type="text" name="name" required maxLength={64} placeholder="e.g. alice" autoComplete="off" />
          </label>
          <label class="form-field">
            <span>Role</span>
            <select name="role" defaultValue="operator">
              {ROLES.map((r) => (
                <option key={r} value={r}>
                  {ROLE_TEXT[r]}
                </option>
              ))}
            </select>
          </label>
          <div>
            <button type="submit" class="btn btn-primary" data-action="create-operator">
              Add operator
            </button>
          </div>
        </form>
        {created && secret && (
          <div class="secret-once" role="status">
            <p>
              <strong>Give {created.name} this token now: it is not shown again.</strong>
            </p>
            <p class="address-row">
              <code class="address" data-field="token" data-value={secret}>
                {secret}
              </code>
              <CopyButton text={secret} label="the new operator token" />
            </p>
          </div>
        )}
      </Section>
      <ActionMessage message={message} />
      <Section title="Operators" id="operators-h">
        {list.data ? (
          <Table
            name="operators"
            rows={list.data.items}
            columns={COLUMNS}
            caption="Operators"
            empty="No operator yet: only the server’s ADMIN_TOKEN signs in."
            rowKey={(o) => String(o.id)}
            rowAttrs={(o) => ({ 'data-operator-id': String(o.id), 'data-operator-name': o.name })}
            actions={(o) =>
              o.revoked_at ? (
                <span class="badge badge-muted">Revoked</span>
              ) : o.id === me?.id ? (
                <span class="muted small">you</span>
              ) : (
                <ConfirmButton
                  action="revoke-operator"
                  label="Revoke"
                  danger
                  confirmLabel="Revoke"
                  question={`Revoke ${o.name}? Their token stops working at once.`}
                  onConfirm={() => revoke(o)}
                />
              )
            }
          />
        ) : (
          <Loading error={list.error} what="operators" />
        )}
      </Section>
    </>
  );
}
