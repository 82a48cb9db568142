-- Who acted, for every audit row: `admin` (the admin API), `cli` (the command line on the server) or
-- `customer` (a customer on their own purchase, e.g. a credential rotation). Older rows were all
-- written by the admin API.
alter table admin_audit add column actor text not null default 'admin';
