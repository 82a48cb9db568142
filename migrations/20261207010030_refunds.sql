-- Refunds of unused balance and of unclaimed money (SPEC §9 "Customers get what they paid for, or
-- their money back").
--
-- A refund takes its amount off the balance at once (ledger kind `refund`, same transaction) and then
-- follows   requested -> approved -> paying -> paid,   or rejected / canceled (credited back, kind
-- `refund_reversal`) / failed (operator alert; retry).
--
-- Its payout (with VENDOR_PAYOUT_PRIVATE_KEY) has the sweeps' discipline: the payout wallet's nonce is
-- allocated under its `gas_wallet` row lock in the same transaction that stores the signed bytes; the
-- bytes are broadcast after the commit; after a crash the refund is reconciled by hash and nonce. The
-- columns of the transaction (from, nonce, fees, raw bytes, broadcast block) are the ones the stuck-
-- transaction replacement of sweeps uses.

-- Ledger kinds of refunds, added to whatever kinds the constraint allows now (other migrations add
-- theirs the same way).
do $$
declare
    def   text;
    kinds text[];
begin
    select pg_get_constraintdef(oid) into def from pg_constraint
    where conrelid = 'ledger_entry'::regclass and conname = 'ledger_entry_kind_check';
    if def is null then
        kinds := array['deposit', 'usage', 'cost', 'sweep_fee', 'adjustment'];
    else
        select array_agg(m[1]) into kinds from regexp_matches(def, '''([a-z_]+)''', 'g') as m;
        execute 'alter table ledger_entry drop constraint ledger_entry_kind_check';
    end if;
    if not 'refund' = any(kinds) then kinds := kinds || 'refund'::text; end if;
    if not 'refund_reversal' = any(kinds) then kinds := kinds || 'refund_reversal'::text; end if;
    execute format('alter table ledger_entry add constraint ledger_entry_kind_check check (kind in (%s))',
                   (select string_agg(quote_literal(k), ', ') from unnest(kinds) as k));
end $$;

create table refund
(
    refund_id                uuid primary key,
    -- Creation order (list cursors).
    seq                      bigserial   not null unique,
    -- The purchase refunded (balance or its unclaimed deposits), or null for a checkout never
    -- finalized (then checkout_session_id).
    purchase_id              uuid references purchase (purchase_id),
    checkout_session_id      uuid references checkout (checkout_session_id),
    -- balance: unused balance (ledger kind refund); unclaimed: payments to a deleted purchase;
    -- checkout: the confirmed deposits of a checkout never finalized.
    source                   text        not null check (source in ('balance', 'unclaimed', 'checkout')),
    amount_micros            bigint      not null check (amount_micros > 0),
    -- The part taken off the balance (credited back on cancel/reject/failed-and-given-up); the rest
    -- comes from unclaimed deposits.
    balance_micros           bigint      not null default 0 check (balance_micros >= 0),
    -- "all": the purchase is closed (deleted, resource removed) once paid.
    closes_purchase          boolean     not null default false,
    chain_id                 bigint      not null,
    token_address            text        not null,
    token_symbol             text        not null,
    token_decimals           integer     not null,
    token_amount             numeric(78, 0) not null check (token_amount > 0),
    to_address               text        not null,
    status                   text        not null default 'requested'
        check (status in ('requested', 'approved', 'paying', 'paid', 'rejected', 'canceled', 'failed')),
    -- The customer's Idempotency-Key and the fingerprint of its request.
    idempotency_key          text,
    request_hash             bytea,
    auto_approved            boolean     not null default false,
    reason                   text,
    ledger_entry_id          bigint,
    approved_at              timestamptz,
    -- The head when it was approved: a vendor's own payment counts only from there.
    approved_block           bigint,
    -- Without a payout key: the last block scanned for the vendor's own payment.
    scanned_block            bigint,
    -- The payout transaction (the payout wallet's), or the one the vendor paid with.
    from_address             text,
    nonce                    bigint,
    tx_hash                  text,
    raw_tx                   bytea,
    gas_limit                bigint,
    max_fee_per_gas          numeric(78, 0),
    max_priority_fee_per_gas numeric(78, 0),
    broadcast_at             timestamptz,
    broadcast_block          bigint,
    -- How it was paid: payout (this server), scan (the vendor's wallet, seen on chain), mark_paid.
    paid_by                  text check (paid_by in ('payout', 'scan', 'mark_paid')),
    paid_log_index           bigint,
    paid_block               bigint,
    paid_at                  timestamptz,
    attempts                 integer     not null default 0,
    next_attempt_at          timestamptz not null default now(),
    last_error               text,
    created_at               timestamptz not null default now(),
    updated_at               timestamptz not null default now(),
    check (purchase_id is not null or checkout_session_id is not null)
);
select trigger_updated_at('refund');
create unique index refund_idempotency_idx on refund (coalesce(purchase_id, checkout_session_id), idempotency_key)
    where idempotency_key is not null;
create index refund_purchase_idx on refund (purchase_id, created_at) where purchase_id is not null;
create index refund_checkout_idx on refund (checkout_session_id) where checkout_session_id is not null;
create index refund_status_idx on refund (status, created_at);
create index refund_active_idx on refund (chain_id, status) where status in ('approved', 'paying');
-- One transfer pays one refund.
create unique index refund_paid_transfer_idx on refund (chain_id, tx_hash, paid_log_index)
    where paid_log_index is not null;
create unique index refund_nonce_idx on refund (chain_id, from_address, nonce) where nonce is not null;

-- The deposits of a checkout never finalized that a refund covers: never credited while it runs.
alter table deposit add column refund_id uuid references refund (refund_id);
create index deposit_refund_idx on deposit (refund_id) where refund_id is not null;
