-- Operators (SPEC §9 "Operators"): named accounts of the console, each with a role and its own
-- token (stored as a SHA-256 hash), revoked at once. ADMIN_TOKEN stays the bootstrap owner, named
-- `admin-token` in the audit log (it has no row here).
create table operators
(
    operator_id    bigserial primary key,
    -- Unique over every operator ever created (revoked ones too), so an audit row's name means one
    -- account; `admin-token`, `cli` and `customer` are taken by the other actors.
    name           text        not null unique,
    role           text        not null check (role in ('owner', 'operator', 'viewer')),
    token_hash     bytea       not null unique,
    -- The token's first characters, to recognise it in lists (`vso_3kF9a…`).
    display_prefix text        not null,
    created_at     timestamptz not null default now(),
    revoked_at     timestamptz
);

-- Every audit row names its operator: an operator account (id and name), `admin-token` (ADMIN_TOKEN),
-- `cli` (the command line) or `customer` (a customer on their own purchase). Older rows take the
-- name of their actor.
alter table admin_audit
    add column operator_id   bigint references operators (operator_id),
    add column operator_name text;
update admin_audit
set operator_name = case actor when 'cli' then 'cli' when 'customer' then 'customer' else 'admin-token' end;
alter table admin_audit
    alter column operator_name set not null;
-- The audit log filtered by operator, newest first.
create index admin_audit_operator_idx on admin_audit (operator_name, audit_id);
