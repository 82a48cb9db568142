// One purchase: balance and thresholds, S3 estimates, actions, details, ledger, deposits, sweeps,
// notifications and its audit records. Results of actions show without a reload.
import { useState } from 'preact/hooks';
import type { AdminPurchaseDetail } from '../../api/types';
import { S3EstimateCard } from '../../components/S3Estimate';
import { ActionMessage, Loading, type Message, Section } from '../../components/Section';
import { Money, StatusBadge } from '../../components/ui';
import { AuditTable } from '../components/AuditTable';
import { DepositTable } from '../components/DepositTable';
import { LedgerPages } from '../components/LedgerTable';
import { NotificationTable } from '../components/NotificationList';
import { PurchaseActions } from '../components/PurchaseActions';
import { PurchaseDetails } from '../components/PurchaseDetails';
import { SweepTable } from '../components/SweepTable';
import { RotateCredential } from '../components/RotateCredential';
import { useActionKey, useAdmin, useLoad } from '../hooks';
import { useSession } from '../session';
import { purchaseButtons } from '../../lib/gates';
import { errorText } from '../../lib/api';

const THRESHOLDS = [
  ['balance_low_trigger', 'Low at'],
  ['balance_critical_trigger', 'Critical at'],
  ['balance_termination_trigger', 'Termination at'],
] as const;

export function PurchasePage(props: { id: string }) {
  const { id } = props;
  const admin = useAdmin();
  const { data, error, reload } = useLoad<AdminPurchaseDetail>(`purchase:${id}`, () => admin.purchase(id));
  const [message, setMessage] = useState<Message | null>(null);
  const role = useSession()?.role;

  if (!data) {
    return (
      <>
        <p>
          <a href="#/purchases">← Purchases</a>
        </p>
        <h1>{id}</h1>
        <Loading error={error} what="the purchase" />
      </>
    );
  }
  const p = data;
  const buttons = purchaseButtons(p, role);
  const done = (m: Message, changed: boolean) => {
    setMessage(m);
    if (changed) reload();
  };
  return (
    <div data-purchase-id={p.id ?? id}>
      <p>
        <a href="#/purchases">← Purchases</a>
      </p>
      <div class="title-row">
        <div>
          <h1>{p.title ?? p.id}</h1>
          <p class="muted small">
            <code data-field="id">{p.id}</code>
          </p>
        </div>
        <StatusBadge status={p.status} />
      </div>
      <ActionMessage message={message} />
      <div class="stats">
        <div class="stat">
          <div class="stat-label">Balance</div>
          <div class="stat-value">
            <Money field="balance_usd" value={p.balance_usd} />
          </div>
        </div>
        {THRESHOLDS.map(([k, label]) => (
          <div class="stat" key={k}>
            <div class="stat-label">{label}</div>
            <div class="stat-value">
              <Money field={k} value={p[k] ?? null} />
            </div>
          </div>
        ))}
      </div>
      {p.resource?.provider === 's3' && <S3EstimateCard path={`s3:${p.id}`} get={() => admin.s3Usage(p.id)} reloadKey={data} console />}
      <PurchaseActions id={p.id} buttons={buttons} onDone={done} />
      {(buttons.includes('reprovision') || buttons.includes('rotate')) && (
        <div class="grid">
          {buttons.includes('reprovision') && <Reprovision id={p.id} onDone={done} />}
          {buttons.includes('rotate') && <RotateCredential id={p.id} provider={p.resource?.provider} onDone={(m) => done(m, true)} />}
        </div>
      )}
      <PurchaseDetails p={p} />
      <Section title="Ledger">
        <LedgerPages purchaseId={p.id} first={p.ledger} />
      </Section>
      <Section title="Deposits">
        <DepositTable rows={p.deposits} />
      </Section>
      <Section title="Sweeps">
        <SweepTable rows={p.sweeps} />
      </Section>
      <Section title="Notifications">
        <NotificationTable rows={p.notifications} />
      </Section>
      <Section title="Audit log">
        <AuditTable rows={p.audit} empty="No admin action on this purchase yet." />
      </Section>
    </div>
  );
}

/** Retry provisioning of a purchase whose setup failed for good. */
function Reprovision(props: { id: string; onDone: (m: Message, changed: boolean) => void }) {
  const admin = useAdmin();
  const [key, nextKey] = useActionKey();
  const [busy, setBusy] = useState(false);
  const run = async () => {
    setBusy(true);
    try {
      await admin.reprovision(props.id, key);
      nextKey();
      props.onDone({ tone: 'ok', text: 'Provisioning retried: the purchase becomes active when it is delivered.' }, true);
    } catch (e) {
      props.onDone({ tone: 'error', text: errorText(e) }, false);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Section title="Setup failed">
      <p class="small muted">Setting up the resource failed for good. Fix the cause (see the last provisioning error below), then try again.</p>
      <div class="actions-row">
        <button type="button" class="btn btn-primary" data-action="reprovision" disabled={busy} onClick={() => void run()}>
          {busy ? 'Retrying…' : 'Retry provisioning'}
        </button>
      </div>
    </Section>
  );
}
