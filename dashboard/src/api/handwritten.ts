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

/** `GET /v1/admin/purchases/{id}`: the purchase and its related lists (ledger, deposits, sweeps, …). */
export interface AdminPurchaseDetail {
  purchase?: AdminPurchase & Record<string, unknown>;
  [section: string]: unknown;
}

/** A row of `GET /v1/admin/gas`. */
export interface GasBalance {
  chain_id: number;
  chain?: string;
  address?: string;
  balance_eth?: string;
  balance?: string;
  balance_wei?: string;
  low?: boolean;
  sweeps_covered?: number | null;
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
  token: string;
  [extra: string]: unknown;
}

export type Row = Record<string, unknown>;
