// Money over time on the overview: money in vs usage billed per day over 30 or 90 days (the
// chart, with usage per offer on hover), the window's totals and active purchases, and every day
// as a table with the exact amounts.
import { useEffect, useState } from 'preact/hooks';
import { ApiError } from '../../lib/api';
import { windowTotals } from '../../lib/daily';
import { formatUsdCents } from '../../lib/money';
import type { DailyItem } from '../../api/types';
import { Loading, Section } from '../../components/Section';
import { type Column, Table } from '../../components/Table';
import { Field, Money } from '../../components/ui';
import { useAdmin, useLoad } from '../hooks';

const COLUMNS: Column<DailyItem>[] = [
  { label: 'Day (UTC)', cell: (d) => <Field field="day" value={d.day} /> },
  { label: 'Money in', num: true, cell: (d) => <Money field="credited_usd" value={d.credited_usd} /> },
  { label: 'Usage billed', num: true, cell: (d) => <Money field="billed_usd" value={d.billed_usd} /> },
  { label: 'Active purchases', num: true, cell: (d) => <Field field="active_purchases" value={d.active_purchases} /> },
];

type ChartComponent = typeof import('../../lib/DailyChart').DailyChart;

/** uPlot loads with the chart only (a chunk of its own), not with every console page. */
function useDailyChart(): ChartComponent | null {
  const [chart, setChart] = useState<ChartComponent | null>(null);
  useEffect(() => {
    let live = true;
    void import('../../lib/DailyChart').then((m) => live && setChart(() => m.DailyChart));
    return () => {
      live = false;
    };
  }, []);
  return chart;
}

export function MoneyOverTime() {
  const admin = useAdmin();
  const DailyChart = useDailyChart();
  const [days, setDays] = useState(30);
  // A server without the route (before #25) answers 404: say so instead of an error.
  const daily = useLoad(`daily:${days}`, () =>
    admin.daily(days).catch((e: unknown) => {
      if (e instanceof ApiError && e.status === 404) return { items: [], missing: true };
      throw e;
    }),
  );
  const items = daily.data?.items ?? [];
  const totals = windowTotals(items);
  return (
    <Section title="Money over time" section="money-over-time">
      <div class="controls">
        <div class="segmented" role="group" aria-label="Days shown">
          {[30, 90].map((n) => (
            <button
              type="button"
              key={n}
              class={`seg ${days === n ? 'seg-on' : ''}`}
              aria-pressed={days === n}
              data-action="days"
              data-value={String(n)}
              onClick={() => setDays(n)}
            >
              {n} days
            </button>
          ))}
        </div>
      </div>
      {daily.data && 'missing' in daily.data ? (
        <p class="muted">This server does not report money per day yet.</p>
      ) : !daily.data ? (
        <Loading error={daily.error} what={`${days} days`} />
      ) : (
        <>
          <div class="stats" data-days={String(days)}>
            <div class="stat">
              <div class="stat-label">Money in, {days} days</div>
              <div class="stat-value">
                <Money field="window_credited_usd" value={totals.credited} />
              </div>
            </div>
            <div class="stat">
              <div class="stat-label">Usage billed, {days} days</div>
              <div class="stat-value">
                <Money field="window_billed_usd" value={totals.billed} />
              </div>
            </div>
            <div class="stat">
              <div class="stat-label">Active purchases today</div>
              <div class="stat-value">
                <Field field="active_purchases" value={totals.active} />
              </div>
            </div>
          </div>
          {DailyChart ? (
            <DailyChart
              items={items}
              summary={`Chart of money in and usage billed per day over ${items.length} days: ${formatUsdCents(totals.credited)} in, ${formatUsdCents(totals.billed)} billed.`}
            />
          ) : (
            <p class="muted">Drawing the chart…</p>
          )}
          <details class="daily-table">
            <summary>Every day as a table</summary>
            <Table
              name="daily"
              rows={[...items].reverse()}
              columns={COLUMNS}
              caption="Money in and usage billed per day, newest first"
              rowKey={(d) => d.day}
              rowAttrs={(d) => ({ 'data-day': d.day })}
            />
          </details>
        </>
      )}
    </Section>
  );
}
