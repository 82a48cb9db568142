-- Notifications outbox: rows are written in the same transaction as the change they announce and
-- delivered by a worker (webhook, email, OfficeX record update, operator alert) with retries.
create table outbox
(
    outbox_id       bigserial primary key,
    channel         text        not null check (channel in ('webhook', 'email', 'officex', 'alert')),
    -- evt_<uuid> on the wire; one event may fan out to several channels.
    event_id        uuid        not null,
    event_type      text        not null,
    purchase_id     uuid references purchase (purchase_id),
    payload         jsonb       not null,
    -- Makes "exactly one notification per crossing" hold under any concurrency.
    dedupe_key      text unique,
    status          text        not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
    attempt_count   integer     not null default 0,
    next_attempt_at timestamptz not null default now(),
    last_error      text,
    delivered_at    timestamptz,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);
select trigger_updated_at('outbox');
create index outbox_due_idx on outbox (next_attempt_at) where status = 'pending';

create table outbox_attempt
(
    attempt_id   bigserial primary key,
    outbox_id    bigint      not null references outbox (outbox_id),
    attempted_at timestamptz not null default now(),
    ok           boolean     not null,
    http_status  integer,
    error        text,
    duration_ms  integer     not null
);
create index outbox_attempt_outbox_idx on outbox_attempt (outbox_id);
