// The vendor console: sign in with an operator token, then one view per section (src/vendor/views/).
// Every call goes to /v1/admin/… with `Authorization: Bearer <token>` (src/api/admin.ts); a 401
// signs out.
import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, api } from '../lib/api';
import { type Call, adminApi } from '../api/admin';
import type { SignedInOperator } from '../api/types';
import { ROLE_TEXT, can } from '../lib/roles';
import { AdminContext, useAdmin, useLoad } from './hooks';
import { SessionContext } from './session';
import { NAV, type Route, parseRoute, routeTitle } from './route';
import { SignIn, forgetToken, storedToken } from './SignIn';
import { Overview } from './views/Overview';
import { Purchases } from './views/Purchases';
import { PurchasePage } from './views/Purchase';
import { Sweeps } from './views/Sweeps';
import { Refunds } from './views/Refunds';
import { Notifications } from './views/Notifications';
import { CostImports } from './views/CostImports';
import { Tokens } from './views/Tokens';
import { Gas } from './views/Gas';
import { Audit } from './views/Audit';
import { Chains } from './views/Chains';
import { Operators } from './views/Operators';

export function App() {
  const [token, setToken] = useState<string | null>(storedToken);
  const [route, setRoute] = useState<Route>(() => parseRoute(window.location.hash));
  useEffect(() => {
    const onHash = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);
  const signOut = useCallback(() => {
    forgetToken();
    setToken(null);
  }, []);
  const admin = useMemo(() => {
    if (!token) return null;
    const call: Call = async (path, opts) => {
      try {
        return await api(path, { ...opts, token });
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) signOut();
        throw e;
      }
    };
    return adminApi(call);
  }, [token, signOut]);

  if (!token || !admin) return <SignIn onSignedIn={setToken} />;
  return (
    <AdminContext.Provider value={admin}>
      <Shell route={route} signOut={signOut} />
    </AdminContext.Provider>
  );
}

/** The ADMIN_TOKEN of a server without `GET /v1/admin/me` (before operators): the bootstrap owner. */
const BOOTSTRAP: SignedInOperator = { id: null, name: 'admin-token', role: 'owner' };

function Shell(props: { route: Route; signOut: () => void }) {
  const { route, signOut } = props;
  const admin = useAdmin();
  const me = useLoad<SignedInOperator>('me', () =>
    admin.me().catch((e: unknown) => {
      if (e instanceof ApiError && e.status === 404) return BOOTSTRAP;
      throw e;
    }),
  );
  const current = route.view === 'purchase' ? 'purchases' : route.view;
  const who = me.data;
  return (
    <SessionContext.Provider value={who}>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <div class="page topbar-inner">
          <span class="brand">Vendor console</span>
          <span class="signed-in small">
            {who ? (
              <>
                Signed in as{' '}
                <strong data-field="operator_name" data-value={who.name}>
                  {who.name === BOOTSTRAP.name ? 'the admin token' : who.name}
                </strong>{' '}
                <span class="muted" data-field="operator_role" data-value={who.role} title={ROLE_TEXT[who.role]}>
                  ({who.role})
                </span>
              </>
            ) : (
              me.error && <span class="muted">{me.error}</span>
            )}
          </span>
          <button type="button" class="btn btn-small" data-action="sign-out" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <div class="layout">
        <nav class="sidenav" aria-label="Console sections">
          <ul>
            {NAV.filter((n) => !n.ownerOnly || can(who?.role, 'manage-operators')).map((n) => (
              <li key={n.view}>
                <a href={n.href} aria-current={current === n.view ? 'page' : undefined}>
                  {n.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <main id="main" tabIndex={-1}>
          <View route={route} />
        </main>
      </div>
    </SessionContext.Provider>
  );
}

function View(props: { route: Route }) {
  const { route } = props;
  useEffect(() => {
    document.title = `${routeTitle(route)} — Vendor console`;
  }, [route]);
  switch (route.view) {
    case 'overview':
      return <Overview />;
    case 'purchases':
      return <Purchases />;
    case 'purchase':
      return <PurchasePage id={route.id} />;
    case 'sweeps':
      return <Sweeps />;
    case 'refunds':
      return <Refunds />;
    case 'notifications':
      return <Notifications />;
    case 'cost-imports':
      return <CostImports />;
    case 'tokens':
      return <Tokens />;
    case 'gas':
      return <Gas />;
    case 'audit':
      return <Audit />;
    case 'chains':
      return <Chains />;
    case 'operators':
      return <Operators />;
  }
}
