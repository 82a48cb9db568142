// Top up: the deposit address, every accepted chain and token with its EIP-681 QR code, payments
// on their way, and "check for payment".
import { useState } from 'preact/hooks';
import { errorText } from '../../lib/api';
import { shortHex } from '../../lib/format';
import { formatUsdCents, toMicros } from '../../lib/money';
import { QrCode, eip681 } from '../../lib/qr';
import * as customer from '../../api/customer';
import type { AcceptedToken, PurchaseResponse } from '../../api/types';
import { Alert, CopyButton, Field } from '../../components/ui';
import type { Credentials } from '../credentials';
import { PendingDeposits } from '../components/PendingDeposits';

function tokenKey(t: AcceptedToken): string {
  return `${t.chain_id}:${t.token_address}`;
}

export function TopUpCard(props: { data: PurchaseResponse; creds: Credentials; onCredited: () => Promise<void> }) {
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
      const body = await customer.verifyTopup(props.creds);
      if ('new_balance' in body) {
        setResult({ tone: 'ok', text: `Credited ${formatUsdCents(body.topup_amount)}. ${body.message}` });
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
                  {formatUsdCents(result.pending)} is waiting for confirmations.
                </span>
              </>
            )}
          </Alert>
        )}
      </div>
    </section>
  );
}
