-- Lost logs (SPEC §9 "Chains that recover by themselves"): each checkout records every chain's head
-- when it was initiated, `{"<chain_id>": <block>}`; its own scans (validate, topup, finalize) read
-- from there, so a log a node omitted for longer than the reorg window is still found. `null` for
-- checkouts older than this column (and a chain that did not answer at initiate: its cursor is used).
alter table checkout add column start_blocks jsonb;
