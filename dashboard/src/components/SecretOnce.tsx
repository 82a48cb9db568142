// A credential just replaced (`POST …/credentials/rotate`, customer page and console alike): its
// new secret, shown here once with a copy button, never again.
import type { ComponentChildren } from 'preact';
import type { CredentialKind, RotatedCredential } from '../api/types';
import { CopyButton } from './ui';

export const CREDENTIAL_TEXT: Record<CredentialKind, string> = {
  gateway_key: 'Gateway key',
  s3_access_key: 'S3 access key',
  customer_key: 'Customer key (the page link)',
};

function Secret(props: { label: string; field: string; value: string }) {
  return (
    <p class="address-row">
      <span class="muted">{props.label}</span>
      <code class="address" data-field={props.field} data-value={props.value}>
        {props.value}
      </code>
      <CopyButton text={props.value} label={props.label} />
    </p>
  );
}

/** LINK_LABEL names the customer page's new link (a customer key's rotation). */
export function SecretOnce(props: { done: RotatedCredential; linkLabel: string; children?: ComponentChildren }) {
  const { done } = props;
  return (
    <div class="secret-once" role="status" data-kind={done.kind}>
      <p>
        <strong>Copy it now: it is not shown again.</strong>
      </p>
      {done.access_key_id && <Secret label="Access key id" field="access_key_id" value={done.access_key_id} />}
      <Secret label={done.secret_access_key ? 'Secret access key' : 'New secret'} field="secret" value={done.secret_access_key ?? done.secret} />
      {done.customer_url && <Secret label={props.linkLabel} field="customer_url" value={done.customer_url} />}
      {props.children}
    </div>
  );
}
