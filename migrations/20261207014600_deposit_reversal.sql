-- A reorged credit is reversed (SPEC §9 "Chains that recover by themselves"): one compensating
-- ledger entry of kind 'reversal' per credit whose block left the chain; a transfer that comes back
-- is credited again once (credit_round numbers the credits of one deposit).
alter table deposit
    add column credit_round      integer not null default 0,
    add column reversal_entry_id bigint references ledger_entry (entry_id),
    add column reversed_at       timestamptz;

-- Add 'reversal' to the ledger kinds, keeping whatever kinds other migrations allow.
do $$
declare
    def   text;
    kinds text[];
begin
    select pg_get_constraintdef(c.oid) into def
    from pg_constraint c
    where c.conrelid = 'ledger_entry'::regclass and c.contype = 'c' and pg_get_constraintdef(c.oid) like '%kind%';
    select array_agg(distinct m[1]) into kinds from regexp_matches(coalesce(def, ''), '''([a-z_]+)''', 'g') as m;
    kinds := array(select distinct unnest(coalesce(kinds, '{}') || array['deposit', 'usage', 'cost', 'sweep_fee', 'adjustment', 'reversal']));
    execute (
        select string_agg(format('alter table ledger_entry drop constraint %I', conname), '; ')
        from pg_constraint
        where conrelid = 'ledger_entry'::regclass and contype = 'c' and pg_get_constraintdef(oid) like '%kind%'
    );
    execute format('alter table ledger_entry add constraint ledger_entry_kind_check check (kind = any (%L::text[]))', kinds);
end $$;
