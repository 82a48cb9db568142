-- An outbox row that has nothing to deliver (e.g. an OfficeX update for a purchase without an OfficeX
-- record, or while OfficeX updates are off) completes as 'skipped': recorded, never retried, no alert.
alter table outbox
    drop constraint outbox_status_check,
    add constraint outbox_status_check check (status in ('pending', 'delivered', 'failed', 'skipped'));
