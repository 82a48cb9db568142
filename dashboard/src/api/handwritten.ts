// What the generated OpenAPI types (./openapi.d.ts, via ./types) cannot say: the generic page of a
// list (the document has one schema per item type, `Page_<Item>`) and the console's generic row.
// Every route's own types come from ./types.
import type { LedgerItem } from './types';

/** Every list: `{items, next_cursor}` (cursor pagination; `next_cursor` is null on the last page). */
export interface Page<T> {
  items: T[];
  next_cursor?: string | null;
}

/** `GET /v1/purchase/{id}/ledger` entries (the generated `LedgerItem`; kept for the customer page's import). */
export type LedgerEntry = LedgerItem;

/** A JSON object the console renders field by field (sections it shows generically). */
export type Row = Record<string, unknown>;

// Routes of #25 (operators, money over time) not in the OpenAPI snapshot yet, typed here until it
// has them; then replaced by the generated types.

export type OperatorRole = 'viewer' | 'operator' | 'owner';

/** `GET /v1/admin/me`: who is signed in (`id` null for ADMIN_TOKEN, the bootstrap owner). */
export interface SignedInOperator {
  id?: number | null;
  name: string;
  role: OperatorRole;
}

/** A row of `GET /v1/admin/operators`. */
export interface OperatorRow {
  id: number;
  name: string;
  role: OperatorRole;
  display_prefix: string;
  status: string;
  created_at: string;
  revoked_at?: string | null;
}

/** `POST /v1/admin/operators` answers the token once (null in a replay). */
export type OperatorCreated = OperatorRow & { token?: string | null };

/** One UTC day of `GET /v1/admin/stats/daily`. */
export interface DailyItem {
  day: string;
  credited_usd: string;
  billed_usd: string;
  billed_by_offer: Record<string, string>;
  active_purchases: number;
}

export interface Daily {
  items: DailyItem[];
}

/** Money swept to the treasury, per chain and token (the overview's `swept`; confirmed sweeps). */
export interface SweptTotal {
  chain_id: number;
  /** The token's symbol (`usdc`). */
  token: string;
  /** In whole tokens, exact (`"4.75"`); null when the token's decimals are unknown. */
  amount?: string | null;
  /** In the token's smallest units. */
  amount_units: string;
}

/** The overview's newer fields (SPEC §9 "Operators"). */
export interface OverviewMoney {
  liability_usd?: string;
  swept?: SweptTotal[];
}

/** The gas row's newer fields: what it spent over 7 days and how many days it lasts at that rate. */
export interface GasRunway {
  gas_spent_7d_wei?: string | null;
  /** Rounded down to a tenth; null when nothing was spent (or the balance is unreadable). */
  gas_runway_days?: number | null;
}
