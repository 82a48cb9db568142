//! On-chain payments over EVM JSON-RPC (alloy): configured chains and their tokens, derived deposit
//! keys, the deposit watcher and the sweeper.

pub mod batch;
pub mod erc20;
pub mod reconcile;
pub mod replace;
pub mod sweeper;
pub mod wallet;
pub mod watcher;

use std::num::NonZeroUsize;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::client::{ClientBuilder, RpcClient};
use alloy::rpc::json_rpc::{RequestPacket, ResponsePacket};
use alloy::transports::http::Http;
use alloy::transports::layers::{FallbackLayer, RateLimitRetryPolicy, RetryBackoffLayer};
use alloy::transports::{TransportError, TransportErrorKind, TransportFut};
use bigdecimal::BigDecimal;
use secrecy::ExposeSecret;
use tower::Layer;

use crate::billing::BillingError;
use crate::config::{ChainConfig, Config, TokenConfig};
use crate::domain::money::UsdMicros;
use wallet::{DepositKeys, GasTank};

mod endpoints;
mod units;

pub use endpoints::*;
pub use units::*;

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

/// One configured chain: its settings and a JSON-RPC client over one or more endpoints (alloy's
/// `RetryBackoffLayer` over a `FallbackLayer`; a timeout on every call; health kept per endpoint).
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
    endpoints: Vec<Arc<EndpointHealth>>,
    /// One client per endpoint (no fallback), to probe endpoints marked down.
    probes: Vec<RpcClient>,
    scrub: Arc<Scrubber>,
    /// Start of the current "every endpoint down" episode and whether it was alerted.
    outage: std::sync::Mutex<Option<(chrono::DateTime<chrono::Utc>, bool)>>,
    /// Requests per JSON-RPC batch: `rpc_max_batch`, halved whenever the provider refuses a batch.
    batch_limit: AtomicUsize,
    /// The node's `finalized` block as last read by [`Self::head`] (`finality = "finalized"` only).
    finalized: AtomicU64,
}

/// Retries of one logical JSON-RPC call after every endpoint failed (alloy's `RetryBackoffLayer`).
const RPC_RETRIES: u32 = 2;
/// Wait before each such retry, in milliseconds.
const RPC_BACKOFF_MS: u64 = 500;

/// Methods tried endpoint by endpoint (best first) rather than on every endpoint at once, so a
/// healthy primary is the only one asked. Others go to every endpoint in parallel.
const SEQUENTIAL_METHODS: &[&str] = &[
    "eth_chainId",
    "eth_blockNumber",
    "eth_getLogs",
    "eth_call",
    "eth_getBalance",
    "eth_getCode",
    "eth_getTransactionCount",
    "eth_getTransactionReceipt",
    "eth_getTransactionByHash",
    "eth_getBlockByNumber",
    "eth_getBlockByHash",
    "eth_gasPrice",
    "eth_maxPriorityFeePerGas",
    "eth_feeHistory",
    "eth_estimateGas",
    "eth_sendRawTransaction",
    "eth_sendRawTransactionSync",
    "eth_sendTransactionSync",
];

impl ChainClient {
    fn new(config: ChainConfig, late_payment_watch: Duration) -> Result<Self, ChainError> {
        let timeout = Duration::from_secs(config.rpc_timeout_secs.max(1));
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .timeout(timeout)
            .build()
            .map_err(|e| ChainError::Invalid(format!("HTTP client: {e}")))?;
        let scrub = Arc::new(Scrubber::new(&config));
        let requests = Arc::new(AtomicU64::new(0));
        let urls = config
            .endpoints()
            .map(|u| reqwest::Url::parse(u.expose_secret()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| {
                ChainError::Invalid(format!("an RPC URL of chain {} is not a URL", config.name))
            })?;
        let labels = endpoint_labels(&urls);
        let mut transports = Vec::new();
        let mut endpoints = Vec::new();
        let mut is_local = true;
        for (index, (url, label)) in urls.into_iter().zip(labels).enumerate() {
            let health = Arc::new(EndpointHealth::new(&config.name, index, label));
            let http = Http::with_client(http.clone(), url);
            is_local &= http.guess_local();
            transports.push(EndpointService {
                inner: http,
                health: health.clone(),
                total: requests.clone(),
                timeout,
                scrub: scrub.clone(),
                chain_id: config.chain_id,
                probe: false,
            });
            endpoints.push(health);
        }
        let count = NonZeroUsize::new(transports.len()).ok_or_else(|| {
            ChainError::Invalid(format!("chain {} has no RPC endpoint", config.name))
        })?;
        let probes = transports
            .iter()
            .map(|t| {
                let mut probe = t.clone();
                probe.probe = true;
                ClientBuilder::default().transport(probe, is_local)
            })
            .collect();
        let fallback = FallbackLayer::default()
            .with_active_transport_count(count)
            .with_sequential_methods(SEQUENTIAL_METHODS.iter().map(|m| (*m).to_owned()).collect())
            .layer(transports);
        let retry = RetryBackoffLayer::new_with_policy(
            RPC_RETRIES,
            RPC_BACKOFF_MS,
            u64::MAX,
            RateLimitRetryPolicy::default()
                .or(|e: &TransportError| matches!(e, TransportError::Transport(_))),
        );
        let rpc = ClientBuilder::default()
            .layer(retry)
            .transport(fallback, is_local);
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
            batch_limit: AtomicUsize::new(config.max_batch()),
            config,
            provider,
            rpc,
            requests,
            rates,
            verified: AtomicBool::new(false),
            late_payment_watch,
            endpoints,
            probes,
            scrub,
            outage: std::sync::Mutex::new(None),
            finalized: AtomicU64::new(0),
        })
    }

    /// The health of each endpoint, the primary first.
    pub fn endpoints(&self) -> &[Arc<EndpointHealth>] {
        &self.endpoints
    }

    /// Every endpoint failed its last call.
    pub fn all_endpoints_down(&self) -> bool {
        self.endpoints
            .iter()
            .all(|e| e.state() == EndpointState::Down)
    }

    /// Asks each endpoint marked down (or on another chain) for its chain id directly (no
    /// fallback), so a recovered endpoint shows up even while another one serves the traffic. The
    /// endpoint's transport judges the answer: the configured id brings it back, another id keeps it
    /// down with reason `chain_id_mismatch`.
    pub async fn probe_down_endpoints(&self) {
        let down: Vec<usize> = self
            .endpoints
            .iter()
            .filter(|health| health.state() == EndpointState::Down)
            .map(|health| health.index)
            .collect();
        self.probe_endpoints(&down).await;
    }

    /// Asks the given endpoints' own `eth_chainId` at once (a hanging endpoint costs one timeout,
    /// not one per endpoint).
    async fn probe_endpoints(&self, indexes: &[usize]) {
        let probes = indexes
            .iter()
            .filter_map(|i| self.probes.get(*i))
            .map(|probe| probe.request_noparams::<alloy::primitives::U64>("eth_chainId"));
        let _ = futures::future::join_all(probes).await;
    }

    /// Opens or closes the chain's "every endpoint down" episode. Returns the episode's start when
    /// its alert is due (once per episode); [`Self::outage_alerted`] marks it sent.
    fn outage_alert_due(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let down = self.all_endpoints_down();
        let mut outage = self.outage.lock().ok()?;
        match (&*outage, down) {
            (None, true) => {
                let start = chrono::Utc::now();
                *outage = Some((start, false));
                Some(start)
            }
            (Some((start, false)), true) => Some(*start),
            (Some((start, _)), false) => {
                tracing::info!(chain = self.name(), down_since = %start, "the chain's RPC is reachable again");
                *outage = None;
                None
            }
            _ => None,
        }
    }

    fn outage_alerted(&self) {
        if let Ok(mut outage) = self.outage.lock()
            && let Some((_, alerted)) = outage.as_mut()
        {
            *alerted = true;
        }
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

    /// A retryable RPC error, with every (secret) endpoint URL of the chain scrubbed from it.
    pub fn rpc_error(&self, e: impl std::fmt::Display) -> ChainError {
        let mut detail = self.scrub.clean(&e.to_string());
        if self.all_endpoints_down() && self.endpoints.len() > 1 {
            detail = format!(
                "all {} RPC endpoints are down: {detail}",
                self.endpoints.len()
            );
        }
        ChainError::Rpc {
            chain: self.config.name.clone(),
            detail,
        }
    }

    /// The latest block number (only once the chain id is verified). With `finality = "finalized"`
    /// it also reads the node's `finalized` block, which [`Self::safe_block`] then never passes.
    pub async fn head(&self) -> Result<u64, ChainError> {
        self.ensure_chain_id().await?;
        let head = self
            .provider
            .get_block_number()
            .await
            .map_err(|e| self.rpc_error(e))?;
        if self.config.finality == crate::config::Finality::Finalized {
            let finalized = self
                .provider
                .get_block_by_number(alloy::eips::BlockNumberOrTag::Finalized)
                .await
                .map_err(|e| self.rpc_error(e))?
                .map_or(0, |b| b.header.number);
            self.finalized.store(finalized, Ordering::Release);
        }
        Ok(head)
    }

    /// The highest block whose deposits count: `head - confirmations`, and with
    /// `finality = "finalized"` never above the node's `finalized` block.
    pub fn safe_block(&self, head: u64) -> u64 {
        let deep = head.saturating_sub(self.config.confirmations);
        match self.config.finality {
            crate::config::Finality::Confirmations => deep,
            crate::config::Finality::Finalized => deep.min(self.finalized.load(Ordering::Acquire)),
        }
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

    /// Start-up check (SPEC §9): every endpoint of every chain is asked its own chain id. An endpoint
    /// answering another id is marked down (`chain_id_mismatch`) and never used; when no endpoint of
    /// a chain answers the configured id and one answers another, the start is refused, naming both
    /// ids. A chain none of whose endpoints answers within a few seconds stays off until one answers
    /// the right id (checked on first use).
    pub async fn verify_chain_ids(&self) -> Result<(), ChainError> {
        for chain in &self.clients {
            let all: Vec<usize> = (0..chain.endpoints.len()).collect();
            let checked =
                tokio::time::timeout(Duration::from_secs(10), chain.probe_endpoints(&all)).await;
            if chain.endpoints.iter().any(|e| e.chain_id_matched()) {
                chain.verified.store(true, Ordering::Release);
                for e in chain
                    .endpoints
                    .iter()
                    .filter(|e| e.chain_id_mismatch().is_some())
                {
                    tracing::warn!(
                        chain = chain.name(),
                        endpoint = %e.label,
                        "an RPC endpoint of the chain is on another chain; it is not used (fix or remove it)"
                    );
                }
                continue;
            }
            if let Some(answered) = chain.endpoints.iter().find_map(|e| e.chain_id_mismatch()) {
                return Err(ChainError::Invalid(chain.wrong_id(answered)));
            }
            match checked {
                Ok(()) => tracing::warn!(
                    chain = chain.name(),
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

    /// Per chain, the state of each RPC endpoint (for `/health`): no URL, only its label.
    pub fn health(&self) -> std::collections::BTreeMap<String, ChainHealth> {
        self.clients
            .iter()
            .map(|c| {
                let endpoints = c
                    .endpoints
                    .iter()
                    .map(|e| {
                        let last_error = e.last_error();
                        EndpointReport {
                            endpoint: e.label.clone(),
                            index: e.index,
                            state: e.state(),
                            reason: e.reason().map(str::to_owned),
                            chain_id: e.answered_chain_id(),
                            requests: e.requests(),
                            errors: e.errors(),
                            last_error_at: last_error.as_ref().map(|(at, _)| at.to_rfc3339()),
                            last_error: last_error.map(|(_, m)| m),
                        }
                    })
                    .collect();
                let status = if c.all_endpoints_down() { "down" } else { "ok" };
                (
                    c.name().to_owned(),
                    ChainHealth {
                        status: status.to_owned(),
                        endpoints,
                    },
                )
            })
            .collect()
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

    /// The chain's `sweep_fee_usd` charged per confirmed sweep (zero when unset or unknown).
    pub fn sweep_fee(&self, chain_id: i64) -> UsdMicros {
        u64::try_from(chain_id)
            .ok()
            .and_then(|id| self.by_id(id))
            .and_then(|c| c.config.sweep_fee_usd.as_deref())
            .and_then(|f| UsdMicros::parse_decimal(f).ok())
            .unwrap_or_default()
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

    /// A writer collecting every log line.
    #[derive(Clone, Default)]
    struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn closed_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[tokio::test]
    async fn rpc_errors_and_logs_never_carry_an_endpoint_key() {
        use tracing_subscriber::layer::SubscriberExt;
        let logs = Capture::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::TRACE)
            .with(crate::telemetry::hide_rpc_urls())
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .with_writer(move || writer.clone()),
            );
        let _guard = tracing::subscriber::set_default(subscriber);
        let (a, b) = (closed_port(), closed_port());
        let config: ChainConfig = toml::from_str(&format!(
            r#"
            name = "keyed"
            chain_id = 1
            rpc_urls = ["http://127.0.0.1:{a}/v2/first-KEY-111?x=1", "http://user:PASS-222@127.0.0.1:{b}/rpc?apikey=KEY-333"]
            tokens = []
            "#
        ))
        .unwrap();
        let chain = ChainClient::new(config, Duration::from_secs(60)).unwrap();
        let labels: Vec<&str> = chain.endpoints().iter().map(|e| e.label.as_str()).collect();
        assert_eq!(labels, [format!("127.0.0.1:{a}"), format!("127.0.0.1:{b}")]);
        let error = chain.head().await.unwrap_err().to_string();
        assert!(chain.all_endpoints_down());
        assert!(error.contains("all 2 RPC endpoints are down"), "{error}");
        let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        assert!(logged.contains("RPC endpoint is down"), "{logged}");
        for text in [&error, &logged, &format!("{:?}", chain.config)] {
            for secret in ["KEY-111", "PASS-222", "KEY-333", "/v2/", "apikey"] {
                assert!(!text.contains(secret), "{secret} leaked: {text}");
            }
        }
        let details = chain.endpoints()[1].last_error().unwrap().1;
        assert!(!details.contains("KEY-333"), "{details}");
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
