-- Money over time (`GET /v1/admin/stats/daily`) reads the ledger rows of the last 30 or 90 days by
-- `created_at`. Rows are appended in time order, so a BRIN index finds the window for a few pages'
-- cost and adds almost nothing to each insert (the meter's hot path), unlike a B-tree.
create index ledger_entry_created_brin on ledger_entry using brin (created_at);
