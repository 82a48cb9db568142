-- The offer's terms as they were when the checkout was initiated (minimum deposit, thresholds,
-- provider settings…): a paid checkout finishes on them even after the offer is changed or retired.
-- Null for checkouts initiated before this column existed (they use the offer row as it is now).
alter table checkout add column offer_terms jsonb;
