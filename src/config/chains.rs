//! Chains: each EVM chain's RPC endpoints, confirmations, scan windows and accepted stablecoins, from
//! `CHAINS_FILE` (TOML) or the original's single-chain variables, and their validation.

use super::*;

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
    /// Block explorer base URL (`<url>/tx/<hash>` links); empty = the well-known explorer of the
    /// chain id ([`default_explorer_url`]), none for local chains.
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
    /// How the watcher reads Transfer logs: `logs` (default; every transfer of the tokens by block
    /// range, recipients matched in memory: the cost does not grow with the watched addresses) or
    /// `addresses` (address filters in bounded batches, for a chain whose token traffic is too dense).
    #[serde(default)]
    pub watch: WatchMode,
    /// Most requests in one JSON-RPC batch (`RPC_MAX_BATCH`, default 50).
    #[serde(default)]
    pub rpc_max_batch: Option<usize>,
    /// Largest JSON-RPC request body in bytes (`RPC_MAX_BODY_BYTES`, default 1,000,000).
    #[serde(default)]
    pub rpc_max_body_bytes: Option<usize>,
    /// Blocks a broadcast transaction may wait unmined before it is re-signed with higher fees.
    #[serde(default = "default_replace_after_blocks")]
    pub replace_after_blocks: u64,
    /// The highest max fee per gas (gwei) the server signs by itself; replacements stop there.
    #[serde(default = "default_max_fee_gwei")]
    pub max_fee_gwei: u64,
    /// How deposits count as final: `confirmations` deep, or only at or below the node's `finalized` block.
    #[serde(default)]
    pub finality: Finality,
    /// Most EIP-3009 sweeps relayed in one Multicall3 `aggregate3` transaction (`SWEEP_BATCH_SIZE`;
    /// 1, the default, sends one transaction per sweep).
    #[serde(default = "default_sweep_batch_size")]
    pub sweep_batch_size: usize,
    /// Largest gas limit of one batched sweep transaction (`SWEEP_BATCH_GAS_CAP`); a batch that
    /// would need more is made smaller.
    #[serde(default = "default_sweep_batch_gas_cap")]
    pub sweep_batch_gas_cap: u64,
}

/// How the deposit watcher reads a chain (see [`ChainConfig::watch`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    #[default]
    Logs,
    Addresses,
}

impl std::str::FromStr for WatchMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "logs" => Ok(Self::Logs),
            "addresses" => Ok(Self::Addresses),
            other => Err(format!("unknown watch mode {other}")),
        }
    }
}

/// `RPC_MAX_BATCH` when unset.
pub const DEFAULT_RPC_MAX_BATCH: usize = 50;
/// `RPC_MAX_BODY_BYTES` when unset.
pub const DEFAULT_RPC_MAX_BODY_BYTES: usize = 1_000_000;

impl ChainConfig {
    /// Most requests in one JSON-RPC batch.
    pub fn max_batch(&self) -> usize {
        self.rpc_max_batch.unwrap_or(DEFAULT_RPC_MAX_BATCH).max(1)
    }

    /// Largest JSON-RPC request body.
    pub fn max_body_bytes(&self) -> usize {
        self.rpc_max_body_bytes
            .unwrap_or(DEFAULT_RPC_MAX_BODY_BYTES)
            .max(1)
    }
}

/// How a chain decides that a block is final enough to credit its deposits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Finality {
    /// `head - confirmations`.
    #[default]
    Confirmations,
    /// The node's `finalized` block (and never above `head - confirmations`).
    Finalized,
}

impl std::str::FromStr for Finality {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "confirmations" => Ok(Self::Confirmations),
            "finalized" => Ok(Self::Finalized),
            other => Err(format!("{other:?} is not confirmations or finalized")),
        }
    }
}

pub(super) fn default_replace_after_blocks() -> u64 {
    20
}

pub(super) fn default_max_fee_gwei() -> u64 {
    200
}

pub(super) fn default_sweep_batch_size() -> usize {
    1
}

pub(super) fn default_sweep_batch_gas_cap() -> u64 {
    5_000_000
}

/// The largest `sweep_batch_size` accepted (one transaction's calldata stays well under nodes' limits).
pub const MAX_SWEEP_BATCH_SIZE: usize = 200;

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

pub(super) fn default_confirmations() -> u64 {
    2
}

pub(super) fn no_rpc_url() -> SecretString {
    SecretString::from(String::new())
}

pub(super) fn default_rpc_timeout_secs() -> u64 {
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

pub(super) fn default_log_chunk_blocks() -> u64 {
    2_000
}

pub(super) fn default_reorg_window_blocks() -> u64 {
    128
}

/// The canonical Multicall3 deployment address.
pub const MULTICALL3: Address =
    alloy::primitives::address!("cA11bde05977b3631167028862bE2a173976CA11");

pub(super) fn default_multicall3() -> Address {
    MULTICALL3
}

pub(super) fn default_rate() -> String {
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
pub(super) struct ChainsFile {
    #[serde(default)]
    pub(super) chains: Vec<ChainConfig>,
}

/// The block explorer of a well-known chain id (`explorer_url` when the chain does not set one);
/// none for local chains (31337, 1337) and unknown ids.
pub fn default_explorer_url(chain_id: u64) -> &'static str {
    match chain_id {
        1 => "https://etherscan.io",
        11_155_111 => "https://sepolia.etherscan.io",
        8453 => "https://basescan.org",
        84_532 => "https://sepolia.basescan.org",
        10 => "https://optimistic.etherscan.io",
        11_155_420 => "https://sepolia-optimism.etherscan.io",
        42_161 => "https://arbiscan.io",
        421_614 => "https://sepolia.arbiscan.io",
        137 => "https://polygonscan.com",
        80_002 => "https://amoy.polygonscan.com",
        56 => "https://bscscan.com",
        43_114 => "https://snowtrace.io",
        _ => "",
    }
}

pub(super) fn validate_chains(chains: &mut [ChainConfig]) -> Result<(), ConfigError> {
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
        if chain.explorer_url.is_empty() {
            chain.explorer_url = default_explorer_url(chain.chain_id).to_owned();
        }
        chain.explorer_url = chain.explorer_url.trim_end_matches('/').to_owned();
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
        if chain.sweep_batch_size == 0 || chain.sweep_batch_size > MAX_SWEEP_BATCH_SIZE {
            return Err(ConfigError::invalid(
                "SWEEP_BATCH_SIZE / CHAINS_FILE",
                "sweep_batch_size of 1..=200 sweeps per transaction",
                format!("chain {}: {}", chain.name, chain.sweep_batch_size),
            ));
        }
        if chain.sweep_batch_gas_cap < 100_000 {
            return Err(ConfigError::invalid(
                "SWEEP_BATCH_GAS_CAP / CHAINS_FILE",
                "sweep_batch_gas_cap of at least 100000 gas",
                format!("chain {}: {}", chain.name, chain.sweep_batch_gas_cap),
            ));
        }
        if chain.rpc_timeout_secs == 0 || chain.rpc_timeout_secs > 120 {
            return Err(ConfigError::invalid(
                var_rpc,
                "rpc_timeout_secs (RPC_TIMEOUT_SECS) of 1..=120 seconds",
                chain.rpc_timeout_secs,
            ));
        }
        if chain.rpc_max_batch.is_some_and(|n| n == 0 || n > 1000) {
            return Err(ConfigError::invalid(
                "RPC_MAX_BATCH / CHAINS_FILE",
                "rpc_max_batch of 1..=1000 requests",
                &chain.name,
            ));
        }
        if chain.rpc_max_body_bytes.is_some_and(|n| n < 10_000) {
            return Err(ConfigError::invalid(
                "RPC_MAX_BODY_BYTES / CHAINS_FILE",
                "rpc_max_body_bytes of at least 10000",
                &chain.name,
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
