-- Batched sweeps (issue 26): many EIP-3009 relays in one Multicall3 `aggregate3` transaction. The
-- batch row holds that transaction with the sweeper's discipline (nonce under the gas wallet's row
-- lock, signed bytes stored before broadcast, reconciled by hash and nonce, replaced when stuck);
-- each sweep keeps its own row and is settled by its own authorizationState.
create table sweep_batch
(
    batch_id           bigserial primary key,
    chain_id           bigint      not null,
    status             text        not null default 'signed'
        check (status in ('signed', 'broadcast', 'confirmed', 'failed')),
    from_address       text        not null,
    nonce              bigint      not null,
    tx_hash            text        not null,
    -- Kept until the batch is settled (the bytes are re-sent after a crash, re-signed when stuck).
    raw_tx             bytea,
    -- Gas limit × max fee of the current transaction.
    max_cost_wei       numeric(78, 0) not null,
    size               integer     not null check (size > 0),
    broadcast_block    bigint,
    broadcast_at       timestamptz,
    replaced_tx_hashes text[]      not null default '{}',
    cancel_tx_hashes   text[]      not null default '{}',
    cancelled          boolean     not null default false,
    replacements       integer     not null default 0,
    stuck_at           timestamptz,
    operator_action    text check (operator_action in ('bump', 'cancel')),
    attempts           integer     not null default 0,
    next_attempt_at    timestamptz not null default now(),
    last_error         text,
    block_number       bigint,
    gas_used           bigint,
    fee_wei            numeric(78, 0),
    confirmed_at       timestamptz,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now()
);
select trigger_updated_at('sweep_batch');
create index sweep_batch_open_idx on sweep_batch (chain_id, next_attempt_at)
    where status in ('signed', 'broadcast');

alter table sweep add column batch_id bigint references sweep_batch (batch_id);
create index sweep_batch_member_idx on sweep (batch_id) where batch_id is not null;

-- The sweeps of one batch share its transaction's nonce: one nonce per single sweep, one per batch.
drop index sweep_nonce_idx;
create unique index sweep_nonce_idx on sweep (chain_id, from_address, nonce)
    where nonce is not null and batch_id is null;
create unique index sweep_batch_nonce_idx on sweep_batch (chain_id, from_address, nonce);
