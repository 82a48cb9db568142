//! Integration tests: the real application on port 0 against a fresh database per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod appstore;
mod chain;
mod checkout;
mod cli;
mod cost_import;
mod deposits;
mod errors;
mod fixtures;
mod gemini;
mod helpers;
mod lifecycle;
mod metering;
mod moto;
mod notify;
mod officex;
mod officex_drive;
mod outage;
mod purchases;
mod s3;
mod sweeps;
mod tokens;
