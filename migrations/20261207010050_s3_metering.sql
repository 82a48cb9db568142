-- S3 spend bounded between daily imports (SPEC §9): access logs and storage metrics metered hourly into
-- `usage_estimate` ledger entries, reconciled by the daily import; per-offer limits hold a purchase
-- suspended (cause `limit`).

-- A new ledger kind. The allowed list is extended in place (whatever kinds other migrations added stay).
do
$$
    declare
        def text;
    begin
        select pg_get_constraintdef(oid)
        into def
        from pg_constraint
        where conrelid = 'ledger_entry'::regclass
          and conname = 'ledger_entry_kind_check';
        if def is not null and position('usage_estimate' in def) = 0 then
            execute 'alter table ledger_entry drop constraint ledger_entry_kind_check';
            execute 'alter table ledger_entry add constraint ledger_entry_kind_check '
                        || replace(def, 'ARRAY[', 'ARRAY[''usage_estimate''::text, ');
        end if;
    end
$$;

-- Each access-log object is read once: its key is recorded in the transaction that adds its counts.
create table s3_log_object
(
    log_key         text primary key,
    -- The customer bucket whose prefix (`access-logs/<bucket>/`) it was listed under.
    bucket          text        not null,
    lines           bigint      not null,
    -- Lines that are not AWS's access log format (skipped, counted).
    malformed_lines bigint      not null,
    -- Lines of a bucket that is no purchase's (skipped, counted).
    unknown_lines   bigint      not null,
    bytes           bigint      not null,
    processed_at    timestamptz not null default now()
);
create index s3_log_object_bucket_idx on s3_log_object (bucket, log_key);

-- Usage per (purchase, hour) summed from the access logs.
create table s3_usage_hour
(
    purchase_id  uuid        not null references purchase (purchase_id),
    hour         timestamptz not null,
    -- Bytes Sent by GET/HEAD requests.
    egress_bytes bigint      not null default 0,
    -- GET, SELECT, HEAD, OPTIONS and other requests AWS prices as GET.
    get_requests bigint      not null default 0,
    -- PUT, COPY, POST and LIST requests.
    put_requests bigint      not null default 0,
    primary key (purchase_id, hour)
);

-- Storage per (purchase, day): CloudWatch's daily BucketSizeBytes, all storage types summed.
create table s3_storage_day
(
    purchase_id uuid        not null references purchase (purchase_id),
    day         date        not null,
    bytes       bigint      not null,
    read_at     timestamptz not null default now(),
    primary key (purchase_id, day)
);

-- What the estimates charged per (purchase, usage day): the day's estimate is recomputed from the counts
-- and only the difference is posted. The daily import subtracts it from the AWS figure of that day.
create table s3_estimate_day
(
    purchase_id    uuid        not null references purchase (purchase_id),
    usage_date     date        not null,
    charged_micros bigint      not null default 0,
    revision       integer     not null default 0,
    updated_at     timestamptz not null default now(),
    primary key (purchase_id, usage_date)
);

-- Bucket hardening and the access-log prefix per S3 purchase.
create table s3_bucket_setup
(
    purchase_id    uuid primary key references purchase (purchase_id),
    -- The log bucket logging was turned on for (null: logging off).
    log_bucket     text,
    hardened_at    timestamptz not null default now(),
    -- The log prefix was removed after the purchase's deletion and final charge.
    logs_purged_at timestamptz
);

-- An offer limit holds the purchase suspended (cause `limit`): credits do not lift it; the metering
-- job lifts it when usage is back under (the next UTC day for egress).
alter table purchase
    add column limit_hold_at     timestamptz,
    add column limit_hold_reason text check (limit_hold_reason in ('egress', 'storage'));
