// The purchase's keys and links (`credentials` of GET /v1/purchase/{id}: kind, last 4 characters,
// created; never a secret) and a new one of each in place of the current one: confirmed first (the
// old one stops at once), sent with an Idempotency-Key (a retry gets the same one), shown once.
// A new customer key switches this page to it; a new gateway key ends the receipt's.
import { useRef, useState } from 'preact/hooks';
import * as customer from '../../api/customer';
import type { CredentialKind, CredentialOut, PurchaseResponse, RotatedCredential } from '../../api/types';
import { errorText, newIdempotencyKey } from '../../lib/api';
import { rotatableKinds } from '../../lib/gates';
import { ConfirmButton } from '../../components/Confirm';
import { ActionMessage, type Message } from '../../components/Section';
import { CREDENTIAL_TEXT, SecretOnce } from '../../components/SecretOnce';
import { Field } from '../../components/ui';
import { Time } from '../../components/values';
import type { Credentials } from '../credentials';

const WHAT: Record<CredentialKind, string> = {
  gateway_key: 'Your Gemini clients send it (x-goog-api-key).',
  s3_access_key: 'Your S3 clients sign with it (access key id and secret).',
  customer_key: 'Opens this page and its API (the link from your receipt).',
};

const QUESTION: Record<CredentialKind, string> = {
  gateway_key: 'Make a new gateway key? The old one stops working at once: update every client that uses it.',
  s3_access_key: 'Make a new S3 access key? The old one stops working at once: update every client that uses it.',
  customer_key:
    'Make a new page link? The old link and key stop working at once (for anyone you shared them with too); this page switches to the new one.',
};

/** The newest listed credential of KIND. */
function current(list: CredentialOut[], kind: CredentialKind): CredentialOut | undefined {
  return list.filter((c) => c.kind === kind).sort((a, b) => b.created_at - a.created_at)[0];
}

export function CredentialsCard(props: {
  data: PurchaseResponse;
  creds: Credentials;
  /** A new credential of KIND was made (the customer key's is SECRET). */
  onRotated: (kind: CredentialKind, secret: string) => Promise<void> | void;
}) {
  const p = props.data.purchase;
  const ready = p.resource ? rotatableKinds(p.resource.kind) : (['customer_key'] as CredentialKind[]);
  const kinds = p.status === 'deleted' ? [] : ready;
  const listed = props.data.credentials ?? [];
  const shownKinds = [...kinds, ...listed.map((c) => c.kind).filter((k) => !kinds.includes(k))];
  const keys = useRef<Partial<Record<CredentialKind, string>>>({});
  const [busy, setBusy] = useState<CredentialKind | null>(null);
  const [done, setDone] = useState<RotatedCredential | null>(null);
  const [message, setMessage] = useState<Message | null>(null);

  const rotate = async (kind: CredentialKind) => {
    // One key per attempt of a kind: a retry after an error (or a lost answer) gets the same credential.
    const key = (keys.current[kind] ??= newIdempotencyKey());
    setBusy(kind);
    setMessage(null);
    try {
      const out = await customer.rotateCredential(props.creds, kind, key);
      delete keys.current[kind];
      setDone(out);
      setMessage({ tone: 'ok', text: `${CREDENTIAL_TEXT[kind]} replaced: the old one no longer works.` });
      await props.onRotated(kind, out.secret);
    } catch (e) {
      setMessage({ tone: 'error', text: errorText(e) });
    } finally {
      setBusy(null);
    }
  };

  return (
    <section class="card" aria-labelledby="credentials-h" data-section="credentials">
      <h2 id="credentials-h" tabIndex={-1}>
        Keys and links
      </h2>
      <p class="muted small">
        Listed by their last 4 characters; the secrets themselves are never shown here again. If one leaked or was lost,
        make a new one: the old one stops working at once, and the new one is shown here once.
      </p>
      {shownKinds.length === 0 ? (
        <p class="muted">This purchase has no credentials any more.</p>
      ) : (
        <ul class="cred-list">
          {shownKinds.map((kind) => {
            const c = current(listed, kind);
            return (
              <li key={kind} data-kind={kind} class="cred">
                <div class="cred-text">
                  <strong>{CREDENTIAL_TEXT[kind]}</strong>
                  <span class="muted small">{WHAT[kind]}</span>
                  <span class="small">
                    {c?.hint ? (
                      <>
                        Ends in{' '}
                        <Field field="hint" value={c.hint}>
                          <code>…{c.hint}</code>
                        </Field>
                      </>
                    ) : (
                      <Field field="hint" value="">
                        Ending not recorded
                      </Field>
                    )}
                    {c && (
                      <>
                        {' '}
                        · made <Time field="created_at" value={c.created_at} />
                      </>
                    )}
                  </span>
                </div>
                {kinds.includes(kind) && (
                  <ConfirmButton
                    action="rotate-credential"
                    kind={kind}
                    label={kind === 'customer_key' ? 'New link' : 'New key'}
                    danger
                    disabled={busy !== null}
                    confirmLabel={kind === 'customer_key' ? 'Make a new link' : 'Make a new key'}
                    question={QUESTION[kind]}
                    onConfirm={() => rotate(kind)}
                  />
                )}
              </li>
            );
          })}
        </ul>
      )}
      <ActionMessage message={message} />
      {done && (
        <SecretOnce done={done} linkLabel="Your new page link">
          {done.kind === 'customer_key' && (
            <p class="small">
              This page already uses the new key. Open your purchase with this link from now on (bookmark it, or keep it
              with your receipt); the old link no longer opens it.
            </p>
          )}
        </SecretOnce>
      )}
    </section>
  );
}
