import { describe, expect, it } from 'vitest';
import { formatNative, formatToken, formatUnits, knownDecimals, nativeSymbol, unitsToDecimal } from './units';

describe('units', () => {
  it('converts integer units to an exact decimal', () => {
    expect(unitsToDecimal('1500000000000000000', 18)).toBe('1.5');
    expect(unitsToDecimal('1', 18)).toBe('0.000000000000000001');
    expect(unitsToDecimal('0', 18)).toBe('0');
    expect(unitsToDecimal('5000000', 6)).toBe('5');
    expect(unitsToDecimal('-2500000', 6)).toBe('-2.5');
    expect(() => unitsToDecimal('1.5', 18)).toThrow();
  });

  it('shows native amounts in the chain unit with at most 6 decimals', () => {
    // The example: 9999.99997914441537512 ETH.
    expect(formatNative('9999999979144415375120000')).toBe('9,999,999.979144 ETH');
    expect(formatNative('9999999979144415375120')).toBe('9,999.999979 ETH');
    expect(formatNative('21000000000000')).toBe('0.000021 ETH');
    expect(formatNative('1000000000000000000')).toBe('1 ETH');
    expect(formatNative('0')).toBe('0 ETH');
    // Half away from zero at the 6th decimal.
    expect(formatNative('1234500000000')).toBe('0.000001 ETH');
    expect(formatNative('1999999500000000000')).toBe('2 ETH');
    expect(formatNative('1999999499999999999')).toBe('1.999999 ETH');
    expect(formatNative(null)).toBe('—');
    expect(formatNative('1000000000000000000', 137)).toBe('1 POL');
  });

  it('keeps 6 significant digits below a millionth instead of showing 0', () => {
    expect(formatUnits('21', 18)).toBe('0.000000000000000021');
    expect(formatUnits('1234567891', 18)).toBe('0.00000000123457');
    expect(formatUnits('499999999999', 18)).toBe('0.0000005');
  });

  it('separates thousands and keeps the sign', () => {
    expect(formatUnits('1234567000000', 6)).toBe('1,234,567');
    expect(formatUnits(-1500000n, 6)).toBe('−1.5');
  });

  it('shows token amounts with their symbol', () => {
    expect(formatToken('5000000', 'usdc')).toBe('5 USDC');
    expect(formatToken('1234567', 'USDT')).toBe('1.234567 USDT');
    expect(formatToken('3', 'XYZ')).toBe('3 XYZ units');
    expect(formatToken('3000000000000000000', 'XYZ', 18)).toBe('3 XYZ');
    expect(knownDecimals('USDC')).toBe(6);
    expect(nativeSymbol(31337)).toBe('ETH');
  });
});
