-- Chains that recover by themselves (SPEC §9): stuck transactions are replaced at the same nonce,
-- gas in flight is counted, a retried sweep re-plans its amount.
alter table sweep
    -- The head when the current transaction was (re)sent; replaced once `replace_after_blocks` passed.
    add column broadcast_block    bigint,
    -- Gas limit × max fee + value of the current transaction (what it can cost its signer at most).
    add column max_cost_wei       numeric(78, 0),
    -- Every earlier hash signed at this nonce (replaced by higher fees): whichever is mined counts.
    add column replaced_tx_hashes text[]      not null default '{}',
    -- Hashes of the operator's cancellations at this nonce (0-value self-transfers); the current
    -- transaction is one when `cancelled`.
    add column cancel_tx_hashes   text[]      not null default '{}',
    add column cancelled          boolean     not null default false,
    add column replacements       integer     not null default 0,
    -- Set when the fees reached the chain's max_fee_gwei and the transaction is still not mined
    -- (one tx.stuck alert); the operator may bump or cancel.
    add column stuck_at           timestamptz,
    -- An operator's request the sweeper carries out on its next pass (under its claim).
    add column operator_action    text check (operator_action in ('bump', 'cancel')),
    -- Set by a retry: the amount is read again from the chain before signing.
    add column replan             boolean     not null default false;
