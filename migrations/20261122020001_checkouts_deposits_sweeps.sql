-- Checkouts, on-chain deposits and sweeps.
--
-- Deposit addresses are derived from the vendor's mnemonic at m/44'/60'/0'/0/{deposit_index}; only the
-- index and the (public) address are stored, never a key or a seed.
create sequence deposit_index_seq as bigint minvalue 0 start with 0;

create table checkout
(
    checkout_session_id  uuid primary key,
    checkout_wallet_id   uuid        not null unique,
    checkout_flow_id     text        not null,
    offer_id             text        not null references offer (offer_id),
    -- The chain/token the flow named (shown to the customer); every configured stablecoin on every
    -- configured chain is accepted at the address.
    chain_name           text        not null,
    token_symbol         text        not null,
    deposit_index        bigint      not null unique check (deposit_index >= 0 and deposit_index < 2147483648),
    -- Lowercase 0x-hex.
    deposit_address      text        not null unique,
    tracer               text,
    customer_email       text,
    customer_user_id     text,
    customer_org_id      text,
    customer_org_host    text,
    -- Set once by finalize (idempotent by checkout_session_id).
    purchase_id          uuid unique references purchase (purchase_id),
    officex_purchase_id  text,
    finalized_at         timestamptz,
    -- The receipt without secrets (replayed to anyone who finalizes the session again).
    receipt_public       jsonb,
    -- The full receipt (customer key, delivered secrets), encrypted with DATA_ENCRYPTION_KEY
    -- (ChaCha20-Poly1305, nonce || ciphertext); erased after receipt_sealed_until.
    receipt_sealed       bytea,
    receipt_sealed_until timestamptz,
    -- Shown as expired after this; the address is still watched until watch_until.
    expires_at           timestamptz not null,
    watch_until          timestamptz not null,
    created_at           timestamptz not null default now(),
    updated_at           timestamptz not null default now()
);
select trigger_updated_at('checkout');
create index checkout_watch_idx on checkout (watch_until);

-- Where each chain's log scan has got to: every block <= scanned_to was scanned for every address
-- watched at the time (blocks above it are rescanned each pass).
create table chain_cursor
(
    chain_id   bigint primary key,
    scanned_to bigint      not null,
    updated_at timestamptz not null default now()
);
select trigger_updated_at('chain_cursor');

-- One ERC-20 Transfer log to a deposit address.
--   pending:   seen above head - confirmations (may still disappear)
--   confirmed: at or below head - confirmations, waiting for finalize
--   credited:  posted to the purchase's ledger (reference below, at most once)
--   reorged:   its block left the canonical chain after it was confirmed (alert raised; a credit, if
--              any, is never repeated; restored if the transaction comes back)
create table deposit
(
    deposit_id          bigserial primary key,
    chain_id            bigint      not null,
    tx_hash             text        not null,
    log_index           bigint      not null,
    block_number        bigint      not null,
    block_hash          text        not null,
    token_address       text        not null,
    token_symbol        text        not null,
    from_address        text        not null,
    deposit_address     text        not null references checkout (deposit_address),
    checkout_session_id uuid        not null references checkout (checkout_session_id),
    amount_units        numeric(78, 0) not null check (amount_units > 0),
    -- Rounded down at the token's USD rate.
    amount_micros       bigint      not null check (amount_micros >= 0),
    status              text        not null check (status in ('pending', 'confirmed', 'credited', 'reorged')),
    -- The ledger reference, fixed at first sighting: deposit:<chain_id>:<tx_hash>:<log_index>.
    reference           text        not null unique,
    purchase_id         uuid references purchase (purchase_id),
    ledger_entry_id     bigint,
    credited_at         timestamptz,
    reorged_at          timestamptz,
    sweep_id            bigint,
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now(),
    -- The same transfer re-included at another position after a reorg is the same deposit.
    unique (chain_id, tx_hash, token_address, deposit_address, amount_units)
);
select trigger_updated_at('deposit');
create index deposit_checkout_idx on deposit (checkout_session_id);
create index deposit_status_idx on deposit (status) where status in ('pending', 'confirmed', 'reorged');
create index deposit_chain_block_idx on deposit (chain_id, block_number);

-- The vendor's gas wallet per chain. Its row is locked (FOR UPDATE) while a nonce is allocated, in the
-- same transaction that writes the transaction intent.
create table gas_wallet
(
    chain_id   bigint      not null,
    address    text        not null,
    next_nonce bigint      not null check (next_nonce >= 0),
    -- Set while the balance is too low for the next sweep (one gas.low alert per episode).
    low_since  timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (chain_id, address)
);
select trigger_updated_at('gas_wallet');

-- One sweep of a token balance from a deposit address to the treasury.
--   eip3009:  one transferWithAuthorization signed by the deposit key, relayed by the gas wallet.
--   transfer: a gas top-up from the gas wallet (step 'topup'), then transfer() signed by the deposit key
--             (step 'sweep').
-- Each step goes planned -> signed (raw transaction and hash stored, nonce allocated) -> broadcast ->
-- confirmed / failed. A signed transaction is only ever re-sent as the same bytes.
create table sweep
(
    sweep_id          bigserial primary key,
    chain_id          bigint      not null,
    token_address     text        not null,
    token_symbol      text        not null,
    deposit_address   text        not null references checkout (deposit_address),
    deposit_index     bigint      not null,
    treasury_address  text        not null,
    amount_units      numeric(78, 0) not null check (amount_units > 0),
    method            text        not null check (method in ('eip3009', 'transfer')),
    step              text        not null default 'sweep' check (step in ('topup', 'sweep')),
    status            text        not null default 'planned'
        check (status in ('planned', 'signed', 'broadcast', 'confirmed', 'failed')),
    -- The current step's transaction.
    from_address      text,
    nonce             bigint,
    tx_hash           text,
    raw_tx            bytea,
    broadcast_at      timestamptz,
    -- The finished top-up step (transfer method).
    topup_tx_hash     text,
    topup_wei         numeric(78, 0),
    -- The sweep transaction's outcome.
    block_number      bigint,
    gas_used          bigint,
    fee_wei           numeric(78, 0),
    -- ETH left on the deposit address after a transfer sweep (reported, not recovered).
    dust_wei          numeric(78, 0),
    attempts          integer     not null default 0,
    next_attempt_at   timestamptz not null default now(),
    last_error        text,
    confirmed_at      timestamptz,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now()
);
select trigger_updated_at('sweep');
create index sweep_active_idx on sweep (chain_id, status) where status not in ('confirmed', 'failed');
-- At most one unfinished sweep per (chain, token, address).
create unique index sweep_one_active_idx on sweep (chain_id, token_address, deposit_address)
    where status not in ('confirmed', 'failed');
create unique index sweep_nonce_idx on sweep (chain_id, from_address, nonce) where nonce is not null;
alter table deposit add constraint deposit_sweep_fk foreign key (sweep_id) references sweep (sweep_id);
