-- The metrics collector counts the undelivered outbox rows per channel every few seconds; delivered
-- rows (almost all of them) stay out of that read.
create index outbox_undelivered_idx on outbox (channel, status) where status <> 'delivered';
