// A purchase's facts in the console: customer, checkout, resource and OfficeX record, each labelled
// in words.
import type { AdminPurchaseDetail } from '../../api/types';
import { Section } from '../../components/Section';
import { Facts } from '../../components/Table';
import { Field } from '../../components/ui';
import { Hex, Time } from '../../components/values';

const dash = <span class="muted">—</span>;
const text = (field: string, v: string | number | null | undefined) => (v === null || v === undefined || v === '' ? dash : <Field field={field} value={v} />);

export function PurchaseDetails(props: { p: AdminPurchaseDetail }) {
  const { p } = props;
  const r = p.resource;
  const c = p.checkout;
  return (
    <div class="grid">
      <Section title="Details">
        <Facts
          items={[
            ['Offer', text('offer_id', p.offer_id)],
            ['Customer email', text('customer_email', p.customer_email)],
            ['Customer key', <Field field="customer_key_prefix" value={p.customer_key_prefix}><code>{p.customer_key_prefix}…</code></Field>],
            ['OfficeX organization', text('customer_org_id', p.customer_org_id)],
            ['OfficeX host', text('customer_org_host', p.customer_org_host)],
            ['OfficeX user', text('customer_user_id', p.customer_user_id)],
            ['Created', <Time field="created_at" value={p.created_at} />],
            ['Status since', <Time field="status_changed_at" value={p.status_changed_at} />],
            ['Last activity', <Time field="last_activity_at" value={p.last_activity_at} />],
            ['Last credit', <Time field="last_credit_at" value={p.last_credit_at} />],
            ['Held by an operator', <Field field="held" value={p.held}>{p.held ? 'Yes' : 'No'}</Field>],
          ]}
        />
      </Section>
      <Section title="Resource">
        <Facts
          items={[
            ['Provider', text('provider', r.provider)],
            ['State', text('resource_status', r.status)],
            ['Provisioning attempts', text('provision_attempts', r.provision_attempts)],
            ['Last provisioning error', text('last_provision_error', r.last_provision_error)],
            ['Next attempt', <Time field="next_provision_at" value={r.next_provision_at} />],
            ['Gateway key', r.gateway_key ? <Field field="gateway_key_prefix" value={r.gateway_key.key_prefix}><code>{r.gateway_key.key_prefix}…</code> ({r.gateway_key.status})</Field> : dash],
          ]}
        />
      </Section>
      <Section title="Checkout">
        {c ? (
          <Facts
            items={[
              ['Session', text('checkout_session_id', c.checkout_session_id)],
              ['Deposit address', <Hex field="deposit_address" value={c.deposit_address} />],
              ['Chain', text('chain', c.chain)],
              ['Token', text('token', c.token)],
              ['Started', <Time field="checkout_created_at" value={c.created_at} />],
              ['Finalized', <Time field="finalized_at" value={c.finalized_at} />],
            ]}
          />
        ) : (
          <p class="muted">No checkout recorded.</p>
        )}
      </Section>
      <Section title="OfficeX record">
        <Facts
          items={[
            ['OfficeX purchase', text('officex_purchase_id', p.officex.officex_purchase_id)],
            ['Expected status', text('expected_status', p.officex.expected_status)],
            ['Last update', p.officex.last_update ? <Field field="officex_update_status" value={p.officex.last_update.status} /> : dash],
          ]}
        />
      </Section>
    </div>
  );
}
