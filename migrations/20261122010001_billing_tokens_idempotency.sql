-- Vendor-wide billing tokens (CLI `tokens create`): AI servers that meter many purchases use one.
-- Stored only as SHA-256 hashes with a display prefix; revoked tokens stay listed.
create table billing_token
(
    token_id       bigserial primary key,
    token_hash     bytea       not null unique,
    display_prefix text        not null,
    label          text        not null,
    created_at     timestamptz not null default now(),
    revoked_at     timestamptz
);

-- meter-usage idempotency: scoped to (purchase, key) whatever credential sent it, kept 30 days.
-- Written in the same transaction as the ledger row it answers for, under the purchase row lock.
create table meter_idempotency
(
    purchase_id  uuid        not null references purchase (purchase_id),
    key          text        not null,
    -- SHA-256 of the normalised request: same key with another body is a conflict (409).
    request_hash bytea       not null,
    -- The first answer, replayed verbatim.
    response     jsonb       not null,
    created_at   timestamptz not null default now(),
    primary key (purchase_id, key)
);
create index meter_idempotency_created_idx on meter_idempotency (created_at);

-- Every status change bumps the version; notification dedupe keys are derived from it, so each
-- crossing is announced exactly once whatever the concurrency.
alter table purchase
    add column status_version bigint not null default 0;

-- Rows of a channel that is not configured are completed as skipped instead of staying pending.
alter table outbox
    drop constraint outbox_status_check;
alter table outbox
    add constraint outbox_status_check check (status in ('pending', 'delivered', 'failed', 'skipped'));
