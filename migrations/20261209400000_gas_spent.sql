-- What the gas wallet spends, counted where it happens (the console's gas runway, SPEC §9
-- "Operators"): a gas top-up's value and fee when it is mined (whatever becomes of its sweep), and
-- what a refund payout's mined transactions cost the payout wallet (the payout, or the operator's
-- cancellation; a failed payout retried adds its next transaction's cost). Sweeps and sweep batches
-- already keep their `fee_wei`.
alter table sweep
    add column topup_fee_wei      numeric(78, 0),
    add column topup_confirmed_at timestamptz;
alter table refund
    add column payout_fee_wei  numeric(78, 0),
    add column payout_mined_at timestamptz;
