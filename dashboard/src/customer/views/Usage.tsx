// Usage: billed amounts per hour, day, week or month over a date range, as a chart and a table
// whose total equals the API's sum exactly.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { errorText } from '../../lib/api';
import { daysAgo, isoDay, toDate } from '../../lib/format';
import { formatAmount, formatUsd, formatUsdCents, sumDecimals, toNumber } from '../../lib/money';
import { BarChart } from '../../lib/Chart';
import * as customer from '../../api/customer';
import type { BillingBucket, Interval } from '../../api/types';
import { Alert, Money } from '../../components/ui';
import type { Credentials } from '../credentials';

const INTERVALS: { value: Interval; label: string }[] = [
  { value: 'hourly', label: 'Hourly' },
  { value: 'daily', label: 'Daily' },
  { value: 'weekly', label: 'Weekly' },
  { value: 'monthly', label: 'Monthly' },
];

function bucketLabel(time: string, interval: Interval): string {
  const d = toDate(time);
  if (!d) return time;
  const opts: Intl.DateTimeFormatOptions =
    interval === 'hourly'
      ? { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', timeZone: 'UTC' }
      : interval === 'monthly'
        ? { year: 'numeric', month: 'long', timeZone: 'UTC' }
        : { year: 'numeric', month: 'short', day: 'numeric', timeZone: 'UTC' };
  const text = d.toLocaleString(undefined, opts);
  return interval === 'weekly' ? `Week of ${text}` : interval === 'hourly' ? `${text} UTC` : text;
}

export function UsageCard(props: { creds: Credentials; reloadKey: number }) {
  const [interval, setIntervalKind] = useState<Interval>('daily');
  const [start, setStart] = useState(isoDay(daysAgo(29)));
  const [end, setEnd] = useState(isoDay(new Date()));
  const [buckets, setBuckets] = useState<BillingBucket[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  // What the shown buckets are for; differs from the controls while a new range loads.
  const [loadedFor, setLoadedFor] = useState('');
  const wanted = `${interval}|${start}|${end}`;

  useEffect(() => {
    const ctrl = new AbortController();
    setError(null);
    customer
      .historicalBilling(props.creds, { interval, start_date: start || undefined, end_date: end || undefined }, ctrl.signal)
      .then((b) => {
        setBuckets(b);
        setLoadedFor(`${interval}|${start}|${end}`);
      })
      .catch((e: unknown) => {
        if ((e as Error).name !== 'AbortError') setError(errorText(e));
      });
    return () => ctrl.abort();
  }, [props.creds, interval, start, end, props.reloadKey]);

  const total = useMemo(() => (buckets ? sumDecimals(buckets.map((b) => b.total_billed_amount)) : null), [buckets]);
  const units = useMemo(() => {
    const sums = new Map<string, string[]>();
    for (const b of buckets ?? []) {
      for (const [unit, amount] of Object.entries(b.usage_by_unit ?? {})) {
        sums.set(unit, [...(sums.get(unit) ?? []), amount]);
      }
    }
    return Array.from(sums, ([unit, amounts]) => ({ unit, total: sumDecimals(amounts) }));
  }, [buckets]);
  const chart = useMemo(
    () => ({
      times: (buckets ?? []).map((b) => Math.floor((toDate(b.time_bucket)?.getTime() ?? 0) / 1000)),
      values: (buckets ?? []).map((b) => toNumber(b.total_billed_amount)),
    }),
    [buckets],
  );

  return (
    <section
      class="card"
      aria-labelledby="usage-h"
      data-section="usage"
      data-state={loadedFor === wanted ? 'ready' : 'loading'}
      data-interval={interval}
      aria-busy={loadedFor !== wanted}
    >
      <h2 id="usage-h">Usage</h2>
      <div class="controls">
        <div class="segmented" role="group" aria-label="Bucket size">
          {INTERVALS.map((i) => (
            <button
              type="button"
              key={i.value}
              class={`seg ${interval === i.value ? 'seg-on' : ''}`}
              aria-pressed={interval === i.value}
              data-action="interval"
              data-value={i.value}
              onClick={() => {
                setIntervalKind(i.value);
                // Hourly bars over a month are a pixel wide: narrow a long range to its last 3 days.
                const endDay = end ? new Date(`${end}T00:00:00Z`) : new Date();
                if (i.value === 'hourly' && (!start || Date.parse(`${start}T00:00:00Z`) < endDay.getTime() - 7 * 86_400_000)) {
                  setStart(isoDay(daysAgo(2, endDay)));
                }
              }}
            >
              {i.label}
            </button>
          ))}
        </div>
        <label class="inline-field">
          From
          <input type="date" name="start_date" value={start} max={end || undefined} onChange={(e) => setStart(e.currentTarget.value)} />
        </label>
        <label class="inline-field">
          To
          <input type="date" name="end_date" value={end} min={start || undefined} onChange={(e) => setEnd(e.currentTarget.value)} />
        </label>
      </div>
      {error && <Alert tone="error">{error}</Alert>}
      {buckets === null && !error && <p class="muted">Loading usage…</p>}
      {buckets !== null && (
        <>
          <p class="total-line">
            Billed from {start || 'the start'} to {end || 'today'} (UTC):{' '}
            <strong>
              <Money field="total_billed_amount" value={total ?? '0.000000'} />
            </strong>
          </p>
          {buckets.length === 0 ? (
            <p class="muted" data-field="usage_empty">
              No usage in this range.
            </p>
          ) : (
            <>
              <BarChart
                times={chart.times}
                values={chart.values}
                label="Billed (USD)"
                interval={interval}
                from={start ? Date.parse(`${start}T00:00:00Z`) / 1000 : undefined}
                to={end ? Date.parse(`${end}T00:00:00Z`) / 1000 : undefined}
                summary={`Bar chart of the amount billed per ${interval.replace(/ly$/, '').replace('dai', 'day')}: ${buckets.length} buckets, ${formatUsdCents(total ?? '0')} in total.`}
              />
              {units.length > 0 && (
                <ul class="units" aria-label="Usage by unit">
                  {units.map((u) => (
                    <li key={u.unit}>
                      <span class="muted">{u.unit}</span>{' '}
                      <strong data-field={`usage_by_unit.${u.unit}`} data-value={u.total}>
                        {formatAmount(u.total)}
                      </strong>
                    </li>
                  ))}
                </ul>
              )}
              <div class="table-wrap" tabIndex={0} role="region" aria-label="Usage per bucket">
                <table data-table="usage">
                  <caption class="sr-only">Usage per bucket</caption>
                  <thead>
                    <tr>
                      <th scope="col">Period</th>
                      <th scope="col">Usage</th>
                      <th scope="col" class="num">
                        Billed
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {buckets.map((b) => (
                      <tr key={b.time_bucket} data-time-bucket={b.time_bucket}>
                        <td data-label="Period">
                          <span data-field="time_bucket" data-value={b.time_bucket}>
                            {bucketLabel(b.time_bucket, interval)}
                          </span>
                        </td>
                        <td data-label="Usage">
                          <span data-field="total_usage_amount" data-value={b.total_usage_amount}>
                            {Object.entries(b.usage_by_unit ?? {})
                              .map(([u, a]) => `${formatAmount(a)} ${u}`)
                              .join(', ') || formatAmount(b.total_usage_amount)}
                          </span>
                        </td>
                        <td class="num" data-label="Billed">
                          <Money field="bucket_billed_amount" value={b.total_billed_amount} />
                        </td>
                      </tr>
                    ))}
                  </tbody>
                  <tfoot>
                    <tr>
                      <th scope="row" colSpan={2}>
                        Total
                      </th>
                      <td class="num">
                        <strong title={`${formatUsd(total ?? '0')} exactly`}>{formatUsdCents(total ?? '0')}</strong>
                      </td>
                    </tr>
                  </tfoot>
                </table>
              </div>
            </>
          )}
        </>
      )}
    </section>
  );
}
