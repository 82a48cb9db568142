-- Daily cost import (AWS CUR 2.0 data export or Cost Explorer).
--
-- AWS restates a month's rows every day, so an import never charges a row: it recomputes the cost total of
-- each (purchase, billing period, usage day) and posts only the difference from what cost_charge says was
-- already charged for it (a credit back when it went down), in the same transaction that updates
-- cost_charge. Repeating a run therefore changes nothing.

-- One row per import of one billing period (a daily run imports one or two periods).
create table cost_import_run
(
    run_id               bigserial primary key,
    source               text        not null check (source in ('cur', 'cost_explorer')),
    -- First day of the billing period (month).
    billing_period       date        not null,
    -- schedule (the daily job) or cli (`vendor-server billing import`).
    trigger              text        not null check (trigger in ('schedule', 'cli')),
    -- running until it ends; no_data when the period has no manifest (yet); failed charges nothing
    -- (a failed run read a missing file, a malformed row, …) except purchases committed before a
    -- database failure, which later runs complete.
    status               text        not null default 'running'
        check (status in ('running', 'succeeded', 'failed', 'no_data')),
    -- CUR: data files listed by the manifest; Cost Explorer: result pages.
    files                integer     not null default 0,
    bytes_read           bigint      not null default 0,
    rows_read            bigint      not null default 0,
    -- Rows whose tag is a known purchase.
    rows_matched         bigint      not null default 0,
    -- Rows tagged with something that is not a known purchase (reported, not charged).
    unknown_tag_rows     bigint      not null default 0,
    -- Rows without the purchase tag (other AWS costs; not charged).
    untagged_rows        bigint      not null default 0,
    -- Malformed rows; any makes the run fail before it charges.
    error_rows           bigint      not null default 0,
    purchases_charged    integer     not null default 0,
    entries_posted       integer     not null default 0,
    -- Net of this run's ledger posts, positive = debited from customers.
    total_charged_micros bigint      not null default 0,
    -- AWS cost of the matched rows for the whole period (before markup), as read by this run.
    matched_cost         numeric,
    -- Up to a few unknown tags with their row counts, and the first error messages.
    unknown_tags         jsonb       not null default '{}',
    errors               jsonb       not null default '[]',
    started_at           timestamptz not null default now(),
    finished_at          timestamptz,
    duration_ms          bigint,
    created_at           timestamptz not null default now(),
    updated_at           timestamptz not null default now()
);
select trigger_updated_at('cost_import_run');
create index cost_import_run_started_idx on cost_import_run (started_at desc);

-- What each (purchase, billing period, usage day) has been charged so far. The billing period is part of
-- the key so that two periods' files never overwrite each other's totals for one day.
create table cost_charge
(
    purchase_id    uuid        not null references purchase (purchase_id),
    billing_period date        not null,
    usage_date     date        not null,
    -- Exact AWS cost total (before markup) the charge was computed from.
    aws_cost       numeric     not null,
    -- Sum of the ledger rows posted for this key, positive = debited (markup included, rounded half up).
    charged_micros bigint      not null,
    -- Bumped at each change; part of the ledger reference (cost:<period>:<day>:<revision>).
    revision       integer     not null,
    source         text        not null check (source in ('cur', 'cost_explorer')),
    last_run_id    bigint references cost_import_run (run_id),
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    primary key (purchase_id, billing_period, usage_date)
);
select trigger_updated_at('cost_charge');
create index cost_charge_period_idx on cost_charge (billing_period);
