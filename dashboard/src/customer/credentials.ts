// The customer's credentials come only from the URL fragment (#vendor_purchase_id=…&customer_billing_api_key=…),
// which browsers never send to a server. They move to sessionStorage (this tab only) and leave the
// address bar, so a screenshot, a shared screen or the history does not show the key.

const STORAGE_KEY = 'vendor-server.customer';

export interface Credentials {
  purchaseId: string;
  key: string;
}

export type CredentialState =
  | { kind: 'ok'; creds: Credentials }
  | { kind: 'missing' }
  | { kind: 'no-key'; purchaseId: string };

export function takeCredentials(): CredentialState {
  const hash = window.location.hash.replace(/^#/, '');
  if (hash) {
    const params = new URLSearchParams(hash);
    const purchaseId = params.get('vendor_purchase_id')?.trim() ?? '';
    const key = params.get('customer_billing_api_key')?.trim() ?? '';
    if (purchaseId || key) {
      // Remove them from the address bar (and from this history entry) whatever happens next.
      window.history.replaceState(null, '', window.location.pathname + window.location.search);
      if (purchaseId && key) {
        const creds = { purchaseId, key };
        keepCredentials(creds);
        return { kind: 'ok', creds };
      }
      if (purchaseId) return { kind: 'no-key', purchaseId };
    }
  }
  try {
    const stored = sessionStorage.getItem(STORAGE_KEY);
    if (stored) {
      const creds = JSON.parse(stored) as Credentials;
      if (creds.purchaseId && creds.key) return { kind: 'ok', creds };
    }
  } catch {
    // Unreadable storage: treat as no credentials.
  }
  return { kind: 'missing' };
}

/** Keeps CREDS for this tab (a reload finds them): the link's, or a new customer key's. */
export function keepCredentials(creds: Credentials): void {
  try {
    sessionStorage.setItem(STORAGE_KEY, JSON.stringify(creds));
  } catch {
    // Storage refused (private mode quotas): the page still works until it is closed.
  }
}

export function forgetCredentials(): void {
  try {
    sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // nothing to forget
  }
}
