// Billing tokens: the vendor-wide tokens AI servers use to call meter-usage. Created (shown once)
// and revoked here.
import { useState } from 'preact/hooks';
import { errorText, newIdempotencyKey } from '../../lib/api';
import type { CreatedToken, TokenRow } from '../../api/types';
import { Pager } from '../../components/Pager';
import { ActionMessage, Loading, type Message, Section } from '../../components/Section';
import { type Column, Table } from '../../components/Table';
import { CopyButton, Field } from '../../components/ui';
import { ConfirmButton } from '../../components/Confirm';
import { Time } from '../../components/values';
import { useActionKey, useAdmin, useList } from '../hooks';
import { useCan } from '../session';

const COLUMNS: Column<TokenRow>[] = [
  { label: 'Label', cell: (t) => <Field field="label" value={t.label} /> },
  { label: 'Starts with', cell: (t) => <Field field="display_prefix" value={t.display_prefix}><code>{t.display_prefix}…</code></Field> },
  { label: 'Created', cell: (t) => <Time field="created_at" value={t.created_at} /> },
  { label: 'Revoked', cell: (t) => <Time field="revoked_at" value={t.revoked_at} /> },
];

export function Tokens() {
  const admin = useAdmin();
  const list = useList('tokens', (cursor) => admin.tokens(cursor));
  const [created, setCreated] = useState<CreatedToken | null>(null);
  const [message, setMessage] = useState<Message | null>(null);
  const [key, nextKey] = useActionKey();
  const canManage = useCan('manage-tokens');
  const create = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const label = String(new FormData(form).get('label') ?? '').trim();
    if (!label) {
      setMessage({ tone: 'error', text: 'Give the token a label (e.g. the AI server that will use it).' });
      return;
    }
    setMessage(null);
    try {
      const token = await admin.createToken(label, key);
      nextKey();
      form.reset();
      setCreated(token);
      list.reload();
    } catch (err) {
      setMessage({ tone: 'error', text: errorText(err) });
    }
  };
  const revoke = async (id: number) => {
    setMessage(null);
    try {
      await admin.revokeToken(id, newIdempotencyKey());
      setMessage({ tone: 'ok', text: `Token ${id} revoked: meter-usage calls with it now get 401.` });
      list.reload();
    } catch (err) {
      setMessage({ tone: 'error', text: errorText(err) });
    }
  };
  const secret = created ? String(created.token ?? '') : '';
  return (
    <>
      <h1>Billing tokens</h1>
      <p class="muted">Vendor-wide tokens your AI servers use to call meter-usage. A token is shown once, when it is created.</p>
      {canManage && <Section title="Create a token">
        <form class="form-grid" onSubmit={create}>
          <label class="form-field">
            <span>Label</span>
            <input type="text" name="label" placeholder="e.g. my-ai-server" required />
          </label>
          <div>
            <button type="submit" class="btn btn-primary" data-action="create-token">
              Create token
            </button>
          </div>
        </form>
        {created && (
          <div class="secret-once" role="status">
            <p>
              <strong>Copy this token now: it is not shown again.</strong>
            </p>
            <p class="address-row">
              <code class="address" data-field="token" data-value={secret}>
                {secret}
              </code>
              <CopyButton text={secret} label="the new token" />
            </p>
          </div>
        )}
      </Section>}
      <ActionMessage message={message} />
      <Section title="Tokens" id="tokens-h">
        {list.data ? (
          <>
            <Table
              rows={list.data.items}
              columns={COLUMNS}
              caption="Billing tokens"
              empty="No billing token yet."
              rowKey={(t) => String(t.id)}
              rowAttrs={(t) => ({ 'data-token-id': String(t.id), 'data-token-label': t.label })}
              actions={(t) =>
                t.revoked_at ? (
                  <span class="badge badge-muted">Revoked</span>
                ) : !canManage ? null : (
                  <ConfirmButton
                    action="revoke-token"
                    label="Revoke"
                    danger
                    confirmLabel="Revoke"
                    question={`Revoke “${t.label}”? Meter-usage calls with it fail from now on.`}
                    onConfirm={() => revoke(t.id)}
                  />
                )
              }
            />
            <Pager cursors={list.cursors} next={list.data.next_cursor} />
          </>
        ) : (
          <Loading error={list.error} what="tokens" />
        )}
      </Section>
    </>
  );
}
