//! Typed configuration, loaded once from the environment (and `.env`) and validated at start.
//!
//! Variable names are flat and stable (SPEC §8/§9): a vendor moving over from the original Node template
//! keeps their `.env`. Every variable is documented in `.env.example`.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use alloy::primitives::Address;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::domain::money::UsdMicros;

mod chains;
mod load;

pub use chains::*;
pub use load::*;

/// A configuration problem, naming the variable and what was expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{var} is not set (expected {expected})")]
    Missing { var: String, expected: String },
    #[error("{var} is invalid (expected {expected}): {detail}")]
    Invalid {
        var: String,
        expected: String,
        detail: String,
    },
}

impl ConfigError {
    fn invalid(var: &str, expected: &str, detail: impl fmt::Display) -> Self {
        Self::Invalid {
            var: var.to_owned(),
            expected: expected.to_owned(),
            detail: detail.to_string(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, coloured (development).
    Pretty,
    /// One JSON object per line (production).
    Json,
}

/// Where the daily cost import reads S3 costs from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillingSource {
    Cur,
    CostExplorer,
}

/// The whole server configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub vendor: VendorConfig,
    pub wallets: WalletConfig,
    /// Configured EVM chains (the default chain from `RPC_ENDPOINT` first, then `CHAINS_FILE`).
    pub chains: Vec<ChainConfig>,
    /// `None` when AWS is not configured (S3 offer and cost import off).
    pub aws: Option<AwsConfig>,
    pub billing: BillingConfig,
    /// `None` when no `GEMINI_API_KEY` is set (Gemini gateway off).
    pub gemini: Option<GeminiConfig>,
    pub notify: NotifyConfig,
    pub officex: OfficexConfig,
    pub checkout: CheckoutConfig,
    pub refunds: RefundConfig,
    pub offers_file: PathBuf,
    /// Key for secrets kept at rest (receipts), 32 bytes.
    pub data_encryption_key: Option<SecretString>,
    pub jobs_enabled: bool,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// Absolute base URL every returned link is built on, without a trailing slash.
    pub public_base_url: String,
    pub log_filter: String,
    pub log_format: LogFormat,
    pub sentry_dsn: Option<SecretString>,
    pub sentry_environment: String,
    pub admin_token: Option<SecretString>,
    pub request_timeout: Duration,
    pub body_limit_bytes: usize,
    /// Limits against slow and greedy clients (header/body timeouts, connections, proxies).
    pub limits: HttpLimits,
    /// The dashboard's build (`DASHBOARD_DIR`, default `dashboard/dist`).
    pub dashboard_dir: PathBuf,
}

#[derive(Clone)]
pub struct DatabaseConfig {
    pub url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &redact_url(self.url.expose_secret()))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

/// A URL with any password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => "***".to_owned(),
    }
}

#[derive(Debug, Clone)]
pub struct VendorConfig {
    /// `UserID_<principal>` (an `Anon@` prefix is stripped).
    pub id: Option<String>,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct WalletConfig {
    /// BIP-39 phrase deposit addresses are derived from.
    pub deposit_mnemonic: Option<SecretString>,
    /// Pays gas for sweeps.
    pub gas_tank_private_key: Option<SecretString>,
    /// Optional: checked against the key at start.
    pub gas_tank_address: Option<Address>,
    /// Offramp address swept funds go to.
    pub treasury_address: Option<Address>,
}

#[derive(Debug, Clone)]
pub struct AwsConfig {
    pub region: String,
    /// Emulator or S3-compatible endpoint (`AWS_ENDPOINT_URL`).
    pub endpoint_url: Option<String>,
    /// Static credentials (`AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY`, optional
    /// `AWS_SESSION_TOKEN`); `None` = the SDK's default chain (profile, instance role, …).
    pub credentials: Option<AwsCredentials>,
    /// Deadline of one AWS operation, retries included (`AWS_OPERATION_TIMEOUT_SECS`, 30): well
    /// inside the provisioning lease, so a stalled call never outlives its attempt.
    pub operation_timeout: Duration,
    /// Deadline of one HTTP attempt of an AWS operation (`AWS_ATTEMPT_TIMEOUT_SECS`, 10).
    pub attempt_timeout: Duration,
    /// The vendor bucket customer buckets log their requests into, under `access-logs/<bucket>/`
    /// (`S3_ACCESS_LOG_BUCKET`); `None`: no access logging, storage-only estimates.
    pub access_log_bucket: Option<String>,
}

/// Static AWS credentials from the configuration.
#[derive(Debug, Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
}

#[derive(Debug, Clone)]
pub struct BillingConfig {
    pub source: BillingSource,
    pub bucket: Option<String>,
    pub cur_prefix: String,
    pub cur_export_name: String,
    pub cur_cost_column: String,
    /// Markup on AWS cost, in basis points (36 % = 3600).
    pub cost_markup_bps: u32,
    /// tokio-cron-scheduler expression (seconds first).
    pub cron: String,
    pub suspension_grace: Duration,
    /// How often the S3 usage estimate runs (`S3_METERING_INTERVAL_SECS`, 3600).
    pub metering_interval: Duration,
}

#[derive(Clone)]
pub struct GeminiConfig {
    /// Vendor's upstream keys, used in turn.
    pub api_keys: Vec<SecretString>,
    pub upstream_url: String,
    /// Largest gateway request body (`GEMINI_MAX_BODY_BYTES`, 20 MiB: Google's own request limit,
    /// inline images and documents included).
    pub max_body_bytes: usize,
    /// Time allowed to receive a gateway request's body (`GEMINI_BODY_READ_TIMEOUT_SECS`, 60).
    pub body_read_timeout: Duration,
}

impl fmt::Debug for GeminiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeminiConfig")
            .field(
                "api_keys",
                &format_args!("[{} redacted]", self.api_keys.len()),
            )
            .field("upstream_url", &self.upstream_url)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("body_read_timeout", &self.body_read_timeout)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// `smtp://user:pass@host:port` / `smtps://…`; `None` disables email.
    pub smtp_url: Option<SecretString>,
    pub from_email: String,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<SecretString>,
    pub alert_email: Option<String>,
}

#[derive(Debug, Clone)]
pub struct OfficexConfig {
    pub seed_phrase: Option<SecretString>,
    /// dfx-style Ed25519 PEM: a path or the PEM text itself.
    pub identity_pem: Option<SecretString>,
    pub app_url: String,
    pub allowed_hosts: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct CheckoutConfig {
    pub expiry: Duration,
    pub late_payment_watch: Duration,
    /// `POST /v1/checkout/initiate` calls allowed per client IP and minute (token bucket).
    pub initiate_per_minute: u32,
    /// How long finalize waits for provisioning before answering `AWAITING`.
    pub provision_wait: Duration,
    /// `POST /v1/checkout/validate` calls allowed per client IP and minute (token bucket).
    pub validate_per_minute: u32,
    /// validate answers from the database (no RPC) while the watcher's last pass is this recent.
    pub validate_fresh: Duration,
    /// Pause of the deposit watcher after a pass that found nothing (`WATCHER_INTERVAL_SECS`).
    pub watch_interval: Duration,
}

/// Refunds (SPEC §9 "Customers get what they paid for, or their money back").
#[derive(Clone, Default)]
pub struct RefundConfig {
    /// The hot wallet approved refunds are paid from (`VENDOR_PAYOUT_PRIVATE_KEY`); `None`: the
    /// vendor pays by hand (EIP-681 link in the console) and the payment is recognised on chain.
    pub payout_private_key: Option<SecretString>,
    /// Refunds up to this amount to an address that paid into the purchase before are approved
    /// without an operator (`REFUND_AUTO_APPROVE_USD`, default 0: never).
    pub auto_approve: UsdMicros,
}

impl fmt::Debug for RefundConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefundConfig")
            .field(
                "payout_private_key",
                &self.payout_private_key.as_ref().map(|_| "***"),
            )
            .field("auto_approve", &self.auto_approve)
            .finish()
    }
}

/// The listener's limits against slow and greedy clients, and whose forwarding headers count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time a client has to send a request's headers (also ends an HTTP/1 connection idle for
    /// this long between requests).
    pub header_read_timeout: Duration,
    /// Largest request head (request line and headers) in bytes; more is a 431.
    pub max_header_bytes: usize,
    /// Open connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Open connections one client address (IPv6: one /64) may hold; more are answered 429 and
    /// closed. Trusted proxies are not capped.
    pub max_connections_per_ip: usize,
    /// A connection with no request in flight for this long is closed.
    pub keep_alive_timeout: Duration,
    /// Longest pause while reading a request body before a 408.
    pub body_read_timeout: Duration,
    /// Peers whose `X-Forwarded-For` is believed (the TLS proxy); empty = none.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl HttpLimits {
    /// The smallest header cap the HTTP/1 parser accepts.
    pub const MIN_HEADER_BYTES: usize = 8192;

    fn from_vars(v: &Vars<'_>) -> Result<Self, ConfigError> {
        let secs = |var: &str, default: u64| -> Result<Duration, ConfigError> {
            let n: u64 = v.parse_or(var, "a number of seconds", default)?;
            if n == 0 {
                return Err(ConfigError::invalid(var, "at least 1 second", "0"));
            }
            Ok(Duration::from_secs(n))
        };
        let limits = Self {
            header_read_timeout: secs("HEADER_READ_TIMEOUT_SECS", 10)?,
            max_header_bytes: v.parse_or("MAX_HEADER_BYTES", "a size in bytes", 32 * 1024)?,
            max_connections: v.parse_or("MAX_CONNECTIONS", "a connection count", 1024)?,
            max_connections_per_ip: v.parse_or(
                "MAX_CONNECTIONS_PER_IP",
                "a connection count",
                64,
            )?,
            keep_alive_timeout: secs("KEEP_ALIVE_TIMEOUT_SECS", 60)?,
            body_read_timeout: secs("BODY_READ_TIMEOUT_SECS", 10)?,
            trusted_proxies: v
                .get("TRUSTED_PROXIES")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse::<ipnet::IpNet>()
                        .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        .map(|net| net.trunc())
                        .map_err(|e| {
                            ConfigError::invalid(
                                "TRUSTED_PROXIES",
                                "comma-separated IP addresses or CIDR ranges",
                                format!("{p:?}: {e}"),
                            )
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        if limits.max_header_bytes < Self::MIN_HEADER_BYTES {
            return Err(ConfigError::invalid(
                "MAX_HEADER_BYTES",
                "at least 8192",
                limits.max_header_bytes,
            ));
        }
        if limits.max_connections == 0 {
            return Err(ConfigError::invalid("MAX_CONNECTIONS", "at least 1", "0"));
        }
        if limits.max_connections_per_ip == 0 {
            return Err(ConfigError::invalid(
                "MAX_CONNECTIONS_PER_IP",
                "at least 1",
                "0",
            ));
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests;
