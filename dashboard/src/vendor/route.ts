// The console's routes: `#/<view>` (and `#/purchases/<id>` for one purchase), with the nav labels.

export type Route =
  | { view: 'overview' }
  | { view: 'purchases' }
  | { view: 'purchase'; id: string }
  | { view: 'sweeps' }
  | { view: 'refunds' }
  | { view: 'notifications' }
  | { view: 'cost-imports' }
  | { view: 'tokens' }
  | { view: 'gas' }
  | { view: 'audit' }
  | { view: 'chains' }
  | { view: 'operators' };

export type ViewName = Route['view'];

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').replace(/\?.*$/, '').split('/').filter(Boolean).map(decodeURIComponent);
  switch (parts[0]) {
    case 'purchases':
      return parts[1] ? { view: 'purchase', id: parts[1] } : { view: 'purchases' };
    case 'sweeps':
    case 'refunds':
    case 'notifications':
    case 'cost-imports':
    case 'tokens':
    case 'gas':
    case 'audit':
    case 'chains':
    case 'operators':
      return { view: parts[0] };
    default:
      return { view: 'overview' };
  }
}

export const NAV: { view: ViewName; href: string; label: string; ownerOnly?: boolean }[] = [
  { view: 'overview', href: '#/overview', label: 'Overview' },
  { view: 'purchases', href: '#/purchases', label: 'Purchases' },
  { view: 'sweeps', href: '#/sweeps', label: 'Sweeps' },
  { view: 'refunds', href: '#/refunds', label: 'Refunds' },
  { view: 'notifications', href: '#/notifications', label: 'Notifications' },
  { view: 'cost-imports', href: '#/cost-imports', label: 'Cost imports' },
  { view: 'tokens', href: '#/tokens', label: 'Billing tokens' },
  { view: 'gas', href: '#/gas', label: 'Gas' },
  { view: 'chains', href: '#/chains', label: 'Chains' },
  { view: 'audit', href: '#/audit', label: 'Audit log' },
  { view: 'operators', href: '#/operators', label: 'Operators', ownerOnly: true },
];

/** The document title of a route. */
export function routeTitle(route: Route): string {
  if (route.view === 'purchase') return route.id;
  return NAV.find((n) => n.view === route.view)?.label ?? 'Overview';
}

/** A filter passed in the address after the view (`#/sweeps?status=failed`), '' when absent. */
export function routeParam(hash: string, name: string): string {
  const i = hash.indexOf('?');
  return i < 0 ? '' : (new URLSearchParams(hash.slice(i + 1)).get(name) ?? '');
}
