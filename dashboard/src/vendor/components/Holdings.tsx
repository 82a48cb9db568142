// What the vendor holds and owes: the liability (customers' positive balances), money swept to
// the treasury per chain and token, and each gas wallet in its chain's coin with how many days it
// lasts at the last 7 days' rate (SPEC §9 "Operators"). On servers before #25 only the gas shows.
import type { AdminOverview, GasBalance } from '../../api/types';
import { formatNative, formatToken } from '../../lib/units';
import { Field, Money } from '../../components/ui';

/** The runway in words: "About 12 days", "Less than a day", or why there is none. */
export function runwayText(days: number | null | undefined): string {
  if (days === undefined) return '—';
  if (days === null) return 'No gas spent in the last 7 days';
  if (days < 1) return 'Less than a day left';
  const whole = Math.floor(days);
  return `About ${whole} day${whole === 1 ? '' : 's'} left`;
}

export function Holdings(props: { money: Pick<AdminOverview, 'liability_usd' | 'swept'>; gas: GasBalance[] }) {
  const m = props.money;
  const chainName = (id: number) => props.gas.find((g) => g.chain_id === id)?.chain ?? `chain ${id}`;
  return (
    <div class="stats">
      {m.liability_usd !== undefined && (
        <div class="stat">
          <div class="stat-label">Owed to customers (balances)</div>
          <div class="stat-value">
            <Money field="liability_usd" value={m.liability_usd} />
          </div>
        </div>
      )}
      {(m.swept ?? []).map((s) => (
        <div class="stat" key={`${s.chain_id}:${s.token}`} data-chain-id={String(s.chain_id)} data-token={s.token}>
          <div class="stat-label">
            Swept, {s.token.toUpperCase()} on {chainName(s.chain_id)}
          </div>
          <div class="stat-value">
            <Field field="swept" value={s.amount_units}>
              {s.amount ? `${s.amount} ${s.token.toUpperCase()}` : formatToken(s.amount_units, s.token)}
            </Field>
          </div>
        </div>
      ))}
      {props.gas.map((g) => (
        <div class="stat" key={g.chain_id} data-chain-id={String(g.chain_id)}>
          <div class="stat-label">Gas on {g.chain}</div>
          <div class="stat-value">
            <span data-field="gas_balance" data-chain-id={String(g.chain_id)} data-value={g.balance_wei ?? ''} title={g.balance_wei ? `${g.balance_wei} wei` : undefined}>
              {g.balance_wei ? formatNative(g.balance_wei, g.chain_id) : '—'}
            </span>
          </div>
          {'gas_runway_days' in g && (
            <div class="small muted" data-field="gas_runway_days" data-chain-id={String(g.chain_id)} data-value={g.gas_runway_days === null || g.gas_runway_days === undefined ? '' : String(g.gas_runway_days)}>
              {runwayText(g.gas_runway_days)}
              {g.gas_spent_7d_wei && <> ({formatNative(g.gas_spent_7d_wei, g.chain_id)} spent in 7 days)</>}
            </div>
          )}
        </div>
      ))}
    </div>
  );
}
