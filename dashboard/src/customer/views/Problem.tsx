// What the page shows when it cannot open the purchase, and how to reach the vendor.
import type { ComponentChildren } from 'preact';
import { Alert } from '../../components/ui';

const OFFICEX_URL = 'https://officex.app';

export function Problem(props: { title: string; children: ComponentChildren; purchaseId?: string }) {
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

export function Support(props: { purchaseId?: string; vendor?: string }) {
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
