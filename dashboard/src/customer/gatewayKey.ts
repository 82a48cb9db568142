// The Gemini gateway key from the receipt, as the page shows it: fetched once the purchase is a
// ready Gemini gateway, shown masked until revealed, and gone (said plainly) once the server no
// longer shows it: 24 hours after the purchase, or once it was replaced.
import { useCallback, useEffect, useState } from 'preact/hooks';
import * as customer from '../api/customer';
import { ApiError, errorText } from '../lib/api';
import type { Credentials } from './credentials';

export type GatewayKeyState =
  | { kind: 'off' }
  | { kind: 'loading' }
  | { kind: 'shown'; secret: string; hint: string; shownUntil: number }
  /** Not shown any more; REPLACED when this page made a new one (shown once where it was made). */
  | { kind: 'gone'; replaced: boolean }
  | { kind: 'error'; message: string };

export interface GatewayKey {
  state: GatewayKeyState;
  revealed: boolean;
  setRevealed: (revealed: boolean) => void;
  /** The key was replaced on this page: the receipt's one no longer works. */
  replaced: () => void;
  retry: () => void;
}

/** The receipt's key of a Gemini purchase (ENABLED: its gateway is ready). */
export function useGatewayKey(creds: Credentials, enabled: boolean): GatewayKey {
  const [state, setState] = useState<GatewayKeyState>({ kind: enabled ? 'loading' : 'off' });
  const [revealed, setRevealed] = useState(false);
  const [attempt, setAttempt] = useState(0);
  useEffect(() => {
    if (!enabled) {
      setState({ kind: 'off' });
      return;
    }
    let live = true;
    customer
      .gatewayKey(creds)
      .then((k) => live && setState({ kind: 'shown', secret: k.secret, hint: k.hint, shownUntil: k.shown_until }))
      .catch((e: unknown) => {
        if (!live) return;
        if (e instanceof ApiError && e.status === 404) setState({ kind: 'gone', replaced: false });
        else setState({ kind: 'error', message: errorText(e) });
      });
    return () => {
      live = false;
    };
    // Not on a new customer key (creds): the gateway key is the same, read with the key of the moment.
  }, [enabled, attempt]);
  const replaced = useCallback(() => {
    setRevealed(false);
    setState({ kind: 'gone', replaced: true });
  }, []);
  const retry = useCallback(() => setAttempt((a) => a + 1), []);
  return { state, revealed, setRevealed, replaced, retry };
}
