-- Detection at any scale (issue 21).
--
-- The watcher keeps the hot set of watched addresses (open checkouts, live purchases) in memory and
-- refreshes it by pages: new checkouts by (created_at, deposit_address), finalized ones by
-- finalized_at, open ones in full by (expires_at, deposit_address).
create index checkout_created_address_idx on checkout (created_at, deposit_address);
create index checkout_open_idx on checkout (expires_at, deposit_address) where purchase_id is null;
create index checkout_finalized_idx on checkout (finalized_at) where finalized_at is not null;

-- Block ranges of a chain whose Transfer logs could not be read (the provider failed or refused
-- them even split to one block). The cursor moves on; each pass retries these ranges alone until
-- they are read, and validate scans by itself while a chain has one.
create table watch_gap
(
    chain_id   bigint      not null,
    from_block bigint      not null,
    to_block   bigint      not null check (to_block >= from_block),
    attempts   integer     not null default 1,
    last_error text        not null,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (chain_id, from_block)
);
select trigger_updated_at('watch_gap');
