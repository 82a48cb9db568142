-- Purchases hold a prepaid balance in integer micro-USD. Every change is an append-only ledger row
-- written in the same transaction as the balance update, under the purchase row's lock.
create table purchase
(
    purchase_id                 uuid primary key,
    offer_id                    text        not null references offer (offer_id),
    status                      text        not null default 'provisioning'
        check (status in ('provisioning', 'active', 'low', 'critical', 'suspended', 'deleted', 'failed')),
    balance_micros              bigint      not null default 0,
    -- Null until the first credit derives them (or the offer overrides them).
    low_trigger_micros          bigint,
    critical_trigger_micros     bigint,
    termination_trigger_micros  bigint,
    title                       text        not null,
    customer_email              text,
    customer_user_id            text,
    customer_org_id             text,
    customer_org_host           text,
    -- The OfficeX side's PurchaseID_<uuid>.
    officex_purchase_id         text unique,
    -- API keys are stored only as SHA-256 hashes, with a short display prefix.
    customer_key_hash           bytea       not null unique,
    customer_key_prefix         text        not null,
    vendor_key_hash             bytea       not null unique,
    vendor_key_prefix           text        not null,
    tracer                      text,
    -- The provider's resource: non-secret state (bucket, IAM user, key id …) and where it stands.
    -- Provisioning is retried with backoff (provision_attempts, next_provision_at) until ready.
    resource_state              jsonb       not null default '{}',
    resource_status             text        not null default 'none'
        check (resource_status in ('none', 'provisioning', 'ready', 'suspended', 'deleted', 'failed')),
    provision_attempts          integer     not null default 0,
    next_provision_at           timestamptz,
    last_provision_error        text,
    -- Set by the deposit watcher while a deposit to the purchase's address is seen but not yet
    -- confirmed ("a topup is pending": resources are never deleted then); cleared when credited.
    pending_deposit_at          timestamptz,
    status_changed_at           timestamptz not null default now(),
    last_credit_at              timestamptz,
    created_at                  timestamptz not null default now(),
    updated_at                  timestamptz not null default now()
);
select trigger_updated_at('purchase');
create index purchase_status_idx on purchase (status);

create table ledger_entry
(
    entry_id             bigserial primary key,
    purchase_id          uuid        not null references purchase (purchase_id),
    -- deposit: on-chain credit; usage: meter-usage / gateway; cost: daily cost import (may be negative);
    -- sweep_fee: optional per-sweep fee; adjustment: manual.
    kind                 text        not null check (kind in ('deposit', 'usage', 'cost', 'sweep_fee', 'adjustment')),
    -- Signed: credits positive, debits negative.
    amount_micros        bigint      not null,
    balance_after_micros bigint      not null,
    usage_amount         numeric,
    usage_unit           text,
    description          text,
    metadata             jsonb       not null default '{}',
    -- When the usage happened (meter timestamp, CUR usage day); historical billing buckets on it.
    occurred_at          timestamptz not null default now(),
    -- Unique per purchase when set: makes a credit or charge from one source happen once
    -- (e.g. deposit:<chain_id>:<tx_hash>:<log_index>).
    reference            text,
    created_at           timestamptz not null default now(),
    unique (purchase_id, reference)
);
create index ledger_entry_purchase_time_idx on ledger_entry (purchase_id, occurred_at);

-- Ledger rows are never updated or deleted.
create or replace function ledger_entry_append_only()
    returns trigger as
$$
begin
    raise exception 'ledger_entry is append-only';
end;
$$ language plpgsql;
create trigger ledger_entry_append_only
    before update or delete
    on ledger_entry
    for each row
execute function ledger_entry_append_only();
