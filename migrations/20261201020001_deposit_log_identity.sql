-- Deposits under real conditions (issue 10).
--
-- A deposit is one Transfer log: unique on (chain_id, tx_hash, log_index). Two equal transfers in one
-- transaction to one address are two deposits. A transaction re-included after a reorg is matched by
-- its position: `ordinal` is the transfer's rank (by log index) among the transaction's transfers of
-- that token to that address. The log-index key is checked at commit, so a re-included transaction
-- whose logs all shifted can be moved row by row.
alter table deposit add column ordinal integer;
update deposit d set ordinal = r.n - 1
from (select deposit_id,
             row_number() over (partition by chain_id, tx_hash, token_address, deposit_address
                                order by log_index) as n
      from deposit) r
where r.deposit_id = d.deposit_id;
alter table deposit alter column ordinal set not null;
alter table deposit alter column ordinal set default 0;
alter table deposit add constraint deposit_ordinal_check check (ordinal >= 0);

do $$
declare
    c text;
begin
    for c in select conname from pg_constraint
             where conrelid = 'deposit'::regclass and contype = 'u'
               and pg_get_constraintdef(oid) like '%amount_units%'
    loop
        execute format('alter table deposit drop constraint %I', c);
    end loop;
end $$;

alter table deposit add constraint deposit_log_key
    unique (chain_id, tx_hash, log_index) deferrable initially deferred;
create unique index deposit_position_key
    on deposit (chain_id, tx_hash, token_address, deposit_address, ordinal);

-- A confirmed payment to the address of a deleted purchase: credited to nothing, swept, and the vendor
-- alerted once (set when the alert is raised).
alter table deposit add column unclaimed_at timestamptz;

-- When the last full watcher pass read its list of watched addresses (every address watched then was
-- scanned up to the head of that pass); validate answers from the database while it is recent.
alter table chain_cursor add column scanned_at timestamptz;

-- The watcher refreshes its address list with the checkouts created since its last pass.
create index checkout_created_idx on checkout (created_at);
