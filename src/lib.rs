//! vendor-server: sell cloud resources on the OfficeX appstore for stablecoins.

/// The vendor's console behind the admin API: read models and audited, idempotent operator actions.
pub mod admin;
/// The HTTP edge: routers, extractors, the JSON error shape.
pub mod api;
/// AWS SDK configuration shared by the S3 provider and the cost import.
pub mod aws;
/// Purchases, balances and the ledger.
pub mod billing;
/// Offers and curated appstore lists from the offers file.
pub mod catalog;
/// On-chain payments: chains, derived deposit keys, the deposit watcher, sweeps.
pub mod chain;
/// Checkouts: initiate, validate, finalize, topup, provisioning.
pub mod checkout;
/// Operator command line (`serve`, `migrate`, `healthcheck`, …).
pub mod cli;
/// Typed configuration from the environment.
pub mod config;
/// Credentials on the customer page: listed by hint, shown from the receipt, rotated.
pub mod credentials;
/// Connection pool and migrations.
pub mod db;
/// Newtypes: prefixed ids, exact money.
pub mod domain;
/// Background job wiring.
pub mod jobs;
/// Notifications outbox (webhooks, email, OfficeX updates, alerts).
pub mod notify;
/// OfficeX purchase records: vendor identity, SIGNATURE tokens, drive client, update worker.
pub mod officex;
/// Resources customers buy (S3 buckets, Gemini gateway keys) behind one trait.
pub mod providers;
/// Refunds of unused balance and unclaimed money, and their payout.
pub mod refunds;
/// Graceful shutdown on signals.
pub mod shutdown;
/// The startup seam shared by `main` and tests.
pub mod startup;
/// Shared handles for handlers and jobs.
pub mod state;
/// Logging, tracing and Sentry.
pub mod telemetry;
