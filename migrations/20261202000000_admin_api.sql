-- Admin API (/v1/admin/…): the audit log of operator actions, their idempotency keys, the operator's
-- hold on a purchase (suspend/resume), and indexes for the console's lists.

-- Every admin action: what, on what, why, from where; written in the action's transaction.
create table admin_audit
(
    audit_id        bigserial primary key,
    -- e.g. purchase.adjust, purchase.suspend, sweep.retry, token.create
    action          text        not null,
    -- purchase, sweep, notification, token
    target_type     text        not null,
    target_id       text        not null,
    reason          text,
    -- What the action did (amount, status before/after, …); never a secret.
    details         jsonb       not null default '{}',
    -- The client's address (TRUSTED_PROXIES honoured); null when unknown.
    client_ip       text,
    idempotency_key text,
    created_at      timestamptz not null default now()
);
create index admin_audit_target_idx on admin_audit (target_type, target_id, audit_id);

-- Idempotency of admin mutations: one key, one request (hash of method, path and body), one answer.
create table admin_idempotency
(
    key          text primary key,
    request_hash bytea       not null,
    -- The first answer, replayed verbatim ('null' while the first request runs); secrets (a new
    -- token) are not kept.
    response     jsonb       not null,
    created_at   timestamptz not null default now()
);
create index admin_idempotency_created_idx on admin_idempotency (created_at);

-- Set while an operator holds the purchase suspended: the balance does not lift it, and the
-- grace-period deletion does not apply (only `resume` clears it).
alter table purchase add column admin_hold_at timestamptz;

-- The console's purchase list: keyset pages in creation order (also per offer), search by email
-- prefix. Only columns that never change are indexed: an index on balance_micros or updated_at would
-- make every ledger post's purchase update a non-HOT update writing every index of the table (the
-- meter's hot path); sorting 100,000 purchases by balance or activity without one takes ~45 ms a page.
create index purchase_created_key_idx on purchase (created_at, purchase_id);
create index purchase_email_idx on purchase (lower(customer_email) text_pattern_ops);
create index purchase_offer_idx on purchase (offer_id, created_at, purchase_id);

-- Money in / usage billed over the last days (overview).
create index ledger_entry_kind_created_idx on ledger_entry (kind, created_at);
-- A cost import run's ledger rows (restated days per run).
create index ledger_entry_cost_run_idx on ledger_entry (((metadata ->> 'run_id')::bigint))
    where kind = 'cost';
-- Lists newest first with filters.
create index outbox_status_id_idx on outbox (status, outbox_id);
create index sweep_status_id_idx on sweep (status, sweep_id);
-- A purchase's notifications (console).
create index outbox_purchase_idx on outbox (purchase_id, outbox_id) where purchase_id is not null;
-- A purchase's ledger newest first, one page at a time (customer ledger, console).
create index ledger_entry_purchase_entry_idx on ledger_entry (purchase_id, entry_id);
