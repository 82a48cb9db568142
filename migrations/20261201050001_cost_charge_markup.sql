-- The markup (basis points) each (purchase, billing period, usage day) was charged with. A change of
-- COST_MARKUP_PERCENT applies to days charged after it; restatements of a day keep that day's markup.
-- Rows charged before this column existed have none: their next restatement uses the configured markup
-- and records it.
alter table cost_charge
    add column markup_bps integer check (markup_bps >= 0);
