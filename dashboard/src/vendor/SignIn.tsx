// Sign-in with an operator token (the server's ADMIN_TOKEN is the bootstrap owner). The token stays
// in this tab's sessionStorage and is sent as a bearer token to /v1/admin/….
import type { ComponentChildren } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, errorText } from '../lib/api';
import { Alert } from '../components/ui';

const TOKEN_KEY = 'vendor-server.admin-token';

export function storedToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function forgetToken(): void {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // nothing stored
  }
}

export function SignIn(props: { onSignedIn: (token: string) => void }) {
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
      setError('Enter your operator token or the admin token.');
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
      else if (err instanceof ApiError && err.status === 401) setError('That token is not the server’s ADMIN_TOKEN. It is not a live operator token either (revoked, or mistyped).');
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
          Use your operator token (<code>vendor-server operators create</code> prints it once) or the server’s{' '}
          <code>ADMIN_TOKEN</code>. It stays in this browser tab only (sessionStorage) and is sent as a bearer token to{' '}
          <code>/v1/admin/…</code>.
        </p>
        <label class="form-field">
          <span>Operator or admin token</span>
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
