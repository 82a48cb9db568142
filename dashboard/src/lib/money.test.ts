import { describe, expect, it } from 'vitest';
import { daysLeft, formatAmount, formatUsd, formatUsdCents, microsToDecimal, sumDecimals, toMicros } from './money';

describe('money', () => {
  it('parses decimal strings and numbers exactly', () => {
    expect(toMicros('12.345678')).toBe(12_345_678n);
    expect(toMicros('-0.5')).toBe(-500_000n);
    expect(toMicros('3')).toBe(3_000_000n);
    expect(toMicros(4.25)).toBe(4_250_000n);
    expect(toMicros('.000001')).toBe(1n);
    expect(toMicros('1.0000000')).toBe(1_000_000n);
    expect(() => toMicros('1.0000001')).toThrow();
    expect(() => toMicros('abc')).toThrow();
  });

  it('sums where floats would drift', () => {
    // 0.1 + 0.2 in floats is 0.30000000000000004.
    expect(sumDecimals(['0.100000', '0.200000'])).toBe('0.300000');
    const many = Array.from({ length: 10_000 }, () => '0.000001');
    expect(sumDecimals(many)).toBe('0.010000');
    expect(sumDecimals(['9007199254.740993', '0.000001'])).toBe('9007199254.740994');
    expect(sumDecimals(['1.5', '-2.25'])).toBe('-0.750000');
    expect(microsToDecimal(-1n)).toBe('-0.000001');
  });

  it('formats for people without rounding anything away', () => {
    expect(formatUsd('12.345678')).toBe('$12.345678');
    expect(formatUsd('12.350000')).toBe('$12.35');
    expect(formatUsd('1234567.5')).toBe('$1,234,567.50');
    expect(formatUsd('-0.5')).toBe('−$0.50');
    expect(formatUsd('0')).toBe('$0.00');
    expect(formatAmount('2.500000')).toBe('2.5');
    expect(formatAmount('1000.000000')).toBe('1000');
  });

  it('formats to the cent for display, half away from zero', () => {
    expect(formatUsdCents('12.345678')).toBe('$12.35');
    expect(formatUsdCents('12.344999')).toBe('$12.34');
    expect(formatUsdCents('12.345')).toBe('$12.35');
    expect(formatUsdCents('1234567.5')).toBe('$1,234,567.50');
    expect(formatUsdCents('-0.5')).toBe('−$0.50');
    expect(formatUsdCents('-0.004')).toBe('$0.00');
    expect(formatUsdCents('0.000001')).toBe('$0.00');
    expect(formatUsdCents('999.995')).toBe('$1,000.00');
    expect(formatUsdCents(null)).toBe('—');
    expect(formatUsdCents(2_500_000n)).toBe('$2.50');
  });

  it('tells how many days a balance lasts', () => {
    expect(daysLeft('10', '7', 7)).toBe(10n);
    expect(daysLeft('10', '0', 7)).toBe(null);
    expect(daysLeft('-1', '7', 7)).toBe(0n);
    expect(daysLeft('1', '7', 7)).toBe(1n);
  });
});
