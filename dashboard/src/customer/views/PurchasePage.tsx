// The purchase page: loads the purchase (refreshed every 20 s, every 5 s while payments are on
// their way) and lays out its cards: status, balance, top up, usage, S3 estimates, history,
// refunds, how to use it, keys and links, support.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, errorText } from '../../lib/api';
import { formatTime } from '../../lib/format';
import { formatUsdCents } from '../../lib/money';
import * as customer from '../../api/customer';
import { Alert, STATUS_TEXT, StatusBadge } from '../../components/ui';
import { S3EstimateCard } from '../../components/S3Estimate';
import { type Credentials, forgetCredentials } from '../credentials';
import type { CredentialKind, PurchaseResponse } from '../../api/types';
import { ProvisioningFailed } from '../ProvisioningFailed';
import { Problem, Support } from './Problem';
import { BalanceCard } from './Balance';
import { TopUpCard } from './TopUp';
import { UsageCard } from './Usage';
import { LedgerCard } from './History';
import { Refunds } from './Refunds';
import { HowToUse } from './HowToUse';
import { CredentialsCard } from './Credentials';
import { useGatewayKey } from '../gatewayKey';

const REFRESH_MS = 20_000;
/** While payments are on their way: often enough to watch their confirmations count up. */
const REFRESH_PENDING_MS = 5_000;

export function PurchasePage(props: { creds: Credentials; onNewKey: (creds: Credentials) => void }) {
  const { creds } = props;
  const [data, setData] = useState<PurchaseResponse | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [refreshedAt, setRefreshedAt] = useState<Date | null>(null);
  const [reloadKey, setReloadKey] = useState(0);
  // The key of the moment: an answer to a call made with a key replaced meanwhile is dropped (its
  // 401 must not end the page the new key keeps open).
  const currentCreds = useRef(creds);
  currentCreds.current = creds;
  const p0 = data?.purchase;
  const gateway = useGatewayKey(creds, p0?.resource?.kind === 'gemini' && p0.status !== 'deleted');

  const load = useCallback(async () => {
    try {
      const body = await customer.purchase(creds);
      if (currentCreds.current !== creds) return;
      setData(body);
      setError(null);
      setRefreshedAt(new Date());
      document.title = `${body.purchase.title} — ${formatUsdCents(body.purchase.balance_usd)}`;
    } catch (e) {
      if (currentCreds.current !== creds) return;
      setError(e instanceof ApiError ? e : new ApiError(0, 'unknown', errorText(e)));
    }
  }, [creds]);

  useEffect(() => {
    void load();
  }, [load]);
  const waiting = (data?.pending_deposits?.length ?? 0) > 0;
  useEffect(() => {
    const timer = window.setInterval(
      () => {
        if (document.visibilityState === 'visible') void load();
      },
      waiting ? REFRESH_PENDING_MS : REFRESH_MS,
    );
    return () => window.clearInterval(timer);
  }, [load, waiting]);

  const refreshAll = useCallback(async () => {
    await load();
    setReloadKey((k) => k + 1);
  }, [load]);

  const rotated = async (kind: CredentialKind, secret: string) => {
    if (kind === 'customer_key') {
      // The page reloads everything with the new key (load depends on creds).
      props.onNewKey({ purchaseId: creds.purchaseId, key: secret });
      return;
    }
    if (kind === 'gateway_key') gateway.replaced();
    await load();
  };

  if (error && (error.status === 401 || error.status === 404)) {
    forgetCredentials();
    return (
      <Problem title="This link is wrong or has expired" purchaseId={creds.purchaseId}>
        The server did not accept this purchase link ({error.message}). Check that you opened the whole link from your
        receipt; if it still fails, the vendor can send you a new one.
      </Problem>
    );
  }
  if (!data) {
    return (
      <main class="page" id="main" aria-busy="true">
        {error ? (
          <Alert tone="error" title="Could not load your purchase">
            <p>{error.message}</p>
            <button type="button" class="btn" onClick={() => void load()}>
              Try again
            </button>
          </Alert>
        ) : (
          <p class="boot">Loading your purchase…</p>
        )}
      </main>
    );
  }

  const p = data.purchase;
  return (
    <>
      <a class="skip" href="#topup-h">
        Skip to top up
      </a>
      <header class="topbar">
        <div class="page topbar-inner">
          <span class="brand">{p.vendor_name ?? 'Vendor'}</span>
          <span class="muted small">
            {refreshedAt ? `Updated ${refreshedAt.toLocaleTimeString()}` : ''}
          </span>
        </div>
      </header>
      <main class="page" id="main">
        <div class="title-row">
          <div>
            <h1 data-field="title" data-value={p.title}>
              {p.title}
            </h1>
            <p class="muted small">
              Purchase <code data-field="id">{p.id}</code> · since {formatTime(p.created_at)}
            </p>
          </div>
          <StatusBadge status={p.status} />
        </div>
        {error && (
          <Alert tone="warn" title="Showing the last known state">
            {error.message}
          </Alert>
        )}
        <StatusNote status={p.status} />
        <ProvisioningFailed status={p.status} />
        <div class="grid">
          <BalanceCard data={data} creds={creds} reloadKey={reloadKey} />
          <TopUpCard data={data} creds={creds} onCredited={refreshAll} />
        </div>
        <UsageCard creds={creds} reloadKey={reloadKey} />
        {p.resource?.kind === 's3' && (
          <S3EstimateCard
            path={`/v1/purchase/${encodeURIComponent(p.id)}/s3-usage`}
            get={() => customer.s3Usage(creds)}
            reloadKey={reloadKey}
          />
        )}
        <LedgerCard creds={creds} reloadKey={reloadKey} />
        <Refunds creds={creds} data={data} reloadKey={reloadKey} onChange={refreshAll} />
        <HowToUse data={data} gateway={gateway} />
        <CredentialsCard data={data} creds={creds} onRotated={rotated} />
        <Support purchaseId={p.id} vendor={p.vendor_name} />
      </main>
    </>
  );
}

function StatusNote(props: { status: string }) {
  const s = STATUS_TEXT[props.status];
  if (!s) return null;
  const tone = s.tone === 'bad' ? 'error' : s.tone === 'warn' ? 'warn' : s.tone === 'ok' ? 'ok' : 'info';
  return (
    <Alert tone={tone}>
      <span data-field="status_meaning">{s.meaning}</span>
    </Alert>
  );
}
