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

/// One EVM chain and the stablecoins accepted on it.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainConfig {
    /// Short lowercase name used in flow ids (`base`, `sepolia`).
    pub name: String,
    pub chain_id: u64,
    /// The first JSON-RPC endpoint (`rpc_url`); more in `rpc_urls`, used as fallbacks.
    #[serde(default = "no_rpc_url")]
    pub rpc_url: SecretString,
    /// Further JSON-RPC endpoints of the same chain (failover, in order).
    #[serde(default)]
    pub rpc_urls: Vec<SecretString>,
    /// Timeout of one JSON-RPC call to one endpoint, in seconds.
    #[serde(default = "default_rpc_timeout_secs")]
    pub rpc_timeout_secs: u64,
    #[serde(default = "default_confirmations")]
    pub confirmations: u64,
    #[serde(default)]
    pub explorer_url: String,
    #[serde(default = "default_multicall3")]
    pub multicall3: Address,
    /// Optional flat fee per sweep, charged as its own ledger row (decimal USD string).
    #[serde(default)]
    pub sweep_fee_usd: Option<String>,
    pub tokens: Vec<TokenConfig>,
    /// Largest block range of one `eth_getLogs` request (RPC providers cap it).
    #[serde(default = "default_log_chunk_blocks")]
    pub log_chunk_blocks: u64,
    /// How many recent blocks each watcher pass rescans to notice reorgs of recorded deposits.
    #[serde(default = "default_reorg_window_blocks")]
    pub reorg_window_blocks: u64,
    /// First block to scan when the chain has no cursor yet (default: a lookback below the head).
    #[serde(default)]
    pub start_block: Option<u64>,
}

impl fmt::Debug for ChainConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainConfig")
            .field("name", &self.name)
            .field("chain_id", &self.chain_id)
            .field("rpc_url", &"***")
            .field("confirmations", &self.confirmations)
            .field("tokens", &self.tokens)
            .finish_non_exhaustive()
    }
}

fn default_confirmations() -> u64 {
    2
}

fn no_rpc_url() -> SecretString {
    SecretString::from(String::new())
}

fn default_rpc_timeout_secs() -> u64 {
    15
}

impl ChainConfig {
    /// Every JSON-RPC endpoint of the chain, the primary first.
    pub fn endpoints(&self) -> impl Iterator<Item = &SecretString> {
        std::iter::once(&self.rpc_url)
            .filter(|u| !u.expose_secret().is_empty())
            .chain(self.rpc_urls.iter())
    }
}

fn default_log_chunk_blocks() -> u64 {
    2_000
}

fn default_reorg_window_blocks() -> u64 {
    128
}

/// The canonical Multicall3 deployment address.
pub const MULTICALL3: Address =
    alloy::primitives::address!("cA11bde05977b3631167028862bE2a173976CA11");

fn default_multicall3() -> Address {
    MULTICALL3
}

fn default_rate() -> String {
    "1".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// Lowercase symbol used in flow ids (`usdc`, `usdt`).
    pub symbol: String,
    pub address: Address,
    pub decimals: u8,
    /// Display name (`Circle USD (USDC)`).
    #[serde(default)]
    pub name: Option<String>,
    /// USD value of one whole token, as a decimal string (default "1").
    #[serde(default = "default_rate")]
    pub usd_rate: String,
    /// Whether the token implements EIP-3009 `transferWithAuthorization`.
    #[serde(default)]
    pub eip3009: bool,
    /// EIP-712 domain name/version; read from the token when not set.
    #[serde(default)]
    pub eip712_name: Option<String>,
    #[serde(default)]
    pub eip712_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainsFile {
    #[serde(default)]
    chains: Vec<ChainConfig>,
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
        Ok(limits)
    }
}

/// Reads variables from a map (the process environment in production, a literal map in tests).
struct Vars<'a>(&'a HashMap<String, String>);

impl Vars<'_> {
    /// The trimmed value, `None` if unset or empty.
    fn get(&self, var: &str) -> Option<&str> {
        self.0.get(var).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn secret(&self, var: &str) -> Option<SecretString> {
        self.get(var).map(|v| SecretString::from(v.to_owned()))
    }

    fn parse<T: FromStr>(&self, var: &str, expected: &str) -> Result<Option<T>, ConfigError>
    where
        T::Err: fmt::Display,
    {
        self.get(var)
            .map(|v| {
                v.parse::<T>()
                    .map_err(|e| ConfigError::invalid(var, expected, e))
            })
            .transpose()
    }

    fn parse_or<T: FromStr>(&self, var: &str, expected: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        Ok(self.parse(var, expected)?.unwrap_or(default))
    }

    fn string_or(&self, var: &str, default: &str) -> String {
        self.get(var).unwrap_or(default).to_owned()
    }

    fn bool_or(&self, var: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(other) => Err(ConfigError::invalid(
                var,
                "true or false",
                format!("got {other:?}"),
            )),
        }
    }

    fn url(&self, var: &str) -> Result<Option<String>, ConfigError> {
        match self.get(var) {
            None => Ok(None),
            Some(v) if v.starts_with("http://") || v.starts_with("https://") => {
                Ok(Some(v.trim_end_matches('/').to_owned()))
            }
            Some(_) => Err(ConfigError::invalid(
                var,
                "an http:// or https:// URL",
                "no http(s) scheme",
            )),
        }
    }

    fn address(&self, var: &str) -> Result<Option<Address>, ConfigError> {
        self.parse(var, "a 0x-prefixed 20-byte hex address")
    }
}

impl Config {
    /// Loads `.env` (if present, never overriding real environment variables), then the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is reported.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError::invalid(".env", "KEY=value lines", e)),
        }
        let vars: HashMap<String, String> = std::env::vars().collect();
        Self::from_vars(&vars)
    }

    /// Builds and validates the configuration from a variable map.
    pub fn from_vars(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let v = Vars(map);

        let port: u16 = v.parse_or("PORT", "a TCP port number", 3001)?;
        let public_base_url = match (v.url("PUBLIC_BASE_URL")?, v.get("SERVER_DOMAIN")) {
            (Some(url), _) => url,
            (None, Some(domain)) => format!("https://{}", domain.trim_end_matches('/')),
            (None, None) => format!("http://localhost:{port}"),
        };
        let log_format = match v
            .string_or("LOG_FORMAT", "pretty")
            .to_ascii_lowercase()
            .as_str()
        {
            "pretty" | "text" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::invalid(
                    "LOG_FORMAT",
                    "pretty or json",
                    format!("got {other:?}"),
                ));
            }
        };
        let log_filter = v
            .get("RUST_LOG")
            .or_else(|| v.get("LOG_LEVEL"))
            .unwrap_or("vendor_server=info,tower_http=info,warn")
            .to_owned();
        let server = ServerConfig {
            host: v.string_or("HOST", "0.0.0.0"),
            port,
            public_base_url,
            log_filter,
            log_format,
            sentry_dsn: v.secret("SENTRY_DSN"),
            sentry_environment: v.string_or("SENTRY_ENVIRONMENT", "production"),
            admin_token: v.secret("ADMIN_TOKEN"),
            request_timeout: Duration::from_secs(v.parse_or(
                "REQUEST_TIMEOUT_SECS",
                "seconds",
                30,
            )?),
            body_limit_bytes: v.parse_or("BODY_LIMIT_BYTES", "a size in bytes", 1024 * 1024)?,
            limits: HttpLimits::from_vars(&v)?,
            dashboard_dir: PathBuf::from(v.string_or("DASHBOARD_DIR", "dashboard/dist")),
        };
        if let Some(token) = &server.admin_token
            && token.expose_secret().len() < 16
        {
            return Err(ConfigError::invalid(
                "ADMIN_TOKEN",
                "at least 16 characters",
                "too short",
            ));
        }

        let url = v.get("DATABASE_URL").ok_or_else(|| ConfigError::Missing {
            var: "DATABASE_URL".into(),
            expected: "a postgres:// connection URL".into(),
        })?;
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(ConfigError::invalid(
                "DATABASE_URL",
                "a postgres:// connection URL",
                "the scheme must be postgres:// or postgresql://",
            ));
        }
        let database = DatabaseConfig {
            url: SecretString::from(url.to_owned()),
            max_connections: v.parse_or("DATABASE_MAX_CONNECTIONS", "a connection count", 20)?,
            acquire_timeout: Duration::from_secs(v.parse_or(
                "DATABASE_ACQUIRE_TIMEOUT_SECS",
                "seconds",
                5,
            )?),
        };

        let vendor = VendorConfig {
            id: v
                .get("VENDOR_ID")
                .map(|id| id.strip_prefix("Anon@").unwrap_or(id).to_owned()),
            name: v.string_or("VENDOR_NAME", "Vendor"),
        };
        if let Some(id) = &vendor.id
            && !id.starts_with("UserID_")
        {
            return Err(ConfigError::invalid(
                "VENDOR_ID",
                "UserID_<icp principal>",
                format!("got {id:?}"),
            ));
        }

        let wallets = WalletConfig {
            deposit_mnemonic: v.secret("DEPOSIT_MNEMONIC"),
            gas_tank_private_key: v.secret("VENDOR_GAS_TANK_PRIVATE_KEY"),
            gas_tank_address: v.address("VENDOR_GAS_TANK_ADDRESS")?,
            treasury_address: v.address("VENDOR_TREASURY_ADDRESS")?,
        };
        if let Some(phrase) = &wallets.deposit_mnemonic {
            let words = phrase.expose_secret().split_whitespace().count();
            if ![12, 15, 18, 21, 24].contains(&words) {
                return Err(ConfigError::invalid(
                    "DEPOSIT_MNEMONIC",
                    "a BIP-39 phrase of 12 to 24 words",
                    format!("got {words} words"),
                ));
            }
        }

        let mut chains = Vec::new();
        if let Some(rpc) = v.get("RPC_ENDPOINT") {
            // Several endpoints of one chain, comma-separated: the first is the primary.
            let mut urls = rpc
                .split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(|u| SecretString::from(u.to_owned()));
            let rpc_url = urls.next().unwrap_or_else(no_rpc_url);
            let rpc_urls: Vec<SecretString> = urls.collect();
            let chain_id: u64 =
                v.parse("CHAIN_ID_DEC", "a decimal chain id")?
                    .ok_or_else(|| ConfigError::Missing {
                        var: "CHAIN_ID_DEC".into(),
                        expected: "a decimal chain id (set with RPC_ENDPOINT)".into(),
                    })?;
            let mut tokens = Vec::new();
            if let Some(usdc) = v.address("USDC_ADDRESS")? {
                tokens.push(TokenConfig {
                    symbol: "usdc".into(),
                    address: usdc,
                    decimals: 6,
                    name: Some("Circle USD (USDC)".into()),
                    usd_rate: default_rate(),
                    eip3009: true,
                    eip712_name: None,
                    eip712_version: None,
                });
            }
            if let Some(usdt) = v.address("USDT_ADDRESS")? {
                tokens.push(TokenConfig {
                    symbol: "usdt".into(),
                    address: usdt,
                    decimals: 6,
                    name: Some("Tether USD (USDT)".into()),
                    usd_rate: default_rate(),
                    eip3009: false,
                    eip712_name: None,
                    eip712_version: None,
                });
            }
            if tokens.is_empty() {
                return Err(ConfigError::Missing {
                    var: "USDC_ADDRESS".into(),
                    expected: "the USDC token address on the default chain (or USDT_ADDRESS)"
                        .into(),
                });
            }
            chains.push(ChainConfig {
                name: v
                    .string_or("CHAIN_NAME", "default")
                    .to_ascii_lowercase()
                    .replace(' ', "-"),
                chain_id,
                rpc_url,
                rpc_urls,
                rpc_timeout_secs: v.parse_or(
                    "RPC_TIMEOUT_SECS",
                    "seconds",
                    default_rpc_timeout_secs(),
                )?,
                confirmations: v.parse_or(
                    "DEFAULT_BLOCK_CONFIRMATIONS",
                    "a block count",
                    default_confirmations(),
                )?,
                explorer_url: v
                    .get("CHAIN_EXPLORER_URL")
                    .unwrap_or_default()
                    .trim_end_matches('/')
                    .to_owned(),
                multicall3: MULTICALL3,
                sweep_fee_usd: v.get("SWEEP_FEE_USD").map(str::to_owned),
                tokens,
                log_chunk_blocks: v.parse_or(
                    "LOG_CHUNK_BLOCKS",
                    "a block count",
                    default_log_chunk_blocks(),
                )?,
                reorg_window_blocks: v.parse_or(
                    "REORG_WINDOW_BLOCKS",
                    "a block count",
                    default_reorg_window_blocks(),
                )?,
                start_block: v.parse("START_BLOCK", "a block number")?,
            });
        }
        if let Some(path) = v.get("CHAINS_FILE") {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::invalid("CHAINS_FILE", "a readable TOML file", e))?;
            let file: ChainsFile = toml::from_str(&text)
                .map_err(|e| ConfigError::invalid("CHAINS_FILE", "a valid chains TOML file", e))?;
            chains.extend(file.chains);
        }
        validate_chains(&mut chains)?;

        let aws = v
            .get("AWS_REGION")
            .map(|region| -> Result<AwsConfig, ConfigError> {
                let credentials = match (
                    v.get("AWS_ACCESS_KEY_ID"),
                    v.secret("AWS_SECRET_ACCESS_KEY"),
                ) {
                    (Some(id), Some(secret)) => Some(AwsCredentials {
                        access_key_id: id.to_owned(),
                        secret_access_key: secret,
                        session_token: v.secret("AWS_SESSION_TOKEN"),
                    }),
                    (None, None) => None,
                    (Some(_), None) => {
                        return Err(ConfigError::Missing {
                            var: "AWS_SECRET_ACCESS_KEY".into(),
                            expected: "the secret of AWS_ACCESS_KEY_ID".into(),
                        });
                    }
                    (None, Some(_)) => {
                        return Err(ConfigError::Missing {
                            var: "AWS_ACCESS_KEY_ID".into(),
                            expected: "the key id of AWS_SECRET_ACCESS_KEY".into(),
                        });
                    }
                };
                let operation_timeout: u64 =
                    v.parse_or("AWS_OPERATION_TIMEOUT_SECS", "seconds", 30)?;
                let attempt_timeout: u64 = v.parse_or("AWS_ATTEMPT_TIMEOUT_SECS", "seconds", 10)?;
                if operation_timeout == 0 || attempt_timeout == 0 || operation_timeout > 120 {
                    return Err(ConfigError::invalid(
                        "AWS_OPERATION_TIMEOUT_SECS",
                        "1..=120 seconds (with AWS_ATTEMPT_TIMEOUT_SECS ≥ 1), well inside the provisioning lease",
                        format!("{operation_timeout} / {attempt_timeout}"),
                    ));
                }
                Ok(AwsConfig {
                    region: region.to_owned(),
                    endpoint_url: v.url("AWS_ENDPOINT_URL")?,
                    credentials,
                    operation_timeout: Duration::from_secs(operation_timeout),
                    attempt_timeout: Duration::from_secs(attempt_timeout.min(operation_timeout)),
                })
            });
        let aws = aws.transpose()?;

        let source = match v
            .string_or("BILLING_SOURCE", "cur")
            .to_ascii_lowercase()
            .as_str()
        {
            "cur" => BillingSource::Cur,
            "cost_explorer" | "cost-explorer" => BillingSource::CostExplorer,
            other => {
                return Err(ConfigError::invalid(
                    "BILLING_SOURCE",
                    "cur or cost_explorer",
                    format!("got {other:?}"),
                ));
            }
        };
        let markup = v.get("COST_MARKUP_PERCENT").unwrap_or("36");
        let cost_markup_bps = UsdMicros::parse_decimal(markup)
            .ok()
            .filter(|m| m.0 >= 0 && m.0 % 10_000 == 0)
            .and_then(|m| u32::try_from(m.0 / 10_000).ok())
            .ok_or_else(|| {
                ConfigError::invalid(
                    "COST_MARKUP_PERCENT",
                    "a non-negative percentage with up to 2 decimals",
                    markup,
                )
            })?;
        let billing = BillingConfig {
            source,
            bucket: v.get("BILLING_BUCKET_NAME").map(str::to_owned),
            cur_prefix: v.string_or("CUR_EXPORT_PREFIX", "officex-vendor-billing-reports"),
            cur_export_name: v.string_or("CUR_EXPORT_NAME", "officex-vendor-billing-report"),
            cur_cost_column: v.string_or("CUR_COST_COLUMN", "line_item_unblended_cost"),
            cost_markup_bps,
            cron: v.string_or("BILLING_CRON", "0 0 3 * * *"),
            suspension_grace: days(v.parse_or("SUSPENSION_GRACE_DAYS", "a number of days", 7)?),
        };

        let gemini = v
            .get("GEMINI_API_KEY")
            .map(|keys| -> Result<GeminiConfig, ConfigError> {
                Ok(GeminiConfig {
                    api_keys: keys
                        .split(',')
                        .map(str::trim)
                        .filter(|k| !k.is_empty())
                        .map(|k| SecretString::from(k.to_owned()))
                        .collect(),
                    upstream_url: v
                        .url("GEMINI_UPSTREAM_URL")?
                        .unwrap_or_else(|| "https://generativelanguage.googleapis.com".to_owned()),
                    max_body_bytes: v.parse_or(
                        "GEMINI_MAX_BODY_BYTES",
                        "a size in bytes",
                        20 * 1024 * 1024,
                    )?,
                    body_read_timeout: Duration::from_secs(
                        v.parse_or("GEMINI_BODY_READ_TIMEOUT_SECS", "seconds", 60u64)?
                            .max(1),
                    ),
                })
            });
        let gemini = gemini.transpose()?;

        let notify = NotifyConfig {
            smtp_url: v.secret("SMTP_URL"),
            from_email: v.string_or("NOTIFY_FROM_EMAIL", "billing@localhost"),
            webhook_url: v.url("VENDOR_WEBHOOK_URL")?,
            webhook_secret: v.secret("VENDOR_WEBHOOK_SECRET"),
            alert_email: v.get("VENDOR_ALERT_EMAIL").map(str::to_owned),
        };
        if notify.webhook_url.is_some() && notify.webhook_secret.is_none() {
            return Err(ConfigError::Missing {
                var: "VENDOR_WEBHOOK_SECRET".into(),
                expected: "the HMAC secret for VENDOR_WEBHOOK_URL".into(),
            });
        }

        let officex = OfficexConfig {
            seed_phrase: v.secret("VENDOR_OFFICEX_SEED_PHRASE"),
            identity_pem: v.secret("VENDOR_IDENTITY_PEM"),
            app_url: v
                .url("OFFICEX_APP_URL")?
                .unwrap_or_else(|| "https://officex.app".to_owned()),
            allowed_hosts: v
                .string_or("OFFICEX_ALLOWED_HOSTS", "*.icp0.io,*.ic0.app,*.officex.app")
                .split(',')
                .map(|h| h.trim().to_ascii_lowercase())
                .filter(|h| !h.is_empty())
                .collect(),
        };

        let checkout = CheckoutConfig {
            expiry: Duration::from_secs(
                3600 * v.parse_or::<u64>("CHECKOUT_EXPIRY_HOURS", "a number of hours", 24)?,
            ),
            late_payment_watch: days(v.parse_or(
                "LATE_PAYMENT_WATCH_DAYS",
                "a number of days",
                30,
            )?),
            initiate_per_minute: v.parse_or(
                "CHECKOUT_RATE_LIMIT_PER_MINUTE",
                "a number of requests per minute",
                20,
            )?,
            validate_per_minute: v.parse_or(
                "CHECKOUT_VALIDATE_RATE_LIMIT_PER_MINUTE",
                "a number of requests per minute",
                60,
            )?,
            validate_fresh: Duration::from_secs(v.parse_or(
                "CHECKOUT_VALIDATE_FRESH_SECS",
                "seconds",
                10,
            )?),
            // Finalize answers within REQUEST_TIMEOUT_SECS minus 5 s (SPEC §9); by default it waits
            // for provisioning 10 s less than the request timeout, leaving time for the chain scan.
            provision_wait: Duration::from_secs(v.parse_or(
                "FINALIZE_PROVISION_WAIT_SECS",
                "seconds",
                server.request_timeout.as_secs().saturating_sub(10),
            )?),
        };
        if checkout.provision_wait + FINALIZE_TIMEOUT_MARGIN > server.request_timeout {
            return Err(ConfigError::invalid(
                "FINALIZE_PROVISION_WAIT_SECS",
                &format!(
                    "at most REQUEST_TIMEOUT_SECS minus {} s (finalize must answer before the request times out)",
                    FINALIZE_TIMEOUT_MARGIN.as_secs()
                ),
                format!(
                    "{} s with REQUEST_TIMEOUT_SECS={}",
                    checkout.provision_wait.as_secs(),
                    server.request_timeout.as_secs()
                ),
            ));
        }
        if checkout.initiate_per_minute == 0 {
            return Err(ConfigError::invalid(
                "CHECKOUT_RATE_LIMIT_PER_MINUTE",
                "at least 1",
                "0",
            ));
        }

        let data_encryption_key = v.secret("DATA_ENCRYPTION_KEY");
        if let Some(key) = &data_encryption_key {
            let ok = hex::decode(key.expose_secret())
                .map(|b| b.len() == 32)
                .unwrap_or(false);
            if !ok {
                return Err(ConfigError::invalid(
                    "DATA_ENCRYPTION_KEY",
                    "64 hex characters (32 random bytes, e.g. `openssl rand -hex 32`)",
                    "wrong length or not hex",
                ));
            }
        }

        Ok(Self {
            server,
            database,
            vendor,
            wallets,
            chains,
            aws,
            billing,
            gemini,
            notify,
            officex,
            checkout,
            offers_file: PathBuf::from(v.string_or("OFFERS_FILE", "config/offers.toml")),
            data_encryption_key,
            jobs_enabled: v.bool_or("JOBS_ENABLED", true)?,
        })
    }

    /// The chain a flow id without an explicit chain uses (the first configured one).
    pub fn default_chain(&self) -> Option<&ChainConfig> {
        self.chains.first()
    }

    /// Builds an absolute URL on the public base URL.
    pub fn public_url(&self, path: &str) -> String {
        format!("{}{}", self.server.public_base_url, path)
    }
}

/// Finalize answers at least this long before the request timeout (SPEC §9).
pub const FINALIZE_TIMEOUT_MARGIN: Duration = Duration::from_secs(5);

fn days(n: u64) -> Duration {
    Duration::from_secs(86_400 * n)
}

fn validate_chains(chains: &mut [ChainConfig]) -> Result<(), ConfigError> {
    let mut names = std::collections::HashSet::new();
    for chain in chains.iter_mut() {
        let var = "CHAINS_FILE";
        chain.name = chain.name.to_ascii_lowercase();
        if chain.name.is_empty() || chain.name.contains(':') {
            return Err(ConfigError::invalid(
                var,
                "chain names without ':'",
                &chain.name,
            ));
        }
        if !names.insert(chain.name.clone()) {
            return Err(ConfigError::invalid(
                var,
                "unique chain names",
                format!("{} appears twice", chain.name),
            ));
        }
        if let Some(fee) = &chain.sweep_fee_usd
            && UsdMicros::parse_decimal(fee)
                .map(|f| f.0 < 0)
                .unwrap_or(true)
        {
            return Err(ConfigError::invalid(
                var,
                "sweep_fee_usd as a non-negative USD decimal",
                fee,
            ));
        }
        if chain.rpc_url.expose_secret().is_empty() && !chain.rpc_urls.is_empty() {
            chain.rpc_url = chain.rpc_urls.remove(0);
        }
        let var_rpc = "RPC_ENDPOINT / CHAINS_FILE";
        if chain.endpoints().next().is_none() {
            return Err(ConfigError::invalid(
                var_rpc,
                "at least one JSON-RPC endpoint (rpc_url or rpc_urls)",
                &chain.name,
            ));
        }
        if chain.endpoints().any(|u| {
            let u = u.expose_secret();
            !(u.starts_with("http://") || u.starts_with("https://"))
        }) {
            return Err(ConfigError::invalid(
                var_rpc,
                "http(s) JSON-RPC URLs (rpc_url / rpc_urls, or RPC_ENDPOINT comma-separated)",
                format!(
                    "chain {}: an endpoint without an http(s) scheme",
                    chain.name
                ),
            ));
        }
        if chain.rpc_timeout_secs == 0 || chain.rpc_timeout_secs > 120 {
            return Err(ConfigError::invalid(
                var_rpc,
                "rpc_timeout_secs (RPC_TIMEOUT_SECS) of 1..=120 seconds",
                chain.rpc_timeout_secs,
            ));
        }
        if chain.log_chunk_blocks == 0 || chain.reorg_window_blocks == 0 {
            return Err(ConfigError::invalid(
                var,
                "log_chunk_blocks and reorg_window_blocks of at least 1",
                &chain.name,
            ));
        }
        let mut symbols = std::collections::HashSet::new();
        for token in &mut chain.tokens {
            token.symbol = token.symbol.to_ascii_lowercase();
            if !symbols.insert(token.symbol.clone()) {
                return Err(ConfigError::invalid(
                    var,
                    "unique token symbols per chain",
                    format!("{} twice on {}", token.symbol, chain.name),
                ));
            }
            if token.decimals > 36 {
                return Err(ConfigError::invalid(
                    var,
                    "token decimals up to 36",
                    token.decimals,
                ));
            }
            if UsdMicros::parse_decimal(&token.usd_rate)
                .map(|r| r.0 <= 0)
                .unwrap_or(true)
            {
                return Err(ConfigError::invalid(
                    var,
                    "usd_rate as a positive decimal",
                    &token.usd_rate,
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const DB: (&str, &str) = ("DATABASE_URL", "postgres://u:secretpw@localhost/db");

    #[test]
    fn minimal_config_uses_defaults() {
        let c = Config::from_vars(&vars(&[DB])).unwrap();
        assert_eq!(c.server.port, 3001);
        assert_eq!(c.server.public_base_url, "http://localhost:3001");
        assert!(c.chains.is_empty());
        assert!(c.aws.is_none() && c.gemini.is_none());
        assert_eq!(c.billing.cost_markup_bps, 3600);
        assert_eq!(c.billing.cron, "0 0 3 * * *");
        assert_eq!(c.checkout.expiry, Duration::from_secs(86_400));
    }

    #[test]
    fn missing_database_url_names_the_variable() {
        let err = Config::from_vars(&vars(&[])).unwrap_err();
        assert!(
            err.to_string().starts_with("DATABASE_URL is not set"),
            "{err}"
        );
    }

    #[test]
    fn malformed_values_name_the_variable() {
        for (pairs, var) in [
            (vec![DB, ("PORT", "eighty")], "PORT"),
            (vec![("DATABASE_URL", "mysql://x")], "DATABASE_URL"),
            (
                vec![DB, ("VENDOR_TREASURY_ADDRESS", "0x12")],
                "VENDOR_TREASURY_ADDRESS",
            ),
            (
                vec![
                    DB,
                    ("RPC_ENDPOINT", "http://x"),
                    ("USDC_ADDRESS", "0x0000000000000000000000000000000000000001"),
                ],
                "CHAIN_ID_DEC",
            ),
            (
                vec![DB, ("COST_MARKUP_PERCENT", "-3")],
                "COST_MARKUP_PERCENT",
            ),
            (
                vec![DB, ("DATA_ENCRYPTION_KEY", "abc")],
                "DATA_ENCRYPTION_KEY",
            ),
            (vec![DB, ("VENDOR_ID", "bob")], "VENDOR_ID"),
            (
                vec![DB, ("VENDOR_WEBHOOK_URL", "https://example.com/hook")],
                "VENDOR_WEBHOOK_SECRET",
            ),
            (vec![DB, ("JOBS_ENABLED", "maybe")], "JOBS_ENABLED"),
            (
                vec![DB, ("DEPOSIT_MNEMONIC", "one two three")],
                "DEPOSIT_MNEMONIC",
            ),
        ] {
            let err = Config::from_vars(&vars(&pairs)).unwrap_err();
            assert!(err.to_string().starts_with(var), "{var}: {err}");
        }
    }

    #[test]
    fn original_names_are_honoured() {
        let c = Config::from_vars(&vars(&[
            DB,
            ("SERVER_DOMAIN", "vendor.example.com"),
            ("LOG_LEVEL", "debug"),
            ("RPC_ENDPOINT", "http://127.0.0.1:8545"),
            ("CHAIN_ID_DEC", "84532"),
            ("CHAIN_NAME", "Base Sepolia"),
            ("USDC_ADDRESS", "0x036CbD53842c5426634e7929541eC2318f3dCF7e"),
            ("VENDOR_ID", "Anon@UserID_abc"),
        ]))
        .unwrap();
        assert_eq!(c.server.public_base_url, "https://vendor.example.com");
        assert_eq!(c.server.log_filter, "debug");
        assert_eq!(c.chains[0].name, "base-sepolia");
        assert_eq!(c.chains[0].tokens[0].symbol, "usdc");
        assert!(c.chains[0].tokens[0].eip3009);
        assert_eq!(c.vendor.id.as_deref(), Some("UserID_abc"));
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let c = Config::from_vars(&vars(&[
            DB,
            (
                "DEPOSIT_MNEMONIC",
                "test test test test test test test test test test test junk",
            ),
            ("GEMINI_API_KEY", "AIzaTopSecret"),
            ("ADMIN_TOKEN", "admin-token-0123456789"),
        ]))
        .unwrap();
        let debug = format!("{c:?}");
        for secret in [
            "secretpw",
            "junk",
            "AIzaTopSecret",
            "admin-token-0123456789",
        ] {
            assert!(!debug.contains(secret), "{secret} leaked: {debug}");
        }
    }

    #[test]
    fn payment_settings_have_defaults_and_are_validated() {
        let c = Config::from_vars(&vars(&[
            DB,
            ("RPC_ENDPOINT", "http://127.0.0.1:8545"),
            ("CHAIN_ID_DEC", "31337"),
            ("USDC_ADDRESS", "0x036CbD53842c5426634e7929541eC2318f3dCF7e"),
        ]))
        .unwrap();
        let chain = &c.chains[0];
        assert_eq!(
            (
                chain.log_chunk_blocks,
                chain.reorg_window_blocks,
                chain.start_block
            ),
            (2000, 128, None)
        );
        assert_eq!(c.checkout.initiate_per_minute, 20);
        assert_eq!(c.checkout.provision_wait, Duration::from_secs(20));
        for (var, value) in [
            ("CHECKOUT_RATE_LIMIT_PER_MINUTE", "0"),
            ("FINALIZE_PROVISION_WAIT_SECS", "soon"),
            ("SWEEP_FEE_USD", "-1"),
            ("LOG_CHUNK_BLOCKS", "0"),
        ] {
            let err = Config::from_vars(&vars(&[
                DB,
                ("RPC_ENDPOINT", "http://127.0.0.1:8545"),
                ("CHAIN_ID_DEC", "31337"),
                ("USDC_ADDRESS", "0x036CbD53842c5426634e7929541eC2318f3dCF7e"),
                (var, value),
            ]))
            .unwrap_err();
            let text = err.to_string();
            assert!(
                text.starts_with(var) || text.starts_with("CHAINS_FILE"),
                "{var}: {text}"
            );
        }
    }

    #[test]
    fn several_rpc_endpoints_per_chain() {
        let chain_vars = |rpc: &'static str| {
            vars(&[
                DB,
                ("RPC_ENDPOINT", rpc),
                ("CHAIN_ID_DEC", "31337"),
                ("USDC_ADDRESS", "0x036CbD53842c5426634e7929541eC2318f3dCF7e"),
            ])
        };
        let c = Config::from_vars(&chain_vars(
            "http://127.0.0.1:8545, https://rpc.example/v2/KEY-1 ,",
        ))
        .unwrap();
        let urls: Vec<&str> = c.chains[0].endpoints().map(|u| u.expose_secret()).collect();
        assert_eq!(
            urls,
            ["http://127.0.0.1:8545", "https://rpc.example/v2/KEY-1"]
        );
        assert_eq!(c.chains[0].rpc_timeout_secs, 15);
        assert!(!format!("{:?}", c.chains[0]).contains("KEY-1"));
        let err = Config::from_vars(&chain_vars("http://127.0.0.1:8545,ws://KEY-2@x"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("RPC_ENDPOINT"), "{err}");
        assert!(!err.contains("KEY-2"), "{err}");

        // The chains file: `rpc_urls` alone, or after `rpc_url`.
        let path = std::env::temp_dir().join(format!("chains-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(
            &path,
            r#"
            [[chains]]
            name = "one"
            chain_id = 1
            rpc_urls = ["https://a.example/k1", "https://b.example/k2"]
            rpc_timeout_secs = 4
            tokens = []
            [[chains]]
            name = "two"
            chain_id = 2
            rpc_url = "https://c.example"
            rpc_urls = ["https://d.example"]
            tokens = []
            [[chains]]
            name = "three"
            chain_id = 3
            rpc_url = "https://e.example"
            tokens = []
            "#,
        )
        .unwrap();
        let file = path.to_string_lossy().into_owned();
        let c = Config::from_vars(&vars(&[DB, ("CHAINS_FILE", &file)])).unwrap();
        let all: Vec<Vec<&str>> = c
            .chains
            .iter()
            .map(|c| c.endpoints().map(|u| u.expose_secret()).collect())
            .collect();
        assert_eq!(
            all,
            [
                vec!["https://a.example/k1", "https://b.example/k2"],
                vec!["https://c.example", "https://d.example"],
                vec!["https://e.example"],
            ]
        );
        assert_eq!(c.chains[0].rpc_timeout_secs, 4);
        std::fs::write(
            &path,
            "[[chains]]\nname = \"none\"\nchain_id = 1\ntokens = []\n",
        )
        .unwrap();
        let err = Config::from_vars(&vars(&[DB, ("CHAINS_FILE", &file)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least one JSON-RPC endpoint"), "{err}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn aws_static_credentials_come_in_pairs_and_stay_secret() {
        let c = Config::from_vars(&vars(&[
            DB,
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMIsecret"),
        ]))
        .unwrap();
        let creds = c.aws.as_ref().unwrap().credentials.as_ref().unwrap();
        assert_eq!(creds.access_key_id, "AKIDEXAMPLE");
        assert!(!format!("{c:?}").contains("wJalrXUtnFEMIsecret"));
        let c = Config::from_vars(&vars(&[DB, ("AWS_REGION", "us-east-1")])).unwrap();
        assert!(c.aws.unwrap().credentials.is_none());
        let err = Config::from_vars(&vars(&[
            DB,
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ]))
        .unwrap_err();
        assert!(
            err.to_string().starts_with("AWS_SECRET_ACCESS_KEY"),
            "{err}"
        );
    }

    #[test]
    fn aws_deadlines_and_gateway_body_limits_have_sane_defaults() {
        let c = Config::from_vars(&vars(&[
            DB,
            ("AWS_REGION", "us-east-1"),
            ("GEMINI_API_KEY", "k"),
        ]))
        .unwrap();
        let aws = c.aws.unwrap();
        assert_eq!(aws.operation_timeout, Duration::from_secs(30));
        assert_eq!(aws.attempt_timeout, Duration::from_secs(10));
        let gemini = c.gemini.unwrap();
        assert_eq!(gemini.max_body_bytes, 20 * 1024 * 1024);
        assert_eq!(gemini.body_read_timeout, Duration::from_secs(60));
        for bad in ["0", "600"] {
            let err = Config::from_vars(&vars(&[
                DB,
                ("AWS_REGION", "us-east-1"),
                ("AWS_OPERATION_TIMEOUT_SECS", bad),
            ]))
            .unwrap_err();
            assert!(
                err.to_string().starts_with("AWS_OPERATION_TIMEOUT_SECS"),
                "{err}"
            );
        }
    }

    #[test]
    fn redact_url_hides_passwords() {
        assert_eq!(
            redact_url("postgres://u:pw@h:5432/db"),
            "postgres://***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn http_limits_have_defaults_and_parse_trusted_proxies() {
        let c = Config::from_vars(&vars(&[DB])).unwrap();
        let l = &c.server.limits;
        assert_eq!(l.header_read_timeout, Duration::from_secs(10));
        assert_eq!(l.keep_alive_timeout, Duration::from_secs(60));
        assert_eq!(l.body_read_timeout, Duration::from_secs(10));
        assert_eq!(l.max_header_bytes, 32 * 1024);
        assert_eq!(l.max_connections, 1024);
        assert!(l.trusted_proxies.is_empty());
        let c = Config::from_vars(&vars(&[
            DB,
            ("TRUSTED_PROXIES", " 172.30.0.0/24, 127.0.0.1,fd00::1/64 "),
        ]))
        .unwrap();
        let nets: Vec<String> = c
            .server
            .limits
            .trusted_proxies
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(nets, ["172.30.0.0/24", "127.0.0.1/32", "fd00::/64"]);
        for (var, value) in [
            ("TRUSTED_PROXIES", "caddy"),
            ("TRUSTED_PROXIES", "10.0.0.0/33"),
            ("MAX_HEADER_BYTES", "1024"),
            ("MAX_CONNECTIONS", "0"),
            ("HEADER_READ_TIMEOUT_SECS", "0"),
            ("BODY_READ_TIMEOUT_SECS", "soon"),
        ] {
            let err = Config::from_vars(&vars(&[DB, (var, value)])).unwrap_err();
            assert!(err.to_string().starts_with(var), "{err}");
        }
    }
}
