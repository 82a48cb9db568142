// Exact USD arithmetic for the dashboard: the API's amounts are decimal strings with up to 6 places
// ("12.345678"); they are added as integer micro-units (BigInt), never as floats, so a total shown on
// the page equals the API's own sums to the last digit.

const MICROS = 1_000_000n;
const DECIMAL = /^\s*([+-])?(\d*)(?:\.(\d*))?\s*$/;

/** Parses "12.345678", "-0.5", "3", 4.25 into micro-units. More than 6 places → an error. */
export function toMicros(value: string | number | null | undefined): bigint {
  if (value === null || value === undefined || value === '') return 0n;
  const text = typeof value === 'number' ? numberText(value) : value;
  const m = DECIMAL.exec(text);
  if (!m || (m[2] === '' && (m[3] ?? '') === '')) throw new Error(`not a decimal amount: ${text}`);
  const [, sign, whole, frac = ''] = m;
  if (frac.length > 6) {
    // The API never sends more than 6 places; anything else is a bug to surface, not to round.
    if (/[1-9]/.test(frac.slice(6))) throw new Error(`more than 6 decimal places: ${text}`);
  }
  const micros = BigInt(whole || '0') * MICROS + BigInt((frac.slice(0, 6) + '000000').slice(0, 6));
  return sign === '-' ? -micros : micros;
}

/** The decimal text of a JSON number (the API's reference-typed numbers such as `new_balance`). */
function numberText(n: number): string {
  if (!Number.isFinite(n)) throw new Error(`not a finite amount: ${n}`);
  // Up to 6 places is what the server emits; toFixed(6) of such a number is exact text.
  return n.toFixed(6);
}

/** Micro-units as the API writes them: exactly 6 places ("-0.500000"). */
export function microsToDecimal(micros: bigint): string {
  const negative = micros < 0n;
  const abs = negative ? -micros : micros;
  const whole = abs / MICROS;
  const frac = (abs % MICROS).toString().padStart(6, '0');
  return `${negative ? '-' : ''}${whole}.${frac}`;
}

/** Adds decimal strings exactly; the result in the API's 6-place form. */
export function sumDecimals(values: Iterable<string | number | null | undefined>): string {
  let total = 0n;
  for (const v of values) total += toMicros(v);
  return microsToDecimal(total);
}

/**
 * For people: "$12.35" when the amount is whole cents, else every significant place ("$0.001234"),
 * so nothing shown is rounded away. Thousands separated.
 */
export function formatUsd(value: string | number | bigint | null | undefined): string {
  if (value === null || value === undefined) return '—';
  const micros = typeof value === 'bigint' ? value : toMicros(value);
  const negative = micros < 0n;
  const abs = negative ? -micros : micros;
  const whole = (abs / MICROS).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  let frac = (abs % MICROS).toString().padStart(6, '0').replace(/0+$/, '');
  if (frac.length < 2) frac = frac.padEnd(2, '0');
  return `${negative ? '−' : ''}$${whole}.${frac}`;
}

/**
 * For people, to the cent: "$12.35" for 12.345678 (half away from zero), thousands separated,
 * "−$0.50" below zero. The exact amount goes in `title` and `data-value` beside it.
 */
export function formatUsdCents(value: string | number | bigint | null | undefined): string {
  if (value === null || value === undefined) return '—';
  const micros = typeof value === 'bigint' ? value : toMicros(value);
  const negative = micros < 0n;
  const abs = negative ? -micros : micros;
  const cents = (abs + 5_000n) / 10_000n;
  const whole = (cents / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const frac = (cents % 100n).toString().padStart(2, '0');
  return `${negative && cents > 0n ? '−' : ''}$${whole}.${frac}`;
}

/** A plain decimal amount without trailing zeros ("2.5", "1000"), for usage quantities. */
export function formatAmount(value: string | number | bigint): string {
  const micros = typeof value === 'bigint' ? value : toMicros(value);
  const text = microsToDecimal(micros).replace(/\.?0+$/, '');
  return text === '-0' ? '0' : text;
}

/** Whole days `balance` lasts when `spent` was used over `days` days; null when nothing was used. */
export function daysLeft(balance: string, spent: string, days: number): bigint | null {
  const b = toMicros(balance);
  const s = toMicros(spent);
  if (s <= 0n) return null;
  if (b <= 0n) return 0n;
  return (b * BigInt(days)) / s;
}

/** For the chart's geometry only (never for sums). */
export function toNumber(value: string): number {
  return Number(toMicros(value)) / 1e6;
}
