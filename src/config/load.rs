//! Loading: the configuration from the environment (and `.env`), every variable parsed and checked,
//! with a clear error naming the variable.

use super::*;

/// Reads variables from a map (the process environment in production, a literal map in tests).
pub(super) struct Vars<'a>(&'a HashMap<String, String>);

impl Vars<'_> {
    /// The trimmed value, `None` if unset or empty.
    pub(super) fn get(&self, var: &str) -> Option<&str> {
        self.0.get(var).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    pub(super) fn secret(&self, var: &str) -> Option<SecretString> {
        self.get(var).map(|v| SecretString::from(v.to_owned()))
    }

    pub(super) fn parse<T: FromStr>(
        &self,
        var: &str,
        expected: &str,
    ) -> Result<Option<T>, ConfigError>
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

    pub(super) fn parse_or<T: FromStr>(
        &self,
        var: &str,
        expected: &str,
        default: T,
    ) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        Ok(self.parse(var, expected)?.unwrap_or(default))
    }

    pub(super) fn string_or(&self, var: &str, default: &str) -> String {
        self.get(var).unwrap_or(default).to_owned()
    }

    pub(super) fn bool_or(&self, var: &str, default: bool) -> Result<bool, ConfigError> {
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

    pub(super) fn url(&self, var: &str) -> Result<Option<String>, ConfigError> {
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

    pub(super) fn address(&self, var: &str) -> Result<Option<Address>, ConfigError> {
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
                watch: v.parse_or("WATCH_MODE", "logs or addresses", WatchMode::Logs)?,
                rpc_max_batch: None,
                rpc_max_body_bytes: None,
                replace_after_blocks: v.parse_or(
                    "REPLACE_AFTER_BLOCKS",
                    "a block count",
                    default_replace_after_blocks(),
                )?,
                max_fee_gwei: v.parse_or("MAX_FEE_GWEI", "gwei", default_max_fee_gwei())?,
                finality: v.parse_or(
                    "CHAIN_FINALITY",
                    "confirmations or finalized",
                    Finality::default(),
                )?,
                sweep_batch_size: v.parse_or(
                    "SWEEP_BATCH_SIZE",
                    "a number of sweeps",
                    default_sweep_batch_size(),
                )?,
                sweep_batch_gas_cap: v.parse_or(
                    "SWEEP_BATCH_GAS_CAP",
                    "a gas amount",
                    default_sweep_batch_gas_cap(),
                )?,
            });
        }
        if let Some(path) = v.get("CHAINS_FILE") {
            let text = std::fs::read_to_string(path)
                .map_err(|e| ConfigError::invalid("CHAINS_FILE", "a readable TOML file", e))?;
            let file: ChainsFile = toml::from_str(&text)
                .map_err(|e| ConfigError::invalid("CHAINS_FILE", "a valid chains TOML file", e))?;
            chains.extend(file.chains);
        }
        // The RPC limits apply to every chain that does not set its own.
        let max_batch: Option<usize> = v.parse("RPC_MAX_BATCH", "a number of requests")?;
        let max_body: Option<usize> = v.parse("RPC_MAX_BODY_BYTES", "a size in bytes")?;
        for chain in &mut chains {
            chain.rpc_max_batch = chain.rpc_max_batch.or(max_batch);
            chain.rpc_max_body_bytes = chain.rpc_max_body_bytes.or(max_body);
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
                    access_log_bucket: v
                        .get("S3_ACCESS_LOG_BUCKET")
                        .map(str::trim)
                        .filter(|b| !b.is_empty())
                        .map(str::to_owned),
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
            metering_interval: Duration::from_secs(
                v.parse_or("S3_METERING_INTERVAL_SECS", "seconds", 3600u64)?
                    .max(1),
            ),
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
            watch_interval: Duration::from_secs(
                v.parse_or::<u64>("WATCHER_INTERVAL_SECS", "seconds", 5)?
                    .clamp(1, 3600),
            ),
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

        let refunds = RefundConfig {
            payout_private_key: v.secret("VENDOR_PAYOUT_PRIVATE_KEY"),
            auto_approve: match v.get("REFUND_AUTO_APPROVE_USD") {
                None => UsdMicros::ZERO,
                Some(text) => UsdMicros::parse_decimal(text)
                    .ok()
                    .filter(|a| a.0 >= 0)
                    .ok_or_else(|| {
                        ConfigError::invalid(
                            "REFUND_AUTO_APPROVE_USD",
                            "a USD amount, at most 6 decimal places, not negative",
                            text,
                        )
                    })?,
            },
        };
        if let Some(key) = &refunds.payout_private_key {
            let hex = key.expose_secret().trim().trim_start_matches("0x");
            if hex.len() != 64 || hex::decode(hex).is_err() {
                return Err(ConfigError::invalid(
                    "VENDOR_PAYOUT_PRIVATE_KEY",
                    "a 0x-hex private key (32 bytes)",
                    "wrong length or not hex",
                ));
            }
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
            refunds,
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

pub(super) fn days(n: u64) -> Duration {
    Duration::from_secs(86_400 * n)
}
