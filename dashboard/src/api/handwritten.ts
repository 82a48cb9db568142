// What the generated OpenAPI types (./openapi.d.ts, via ./types) cannot say: the generic page of a
// list (the document has one schema per item type, `Page_<Item>`). Every route's own types come
// from ./types.

/** Every list: `{items, next_cursor}` (cursor pagination; `next_cursor` is null on the last page). */
export interface Page<T> {
  items: T[];
  next_cursor?: string | null;
}
