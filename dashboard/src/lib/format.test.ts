import { describe, expect, it } from 'vitest';
import { formatExactTime, formatRelative, shortHex, toDate } from './format';

const NOW = Date.parse('2026-12-07T12:00:00Z');
const ago = (s: number) => new Date(NOW - s * 1000).toISOString();

describe('format', () => {
  it('says how long ago a time was, in words', () => {
    expect(formatRelative(ago(10), NOW)).toBe('just now');
    expect(formatRelative(ago(3 * 60), NOW)).toBe('3 min ago');
    expect(formatRelative(ago(50), NOW)).toBe('1 min ago');
    expect(formatRelative(ago(5 * 3600), NOW)).toBe('5 h ago');
    expect(formatRelative(ago(30 * 3600), NOW)).toBe('yesterday');
    expect(formatRelative(ago(4 * 86_400), NOW)).toBe('4 days ago');
    expect(formatRelative(ago(-10 * 60), NOW)).toBe('in 10 min');
    expect(formatRelative(ago(-2 * 86_400), NOW)).toBe('in 2 days');
    expect(formatRelative(ago(90 * 86_400), NOW)).not.toMatch(/ago/);
    expect(formatRelative(null, NOW)).toBe('—');
    // Epoch seconds and milliseconds too.
    expect(formatRelative((NOW - 120_000) / 1000, NOW)).toBe('2 min ago');
    expect(formatRelative(NOW - 120_000, NOW)).toBe('2 min ago');
  });

  it('gives the exact time for the tooltip, with the UTC instant', () => {
    expect(formatExactTime('2026-12-07T11:57:03.000Z')).toContain('(2026-12-07T11:57:03Z)');
    expect(formatExactTime('2026-12-07T11:57:03.250Z')).toContain('(2026-12-07T11:57:03.250Z)');
    expect(formatExactTime('nope')).toBe('');
  });

  it('shortens long hex values and parses times', () => {
    expect(shortHex('0x1234567890abcdef1234567890abcdef12345678')).toBe('0x123456…345678');
    expect(shortHex('0x1234')).toBe('0x1234');
    expect(toDate('')).toBe(null);
  });
});
