// HAND-WRITTEN TYPES for routes not yet in the server's OpenAPI document (the admin API and the
// customer ledger, SPEC §9 "Dashboard"). Written against the SPEC; the console renders unknown extra
// fields generically. Replace each with the generated type from ./openapi once the document has it.

/** Every list: `{items, next_cursor}` (cursor pagination). */
export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/** `GET /v1/purchase/{id}/ledger?cursor=&limit=` (customer key). */
export interface LedgerEntry {
  id: string | number;
  kind: string;
  amount_usd: string;
  balance_after_usd: string;
  description: string | null;
  created_at: string | number;
  occurred_at?: string | number;
  chain_id?: number | null;
  tx_hash?: string | null;
  explorer_url?: string | null;
}

/** A row of `GET /v1/admin/purchases`. */
export interface AdminPurchase {
  id: string;
  offer_id: string;
  title?: string;
  status: string;
  balance_usd: string;
  customer_email?: string | null;
  officex_purchase_id?: string | null;
  created_at?: string | number;
  updated_at?: string | number;
  [extra: string]: unknown;
}

/**
 * `GET /v1/admin/purchases/{id}`: the purchase's fields (thresholds, customer, times, `held`) and beside
 * them `resource`, `officex`, `checkout`, `ledger` (a page), `deposits`, `sweeps`, `notifications`, `audit`.
 */
export interface AdminPurchaseDetail extends Partial<AdminPurchase> {
  purchase?: AdminPurchase & Record<string, unknown>;
  balance_low_trigger?: string | null;
  balance_critical_trigger?: string | null;
  balance_termination_trigger?: string | null;
  held?: boolean;
  ledger?: Page<LedgerEntry>;
  [section: string]: unknown;
}

/** A row of `GET /v1/admin/gas`. */
export interface GasBalance {
  chain_id: number;
  chain?: string;
  address?: string;
  balance_eth?: string;
  balance?: string;
  balance_wei?: string | null;
  low?: boolean;
  sweep_cost_wei?: string | null;
  sweeps_covered?: string | null;
  sweeps_waiting?: number;
  error?: string | null;
  [extra: string]: unknown;
}

/** `POST /v1/admin/purchases/{id}/adjustments`. */
export interface AdjustmentRequest {
  amount_usd: string;
  reason: string;
  idempotency_key?: string;
}

/** `POST /v1/admin/tokens` answers the token once. */
export interface CreatedToken {
  id: string | number;
  label: string;
  display_prefix?: string;
  status?: string;
  /** Only in the first answer; a replay of the same idempotency key answers null. */
  token: string | null;
  [extra: string]: unknown;
}

export type Row = Record<string, unknown>;
