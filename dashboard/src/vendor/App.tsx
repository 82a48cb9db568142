// The vendor console: sign in with an operator token, then one view per section (src/vendor/views/).
// Every call goes to /v1/admin/… with `Authorization: Bearer <token>` (src/api/admin.ts); a 401
// signs out.
import { useCallback, useEffect, useMemo, useState } from 'preact/hooks';
import { ApiError, api } from '../lib/api';
import { type Call, adminApi } from '../api/admin';
import { AdminContext } from './hooks';
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
  const current = route.view === 'purchase' ? 'purchases' : route.view;
  return (
    <AdminContext.Provider value={admin}>
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
          <View route={route} />
        </main>
      </div>
    </AdminContext.Provider>
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
  }
}
