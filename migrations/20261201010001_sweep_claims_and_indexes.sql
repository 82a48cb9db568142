-- Sweeper under several replicas, sweeper faults and hot paths.

-- The EIP-3009 authorization nonce a relay carries: when the relay reverts, the token's
-- authorizationState(deposit address, nonce) tells whether the funds reached the treasury anyway.
alter table sweep add column authorization_nonce text;

-- The planner reads only deposits not yet covered by a sweep (a pass costs what changed, not history).
create index deposit_unswept_idx on deposit (chain_id, block_number)
    where sweep_id is null and status in ('confirmed', 'credited');
-- Sweep fees are charged per purchase through its deposit address.
create index sweep_deposit_address_idx on sweep (deposit_address);

-- Daily jobs that must run once per day whatever the replica count: the first replica to insert the
-- (job, day) row runs it; a run that failed deletes its row so a later trigger may try again.
create table job_day_run
(
    job        text        not null,
    day        date        not null,
    started_at timestamptz not null default now(),
    primary key (job, day)
);
