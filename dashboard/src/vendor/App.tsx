// The vendor console: sign in with ADMIN_TOKEN, then overview, purchases (search, filter, sort, pages),
// a purchase's page with its actions, sweeps, notifications, cost imports, billing tokens, gas and
// the audit log. Every call goes to /v1/admin/… with `Authorization: Bearer <ADMIN_TOKEN>`.
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, api, errorText, newIdempotencyKey } from '../lib/api';
import { formatTime, humanize } from '../lib/format';
import { formatUsd } from '../lib/money';
import { Alert, CopyButton, DataTable, Field, Money, StatusBadge, Value } from '../lib/ui';
import type { Page, Row } from '../api/handwritten';
import { SweepTxActions, type TxActionMessage } from './SweepTxActions';
import type { AdminOverview, AdminPurchase, AdminPurchaseDetail, ChainHealth, CreatedToken, GasBalance } from '../api/types';
import { Refunds } from './Refunds';
import { S3EstimateCard } from '../components/S3Estimate';
import { WatcherPasses } from './WatcherPasses';

const TOKEN_KEY = 'vendor-server.admin-token';

function storedToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

type Route =
  | { view: 'overview' }
  | { view: 'purchases' }
  | { view: 'purchase'; id: string }
  | { view: 'sweeps' }
  | { view: 'refunds' }
  | { view: 'notifications' }
  | { view: 'cost-imports' }
  | { view: 'tokens' }
  | { view: 'gas' }
  | { view: 'audit' };

function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  switch (parts[0]) {
    case 'purchases':
      return parts[1] ? { view: 'purchase', id: parts[1] } : { view: 'purchases' };
    case 'sweeps':
    case 'refunds':
    case 'notifications':
    case 'cost-imports':
    case 'tokens':
    case 'gas':
    case 'audit':
      return { view: parts[0] };
    default:
      return { view: 'overview' };
  }
}

const NAV: { view: Route['view']; href: string; label: string }[] = [
  { view: 'overview', href: '#/overview', label: 'Overview' },
  { view: 'purchases', href: '#/purchases', label: 'Purchases' },
  { view: 'sweeps', href: '#/sweeps', label: 'Sweeps' },
  { view: 'refunds', href: '#/refunds', label: 'Refunds' },
  { view: 'notifications', href: '#/notifications', label: 'Notifications' },
  { view: 'cost-imports', href: '#/cost-imports', label: 'Cost imports' },
  { view: 'tokens', href: '#/tokens', label: 'Billing tokens' },
  { view: 'gas', href: '#/gas', label: 'Gas' },
  { view: 'audit', href: '#/audit', label: 'Audit log' },
];

export function App() {
  const [token, setToken] = useState<string | null>(storedToken);
  const [route, setRoute] = useState<Route>(() => parseRoute(window.location.hash));
  useEffect(() => {
    const onHash = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  const signOut = useCallback(() => {
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // nothing stored
    }
    setToken(null);
  }, []);

  if (!token) return <SignIn onSignedIn={setToken} />;
  const current = route.view === 'purchase' ? 'purchases' : route.view;
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <div class="page topbar-inner">
          <span class="brand">Vendor console</span>
          <button type="button" class="btn btn-small" data-action="sign-out" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <div class="layout">
        <nav class="sidenav" aria-label="Console sections">
          <ul>
            {NAV.map((n) => (
              <li key={n.view}>
                <a href={n.href} aria-current={current === n.view ? 'page' : undefined}>
                  {n.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <main id="main" tabIndex={-1}>
          <Authed token={token} onUnauthorized={signOut}>
            {(call) => <View route={route} call={call} />}
          </Authed>
        </main>
      </div>
    </>
  );
}

type Call = <T>(path: string, opts?: { method?: 'GET' | 'POST' | 'DELETE'; body?: unknown; idempotencyKey?: string }) => Promise<T>;

function Authed(props: { token: string; onUnauthorized: () => void; children: (call: Call) => ComponentChildren }) {
  const { token, onUnauthorized } = props;
  const call = useCallback<Call>(
    async (path, opts) => {
      try {
        return await api(path, { ...opts, token });
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) onUnauthorized();
        throw e;
      }
    },
    [token, onUnauthorized],
  );
  return <>{props.children(call)}</>;
}

function SignIn(props: { onSignedIn: (token: string) => void }) {
  const [error, setError] = useState<ComponentChildren>(null);
  const [busy, setBusy] = useState(false);
  const [disabled, setDisabled] = useState(false);
  useEffect(() => {
    // Without a token the admin API answers 401 when it is on and 404 when ADMIN_TOKEN is not set.
    api('/v1/admin/overview').catch((e: unknown) => {
      if (e instanceof ApiError && e.status === 404) setDisabled(true);
    });
  }, []);
  const submit = async (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const token = String(new FormData(form).get('token') ?? '').trim();
    if (!token) {
      setError('Enter the admin token.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      await api('/v1/admin/overview', { token });
      try {
        sessionStorage.setItem(TOKEN_KEY, token);
      } catch {
        // kept in memory only
      }
      props.onSignedIn(token);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) setDisabled(true);
      else if (err instanceof ApiError && err.status === 401) setError('That token is not the server’s ADMIN_TOKEN.');
      else setError(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="page signin" id="main">
      <h1>Vendor console</h1>
      {disabled && <AdminOff />}
      <form class="card" onSubmit={submit} aria-labelledby="signin-h">
        <h2 id="signin-h">Sign in</h2>
        <p class="muted small">
          Use the server’s <code>ADMIN_TOKEN</code>. It stays in this browser tab only (sessionStorage) and is sent as a
          bearer token to <code>/v1/admin/…</code>.
        </p>
        <label class="form-field">
          <span>Admin token</span>
          <input type="password" name="token" autoComplete="current-password" required aria-describedby="signin-error" />
        </label>
        <div class="actions-row">
          <button type="submit" class="btn btn-primary" data-action="sign-in" disabled={busy}>
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </div>
        <div id="signin-error" aria-live="polite">
          {error && <Alert tone="error">{error}</Alert>}
        </div>
      </form>
    </main>
  );
}

function AdminOff() {
  return (
    <Alert tone="warn" title="The admin API is off on this server">
      <p data-field="admin_disabled">
        Set <code>ADMIN_TOKEN</code> (at least 16 random characters, e.g. <code>openssl rand -hex 24</code>) in the
        server’s <code>.env</code> or environment and restart it. Until then <code>/v1/admin/…</code> answers 404 and
        this console cannot sign in. <code>scripts/dev-server.sh</code> writes one into a new development{' '}
        <code>.env</code>.
      </p>
    </Alert>
  );
}

function View(props: { route: Route; call: Call }) {
  const { route, call } = props;
  useEffect(() => {
    document.title = `${route.view === 'purchase' ? route.id : humanize(route.view)} — Vendor console`;
  }, [route]);
  switch (route.view) {
    case 'overview':
      return <Overview call={call} />;
    case 'purchases':
      return <Purchases call={call} />;
    case 'purchase':
      return <PurchasePage call={call} id={route.id} />;
    case 'sweeps':
      return <Sweeps call={call} />;
    case 'refunds':
      return <Refunds call={call} />;
    case 'notifications':
      return <Notifications call={call} />;
    case 'cost-imports':
      return <ListView call={call} title="Cost imports" path="/v1/admin/cost-imports" caption="Cost import runs" empty="No cost import has run yet." />;
    case 'tokens':
      return <Tokens call={call} />;
    case 'gas':
      return <Gas call={call} />;
    case 'audit':
      return <ListView call={call} title="Audit log" path="/v1/admin/audit" caption="Admin actions, newest first" empty="No admin action yet." columnsKey="audit" />;
  }
}

/** Loads `path` (re-loads when `deps` change); 404 on a route means the admin API lacks it. */
function useLoad<T>(call: Call, path: string | null, deps: unknown[] = []) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!path) return;
    let live = true;
    setError(null);
    call<T>(path)
      .then((d) => live && setData(d))
      .catch((e: unknown) => live && setError(e instanceof ApiError && e.status === 404 ? `${errorText(e)} (${path})` : errorText(e)));
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [path, tick, ...deps]);
  return { data, error, reload: () => setTick((t) => t + 1), setData };
}

/** Cursor pagination: a stack of cursors, the last one is the current page's. */
function usePages(call: Call, base: string, params: Record<string, string>) {
  const [cursors, setCursors] = useState<string[]>(['']);
  const key = JSON.stringify(params);
  useEffect(() => setCursors(['']), [key, base]);
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const cursor = cursors[cursors.length - 1];
  if (cursor) q.set('cursor', cursor);
  const qs = q.toString();
  const load = useLoad<Page<Row>>(call, `${base}${qs ? `?${qs}` : ''}`);
  const pager = (
    <nav class="pager" aria-label="Pages">
      <button type="button" class="btn" disabled={cursors.length <= 1} data-action="previous-page" onClick={() => setCursors((c) => c.slice(0, -1))}>
        Previous
      </button>
      <span class="muted small">Page {cursors.length}</span>
      <button
        type="button"
        class="btn"
        disabled={!load.data?.next_cursor}
        data-action="next-page"
        onClick={() => {
          const next = load.data?.next_cursor;
          if (next) setCursors((c) => [...c, next]);
        }}
      >
        Next
      </button>
    </nav>
  );
  return { ...load, pager };
}

function Section(props: { title: string; children: ComponentChildren; id?: string }) {
  const id = props.id ?? `h-${props.title.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`;
  return (
    <section class="card" aria-labelledby={id}>
      <h2 id={id}>{props.title}</h2>
      {props.children}
    </section>
  );
}

function Loading(props: { error: string | null; what: string }) {
  return props.error ? <Alert tone="error">{props.error}</Alert> : <p class="muted">Loading {props.what}…</p>;
}

/** The columns worth a table cell for the lists people read most (others: every key). */
const COLUMNS: Record<string, string[]> = {
  ledger: ['id', 'kind', 'amount_usd', 'balance_after_usd', 'description', 'created_at', 'tx_hash'],
  notifications: ['id', 'channel', 'event_type', 'status', 'attempt_count', 'last_error', 'next_attempt_at', 'payload'],
  sweeps: ['id', 'chain', 'token_symbol', 'amount_units', 'method', 'status', 'tx_hash', 'attempts', 'stuck_at', 'last_error', 'updated_at'],
  audit: ['created_at', 'action', 'target_type', 'target_id', 'reason', 'client_ip', 'details'],
};

function columnsFor(field: string | undefined, rows: Row[]): string[] | undefined {
  const wanted = field ? COLUMNS[field] : undefined;
  if (!wanted) return undefined;
  const present = wanted.filter((c) => rows.some((r) => c in r));
  return present.length > 0 ? present : undefined;
}

/** Renders any JSON value for people, keeping data-field on every leaf. */
function Generic(props: { value: unknown; field?: string }) {
  const { value, field } = props;
  if (Array.isArray(value)) {
    if (value.every((v) => v && typeof v === 'object' && !Array.isArray(v))) {
      const rows = value as Row[];
      return <DataTable rows={rows} columns={columnsFor(field, rows)} caption={humanize(field ?? 'items')} />;
    }
    return <Value field={field ?? 'value'} value={value} />;
  }
  if (value && typeof value === 'object') {
    return (
      <dl class="kv">
        {Object.entries(value as Row).map(([k, v]) => (
          <div key={k} class="kv-row">
            <dt>{humanize(k)}</dt>
            <dd>
              {v && typeof v === 'object' ? <Generic value={v} field={k} /> : k === 'status' && typeof v === 'string' ? <StatusBadge status={v} /> : <Value field={k} value={v} />}
            </dd>
          </div>
        ))}
      </dl>
    );
  }
  return <Value field={field ?? 'value'} value={value} />;
}

function Overview(props: { call: Call }) {
  const { data, error } = useLoad<Row>(props.call, '/v1/admin/overview');
  return (
    <>
      <h1>Overview</h1>
      {!data ? (
        <Loading error={error} what="the overview" />
      ) : (
        <>
          <div class="stats">
            {Object.entries(data)
              .filter(([, v]) => v === null || typeof v !== 'object')
              .map(([k, v]) => (
                <div class="stat" key={k}>
                  <div class="stat-label">{humanize(k)}</div>
                  <div class="stat-value">
                    <Value field={k} value={v} />
                  </div>
                </div>
              ))}
          </div>
          {Object.entries(data)
            .filter(([, v]) => v !== null && typeof v === 'object')
            .map(([k, v]) =>
              k === 'money' && isMoneyWindows(v) ? (
                <Section key={k} title="Money">
                  <MoneyTable windows={v} />
                </Section>
              ) : k === 'gas' && Array.isArray(v) ? (
                <Section key={k} title="Gas wallets">
                  <GasTable rows={v as GasBalance[]} />
                </Section>
              ) : k === 'rpc' ? (
                <Section key={k} title="RPC endpoints">
                  <RpcTable chains={v as Record<string, ChainHealth>} />
                  <WatcherPasses chains={(data as AdminOverview).watcher} />
                </Section>
              ) : k === 'watcher' ? null : (
                <Section key={k} title={humanize(k)}>
                  <Generic value={v} field={k} />
                </Section>
              ),
            )}
        </>
      )}
      {data && !Array.isArray(data.gas) && <Gas call={props.call} embedded />}
    </>
  );
}

type MoneyWindows = Record<'today' | 'last_7_days' | 'last_30_days', Record<string, string>>;

function isMoneyWindows(v: unknown): v is MoneyWindows {
  return !!v && typeof v === 'object' && 'today' in v && 'last_7_days' in v && 'last_30_days' in v;
}

function MoneyTable(props: { windows: MoneyWindows }) {
  const windows = [
    ['today', 'Today'],
    ['last_7_days', '7 days'],
    ['last_30_days', '30 days'],
  ] as const;
  const fields = Object.keys(props.windows.today);
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label="Money in and usage billed">
      <table>
        <caption class="sr-only">Money in and usage billed per window</caption>
        <thead>
          <tr>
            <th scope="col">Window</th>
            {fields.map((f) => (
              <th scope="col" class="num" key={f}>
                {humanize(f)}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {windows.map(([key, label]) => (
            <tr key={key} data-window={key}>
              <th scope="row">{label}</th>
              {fields.map((f) => (
                <td class="num" data-label={humanize(f)} key={f}>
                  <Value field={f} value={props.windows[key][f]} />
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Each chain's JSON-RPC endpoints: state, calls and the last error (never a URL: the server shows
 * only host:port). A chain with every endpoint down holds its checkouts and sweeps. */
function RpcTable(props: { chains: Record<string, ChainHealth> }) {
  const rows = Object.entries(props.chains).flatMap(([chain, health]) =>
    health.endpoints.map((e) => ({ chain, chainStatus: health.status, ...e })),
  );
  if (rows.length === 0) return <p class="muted">No chain is configured.</p>;
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label="RPC endpoints">
      <table>
        <caption class="sr-only">JSON-RPC endpoints per chain</caption>
        <thead>
          <tr>
            <th scope="col">Chain</th>
            <th scope="col">Endpoint</th>
            <th scope="col">State</th>
            <th scope="col" class="num">
              Calls
            </th>
            <th scope="col" class="num">
              Errors
            </th>
            <th scope="col">Last error</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={`${r.chain}#${r.index}`} data-chain={r.chain} data-endpoint={r.endpoint}>
              <td data-label="Chain">
                {r.chain}
                {r.chainStatus === 'down' && <span class="badge badge-bad">All endpoints down</span>}
              </td>
              <td data-label="Endpoint">
                <code>{r.endpoint}</code>
              </td>
              <td data-label="State">
                <span
                  data-field="rpc_state"
                  data-value={r.state}
                  class={`badge ${r.state === 'up' ? 'badge-ok' : r.state === 'down' ? 'badge-bad' : ''}`}
                >
                  {r.state === 'up' ? 'Up' : r.state === 'down' ? 'Down' : 'Not called yet'}
                </span>
                {r.reason === 'chain_id_mismatch' && (
                  <span class="badge badge-bad" data-field="rpc_reason" data-value={r.reason}>
                    Wrong chain{r.chain_id != null ? ` (id ${r.chain_id})` : ''}: not used
                  </span>
                )}
              </td>
              <td class="num" data-label="Calls">
                {r.requests}
              </td>
              <td class="num" data-label="Errors">
                {r.errors}
              </td>
              <td data-label="Last error">
                {r.last_error ? (
                  <span class="small">
                    {r.last_error}
                    {r.last_error_at && <span class="muted"> ({r.last_error_at})</span>}
                  </span>
                ) : (
                  <span class="muted">—</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function gasValue(g: GasBalance): string {
  const v = g.balance_eth ?? g.balance_wei;
  return v === undefined || v === null ? '' : String(v);
}

function GasTable(props: { rows: GasBalance[] }) {
  if (props.rows.length === 0) return <p class="muted">No chain is configured.</p>;
  return (
    <div class="table-wrap" tabIndex={0} role="region" aria-label="Gas wallet balances">
      <table>
        <caption class="sr-only">Gas wallet balance per chain</caption>
        <thead>
          <tr>
            <th scope="col">Chain</th>
            <th scope="col">Wallet</th>
            <th scope="col" class="num">
              Balance
            </th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {props.rows.map((g) => {
            const extra = Object.entries(g).filter(
              ([k]) => !['chain_id', 'chain', 'address', 'balance_eth', 'balance_wei', 'low'].includes(k),
            );
            return (
              <tr key={String(g.chain_id)} data-chain-id={String(g.chain_id)}>
                <td data-label="Chain">
                  {g.chain ?? 'chain'} (<Field field="chain_id" value={g.chain_id} />)
                </td>
                <td data-label="Wallet">{g.address ? <Value field="address" value={g.address} /> : '—'}</td>
                <td class="num" data-label="Balance">
                  <span data-field="gas_balance" data-chain-id={String(g.chain_id)} data-value={gasValue(g)}>
                    {gasValue(g) || '—'}
                  </span>
                </td>
                <td data-label="State">
                  {g.low ? <span class="badge badge-bad">Low gas</span> : <span class="badge badge-ok">OK</span>}
                  {extra.map(([k, v]) => (
                    <div key={k} class="small">
                      <span class="muted">{humanize(k)}:</span> <Value field={k} value={v} />
                    </div>
                  ))}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function Gas(props: { call: Call; embedded?: boolean }) {
  const { data, error } = useLoad<Page<GasBalance> | GasBalance[]>(props.call, '/v1/admin/gas');
  const rows = data ? (Array.isArray(data) ? data : data.items) : null;
  const body = rows ? <GasTable rows={rows} /> : <Loading error={error} what="gas balances" />;
  if (props.embedded) return <Section title="Gas wallets">{body}</Section>;
  return (
    <>
      <h1>Gas</h1>
      <Section title="Gas wallet balance per chain">
        <p class="muted small">
          The gas wallet pays sweeps. When it runs low, sweeps wait (nothing fails); top it up with the chain’s native
          coin.
        </p>
        {body}
      </Section>
    </>
  );
}

const STATUSES = ['', 'provisioning', 'active', 'low', 'critical', 'suspended', 'deleted', 'failed'];

function Purchases(props: { call: Call }) {
  const [filters, setFilters] = useState({ q: '', status: '', offer_id: '', sort: 'created:desc' });
  const [sort, order] = filters.sort.split(':');
  const list = usePages(props.call, '/v1/admin/purchases', {
    q: filters.q,
    status: filters.status,
    offer_id: filters.offer_id,
    sort: sort ?? 'created',
    order: order ?? 'desc',
    limit: '50',
  });
  const submit = (e: Event) => {
    e.preventDefault();
    const f = new FormData(e.currentTarget as HTMLFormElement);
    setFilters({
      q: String(f.get('q') ?? '').trim(),
      status: String(f.get('status') ?? ''),
      offer_id: String(f.get('offer_id') ?? '').trim(),
      sort: String(f.get('sort') ?? ''),
    });
  };
  const rows = (list.data?.items ?? []) as AdminPurchase[];
  return (
    <>
      <h1>Purchases</h1>
      <form class="card form-grid" role="search" onSubmit={submit} aria-label="Find purchases">
        <label class="form-field">
          <span>Search</span>
          <input type="search" name="q" placeholder="Purchase id, email or OfficeX purchase id" defaultValue={filters.q} />
        </label>
        <label class="form-field">
          <span>Status</span>
          <select name="status" defaultValue={filters.status}>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s ? humanize(s) : 'Any'}
              </option>
            ))}
          </select>
        </label>
        <label class="form-field">
          <span>Offer</span>
          <input type="text" name="offer_id" placeholder="e.g. gemini-api-gateway" defaultValue={filters.offer_id} />
        </label>
        <label class="form-field">
          <span>Sort</span>
          <select name="sort" defaultValue={filters.sort}>
            <option value="created:desc">Newest first</option>
            <option value="balance:asc">Balance, lowest first</option>
            <option value="balance:desc">Balance, highest first</option>
            <option value="activity:desc">Last activity, most recent first</option>
            <option value="activity:asc">Last activity, least recent first</option>
          </select>
        </label>
        <div>
          <button type="submit" class="btn btn-primary" data-action="search">
            Search
          </button>
        </div>
      </form>
      <Section title="Results">
        {!list.data ? (
          <Loading error={list.error} what="purchases" />
        ) : rows.length === 0 ? (
          <p class="muted">No purchase matches.</p>
        ) : (
          <div class="table-wrap" tabIndex={0} role="region" aria-label="Purchases">
            <table data-table="purchases">
              <caption class="sr-only">Purchases</caption>
              <thead>
                <tr>
                  <th scope="col">Purchase</th>
                  <th scope="col">Offer</th>
                  <th scope="col">Customer</th>
                  <th scope="col">Status</th>
                  <th scope="col" class="num">
                    Balance
                  </th>
                  <th scope="col">Last activity</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((p) => (
                  <tr key={p.id} data-purchase-id={p.id}>
                    <td data-label="Purchase">
                      <a href={`#/purchases/${encodeURIComponent(p.id)}`} data-field="id" data-value={p.id}>
                        {p.title ?? p.id}
                      </a>
                      <div class="muted small">
                        <code>{p.id}</code>
                      </div>
                    </td>
                    <td data-label="Offer">
                      <Field field="offer_id" value={p.offer_id} />
                    </td>
                    <td data-label="Customer">
                      <Value field="customer_email" value={p.customer_email ?? null} />
                    </td>
                    <td data-label="Status">
                      <StatusBadge status={p.status} />
                    </td>
                    <td class="num" data-label="Balance">
                      <Money field="balance_usd" value={p.balance_usd} />
                    </td>
                    <td data-label="Last activity">
                      <Value field="last_activity_at" value={p.last_activity_at ?? p.created_at ?? null} />
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        {list.data && list.pager}
      </Section>
    </>
  );
}

/** One action's idempotency key, kept until it succeeds (a retry after a network error reuses it). */
function useActionKey(): [string, () => void] {
  const [key, setKey] = useState(newIdempotencyKey);
  return [key, () => setKey(newIdempotencyKey())];
}

function PurchasePage(props: { call: Call; id: string }) {
  const { call, id } = props;
  const path = `/v1/admin/purchases/${encodeURIComponent(id)}`;
  const { data, error, reload } = useLoad<AdminPurchaseDetail>(call, path, [id]);
  const [message, setMessage] = useState<{ tone: 'ok' | 'error'; text: string } | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [adjustKey, nextAdjustKey] = useActionKey();
  const [statusKey, nextStatusKey] = useActionKey();
  const [confirmText, setConfirmText] = useState('');

  const act = async (action: string, body: unknown, key: string, done: () => void) => {
    setBusy(action);
    setMessage(null);
    try {
      const res = await call<Row>(action === 'adjust' ? `${path}/adjustments` : `${path}/${action}`, {
        method: 'POST',
        body,
        idempotencyKey: key,
      });
      done();
      const balance = typeof res?.balance_usd === 'string' ? ` Balance now ${formatUsd(res.balance_usd)}.` : '';
      setMessage({ tone: 'ok', text: `${humanize(action)} done.${balance}` });
      reload();
    } catch (e) {
      setMessage({ tone: 'error', text: errorText(e) });
    } finally {
      setBusy(null);
    }
  };

  const adjust = (e: Event) => {
    e.preventDefault();
    const form = e.currentTarget as HTMLFormElement;
    const f = new FormData(form);
    const amount = String(f.get('amount_usd') ?? '').trim();
    const reason = String(f.get('reason') ?? '').trim();
    if (!/^[+-]?\d+(\.\d{1,6})?$/.test(amount) || /^[+-]?0+(\.0+)?$/.test(amount)) {
      setMessage({ tone: 'error', text: 'Amount: a signed USD amount with up to 6 decimals, e.g. 5 or -2.50.' });
      return;
    }
    if (!reason) {
      setMessage({ tone: 'error', text: 'A reason is required (it is written to the ledger and the audit log).' });
      return;
    }
    void act('adjust', { amount_usd: amount.replace(/^\+/, ''), reason, idempotency_key: adjustKey }, adjustKey, () => {
      nextAdjustKey();
      form.reset();
    });
  };
  const reasonOf = () => (document.querySelector<HTMLInputElement>('input[name="status_reason"]')?.value ?? '').trim();
  const statusAction = (action: 'suspend' | 'resume' | 'delete') => {
    const reason = reasonOf();
    const body: Record<string, string> = reason ? { reason } : {};
    if (action === 'delete') body.confirm = confirmText.trim();
    void act(action, body, statusKey, () => {
      nextStatusKey();
      setConfirmText('');
    });
  };

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
  // The detail is the purchase's fields with its related lists beside them (ledger, deposits, …).
  const p: AdminPurchaseDetail = data;
  const scalar = Object.entries(p).filter(([, v]) => v === null || typeof v !== 'object');
  const sections = Object.entries(p).filter(([, v]) => v !== null && typeof v === 'object');
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
      <div aria-live="polite">{message && <Alert tone={message.tone}>{message.text}</Alert>}</div>
      <div class="stats">
        <div class="stat">
          <div class="stat-label">Balance</div>
          <div class="stat-value">
            <Money field="balance_usd" value={p.balance_usd} />
          </div>
        </div>
        {(['balance_low_trigger', 'balance_critical_trigger', 'balance_termination_trigger'] as const).map((k) =>
          k in p ? (
            <div class="stat" key={k}>
              <div class="stat-label">{humanize(k.replace('balance_', '').replace('_trigger', ''))} at</div>
              <div class="stat-value">
                <Money field={k} value={(p[k] as string | null) ?? null} />
              </div>
            </div>
          ) : null,
        )}
      </div>
      {p.resource?.provider === 's3' && <S3EstimateCard path={`${path}/s3-usage`} get={call} reloadKey={data} console />}
      <div class="grid">
        <Section title="Adjust the balance">
          <form onSubmit={adjust} class="form-grid">
            <label class="form-field">
              <span>Amount (USD, negative to debit)</span>
              <input type="text" name="amount_usd" inputMode="decimal" placeholder="e.g. 5 or -2.50" required />
            </label>
            <label class="form-field">
              <span>Reason</span>
              <input type="text" name="reason" placeholder="Shown in the ledger and the audit log" required />
            </label>
            <div>
              <button type="submit" class="btn btn-primary" data-action="adjust" disabled={busy !== null}>
                {busy === 'adjust' ? 'Adjusting…' : 'Adjust'}
              </button>
            </div>
          </form>
        </Section>
        <Section title="Status">
          <label class="form-field">
            <span>Reason (optional)</span>
            <input type="text" name="status_reason" placeholder="For the audit log" />
          </label>
          <div class="actions-row">
            <button type="button" class="btn" data-action="suspend" disabled={busy !== null} onClick={() => statusAction('suspend')}>
              Suspend
            </button>
            <button type="button" class="btn" data-action="resume" disabled={busy !== null} onClick={() => statusAction('resume')}>
              Resume
            </button>
          </div>
          <h3>Delete</h3>
          <p class="small muted">
            Deletes the resource and its data now (bucket, keys / gateway key). Type the purchase id to confirm.
          </p>
          <label class="form-field">
            <span>Type {p.id} to confirm</span>
            <input type="text" name="confirm" value={confirmText} onInput={(e) => setConfirmText(e.currentTarget.value)} autoComplete="off" />
          </label>
          <div class="actions-row">
            <button
              type="button"
              class="btn btn-danger"
              data-action="delete"
              disabled={busy !== null || confirmText.trim() !== p.id}
              onClick={() => statusAction('delete')}
            >
              Delete
            </button>
          </div>
        </Section>
      </div>
      <Section title="Details">
        <dl class="kv">
          {scalar.map(([k, v]) => (
            <div key={k} class="kv-row">
              <dt>{humanize(k)}</dt>
              <dd>{k === 'status' ? <Field field="status" value={v} /> : <Value field={k} value={v} />}</dd>
            </div>
          ))}
        </dl>
      </Section>
      {sections.map(([k, v]) => (
        <Section key={k} title={humanize(k)}>
          {k === 'ledger' && v && typeof v === 'object' && 'items' in (v as Row) ? (
            <LedgerPages call={call} purchaseId={p.id} first={v as Page<Row>} />
          ) : (
            <Generic value={(v as Page<Row>)?.items ?? v} field={k} />
          )}
        </Section>
      ))}
    </div>
  );
}

/** The purchase's ledger: the detail's first page, then older pages from the admin ledger route. */
function LedgerPages(props: { call: Call; purchaseId: string; first: Page<Row> }) {
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1];
  const older = useLoad<Page<Row>>(
    props.call,
    cursor ? `/v1/admin/purchases/${encodeURIComponent(props.purchaseId)}/ledger?limit=50&cursor=${encodeURIComponent(cursor)}` : null,
    [props.purchaseId],
  );
  const page = cursor ? older.data : props.first;
  return (
    <>
      {page ? (
        <Generic value={page.items} field="ledger" />
      ) : (
        <Loading error={older.error} what="older entries" />
      )}
      <nav class="pager" aria-label="Ledger pages">
        <button type="button" class="btn" disabled={cursors.length === 0} data-action="ledger-newer" onClick={() => setCursors((c) => c.slice(0, -1))}>
          Newer
        </button>
        <span class="muted small">Page {cursors.length + 1}</span>
        <button
          type="button"
          class="btn"
          disabled={!page?.next_cursor}
          data-action="ledger-older"
          onClick={() => {
            const next = page?.next_cursor;
            if (next) setCursors((c) => [...c, next]);
          }}
        >
          Older
        </button>
      </nav>
    </>
  );
}

function ListView(props: { call: Call; title: string; path: string; caption: string; empty: string; columnsKey?: string }) {
  const list = usePages(props.call, props.path, { limit: '50' });
  return (
    <>
      <h1>{props.title}</h1>
      <Section title={props.caption} id="list-h">
        {list.data ? (
          <DataTable rows={list.data.items} columns={columnsFor(props.columnsKey, list.data.items)} caption={props.caption} empty={props.empty} />
        ) : (
          <Loading error={list.error} what={props.title.toLowerCase()} />
        )}
        {list.data && list.pager}
      </Section>
    </>
  );
}

function useRetry(call: Call, reload: () => void) {
  const [message, setMessage] = useState<{ tone: 'ok' | 'error'; text: string } | null>(null);
  const retry = async (path: string, what: string) => {
    setMessage(null);
    try {
      await call(path, { method: 'POST', body: {}, idempotencyKey: newIdempotencyKey() });
      setMessage({ tone: 'ok', text: `${what} queued for another attempt.` });
      reload();
    } catch (e) {
      setMessage({ tone: 'error', text: errorText(e) });
    }
  };
  return { message, retry };
}

function Sweeps(props: { call: Call }) {
  const [status, setStatus] = useState('');
  const list = usePages(props.call, '/v1/admin/sweeps', { status, limit: '50' });
  const { message, retry } = useRetry(props.call, list.reload);
  const [txMessage, setTxMessage] = useState<TxActionMessage | null>(null);
  return (
    <>
      <h1>Sweeps</h1>
      <p class="muted">Each detected deposit is swept to the treasury. A failed sweep can be retried; low gas makes sweeps wait.</p>
      <StatusFilter value={status} onChange={setStatus} options={['', 'waiting', 'planned', 'signed', 'broadcast', 'confirmed', 'failed']} />
      <div aria-live="polite">{(txMessage ?? message) && <Alert tone={(txMessage ?? message)!.tone}>{(txMessage ?? message)!.text}</Alert>}</div>
      <Section title="Sweeps, newest first" id="sweeps-h">
        {list.data ? (
          <DataTable
            rows={list.data.items}
            columns={columnsFor('sweeps', list.data.items)}
            caption="Sweeps"
            empty="No sweep matches."
            rowAttrs={(r) => ({ 'data-sweep-id': String(r.id ?? r.sweep_id ?? ''), 'data-status': String(r.status ?? '') })}
            actions={(r) =>
              !(r.retryable === true || r.status === 'failed') ? (
                <SweepTxActions row={r} call={props.call} onDone={(m) => { setTxMessage(m); list.reload(); }} />
              ) : (
                <button type="button" class="btn btn-small" data-action="retry-sweep" onClick={() => void retry(`/v1/admin/sweeps/${encodeURIComponent(String(r.id ?? r.sweep_id))}/retry`, 'Sweep')}>
                  Retry
                </button>
              )
            }
          />
        ) : (
          <Loading error={list.error} what="sweeps" />
        )}
        {list.data && list.pager}
      </Section>
    </>
  );
}

function StatusFilter(props: { value: string; onChange: (v: string) => void; options: string[] }) {
  return (
    <label class="form-field card">
      <span>Status</span>
      <select name="status" value={props.value} onChange={(e) => props.onChange(e.currentTarget.value)}>
        {props.options.map((o) => (
          <option key={o} value={o}>
            {o ? humanize(o) : 'Any'}
          </option>
        ))}
      </select>
    </label>
  );
}

function Notifications(props: { call: Call }) {
  const [status, setStatus] = useState('');
  const list = usePages(props.call, '/v1/admin/notifications', { status, limit: '50' });
  const { message, retry } = useRetry(props.call, list.reload);
  const rows = list.data?.items ?? [];
  return (
    <>
      <h1>Notifications</h1>
      <p class="muted">Emails, webhooks and OfficeX record updates waiting in the outbox, with their attempts.</p>
      <StatusFilter value={status} onChange={setStatus} options={['', 'pending', 'failed', 'delivered', 'skipped']} />
      <div aria-live="polite">{message && <Alert tone={message.tone}>{message.text}</Alert>}</div>
      <Section title="Outbox, newest first" id="outbox-h">
        {!list.data ? (
          <Loading error={list.error} what="notifications" />
        ) : rows.length === 0 ? (
          <p class="muted">No notification matches.</p>
        ) : (
          <ul class="plain-list">
            {rows.map((n) => {
              const id = String(n.id ?? n.outbox_id ?? '');
              const { payload, last_error, ...rest } = n;
              return (
                <li key={id} class="card" data-notification-id={id} data-status={String(n.status ?? '')}>
                  <Generic value={rest} />
                  {last_error !== undefined && last_error !== null && (
                    <p>
                      <strong>Last error:</strong> <Value field="last_error" value={last_error} />
                    </p>
                  )}
                  {payload !== undefined && (
                    <details>
                      <summary>Payload</summary>
                      <pre tabIndex={0}>
                        <code data-field="payload">{JSON.stringify(payload, null, 2)}</code>
                      </pre>
                    </details>
                  )}
                  {(n.retryable === true || (n.retryable === undefined && n.status !== 'delivered')) && (
                    <div class="actions-row">
                      <button type="button" class="btn btn-small" data-action="retry-notification" onClick={() => void retry(`/v1/admin/notifications/${encodeURIComponent(id)}/retry`, 'Notification')}>
                        Retry now
                      </button>
                    </div>
                  )}
                </li>
              );
            })}
          </ul>
        )}
        {list.data && list.pager}
      </Section>
    </>
  );
}

function Tokens(props: { call: Call }) {
  const list = usePages(props.call, '/v1/admin/tokens', { limit: '100' });
  const [created, setCreated] = useState<CreatedToken | null>(null);
  const [message, setMessage] = useState<{ tone: 'ok' | 'error'; text: string } | null>(null);
  const [key, nextKey] = useActionKey();
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
      const token = await props.call<CreatedToken>('/v1/admin/tokens', { method: 'POST', body: { label, idempotency_key: key }, idempotencyKey: key });
      nextKey();
      form.reset();
      setCreated(token);
      list.reload();
    } catch (err) {
      setMessage({ tone: 'error', text: errorText(err) });
    }
  };
  const revoke = async (id: string) => {
    setMessage(null);
    try {
      await props.call(`/v1/admin/tokens/${encodeURIComponent(id)}`, { method: 'DELETE', idempotencyKey: newIdempotencyKey() });
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
      <Section title="Create a token">
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
      </Section>
      <div aria-live="polite">{message && <Alert tone={message.tone}>{message.text}</Alert>}</div>
      <Section title="Tokens" id="tokens-h">
        {list.data ? (
          <DataTable
            rows={list.data.items}
            caption="Billing tokens"
            empty="No billing token yet."
            rowAttrs={(r) => ({ 'data-token-id': String(r.id ?? ''), 'data-token-label': String(r.label ?? '') })}
            actions={(r) =>
              r.revoked_at ? (
                <span class="badge badge-muted">Revoked</span>
              ) : (
                <button type="button" class="btn btn-small btn-danger" data-action="revoke-token" onClick={() => void revoke(String(r.id))}>
                  Revoke
                </button>
              )
            }
          />
        ) : (
          <Loading error={list.error} what="tokens" />
        )}
        {list.data && list.pager}
      </Section>
    </>
  );
}

export const __test = { parseRoute, formatTime };
