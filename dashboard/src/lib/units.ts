// Amounts on chain, for people: native coin amounts from wei (ETH, 18 decimals) and token amounts
// from their smallest units, shown with at most 6 decimals (and 6 significant digits when smaller
// than that), always with the unit. Exact integer arithmetic (BigInt); the exact value stays in
// data-value beside the text.

const INTEGER = /^\s*(-)?(\d+)\s*$/;

/** The native coin of a chain id (what its gas is paid in). */
export function nativeSymbol(chainId: number | null | undefined): string {
  switch (chainId) {
    case 137:
    case 80002:
      return 'POL';
    case 56:
    case 97:
      return 'BNB';
    case 43114:
    case 43113:
      return 'AVAX';
    case 100:
      return 'xDAI';
    default:
      return 'ETH';
  }
}

/** Decimals of the stablecoins the server accepts, by symbol (case-insensitive); null when unknown. */
export function knownDecimals(symbol: string | null | undefined): number | null {
  const s = (symbol ?? '').toLowerCase();
  if (s === 'usdc' || s === 'usdt' || s === 'usdc.e' || s === 'pyusd') return 6;
  if (s === 'dai' || s === 'eth' || s === 'weth') return 18;
  return null;
}

/** Integer units (e.g. wei) as an exact decimal string ("1.5" for 1500000000000000000 wei). */
export function unitsToDecimal(units: string | bigint, decimals: number): string {
  const v = typeof units === 'bigint' ? units : parseUnits(units);
  const negative = v < 0n;
  const abs = negative ? -v : v;
  const scale = 10n ** BigInt(decimals);
  const whole = abs / scale;
  const frac = decimals > 0 ? (abs % scale).toString().padStart(decimals, '0').replace(/0+$/, '') : '';
  return `${negative ? '-' : ''}${whole}${frac ? `.${frac}` : ''}`;
}

function parseUnits(text: string): bigint {
  const m = INTEGER.exec(text);
  if (!m) throw new Error(`not an integer amount: ${text}`);
  const v = BigInt(m[2] ?? '0');
  return m[1] ? -v : v;
}

/**
 * Integer units with `decimals` for people: at most 6 decimals (half away from zero), trailing zeros
 * dropped, thousands separated; a non-zero amount below 0.000001 keeps 6 significant digits
 * instead of showing 0 ("0.000000021").
 */
export function formatUnits(units: string | bigint, decimals: number, maxDecimals = 6): string {
  const v = typeof units === 'bigint' ? units : parseUnits(units);
  const negative = v < 0n;
  const abs = negative ? -v : v;
  const sign = negative ? '−' : '';
  if (decimals <= maxDecimals) return sign + group(unitsToDecimal(abs, decimals));
  const drop = 10n ** BigInt(decimals - maxDecimals);
  const rounded = (abs + drop / 2n) / drop;
  if (rounded === 0n && abs > 0n) {
    // Smaller than the last shown place: the significant digits, exact up to 6 of them.
    const digits = abs.toString();
    const keep = digits.length > 6 ? (abs + 10n ** BigInt(digits.length - 6) / 2n) / 10n ** BigInt(digits.length - 6) : abs;
    const shifted = keep * 10n ** BigInt(Math.max(0, digits.length - 6));
    return sign + unitsToDecimal(shifted, decimals);
  }
  return sign + group(unitsToDecimal(rounded, maxDecimals));
}

function group(decimal: string): string {
  const [whole = '0', frac] = decimal.split('.');
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return frac ? `${grouped}.${frac}` : grouped;
}

/** Wei as the chain's coin: "1.5 ETH", "0.000021 ETH". */
export function formatNative(wei: string | bigint | null | undefined, chainId?: number | null): string {
  if (wei === null || wei === undefined || wei === '') return '—';
  return `${formatUnits(wei, 18)} ${nativeSymbol(chainId)}`;
}

/** A token amount in its smallest units with its symbol: "5 USDC". Unknown decimals: the raw units. */
export function formatToken(units: string | bigint, symbol: string, decimals?: number | null): string {
  const d = decimals ?? knownDecimals(symbol);
  const sym = symbol.toUpperCase();
  if (d === null) return `${typeof units === 'bigint' ? units.toString() : units} ${sym} units`;
  return `${formatUnits(units, d)} ${sym}`;
}
