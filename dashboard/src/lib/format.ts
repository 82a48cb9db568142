// Display helpers shared by both pages.

/** Epoch milliseconds, epoch seconds or RFC 3339 → a short local date-time. */
export function formatTime(value: unknown): string {
  const date = toDate(value);
  if (!date) return value === null || value === undefined ? '—' : String(value);
  return date.toLocaleString(undefined, {
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
  });
}

export function toDate(value: unknown): Date | null {
  if (value === null || value === undefined || value === '') return null;
  if (typeof value === 'number') return new Date(value < 1e12 ? value * 1000 : value);
  if (typeof value === 'string') {
    const t = Date.parse(value);
    return Number.isNaN(t) ? null : new Date(t);
  }
  return null;
}

/** 0x1234…abcd for long hashes and addresses in narrow cells. */
export function shortHex(value: string, keep = 6): string {
  return value.length > keep * 2 + 3 ? `${value.slice(0, keep + 2)}…${value.slice(-keep)}` : value;
}

/** "2026-12-01" of a date in UTC (the API's buckets are UTC). */
export function isoDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}

export function daysAgo(n: number, from = new Date()): Date {
  const d = new Date(Date.UTC(from.getUTCFullYear(), from.getUTCMonth(), from.getUTCDate()));
  d.setUTCDate(d.getUTCDate() - n);
  return d;
}
