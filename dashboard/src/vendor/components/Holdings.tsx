// What the vendor holds and owes: the liability (customers' positive balances), money swept to
// the treasury per chain and token, and how many days each gas wallet lasts at the last 7 days'
// rate (SPEC §9 "Operators"). Missing on servers before #25: then only the gas balances show.
import type { OverviewMoney } from '../../api/handwritten';
import type { GasBalance } from '../../api/types';
import { formatNative } from '../../lib/units';
import { Field, Money } from '../../components/ui';

/** The runway of a chain: the overview's map is keyed by chain id (or name). */
export function runwayOf(m: OverviewMoney, g: GasBalance): number | string | null | undefined {
  const map = m.gas_runway_days;
  if (!map) return undefined;
  return map[String(g.chain_id)] ?? map[g.chain];
}

export function runwayText(days: number | string | null | undefined): string {
  if (days === undefined) return '—';
  if (days === null) return 'No gas spent in the last 7 days';
  const n = Number(days);
  if (!Number.isFinite(n)) return String(days);
  if (n < 1) return 'Less than a day';
  return `About ${Math.floor(n)} day${Math.floor(n) === 1 ? '' : 's'}`;
}

export function Holdings(props: { money: OverviewMoney; gas: GasBalance[] }) {
  const m = props.money;
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
            Swept, {s.token.toUpperCase()} on {s.chain ?? `chain ${s.chain_id}`}
          </div>
          <div class="stat-value">
            <Field field="swept" value={s.amount}>
              {s.amount} {s.token.toUpperCase()}
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
          {m.gas_runway_days !== undefined && (
            <div class="small muted" data-field="gas_runway_days" data-chain-id={String(g.chain_id)} data-value={String(runwayOf(m, g) ?? '')}>
              {runwayText(runwayOf(m, g))}
            </div>
          )}
        </div>
      ))}
    </div>
  );
}
