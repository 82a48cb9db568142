-- Gemini gateway calls in flight. Each holds its worst-case cost (input estimate plus
-- maxOutputTokens, or the model's output limit) against the purchase's balance while it runs, so
-- parallel calls on every replica see each other; the count of live rows caps concurrent calls per
-- purchase. A row is deleted in the same transaction as the call's real charge; a crashed
-- request's row lapses at `expires_at`.
create table gateway_reservation
(
    reservation_id uuid primary key,
    purchase_id    uuid        not null references purchase (purchase_id),
    amount_micros  bigint      not null check (amount_micros >= 0),
    model          text        not null,
    created_at     timestamptz not null default now(),
    expires_at     timestamptz not null
);
create index gateway_reservation_purchase_idx on gateway_reservation (purchase_id, expires_at);
