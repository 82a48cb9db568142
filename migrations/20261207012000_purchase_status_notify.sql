-- A purchase's status change reaches its resource within seconds (SPEC §9): every change is
-- announced on channel 'purchase_status' (payload: the purchase id), which wakes the lifecycle job
-- on every replica instead of waiting for its timer.
create or replace function notify_purchase_status() returns trigger
language plpgsql as $$
begin
    perform pg_notify('purchase_status', new.purchase_id::text);
    return null;
end
$$;

create trigger purchase_status_notify
    after update of status on purchase
    for each row
    when (old.status is distinct from new.status)
    execute function notify_purchase_status();
