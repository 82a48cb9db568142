// The customer's page: the link's credentials (kept in this tab, out of the address bar), then the
// purchase page (views/PurchasePage.tsx) or what is wrong with the link. A new customer key made on
// the page replaces the link's at once (kept in this tab too), so the page keeps working.
import { useCallback, useState } from 'preact/hooks';
import { type Credentials, keepCredentials, takeCredentials } from './credentials';
import { Problem } from './views/Problem';
import { PurchasePage } from './views/PurchasePage';

export function App() {
  const [state, setState] = useState(takeCredentials);
  const switchTo = useCallback((creds: Credentials) => {
    keepCredentials(creds);
    setState({ kind: 'ok', creds });
  }, []);
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
  return <PurchasePage creds={state.creds} onNewKey={switchTo} />;
}
