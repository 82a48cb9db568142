-- Offers and curated appstore lists. The source of truth is the offers file (OFFERS_FILE);
-- it is synced here at start so purchases can reference offers and replicas agree.
create table offer
(
    offer_id                  text primary key,
    sku                       text        not null unique,
    title                     text        not null,
    description               text        not null default '',
    -- Which provider module delivers it: 's3' or 'gemini'.
    provider                  text        not null,
    -- The original's hard-coded flow id, kept for clients that know it (S3 offer only).
    legacy_flow_id            text unique,
    about_url                 text,
    pricing_line              text        not null default '',
    -- Public metadata returned as-is by GET /v1/offer/:id.
    metadata                  jsonb       not null default '{}',
    -- Provider settings (prices per model, limits); never returned to clients.
    settings                  jsonb       not null default '{}',
    -- Accepted token symbols; empty = every configured token.
    tokens                    text[]      not null default '{}',
    min_deposit_micros        bigint      not null check (min_deposit_micros >= 0),
    suggested_deposit_micros  bigint      not null check (suggested_deposit_micros >= 0),
    max_deposit_micros        bigint      not null check (max_deposit_micros >= 0),
    -- Optional trigger overrides; null = derived from the first credit.
    low_trigger_micros        bigint,
    critical_trigger_micros   bigint,
    termination_trigger_micros bigint,
    active                    boolean     not null default true,
    created_at                timestamptz not null default now(),
    updated_at                timestamptz not null default now()
);
select trigger_updated_at('offer');

create table appstore_list
(
    list_id     text primary key,
    title       text        not null,
    description text        not null default '',
    priority    integer     not null default 0,
    countries   text[]      not null default '{}',
    languages   text[]      not null default '{}',
    professions text[]      not null default '{}',
    active      boolean     not null default true,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now()
);
select trigger_updated_at('appstore_list');

create table appstore_list_offer
(
    list_id  text    not null references appstore_list (list_id) on delete cascade,
    offer_id text    not null references offer (offer_id),
    position integer not null,
    primary key (list_id, offer_id)
);
