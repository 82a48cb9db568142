import { describe, expect, it } from 'vitest';
import { dayStart, describeDay, windowTotals } from './daily';

const day = (d: string, credited: string, billed: string, byOffer: Record<string, string> = {}, active = 1) => ({
  day: d,
  credited_usd: credited,
  billed_usd: billed,
  billed_by_offer: byOffer,
  active_purchases: active,
});

describe('daily money', () => {
  it('starts a day at UTC midnight', () => {
    expect(dayStart('2026-12-07')).toBe(Date.parse('2026-12-07T00:00:00Z') / 1000);
  });

  it('describes a day with its usage per offer, to the cent', () => {
    const d = describeDay(day('2026-12-07', '5.000000', '0.123456', { 'gemini-api-gateway': '0.100000', 'aws-s3': '0.023456' }));
    expect(d.lines).toEqual([
      ['Money in', '$5.00', '5.000000'],
      ['Usage billed', '$0.12', '0.123456'],
      ['of which aws-s3', '$0.02', '0.023456'],
      ['of which gemini-api-gateway', '$0.10', '0.100000'],
    ]);
  });

  it('sums a window exactly and takes the last day’s active purchases', () => {
    const items = Array.from({ length: 90 }, (_, i) => day(`2026-09-${String((i % 28) + 1).padStart(2, '0')}`, '0.100000', '0.000001', {}, i));
    expect(windowTotals(items)).toEqual({ credited: '9.000000', billed: '0.000090', active: 89 });
    expect(windowTotals([])).toEqual({ credited: '0.000000', billed: '0.000000', active: 0 });
  });
});
