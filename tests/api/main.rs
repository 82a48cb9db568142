//! Integration tests: the real application on port 0 against a fresh database per test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod appstore;
mod cli;
mod errors;
mod fixtures;
mod helpers;
mod lifecycle;
mod metering;
mod notify;
mod purchases;
mod tokens;
