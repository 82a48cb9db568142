-- The per-purchase "vendor key" was stored hashed and shown to nobody (SPEC §9): vendor-wide billing
-- tokens (`vendor-server tokens create`) are the one way to meter. Its columns (and unique index) go.
alter table purchase
    drop column vendor_key_hash,
    drop column vendor_key_prefix;
