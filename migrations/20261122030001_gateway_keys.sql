-- Gemini gateway keys: one per purchase (separate from the billing keys), stored only as SHA-256
-- hashes. `disabled` while the purchase's resource is suspended, `revoked` once deleted (or replaced
-- by a new provisioning attempt).
create table gateway_key
(
    gateway_key_id uuid primary key,
    purchase_id    uuid        not null references purchase (purchase_id),
    key_hash       bytea       not null unique,
    key_prefix     text        not null,
    status         text        not null default 'active'
        check (status in ('active', 'disabled', 'revoked')),
    revoked_at     timestamptz,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now()
);
select trigger_updated_at('gateway_key');
-- At most one usable key per purchase.
create unique index gateway_key_live_idx on gateway_key (purchase_id) where status <> 'revoked';
