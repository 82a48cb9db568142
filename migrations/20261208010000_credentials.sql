-- Credentials on the customer page (SPEC §9 "Customers get what they paid for"): each credential is
-- listed by a hint (its last 4 characters, never the secret) and can be replaced by a new one, shown
-- once, the old one stopping at once.

-- Hints and issue times. Keys issued before this migration have no hint (listed with `null`).
alter table gateway_key add column key_hint text;
alter table purchase
    add column customer_key_hint       text,
    -- When the current customer key was issued (null: with the purchase).
    add column customer_key_created_at timestamptz;

-- One row per rotation, by the caller's idempotency key: a retry with the same key gets the same
-- answer (its secret sealed with DATA_ENCRYPTION_KEY, bound to the row, erased after 24 hours) and
-- never rotates twice.
create table credential_rotation
(
    credential_rotation_id uuid primary key,
    purchase_id            uuid        not null references purchase (purchase_id),
    kind                   text        not null
        check (kind in ('gateway_key', 's3_access_key', 'customer_key')),
    -- Who asked: `customer` (their own key) or `admin` / `cli` (on the customer's behalf).
    actor                  text        not null,
    idempotency_key        text        not null,
    request_hash           bytea       not null,
    -- The hash of the customer key that asked: after a customer_key rotation that key no longer
    -- opens the purchase, but a retry of that very request with it still gets its answer.
    caller_key_hash        bytea,
    hint                   text,
    answer_sealed          bytea,
    answer_sealed_until    timestamptz,
    created_at             timestamptz not null default now()
);
create unique index credential_rotation_idempotency_idx
    on credential_rotation (purchase_id, actor, idempotency_key);
create index credential_rotation_sealed_idx on credential_rotation (answer_sealed_until)
    where answer_sealed is not null;
