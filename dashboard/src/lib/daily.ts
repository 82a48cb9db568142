// Money over time, pure: per-day figures for the overview's chart and its hover panel, and the
// totals of a window, summed exactly (BigInt micro-dollars).
import type { DailyItem } from '../api/types';
import { formatUsdCents, sumDecimals } from './money';

export function dayStart(day: string): number {
  return Date.parse(`${day}T00:00:00Z`) / 1000;
}

/** What the hover panel says about one day (pure, tested). */
export function describeDay(d: DailyItem): { label: string; lines: [string, string, string][] } {
  const label = new Date(dayStart(d.day) * 1000).toLocaleDateString(undefined, {
    weekday: 'short',
    month: 'short',
    day: 'numeric',
    timeZone: 'UTC',
  });
  const offers = Object.entries(d.billed_by_offer)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([offer, usd]): [string, string, string] => [`of which ${offer}`, formatUsdCents(usd), usd]);
  return {
    label,
    lines: [['Money in', formatUsdCents(d.credited_usd), d.credited_usd], ['Usage billed', formatUsdCents(d.billed_usd), d.billed_usd], ...offers],
  };
}

/** Totals over the days shown: money in, usage billed, and active purchases on the last day. */
export function windowTotals(items: DailyItem[]): { credited: string; billed: string; active: number } {
  return {
    credited: sumDecimals(items.map((d) => d.credited_usd)),
    billed: sumDecimals(items.map((d) => d.billed_usd)),
    active: items.length > 0 ? (items[items.length - 1]?.active_purchases ?? 0) : 0,
  };
}
