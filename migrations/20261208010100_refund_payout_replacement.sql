-- Refund payouts recover like sweeps (SPEC §9 "Chains that recover by themselves"): a payout not
-- mined `replace_after_blocks` after it was sent is re-signed at the same nonce with both fees raised
-- 25 %, up to the chain's max_fee_gwei; at the cap one `tx.stuck` alert, and the operator may bump or
-- cancel it. `gas_limit`, `max_fee_per_gas` and `max_priority_fee_per_gas` describe the current
-- transaction (gas in flight counts gas_limit × max_fee_per_gas).
alter table refund
    -- Every earlier hash signed at this nonce (replaced by higher fees): whichever is mined counts.
    add column replaced_tx_hashes text[]      not null default '{}',
    -- Hashes of the operator's cancellations at this nonce (0-value self-transfers); the current
    -- transaction is one when `cancelled`.
    add column cancel_tx_hashes   text[]      not null default '{}',
    add column cancelled          boolean     not null default false,
    add column replacements       integer     not null default 0,
    -- Set when the fees reached the cap and the payout is still not mined (one tx.stuck alert).
    add column stuck_at           timestamptz,
    -- An operator's request the payout job carries out on its next pass.
    add column operator_action    text check (operator_action in ('bump', 'cancel'));
