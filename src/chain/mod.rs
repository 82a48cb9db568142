//! On-chain payments over EVM JSON-RPC (alloy): configured chains and their tokens, derived deposit
//! keys, the deposit watcher and the sweeper.

pub mod erc20;
pub mod sweeper;
pub mod wallet;
pub mod watcher;

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::client::{ClientBuilder, RpcClient};
use alloy::rpc::json_rpc::{RequestPacket, ResponsePacket};
use alloy::transports::{TransportError, TransportFut};
use bigdecimal::BigDecimal;
use secrecy::ExposeSecret;

use crate::billing::BillingError;
use crate::config::{ChainConfig, Config, TokenConfig};
use crate::domain::money::UsdMicros;
use wallet::{DepositKeys, GasTank};

/// Payment failures. `Rpc` is retryable (the node is down or failed); nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("payments are not configured on this server: {0}")]
    NotConfigured(String),
    #[error("the {chain} RPC node failed: {detail}")]
    Rpc { chain: String, detail: String },
    #[error("{0}")]
    Wallet(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Billing(#[from] BillingError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// One configured chain: its settings and a JSON-RPC client (bounded timeouts, counted round trips).
pub struct ChainClient {
    pub config: ChainConfig,
    pub provider: DynProvider,
    rpc: RpcClient,
    requests: Arc<AtomicU64>,
    rates: Vec<UsdMicros>,
    /// Set once the RPC's `eth_chainId` matched the configured id; the chain is off until then.
    verified: AtomicBool,
    /// How long the addresses of deleted purchases stay watched (`LATE_PAYMENT_WATCH_DAYS`).
    pub late_payment_watch: Duration,
}

impl ChainClient {
    fn new(config: ChainConfig, late_payment_watch: Duration) -> Result<Self, ChainError> {
        let url = reqwest::Url::parse(config.rpc_url.expose_secret()).map_err(|_| {
            ChainError::Invalid(format!("the RPC URL of chain {} is not a URL", config.name))
        })?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| ChainError::Invalid(format!("HTTP client: {e}")))?;
        let requests = Arc::new(AtomicU64::new(0));
        let rpc = ClientBuilder::default()
            .layer(CountLayer(requests.clone()))
            .http_with_client(http, url);
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect_client(rpc.clone())
            .erased();
        let rates = config
            .tokens
            .iter()
            .map(|t| UsdMicros::parse_decimal(&t.usd_rate))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ChainError::Invalid(format!("usd_rate on {}: {e}", config.name)))?;
        Ok(Self {
            config,
            provider,
            rpc,
            requests,
            rates,
            verified: AtomicBool::new(false),
            late_payment_watch,
        })
    }

    /// The id the RPC answers with (`eth_chainId`).
    pub async fn rpc_chain_id(&self) -> Result<u64, ChainError> {
        self.provider
            .get_chain_id()
            .await
            .map_err(|e| self.rpc_error(e))
    }

    fn wrong_id(&self, actual: u64) -> String {
        format!(
            "chain {}: the configured chain id is {} (CHAIN_ID_DEC or the chains file) but its RPC answers eth_chainId {actual}; fix RPC_ENDPOINT or the chain id (a wrong id would record and credit the same deposits again under another chain id)",
            self.config.name, self.config.chain_id
        )
    }

    /// Checks the RPC's chain id once (then remembered). A node that does not answer, or answers
    /// another id, keeps the chain off (a retryable error).
    pub async fn ensure_chain_id(&self) -> Result<(), ChainError> {
        if self.verified.load(Ordering::Acquire) {
            return Ok(());
        }
        let actual = self.rpc_chain_id().await?;
        if actual != self.config.chain_id {
            let detail = self.wrong_id(actual);
            tracing::error!(
                chain = self.name(),
                configured = self.config.chain_id,
                rpc = actual,
                "{detail}"
            );
            return Err(ChainError::Rpc {
                chain: self.config.name.clone(),
                detail,
            });
        }
        self.verified.store(true, Ordering::Release);
        tracing::info!(chain = self.name(), chain_id = actual, "chain id verified");
        Ok(())
    }

    pub fn id(&self) -> u64 {
        self.config.chain_id
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// The raw client, for JSON-RPC batches.
    pub fn rpc(&self) -> &RpcClient {
        &self.rpc
    }

    /// HTTP round trips made to this chain's node so far.
    pub fn rpc_requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// A retryable RPC error, with the (secret) RPC URL scrubbed from the message.
    pub fn rpc_error(&self, e: impl std::fmt::Display) -> ChainError {
        let url = self.config.rpc_url.expose_secret();
        let detail = e
            .to_string()
            .replace(url, "<rpc>")
            .replace(url.trim_end_matches('/'), "<rpc>");
        ChainError::Rpc {
            chain: self.config.name.clone(),
            detail,
        }
    }

    /// The latest block number (only once the chain id is verified).
    pub async fn head(&self) -> Result<u64, ChainError> {
        self.ensure_chain_id().await?;
        self.provider
            .get_block_number()
            .await
            .map_err(|e| self.rpc_error(e))
    }

    /// The highest block whose deposits count (`head - confirmations`).
    pub fn safe_block(&self, head: u64) -> u64 {
        head.saturating_sub(self.config.confirmations)
    }

    pub fn token(&self, symbol: &str) -> Option<&TokenConfig> {
        self.config.tokens.iter().find(|t| t.symbol == symbol)
    }

    pub fn token_by_address(&self, address: Address) -> Option<&TokenConfig> {
        self.config.tokens.iter().find(|t| t.address == address)
    }

    /// USD value of `units` of a token, rounded down to the micro-dollar.
    pub fn usd_value(&self, token: &TokenConfig, units: U256) -> Option<UsdMicros> {
        let index = self
            .config
            .tokens
            .iter()
            .position(|t| t.address == token.address)?;
        units_to_micros(units, token.decimals, self.rates[index])
    }
}

/// Counts HTTP round trips (a JSON-RPC batch is one).
#[derive(Clone)]
struct CountLayer(Arc<AtomicU64>);

impl<S> tower::Layer<S> for CountLayer {
    type Service = CountService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CountService {
            inner,
            count: self.0.clone(),
        }
    }
}

#[derive(Clone)]
struct CountService<S> {
    inner: S,
    count: Arc<AtomicU64>,
}

impl<S> tower::Service<RequestPacket> for CountService<S>
where
    S: tower::Service<
            RequestPacket,
            Response = ResponsePacket,
            Error = TransportError,
            Future = TransportFut<'static>,
        > + Send
        + Sync
        + Clone
        + 'static,
{
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.inner.call(request)
    }
}

/// Every configured chain plus the wallets. Payments are enabled when at least one chain, the deposit
/// mnemonic and the data encryption key (receipts carry customer keys) are configured.
pub struct Chains {
    clients: Vec<ChainClient>,
    keys: Option<DepositKeys>,
    gas: Option<GasTank>,
    treasury: Option<Address>,
    /// The watcher's list of watched addresses, refreshed incrementally.
    pub(crate) watch_list: tokio::sync::Mutex<watcher::WatchList>,
}

impl std::fmt::Debug for Chains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chains")
            .field(
                "chains",
                &self.clients.iter().map(|c| c.name()).collect::<Vec<_>>(),
            )
            .field("deposit_keys", &self.keys.is_some())
            .field("gas", &self.gas)
            .finish_non_exhaustive()
    }
}

impl Chains {
    /// Builds the clients (no network access) and checks the wallets; refuses public development
    /// keys on real chains and a deposit mnemonic without a data encryption key.
    pub fn from_config(config: &Config) -> Result<Self, ChainError> {
        let (keys, gas) = wallet::load(config)?;
        if keys.is_some() && config.data_encryption_key.is_none() {
            return Err(ChainError::Wallet(
                "DEPOSIT_MNEMONIC is set but DATA_ENCRYPTION_KEY is not: receipts carry customer keys and are kept encrypted (generate one with `openssl rand -hex 32`)".into(),
            ));
        }
        let clients = config
            .chains
            .iter()
            .cloned()
            .map(|c| ChainClient::new(c, config.checkout.late_payment_watch))
            .collect::<Result<Vec<_>, _>>()?;
        if clients.is_empty() || keys.is_none() {
            tracing::warn!(
                "payments are off: configure RPC_ENDPOINT/CHAIN_ID_DEC/USDC_ADDRESS (or CHAINS_FILE) and DEPOSIT_MNEMONIC"
            );
        } else if gas.is_none() || config.wallets.treasury_address.is_none() {
            tracing::warn!(
                "sweeps are off: configure VENDOR_GAS_TANK_PRIVATE_KEY and VENDOR_TREASURY_ADDRESS (deposits are still detected and credited)"
            );
        }
        Ok(Self {
            clients,
            keys,
            gas,
            treasury: config.wallets.treasury_address,
            watch_list: tokio::sync::Mutex::new(watcher::WatchList::default()),
        })
    }

    /// Start-up check (SPEC §9): every chain's RPC must answer the configured chain id. A mismatch
    /// refuses the start, naming both ids; a node that does not answer within a few seconds leaves its
    /// chain off until it answers with the right id (checked on first use).
    pub async fn verify_chain_ids(&self) -> Result<(), ChainError> {
        for chain in &self.clients {
            match tokio::time::timeout(Duration::from_secs(10), chain.rpc_chain_id()).await {
                Ok(Ok(actual)) if actual == chain.config.chain_id => {
                    chain.verified.store(true, Ordering::Release);
                }
                Ok(Ok(actual)) => return Err(ChainError::Invalid(chain.wrong_id(actual))),
                Ok(Err(e)) => tracing::warn!(
                    chain = chain.name(),
                    error = %e,
                    "the chain's RPC does not answer; the chain stays off until it answers eth_chainId {}",
                    chain.config.chain_id
                ),
                Err(_) => tracing::warn!(
                    chain = chain.name(),
                    "the chain's RPC did not answer eth_chainId within 10 s; the chain stays off until it answers {}",
                    chain.config.chain_id
                ),
            }
        }
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = &ChainClient> {
        self.clients.iter()
    }

    pub fn get(&self, name: &str) -> Option<&ChainClient> {
        self.clients.iter().find(|c| c.name() == name)
    }

    pub fn by_id(&self, chain_id: u64) -> Option<&ChainClient> {
        self.clients.iter().find(|c| c.id() == chain_id)
    }

    /// The deposit keys, or why payments are off.
    pub fn keys(&self) -> Result<&DepositKeys, ChainError> {
        match (&self.keys, self.clients.is_empty()) {
            (Some(keys), false) => Ok(keys),
            (_, true) => Err(ChainError::NotConfigured("no chain is configured".into())),
            (None, false) => Err(ChainError::NotConfigured(
                "DEPOSIT_MNEMONIC is not set".into(),
            )),
        }
    }

    pub fn gas(&self) -> Option<&GasTank> {
        self.gas.as_ref()
    }

    pub fn treasury(&self) -> Option<Address> {
        self.treasury
    }
}

/// `floor(units × rate / 10^decimals)` micro-dollars; `None` when it does not fit.
pub fn units_to_micros(units: U256, decimals: u8, rate: UsdMicros) -> Option<UsdMicros> {
    let rate = U256::from(u64::try_from(rate.0).ok()?);
    let scale = U256::from(10u8).checked_pow(U256::from(decimals))?;
    let micros = units.checked_mul(rate)? / scale;
    i64::try_from(micros).ok().map(UsdMicros)
}

/// Token units as an exact decimal string with the token's decimals (`"12.5"`).
pub fn format_units(units: U256, decimals: u8) -> String {
    let text = units.to_string();
    let decimals = usize::from(decimals);
    if decimals == 0 {
        return text;
    }
    let padded = format!("{text:0>width$}", width = decimals + 1);
    let (int, frac) = padded.split_at(padded.len() - decimals);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    }
}

/// A `U256` as a `numeric` value.
pub fn to_numeric(units: U256) -> BigDecimal {
    BigDecimal::from_str(&units.to_string()).unwrap_or_default()
}

/// A `numeric(78,0)` value as a `U256` (`None` for negatives, fractions or overflow).
pub fn from_numeric(value: &BigDecimal) -> Option<U256> {
    let (digits, scale) = value.as_bigint_and_exponent();
    if scale > 0 && !value.is_integer() {
        return None;
    }
    let int = if scale > 0 {
        value.with_scale(0).as_bigint_and_exponent().0
    } else {
        digits * num_pow10(-scale)
    };
    U256::from_str(&int.to_string()).ok()
}

fn num_pow10(exp: i64) -> bigdecimal::num_bigint::BigInt {
    let mut out = bigdecimal::num_bigint::BigInt::from(1);
    for _ in 0..exp {
        out *= 10;
    }
    out
}

/// Lowercase `0x…` form used in the database.
pub fn addr_key(address: Address) -> String {
    format!("{address:#x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_units_convert_to_micros_rounding_down() {
        let one = UsdMicros(1_000_000);
        assert_eq!(
            units_to_micros(U256::from(1_234_567u64), 6, one),
            Some(UsdMicros(1_234_567))
        );
        // 18 decimals: 1.0000009999 tokens -> 1.000000 USD.
        assert_eq!(
            units_to_micros(U256::from(1_000_000_999_900_000_000u64), 18, one),
            Some(UsdMicros(1_000_000))
        );
        // A rate of 0.999 rounds down too.
        assert_eq!(
            units_to_micros(U256::from(3u64), 0, UsdMicros(999_000)),
            Some(UsdMicros(2_997_000))
        );
        assert_eq!(units_to_micros(U256::MAX, 6, one), None);
    }

    #[test]
    fn numeric_round_trips() {
        let big = U256::from_str("123456789012345678901234567890").unwrap();
        assert_eq!(from_numeric(&to_numeric(big)), Some(big));
        assert_eq!(
            from_numeric(&BigDecimal::from_str("1e3").unwrap()),
            Some(U256::from(1000u64))
        );
        assert_eq!(from_numeric(&BigDecimal::from_str("1.5").unwrap()), None);
        assert_eq!(format_units(U256::from(12_500_000u64), 6), "12.5");
        assert_eq!(format_units(U256::from(5u64), 6), "0.000005");
        assert_eq!(format_units(U256::from(3_000_000u64), 6), "3");
    }
}
