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
