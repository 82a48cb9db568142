// The customer's page: what they bought, its status and balance, how long it lasts, usage, the
// ledger, how to top up (every chain and token, address, QR) and how to use what they bought.
import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, api, errorText } from '../lib/api';
import { daysAgo, formatTime, isoDay, shortHex, toDate } from '../lib/format';
import { daysLeft, formatAmount, formatUsd, sumDecimals, toMicros, toNumber } from '../lib/money';
import { Alert, CopyButton, Field, Money, STATUS_TEXT, StatusBadge } from '../lib/ui';
import { ProvisioningFailed } from './ProvisioningFailed';
import { BarChart } from '../lib/Chart';
import { QrCode, eip681 } from '../lib/qr';
import type { AcceptedToken, BillingBucket, Interval, VerifyTopupResponse } from '../api/types';
import type { LedgerEntry, Page } from '../api/handwritten';
import { type Credentials, forgetCredentials, takeCredentials } from './credentials';
import type { Incoming, PurchaseView, ResourceInfo } from './types';
import { geminiSnippets } from './snippets';
import { Refunds } from './Refunds';
import { S3EstimateCard } from '../components/S3Estimate';

const OFFICEX_URL = 'https://officex.app';
const REFRESH_MS = 20_000;
/** While payments are on their way: often enough to watch their confirmations count up. */
const REFRESH_PENDING_MS = 5_000;

export function App() {
  const state = useMemo(takeCredentials, []);
  if (state.kind === 'missing') {
    return (
      <Problem title="This link is incomplete">
        The page needs the link from your receipt, which ends in
        <code> #vendor_purchase_id=…&amp;customer_billing_api_key=…</code>. Open your purchase again from the
        receipt (in OfficeX) or from the email you got.
      </Problem>
    );
  }
  if (state.kind === 'no-key') {
    return (
      <Problem title="This link has no customer key" purchaseId={state.purchaseId}>
        It names purchase <code>{state.purchaseId}</code> but not its key, so the page cannot show the balance. Open
        the link from your receipt (it carries the key), or ask the person who gave you this link.
      </Problem>
    );
  }
  return <Purchase creds={state.creds} />;
}

function Problem(props: { title: string; children: preact.ComponentChildren; purchaseId?: string }) {
  return (
    <main class="page narrow" id="main">
      <h1>{props.title}</h1>
      <Alert tone="error" title="We could not open this purchase">
        <p>{props.children}</p>
      </Alert>
      <Support purchaseId={props.purchaseId} />
    </main>
  );
}

function Support(props: { purchaseId?: string; vendor?: string }) {
  return (
    <section class="card" aria-labelledby="support-h" data-section="support">
      <h2 id="support-h">Need help?</h2>
      <p>
        Contact {props.vendor ? <strong>{props.vendor}</strong> : 'the vendor you bought from'}: your receipt in{' '}
        <a href={OFFICEX_URL} rel="noreferrer" data-action="support" target="_blank">
          OfficeX (opens in a new tab)
        </a>{' '}
        has their details.
        {props.purchaseId && (
          <>
            {' '}
            Mention your purchase id <code data-field="id">{props.purchaseId}</code>.
          </>
        )}
      </p>
    </section>
  );
}

function Purchase(props: { creds: Credentials }) {
  const { creds } = props;
  const [data, setData] = useState<PurchaseView | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [refreshedAt, setRefreshedAt] = useState<Date | null>(null);
  const [reloadKey, setReloadKey] = useState(0);

  const load = useCallback(async () => {
    try {
      const body = await api<PurchaseView>(`/v1/purchase/${encodeURIComponent(creds.purchaseId)}`, {
        token: creds.key,
      });
      setData(body);
      setError(null);
      setRefreshedAt(new Date());
      document.title = `${body.purchase.title} — ${formatUsd(body.purchase.balance_usd)}`;
    } catch (e) {
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
            get={(path) => api(path, { token: creds.key })}
            reloadKey={reloadKey}
          />
        )}
        <LedgerCard creds={creds} reloadKey={reloadKey} />
        <Refunds creds={creds} data={data} reloadKey={reloadKey} onChange={refreshAll} />
        <HowToUse data={data} />
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

function BalanceCard(props: { data: PurchaseView; creds: Credentials; reloadKey: number }) {
  const p = props.data.purchase;
  const [spent7, setSpent7] = useState<string | null>(null);
  useEffect(() => {
    const body = { interval: 'daily', start_date: isoDay(daysAgo(6)), end_date: isoDay(new Date()) };
    api<BillingBucket[]>(`/v1/purchase/${encodeURIComponent(props.creds.purchaseId)}/historical-billing`, {
      token: props.creds.key,
      body,
    })
      .then((buckets) => setSpent7(sumDecimals(buckets.map((b) => b.total_billed_amount))))
      .catch(() => setSpent7(null));
  }, [props.creds, props.reloadKey, p.balance_usd]);
  const days = spent7 === null ? null : daysLeft(p.balance_usd, spent7, 7);
  return (
    <section class="card" aria-labelledby="balance-h">
      <h2 id="balance-h">Balance</h2>
      <p class="big">
        <Money field="balance_usd" value={p.balance_usd} class={toMicros(p.balance_usd) < 0n ? 'negative' : ''} />
      </p>
      <p class="muted" data-field="days_left" data-value={days === null ? '' : days.toString()}>
        {spent7 === null
          ? 'Working out how long it lasts…'
          : days === null
            ? 'No usage in the last 7 days, so the balance is not going down.'
            : `Lasts about ${days.toString()} day${days === 1n ? '' : 's'} at the last 7 days' rate (${formatUsd(spent7)} a week).`}
      </p>
      <dl class="thresholds">
        <div>
          <dt>Low at</dt>
          <dd>
            <Money field="balance_low_trigger" value={p.balance_low_trigger} />
          </dd>
        </div>
        <div>
          <dt>Critical at</dt>
          <dd>
            <Money field="balance_critical_trigger" value={p.balance_critical_trigger} />
          </dd>
        </div>
        <div>
          <dt>Suspended at</dt>
          <dd>
            <Money field="balance_termination_trigger" value={p.balance_termination_trigger} />
          </dd>
        </div>
      </dl>
      <p class="muted small">
        Below the last threshold, use is suspended; after the grace period the resource is deleted. Any top up restores
        it before that.
      </p>
    </section>
  );
}

function tokenKey(t: AcceptedToken): string {
  return `${t.chain_id}:${t.token_address}`;
}

function TopUpCard(props: { data: PurchaseView; creds: Credentials; onCredited: () => Promise<void> }) {
  const wallet = props.data.checkout_wallet;
  const accepts = wallet?.accepts ?? [];
  const [selected, setSelected] = useState<string>(accepts[0] ? tokenKey(accepts[0]) : '');
  const [checking, setChecking] = useState(false);
  const [result, setResult] = useState<{ tone: 'ok' | 'info' | 'error'; text: string; pending?: string } | null>(null);

  if (!wallet) {
    return (
      <section class="card" aria-labelledby="topup-h">
        <h2 id="topup-h">Top up</h2>
        <p>This purchase has no deposit address. Contact the vendor to add funds.</p>
      </section>
    );
  }
  const token = accepts.find((t) => tokenKey(t) === selected) ?? accepts[0];
  const check = async () => {
    setChecking(true);
    setResult(null);
    try {
      const body = await api<VerifyTopupResponse>(
        `/v1/purchase/${encodeURIComponent(props.creds.purchaseId)}/verify-topup`,
        { token: props.creds.key, body: {} },
      );
      if ('new_balance' in body) {
        setResult({ tone: 'ok', text: `Credited ${formatUsd(body.topup_amount)}. ${body.message}` });
      } else {
        const pending = toMicros(body.current_wallet_balance_usd);
        setResult({
          tone: 'info',
          text: body.message,
          pending: pending > 0n ? body.current_wallet_balance_usd.toFixed(6) : undefined,
        });
      }
      await props.onCredited();
    } catch (e) {
      setResult({ tone: 'error', text: errorText(e) });
    } finally {
      setChecking(false);
    }
  };

  return (
    <section class="card" aria-labelledby="topup-h">
      <h2 id="topup-h">Top up</h2>
      <p>
        Send a stablecoin to your deposit address. It is the same address on every chain listed; deposits are credited
        automatically after block confirmations.
      </p>
      <div class="address-row">
        <code class="address" data-field="evm_address" data-value={wallet.evm_address}>
          {wallet.evm_address}
        </code>
        <CopyButton text={wallet.evm_address} label="the deposit address" action="copy-address" />
      </div>
      {accepts.length > 0 && token && (
        <>
          <fieldset class="tokens">
            <legend>Chain and token</legend>
            {accepts.map((t) => (
              <label key={tokenKey(t)} class={`chip ${tokenKey(t) === tokenKey(token) ? 'chip-on' : ''}`}>
                <input
                  type="radio"
                  name="token"
                  value={tokenKey(t)}
                  checked={tokenKey(t) === tokenKey(token)}
                  onChange={() => setSelected(tokenKey(t))}
                  data-chain-id={String(t.chain_id)}
                  data-token-symbol={t.token_symbol}
                />
                {t.token_symbol} on {t.chain}
              </label>
            ))}
          </fieldset>
          <div class="qr-row">
            <QrCode
              uri={eip681(token.token_address ?? '', token.chain_id ?? 0, wallet.evm_address)}
              label={`QR code: send ${token.token_symbol} on ${token.chain} (chain ${token.chain_id}) to ${wallet.evm_address}`}
            />
            <dl class="token-facts">
              <dt>Token</dt>
              <dd>
                {token.token_name && !token.token_name.includes(token.token_symbol ?? '')
                  ? `${token.token_name} (${token.token_symbol})`
                  : (token.token_name ?? token.token_symbol)}
              </dd>
              <dt>Token contract</dt>
              <dd>
                <code title={token.token_address} data-field="token_address" data-value={token.token_address}>
                  {shortHex(token.token_address ?? '')}
                </code>
              </dd>
              <dt>Chain</dt>
              <dd>
                {token.chain} (id <Field field="chain_id" value={token.chain_id} />)
              </dd>
              <dd class="muted small">1 {token.token_symbol} = $1.00. Only send these tokens on these chains.</dd>
            </dl>
          </div>
        </>
      )}
      <PendingDeposits deposits={props.data.pending_deposits ?? []} accepts={accepts} />
      <div class="actions-row">
        <button type="button" class="btn btn-primary" data-action="check-payment" onClick={check} disabled={checking}>
          {checking ? 'Checking…' : 'Check for payment'}
        </button>
      </div>
      <div aria-live="polite" data-field="topup_result">
        {result && (
          <Alert tone={result.tone === 'error' ? 'error' : result.tone === 'ok' ? 'ok' : 'info'}>
            {result.text}
            {result.pending && (props.data.pending_deposits ?? []).length === 0 && (
              <>
                {' '}
                <span data-field="pending_usd" data-value={result.pending}>
                  {formatUsd(result.pending)} is waiting for confirmations.
                </span>
              </>
            )}
          </Alert>
        )}
      </div>
    </section>
  );
}

const INTERVALS: { value: Interval; label: string }[] = [
  { value: 'hourly', label: 'Hourly' },
  { value: 'daily', label: 'Daily' },
  { value: 'weekly', label: 'Weekly' },
  { value: 'monthly', label: 'Monthly' },
];

function bucketLabel(time: string, interval: Interval): string {
  const d = toDate(time);
  if (!d) return time;
  const opts: Intl.DateTimeFormatOptions =
    interval === 'hourly'
      ? { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZone: 'UTC' }
      : interval === 'monthly'
        ? { year: 'numeric', month: 'long', timeZone: 'UTC' }
        : { year: 'numeric', month: 'short', day: 'numeric', timeZone: 'UTC' };
  const text = d.toLocaleString(undefined, opts);
  return interval === 'weekly' ? `Week of ${text}` : interval === 'hourly' ? `${text} UTC` : text;
}

function UsageCard(props: { creds: Credentials; reloadKey: number }) {
  const [interval, setIntervalKind] = useState<Interval>('daily');
  const [start, setStart] = useState(isoDay(daysAgo(29)));
  const [end, setEnd] = useState(isoDay(new Date()));
  const [buckets, setBuckets] = useState<BillingBucket[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  // What the shown buckets are for; differs from the controls while a new range loads.
  const [loadedFor, setLoadedFor] = useState('');
  const wanted = `${interval}|${start}|${end}`;

  useEffect(() => {
    const ctrl = new AbortController();
    setError(null);
    api<BillingBucket[]>(`/v1/purchase/${encodeURIComponent(props.creds.purchaseId)}/historical-billing`, {
      token: props.creds.key,
      body: { interval, start_date: start || undefined, end_date: end || undefined },
      signal: ctrl.signal,
    })
      .then((b) => {
        setBuckets(b);
        setLoadedFor(`${interval}|${start}|${end}`);
      })
      .catch((e: unknown) => {
        if ((e as Error).name !== 'AbortError') setError(errorText(e));
      });
    return () => ctrl.abort();
  }, [props.creds, interval, start, end, props.reloadKey]);

  const total = useMemo(() => (buckets ? sumDecimals(buckets.map((b) => b.total_billed_amount)) : null), [buckets]);
  const units = useMemo(() => {
    const sums = new Map<string, string[]>();
    for (const b of buckets ?? []) {
      for (const [unit, amount] of Object.entries(b.usage_by_unit ?? {})) {
        sums.set(unit, [...(sums.get(unit) ?? []), amount]);
      }
    }
    return Array.from(sums, ([unit, amounts]) => ({ unit, total: sumDecimals(amounts) }));
  }, [buckets]);
  const chart = useMemo(
    () => ({
      times: (buckets ?? []).map((b) => Math.floor((toDate(b.time_bucket)?.getTime() ?? 0) / 1000)),
      values: (buckets ?? []).map((b) => toNumber(b.total_billed_amount)),
    }),
    [buckets],
  );

  return (
    <section
      class="card"
      aria-labelledby="usage-h"
      data-section="usage"
      data-state={loadedFor === wanted ? 'ready' : 'loading'}
      data-interval={interval}
      aria-busy={loadedFor !== wanted}
    >
      <h2 id="usage-h">Usage</h2>
      <div class="controls">
        <div class="segmented" role="group" aria-label="Bucket size">
          {INTERVALS.map((i) => (
            <button
              type="button"
              key={i.value}
              class={`seg ${interval === i.value ? 'seg-on' : ''}`}
              aria-pressed={interval === i.value}
              data-action="interval"
              data-value={i.value}
              onClick={() => {
                setIntervalKind(i.value);
                // Hourly bars over a month are a pixel wide: narrow a long range to its last 3 days.
                const endDay = end ? new Date(`${end}T00:00:00Z`) : new Date();
                if (i.value === 'hourly' && (!start || Date.parse(`${start}T00:00:00Z`) < endDay.getTime() - 7 * 86_400_000)) {
                  setStart(isoDay(daysAgo(2, endDay)));
                }
              }}
            >
              {i.label}
            </button>
          ))}
        </div>
        <label class="inline-field">
          From
          <input type="date" name="start_date" value={start} max={end || undefined} onChange={(e) => setStart(e.currentTarget.value)} />
        </label>
        <label class="inline-field">
          To
          <input type="date" name="end_date" value={end} min={start || undefined} onChange={(e) => setEnd(e.currentTarget.value)} />
        </label>
      </div>
      {error && <Alert tone="error">{error}</Alert>}
      {buckets === null && !error && <p class="muted">Loading usage…</p>}
      {buckets !== null && (
        <>
          <p class="total-line">
            Billed from {start || 'the start'} to {end || 'today'} (UTC):{' '}
            <strong>
              <Money field="total_billed_amount" value={total ?? '0.000000'} />
            </strong>
          </p>
          {buckets.length === 0 ? (
            <p class="muted" data-field="usage_empty">
              No usage in this range.
            </p>
          ) : (
            <>
              <BarChart
                times={chart.times}
                values={chart.values}
                label="Billed (USD)"
                interval={interval}
                from={start ? Date.parse(`${start}T00:00:00Z`) / 1000 : undefined}
                to={end ? Date.parse(`${end}T00:00:00Z`) / 1000 : undefined}
                summary={`Bar chart of the amount billed per ${interval.replace(/ly$/, '').replace('dai', 'day')}: ${buckets.length} buckets, ${formatUsd(total ?? '0')} in total.`}
              />
              {units.length > 0 && (
                <ul class="units" aria-label="Usage by unit">
                  {units.map((u) => (
                    <li key={u.unit}>
                      <span class="muted">{u.unit}</span>{' '}
                      <strong data-field={`usage_by_unit.${u.unit}`} data-value={u.total}>
                        {formatAmount(u.total)}
                      </strong>
                    </li>
                  ))}
                </ul>
              )}
              <div class="table-wrap" tabIndex={0} role="region" aria-label="Usage per bucket">
                <table data-table="usage">
                  <caption class="sr-only">Usage per bucket</caption>
                  <thead>
                    <tr>
                      <th scope="col">Period</th>
                      <th scope="col">Usage</th>
                      <th scope="col" class="num">
                        Billed
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {buckets.map((b) => (
                      <tr key={b.time_bucket} data-time-bucket={b.time_bucket}>
                        <td data-label="Period">
                          <span data-field="time_bucket" data-value={b.time_bucket}>
                            {bucketLabel(b.time_bucket, interval)}
                          </span>
                        </td>
                        <td data-label="Usage">
                          <span data-field="total_usage_amount" data-value={b.total_usage_amount}>
                            {Object.entries(b.usage_by_unit ?? {})
                              .map(([u, a]) => `${formatAmount(a)} ${u}`)
                              .join(', ') || formatAmount(b.total_usage_amount)}
                          </span>
                        </td>
                        <td class="num" data-label="Billed">
                          <Money field="bucket_billed_amount" value={b.total_billed_amount} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                  <tfoot>
                    <tr>
                      <th scope="row" colSpan={2}>
                        Total
                      </th>
                      <td class="num">
                        <strong>{formatUsd(total ?? '0')}</strong>
                      </td>
                    </tr>
                  </tfoot>
                </table>
              </div>
            </>
          )}
        </>
      )}
    </section>
  );
}

const KIND_TEXT: Record<string, string> = {
  credit: 'Deposit',
  deposit: 'Deposit',
  usage: 'Usage',
  cost: 'Cloud cost',
  adjustment: 'Adjustment',
  refund: 'Refund',
  sweep_fee: 'Network fee',
};

function LedgerCard(props: { creds: Credentials; reloadKey: number }) {
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [page, setPage] = useState<Page<LedgerEntry> | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [missing, setMissing] = useState(false);
  const cursor = cursors[cursors.length - 1];

  useEffect(() => {
    const q = new URLSearchParams({ limit: '20' });
    if (cursor) q.set('cursor', cursor);
    api<Page<LedgerEntry>>(`/v1/purchase/${encodeURIComponent(props.creds.purchaseId)}/ledger?${q}`, {
      token: props.creds.key,
    })
      .then((p) => {
        setPage(p);
        setError(null);
      })
      .catch((e: unknown) => {
        if (e instanceof ApiError && e.status === 404 && e.code === 'not_found') setMissing(true);
        else setError(errorText(e));
      });
  }, [props.creds, cursor, props.reloadKey]);

  return (
    <section class="card" aria-labelledby="ledger-h">
      <h2 id="ledger-h">History</h2>
      {missing && <p class="muted">This server does not show the history yet.</p>}
      {error && <Alert tone="error">{error}</Alert>}
      {page && (
        <>
          {page.items.length === 0 ? (
            <p class="muted">No entries yet.</p>
          ) : (
            <div class="table-wrap" tabIndex={0} role="region" aria-label="Ledger entries">
              <table data-table="ledger">
                <caption class="sr-only">Ledger entries, newest first</caption>
                <thead>
                  <tr>
                    <th scope="col">When</th>
                    <th scope="col">What</th>
                    <th scope="col" class="num">
                      Amount
                    </th>
                    <th scope="col" class="num">
                      Balance after
                    </th>
                  </tr>
                </thead>
                <tbody>
                  {page.items.map((e) => (
                    <tr key={String(e.id)} data-ledger-id={String(e.id)} data-kind={e.kind}>
                      <td data-label="When">
                        <span data-field="created_at" data-value={String(e.created_at)}>
                          {formatTime(e.created_at)}
                        </span>
                      </td>
                      <td data-label="What">
                        <span class={`kind kind-${e.kind}`} data-field="kind" data-value={e.kind}>
                          {KIND_TEXT[e.kind] ?? e.kind}
                        </span>{' '}
                        <span data-field="description">{e.description ?? ''}</span>
                        {e.tx_hash && (
                          <>
                            {' '}
                            {e.explorer_url ? (
                              <a href={e.explorer_url} rel="noreferrer" target="_blank" data-field="tx_hash" data-value={e.tx_hash}>
                                tx {shortHex(e.tx_hash)}
                                <span class="sr-only"> (opens the block explorer in a new tab)</span>
                              </a>
                            ) : (
                              <code data-field="tx_hash" data-value={e.tx_hash} title={e.tx_hash}>
                                tx {shortHex(e.tx_hash)}
                              </code>
                            )}
                          </>
                        )}
                      </td>
                      <td class="num" data-label="Amount">
                        <Money field="amount_usd" value={e.amount_usd} class={toMicros(e.amount_usd) < 0n ? 'negative' : 'positive'} />
                      </td>
                      <td class="num" data-label="Balance after">
                        <Money field="balance_after_usd" value={e.balance_after_usd} />
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <nav class="pager" aria-label="History pages">
            <button type="button" class="btn" disabled={cursors.length <= 1} data-action="ledger-newer" onClick={() => setCursors((c) => c.slice(0, -1))}>
              Newer
            </button>
            <span class="muted small">Page {cursors.length}</span>
            <button
              type="button"
              class="btn"
              disabled={!page.next_cursor}
              data-action="ledger-older"
              onClick={() => page.next_cursor && setCursors((c) => [...c, page.next_cursor])}
            >
              Older
            </button>
          </nav>
        </>
      )}
    </section>
  );
}

function Snippet(props: { id: string; label: string; code: string }) {
  return (
    <div class="snippet">
      <div class="snippet-head">
        <span id={props.id}>{props.label}</span>
        <CopyButton text={props.code} label={`the ${props.label} example`} />
      </div>
      <pre tabIndex={0} aria-labelledby={props.id}>
        <code>{props.code}</code>
      </pre>
    </div>
  );
}

/** Payments to the deposit address that are not in the balance yet, with their confirmations. */
function PendingDeposits(props: { deposits: Incoming[]; accepts: AcceptedToken[] }) {
  const { deposits } = props;
  const chainName = (id: number) => props.accepts.find((t) => t.chain_id === id)?.chain ?? `chain ${id}`;
  return (
    <div class="pending" data-section="pending-deposits" data-count={String(deposits.length)}>
      <h3 id="pending-h">Payments on their way</h3>
      {deposits.length === 0 ? (
        <p class="muted small" data-field="pending_empty">
          None right now. A payment shows up here once it is in a block, then counts its confirmations.
        </p>
      ) : (
        <ul class="pending-list" aria-labelledby="pending-h">
          {deposits.map((d) => {
            const have = d.confirmations ?? null;
            const need = d.required_confirmations;
            const shown = have === null ? 0 : Math.min(have, need);
            return (
              <li key={d.tx_hash} class="pending-item" data-tx-hash={d.tx_hash} data-status={d.status}>
                <div class="pending-main">
                  <strong>
                    <Money field="amount_usd" value={d.amount_usd} />
                  </strong>{' '}
                  <span data-field="token_symbol" data-value={d.token_symbol}>
                    {d.token_symbol.toUpperCase()}
                  </span>{' '}
                  on{' '}
                  <span data-field="chain_id" data-value={String(d.chain_id)}>
                    {chainName(d.chain_id)}
                  </span>
                  <span class={`badge ${d.status === 'confirmed' ? 'badge-ok' : 'badge-info'}`} data-field="status" data-value={d.status}>
                    {d.status === 'confirmed' ? 'Confirmed, being credited' : 'Waiting for confirmations'}
                  </span>
                </div>
                <div class="pending-confs">
                  <progress max={need || 1} value={need ? shown : 1} aria-label={`Confirmations of the ${d.token_symbol.toUpperCase()} payment`} />
                  <span>
                    {have === null ? (
                      <span data-field="confirmations" data-value="">
                        ? (the chain's node did not answer)
                      </span>
                    ) : (
                      <span data-field="confirmations" data-value={String(have)}>
                        {have}
                      </span>
                    )}{' '}
                    of{' '}
                    <span data-field="required_confirmations" data-value={String(need)}>
                      {need}
                    </span>{' '}
                    confirmations
                  </span>
                </div>
                <div class="small">
                  {d.explorer_url ? (
                    <a href={d.explorer_url} rel="noreferrer" target="_blank" data-field="tx_hash" data-value={d.tx_hash}>
                      tx {shortHex(d.tx_hash)}
                      <span class="sr-only"> (opens the block explorer in a new tab)</span>
                    </a>
                  ) : (
                    <code data-field="tx_hash" data-value={d.tx_hash} title={d.tx_hash}>
                      tx {shortHex(d.tx_hash)}
                    </code>
                  )}
                </div>
              </li>
            );
          })}
        </ul>
      )}
    </div>
  );
}

function FactRow(props: { label: string; field: string; value: string | null | undefined; copyLabel: string }) {
  return (
    <>
      <dt>{props.label}</dt>
      <dd class="fact-value">
        {props.value ? (
          <>
            <code data-field={props.field} data-value={props.value}>
              {props.value}
            </code>
            <CopyButton text={props.value} label={props.copyLabel} action={`copy-${props.field}`} />
          </>
        ) : (
          <span class="muted" data-field={props.field} data-value="">
            not given (the default)
          </span>
        )}
      </dd>
    </>
  );
}

function HowToUse(props: { data: PurchaseView }) {
  const p = props.data.purchase;
  const r: ResourceInfo | null = p.resource ?? null;
  const kind = r?.kind ?? '';
  const head = <h2 id="use-h">How to use it</h2>;
  if (p.status === 'deleted') {
    return (
      <section class="card" aria-labelledby="use-h" data-section="how-to-use" data-state="deleted">
        {head}
        <p>The resource was deleted after the grace period; there is nothing left to connect to.</p>
      </section>
    );
  }
  if (!r) {
    return (
      <section class="card" aria-labelledby="use-h" data-section="how-to-use" data-state="preparing">
        {head}
        <p data-field="resource" data-value="">
          Your resource is being prepared. Its details (where to connect, how) appear here as soon as it is ready; this
          page refreshes by itself.
        </p>
      </section>
    );
  }
  if (kind === 'gemini') {
    const base = r.gateway_base_url ?? window.location.origin;
    const s = geminiSnippets(base);
    return (
      <section class="card" aria-labelledby="use-h" data-section="how-to-use" data-state="ready" data-kind={kind}>
        {head}
        <p>
          Use any Gemini client with this base URL and your gateway key (from your receipt; it is not shown here).
          Replace <code>YOUR_KEY</code> with it. Google's REST API is under <code>/v1beta</code> and <code>/v1</code>,
          Gemini's OpenAI-compatible API under <code>/v1beta/openai/</code>.
        </p>
        <dl class="facts">
          <FactRow label="Base URL" field="gateway_base_url" value={r.gateway_base_url} copyLabel="the gateway base URL" />
        </dl>
        <Snippet id="snip-curl" label="curl" code={s.curl} />
        <Snippet id="snip-py" label="Python (google-genai)" code={s.python} />
        <Snippet id="snip-js" label="JavaScript (@google/genai)" code={s.js} />
        <Snippet id="snip-openai" label="Python (openai)" code={s.openai} />
      </section>
    );
  }
  if (kind === 's3') {
    const opts = `${r.endpoint ? ` --endpoint-url ${r.endpoint}` : ''}${r.region ? ` --region ${r.region}` : ''}`;
    const bucket = r.bucket ?? 'YOUR_BUCKET';
    return (
      <section class="card" aria-labelledby="use-h" data-section="how-to-use" data-state="ready" data-kind={kind}>
        {head}
        <p>
          Your storage is an S3 bucket of its own. The access key is in the gift card of your receipt (open it in
          OfficeX); it is never shown on this page. Any S3 client works with these settings.
        </p>
        <dl class="facts">
          <FactRow label="Bucket" field="bucket" value={r.bucket} copyLabel="the bucket name" />
          <FactRow label="Endpoint" field="endpoint" value={r.endpoint} copyLabel="the endpoint URL" />
          <FactRow label="Region" field="region" value={r.region} copyLabel="the region" />
        </dl>
        <Snippet id="snip-aws" label="AWS CLI" code={`aws s3 ls s3://${bucket}/${opts}`} />
        <Snippet
          id="snip-boto"
          label="Python (boto3)"
          code={`import boto3

s3 = boto3.client(
    "s3",${r.endpoint ? `\n    endpoint_url="${r.endpoint}",` : ''}${r.region ? `\n    region_name="${r.region}",` : ''}
    aws_access_key_id="YOUR_ACCESS_KEY_ID",
    aws_secret_access_key="YOUR_SECRET_ACCESS_KEY",
)
for obj in s3.list_objects_v2(Bucket="${bucket}").get("Contents", []):
    print(obj["Key"])`}
        />
      </section>
    );
  }
  return (
    <section class="card" aria-labelledby="use-h" data-section="how-to-use" data-state="ready" data-kind={kind}>
      {head}
      <p>
        Your resource (<code data-field="kind" data-value={kind}>{kind}</code>) is ready. The vendor's instructions in
        your receipt say how to connect to it.
      </p>
    </section>
  );
}
