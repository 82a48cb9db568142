// The Gemini gateway key in "How to use it": masked, with "Show" and "Copy", while the server still
// shows it; else why not, and where to make a new one (the credentials card).
import { formatExactTime } from '../../lib/format';
import { Alert, CopyButton } from '../../components/ui';
import type { GatewayKey } from '../gatewayKey';

/** `vsg_` and the last four characters; the rest hidden. */
export function maskKey(secret: string, hint: string): string {
  return `${secret.slice(0, 4)}${'•'.repeat(12)}${hint}`;
}

export function GatewayKeyRow(props: { gateway: GatewayKey }) {
  const { state, revealed, setRevealed } = props.gateway;
  let value;
  if (state.kind === 'shown') {
    value = (
      <>
        <dd class="fact-value">
          <code id="gateway-key" data-field="gateway_key" data-value={revealed ? state.secret : undefined} data-revealed={String(revealed)}>
            {revealed ? state.secret : maskKey(state.secret, state.hint)}
          </code>
          <button
            type="button"
            class="btn btn-small"
            data-action="reveal-key"
            aria-controls="gateway-key"
            onClick={() => setRevealed(!revealed)}
          >
            {revealed ? 'Hide' : 'Show'}
            <span class="sr-only"> the gateway key</span>
          </button>
          <CopyButton text={state.secret} label="the gateway key" action="copy-gateway_key" />
        </dd>
        <dd class="muted small">
          Shown here until <span data-field="shown_until" data-value={String(state.shownUntil)}>{formatExactTime(state.shownUntil)}</span>{' '}
          (24 hours after your purchase). Keep it somewhere safe: after that only a new key can be made.
        </dd>
      </>
    );
  } else if (state.kind === 'gone') {
    value = (
      <dd>
        <span data-field="gateway_key" data-value="" data-state={state.replaced ? 'replaced' : 'not-shown'}>
          {state.replaced
            ? 'Replaced: the new key is shown once under “Keys and links”; the old one no longer works.'
            : 'No longer shown here: the key is shown for 24 hours after the purchase, until it is replaced.'}
        </span>{' '}
        {!state.replaced && (
          <a href="#credentials-h" data-action="new-key-link">
            Lost it? Make a new key
          </a>
        )}
      </dd>
    );
  } else if (state.kind === 'error') {
    value = (
      <dd>
        <Alert tone="error">
          <p>Could not load your gateway key: {state.message}</p>
          <button type="button" class="btn btn-small" onClick={props.gateway.retry}>
            Try again
          </button>
        </Alert>
      </dd>
    );
  } else {
    value = <dd class="muted">Loading…</dd>;
  }
  return (
    <>
      <dt>Gateway key</dt>
      {value}
    </>
  );
}
