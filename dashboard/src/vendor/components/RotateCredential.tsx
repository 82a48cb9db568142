// Rotate a credential on the customer's behalf (`POST /v1/admin/purchases/{id}/credentials/rotate`):
// the old one stops at once, so it is confirmed first; the new secret is shown here once.
import { useState } from 'preact/hooks';
import type { CredentialKind, RotatedCredential } from '../../api/types';
import { errorText } from '../../lib/api';
import { rotatableKinds } from '../../lib/gates';
import { ConfirmButton } from '../../components/Confirm';
import { type Message, Section } from '../../components/Section';
import { CREDENTIAL_TEXT, SecretOnce } from '../../components/SecretOnce';
import { useActionKey, useAdmin } from '../hooks';

export function RotateCredential(props: { id: string; provider: string | null | undefined; onDone: (m: Message) => void }) {
  const admin = useAdmin();
  const kinds = rotatableKinds(props.provider);
  const [kind, setKind] = useState<CredentialKind>(kinds[0] ?? 'customer_key');
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<RotatedCredential | null>(null);
  const [key, nextKey] = useActionKey();
  const rotate = async () => {
    setBusy(true);
    try {
      const out = await admin.rotateCredential(props.id, kind, key);
      nextKey();
      setDone(out);
      props.onDone({ tone: 'ok', text: `${CREDENTIAL_TEXT[kind]} replaced: the old one no longer works.` });
    } catch (e) {
      props.onDone({ tone: 'error', text: errorText(e) });
    } finally {
      setBusy(false);
    }
  };
  return (
    <Section title="Credentials">
      <p class="small muted">
        Give the customer a new credential when theirs leaked or was lost. The old one stops working at once; the new one
        is shown here once, to pass on to the customer.
      </p>
      <label class="form-field">
        <span>Credential</span>
        <select name="kind" value={kind} onChange={(e) => setKind(e.currentTarget.value as CredentialKind)}>
          {kinds.map((k) => (
            <option key={k} value={k}>
              {CREDENTIAL_TEXT[k]}
            </option>
          ))}
        </select>
      </label>
      <div class="actions-row">
        <ConfirmButton
          action="rotate-credential"
          label="Replace it"
          danger
          disabled={busy}
          confirmLabel="Replace"
          question={`Replace the ${CREDENTIAL_TEXT[kind].toLowerCase()}? The customer's current one stops working now.`}
          onConfirm={rotate}
        />
      </div>
      {done && <SecretOnce done={done} linkLabel="The customer’s new page link" />}
    </Section>
  );
}
