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

/**
 * How long ago (or ahead) a time is, in words: "just now", "3 min ago", "5 h ago", "yesterday",
 * "4 days ago", "in 10 min"; older than 30 days: the date itself.
 */
export function formatRelative(value: unknown, now: number = Date.now()): string {
  const date = toDate(value);
  if (!date) return value === null || value === undefined || value === '' ? '—' : String(value);
  const diff = Math.round((now - date.getTime()) / 1000);
  const future = diff < 0;
  const s = Math.abs(diff);
  const say = (n: number, unit: string) => (future ? `in ${n} ${unit}` : `${n} ${unit} ago`);
  if (s < 45) return future ? 'in a moment' : 'just now';
  if (s < 60 * 60) return say(Math.max(1, Math.round(s / 60)), 'min');
  if (s < 24 * 3600) return say(Math.round(s / 3600), 'h');
  const days = Math.round(s / 86_400);
  if (days === 1) return future ? 'tomorrow' : 'yesterday';
  if (days <= 30) return say(days, 'days');
  return date.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
}

/** The exact time for a tooltip: local date and time to the second, and the UTC instant. */
export function formatExactTime(value: unknown): string {
  const date = toDate(value);
  if (!date) return '';
  const local = date.toLocaleString(undefined, {
    year: 'numeric',
    month: 'short',
    day: 'numeric',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    timeZoneName: 'short',
  });
  return `${local} (${date.toISOString().replace('.000Z', 'Z')})`;
}
