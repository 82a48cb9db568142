import { describe, expect, it } from 'vitest';
import { NAV, parseRoute, routeParam, routeTitle } from './route';

describe('console routes', () => {
  it('parses each view and a purchase id', () => {
    expect(parseRoute('#/purchases/CustomerPurchaseID_abc')).toEqual({ view: 'purchase', id: 'CustomerPurchaseID_abc' });
    expect(parseRoute('#/refunds')).toEqual({ view: 'refunds' });
    expect(parseRoute('#/operators')).toEqual({ view: 'operators' });
    expect(parseRoute('#/chains')).toEqual({ view: 'chains' });
    expect(parseRoute('')).toEqual({ view: 'overview' });
    expect(parseRoute('#/nope')).toEqual({ view: 'overview' });
    expect(parseRoute('#/sweeps?status=failed')).toEqual({ view: 'sweeps' });
    expect(routeParam('#/sweeps?status=failed', 'status')).toBe('failed');
    expect(routeParam('#/sweeps', 'status')).toBe('');
  });

  it('every nav entry routes to its own view, titled in words', () => {
    for (const n of NAV) {
      const route = parseRoute(n.href);
      expect(route.view).toBe(n.view);
      expect(routeTitle(route)).toBe(n.label);
    }
  });
});
