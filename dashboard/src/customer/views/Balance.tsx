// The balance, how long it lasts at the last 7 days' rate, and the thresholds.
import { useEffect, useState } from 'preact/hooks';
import { daysAgo, isoDay } from '../../lib/format';
import { daysLeft, formatUsdCents, sumDecimals, toMicros } from '../../lib/money';
import * as customer from '../../api/customer';
import { Money } from '../../components/ui';
import type { Credentials } from '../credentials';
import type { PurchaseResponse } from '../../api/types';

export function BalanceCard(props: { data: PurchaseResponse; creds: Credentials; reloadKey: number }) {
  const p = props.data.purchase;
  const [spent7, setSpent7] = useState<string | null>(null);
  useEffect(() => {
    const body = { interval: 'daily' as const, start_date: isoDay(daysAgo(6)), end_date: isoDay(new Date()) };
    customer
      .historicalBilling(props.creds, body)
      .then((buckets) => setSpent7(sumDecimals(buckets.map((b) => b.total_billed_amount))))
      .catch(() => setSpent7(null));
  }, [props.creds, props.reloadKey, p.balance_usd]);
  const days = spent7 === null ? null : daysLeft(p.balance_usd, spent7, 7);
  return (
    <section class="card" aria-labelledby="balance-h">
      <h2 id="balance-h">Balance</h2>
      <p class="big">
        <Money field="balance_usd" value={p.balance_usd} class={toMicros(p.balance_usd) < 0n ? 'negative' : ''} />
      </p>
      <p class="muted" data-field="days_left" data-value={days === null ? '' : days.toString()}>
        {spent7 === null
          ? 'Working out how long it lasts…'
          : days === null
            ? 'No usage in the last 7 days, so the balance is not going down.'
            : `Lasts about ${days.toString()} day${days === 1n ? '' : 's'} at the last 7 days' rate (${formatUsdCents(spent7)} a week).`}
      </p>
      <dl class="thresholds">
        <div>
          <dt>Low at</dt>
          <dd>
            <Money field="balance_low_trigger" value={p.balance_low_trigger} />
          </dd>
        </div>
        <div>
          <dt>Critical at</dt>
          <dd>
            <Money field="balance_critical_trigger" value={p.balance_critical_trigger} />
          </dd>
        </div>
        <div>
          <dt>Suspended at</dt>
          <dd>
            <Money field="balance_termination_trigger" value={p.balance_termination_trigger} />
          </dd>
        </div>
      </dl>
      <p class="muted small">
        Below the last threshold, use is suspended; after the grace period the resource is deleted. Any top up restores
        it before that.
      </p>
    </section>
  );
}
