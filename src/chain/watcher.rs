//! The deposit watcher: finds ERC-20 `Transfer` logs to watched deposit addresses on every configured
//! chain and token, records them (chain id, tx hash, log index, block number and hash), counts them at
//! `head - confirmations`, notices reorgs and hands confirmed deposits of finalized checkouts to the
//! ledger.
//!
//! RPC strategy (SPEC §9 "Detection at any scale"): a pass is `eth_blockNumber` plus, per token and
//! block range (`log_chunk_blocks`), one `eth_getLogs` for every `Transfer` of the token, without an
//! address filter, sent in JSON-RPC batches of at most `rpc_max_batch` requests and
//! `rpc_max_body_bytes` bytes ([`super::batch`]). Its cost follows the chain's token traffic, never the
//! number of watched addresses. A range the provider refuses as too large is split in two and asked
//! again; a range that still fails (down to one block) is recorded as a gap (`watch_gap`) and retried
//! alone by the next passes while the others go on. A chain whose token traffic is too dense for that
//! may set `watch = "addresses"`: address filters (`topic2`, [`ADDRESS_CHUNK`] addresses each) in the
//! same bounded batches, a cost that grows with the watched addresses.
//!
//! Matching: the recipients of the transfers are matched in memory against the hot set (addresses of
//! checkouts still open and of purchases not deleted: 8 bytes each, loaded once by pages and then
//! refreshed with only the checkouts created or finalized since the last pass). Checkouts leave the hot
//! set when they expire (`CHECKOUT_EXPIRY_HOURS`); their late-payment window (`LATE_PAYMENT_WATCH_DAYS`)
//! and that of deleted purchases is covered by the same logs: the recipients not in the hot set are
//! probed in the same indexed query that resolves the hot ones to their checkouts, so the window costs
//! a lookup per transfer and nothing per address.
//!
//! Identity: a deposit is one log, unique on (chain id, tx hash, log index); two equal transfers in one
//! transaction are two deposits. A transaction re-included after a reorg is matched by position (the
//! transfer's rank among that transaction's transfers of the token to the address) and moved, never
//! recorded or credited again (the ledger reference is fixed at first sighting).
//!
//! Reorgs: each pass rescans the last `reorg_window_blocks` blocks. A recorded deposit in a range the
//! pass read whose log the node no longer returns is judged by the block hash at its height
//! (`eth_getBlockByNumber`): the same hash means the node lagged or omitted the log (load-balanced RPCs
//! do) and nothing changes; another hash means a reorg: a pending deposit is dropped, a confirmed or
//! credited one is marked `reorged` ([`mark_reorged`]) and an alert raised.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::rpc::types::{Filter, Log};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::batch::{CallError, call_many};
use super::erc20::{IERC20, TRANSFER_TOPIC};
use super::{ChainClient, ChainError, Chains, addr_key, to_numeric};
use crate::config::WatchMode;
use crate::notify::{self, Channel};

/// Addresses per `eth_getLogs` filter in `addresses` mode (node limits on OR-lists are commonly 1,000).
pub const ADDRESS_CHUNK: usize = 1_000;
/// Blocks scanned below the head when a chain has no cursor and no `start_block`.
pub const INITIAL_LOOKBACK_BLOCKS: u64 = 10_000;
/// How often the hot set is rebuilt in full (dropping expired checkouts and deleted purchases).
pub const FULL_RELOAD: Duration = Duration::from_secs(600);
/// Rows per page when the hot set or the watched addresses are read.
const PAGE: i64 = 10_000;
/// Checkouts created or finalized up to this long before the last refresh are read again (an
/// initiate that committed late is not missed).
const REFRESH_SLACK_SECS: f64 = 15.0;
/// A checkout counts as covered by a pass that read the list at least this long after it began (its
/// initiate transaction committed by then).
const COVERED_AFTER_SECS: f64 = 1.0;
/// Addresses per resolving query.
const RESOLVE_CHUNK: usize = 5_000;

/// Watched deposit addresses and their checkout sessions.
pub type Watched = HashMap<Address, Uuid>;

/// The hot set's key of an address: its first 8 bytes (addresses are hash outputs, so this is already
/// uniform; a rare collision only sends one more address to the resolving query).
fn hot_key(address: &Address) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&address.0[..8]);
    u64::from_be_bytes(first)
}

/// Hashes a `u64` key as itself (the keys are already uniform).
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type HotSet = HashSet<u64, BuildHasherDefault<KeyHasher>>;

/// The watcher's in-memory hot set (see the module docs).
#[derive(Default)]
pub struct WatchList {
    hot: Arc<HotSet>,
    loaded_at: Option<Instant>,
    read_at: Option<DateTime<Utc>>,
}

/// Which addresses a scan covers.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// Every watched address; reconciles the reorg window and advances the cursor.
    All,
    /// One checkout's address (validate, finalize, topup), from the block its checkout began at (its
    /// chain's head at initiate; `None`: where the watcher's window starts) up to the head: records
    /// what it finds, nothing else. The caller has the checkout loaded and passes what the scan needs.
    Checkout {
        session: Uuid,
        address: Address,
        start_block: Option<u64>,
    },
    /// Every watched address over the blocks `[from, to]` (a rescan): records what it finds, nothing
    /// else (the cursor, gaps and recorded deposits stay as they are).
    Range { from: u64, to: u64 },
}

/// What a scan did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanReport {
    pub head: u64,
    pub from: u64,
    /// Addresses in the hot set (or the checkout's one).
    pub addresses: usize,
    pub logs: usize,
    /// Transfers to watched addresses (new or already recorded).
    pub matched: usize,
    pub new_deposits: usize,
    pub newly_confirmed: usize,
    pub dropped: usize,
    pub reorged: usize,
    /// Block ranges that could not be read (kept as gaps and retried).
    pub failed_ranges: usize,
    /// Deposits this scan saw at or below `head - confirmations` (new or newly confirmed).
    pub confirmed: Vec<i64>,
}

/// What scanning every chain did.
#[derive(Debug, Default)]
pub struct PassScan {
    /// New, newly confirmed and reorged deposits.
    pub work: usize,
    /// Chains whose RPC failed (or is off).
    pub failures: Vec<String>,
    /// Deposits seen confirmed in this pass (credited if their checkout is finalized).
    pub confirmed: Vec<i64>,
    /// The hot set was rebuilt in full.
    pub full: bool,
}

/// Scans every chain for every watched address (the hot set refreshed once for all chains, after
/// their heads).
pub async fn scan_chains(
    pool: &PgPool,
    chains: &Chains,
    late_payment_watch: Duration,
) -> Result<PassScan, ChainError> {
    let mut pass = PassScan::default();
    let mut heads = Vec::new();
    for chain in chains.iter() {
        let started = Instant::now();
        match chain.head().await {
            Ok(head) => heads.push((chain, head, started)),
            Err(e @ ChainError::Rpc { .. }) => {
                tracing::warn!(chain = chain.name(), error = %e, "deposit scan failed; retrying next pass");
                chain_failed(chain, 1);
                pass.failures.push(e.to_string());
            }
            Err(e) => return Err(e),
        }
    }
    if heads.is_empty() {
        return Ok(pass);
    }
    let (hot, read_at, full) = refresh_watch_list(pool, chains).await?;
    pass.full = full;
    for (chain, head, started) in heads {
        let labels = [("chain", chain.id().to_string())];
        metrics::gauge!("vendor_watched_addresses", &labels).set(hot.len() as f64);
        let source = Source::Hot {
            hot: &hot,
            late: late_payment_watch,
        };
        match scan_at(pool, chain, Scope::All, head, source, Some(read_at)).await {
            Ok(report) => {
                pass.work += report.new_deposits + report.newly_confirmed + report.reorged;
                pass.confirmed.extend(report.confirmed);
                metrics::histogram!("vendor_watcher_pass_seconds", &labels)
                    .record(started.elapsed().as_secs_f64());
                if report.failed_ranges == 0 {
                    metrics::gauge!("vendor_watcher_last_pass_timestamp_seconds", &labels)
                        .set(Utc::now().timestamp() as f64);
                } else {
                    chain_failed(chain, report.failed_ranges);
                }
            }
            Err(e @ ChainError::Rpc { .. }) => {
                tracing::warn!(chain = chain.name(), error = %e, "deposit scan failed; retrying next pass");
                chain_failed(chain, 1);
                pass.failures.push(e.to_string());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(pass)
}

/// Counts `n` failures of a chain's watcher (a pass or block ranges), and starts its "last pass"
/// clock at the first pass so that a watcher that never succeeds is alerted on too.
fn chain_failed(chain: &ChainClient, n: usize) {
    let labels = [("chain", chain.id().to_string())];
    metrics::counter!("vendor_watcher_failures_total", &labels).increment(n as u64);
    chain.watcher_started();
}

impl ChainClient {
    /// Sets the chain's "last pass" gauge to now the first time the watcher runs on it.
    fn watcher_started(&self) {
        static STARTED: std::sync::OnceLock<std::sync::Mutex<HashSet<u64>>> =
            std::sync::OnceLock::new();
        let started = STARTED.get_or_init(Default::default);
        if let Ok(mut ids) = started.lock()
            && ids.insert(self.id())
        {
            let labels = [("chain", self.id().to_string())];
            metrics::gauge!("vendor_watcher_last_pass_timestamp_seconds", &labels)
                .set(Utc::now().timestamp() as f64);
        }
    }
}

/// The hot set, refreshed with the checkouts created or finalized since the last refresh (rebuilt by
/// pages every [`FULL_RELOAD`]). Returns it with the database time the refresh read at.
async fn refresh_watch_list(
    pool: &PgPool,
    chains: &Chains,
) -> Result<(Arc<HotSet>, DateTime<Utc>, bool), ChainError> {
    let mut list = chains.watch_list.lock().await;
    let now = sqlx::query_scalar!(r#"select now() as "now!""#)
        .fetch_one(pool)
        .await?;
    let mut full = false;
    match (list.loaded_at, list.read_at) {
        (Some(loaded), Some(since)) if loaded.elapsed() < FULL_RELOAD => {
            let fresh = recent_addresses(pool, since).await?;
            if !fresh.is_empty() {
                let hot = Arc::make_mut(&mut list.hot);
                hot.extend(fresh.iter().map(hot_key));
            }
        }
        _ => {
            // Built beside the old set, then swapped (a pass never sees half a set).
            let hot = load_hot(pool).await?;
            list.hot = Arc::new(hot);
            list.loaded_at = Some(Instant::now());
            full = true;
            tracing::debug!(addresses = list.hot.len(), "hot set loaded");
        }
    }
    list.read_at = Some(now);
    Ok((list.hot.clone(), now, full))
}

/// Drops the in-memory hot set; the next pass rebuilds it.
pub async fn reload_watch_list(chains: &Chains) {
    let mut list = chains.watch_list.lock().await;
    *list = WatchList::default();
}

/// Addresses of the checkouts created or finalized since `since` (less the slack), by pages.
async fn recent_addresses(pool: &PgPool, since: DateTime<Utc>) -> Result<Vec<Address>, ChainError> {
    let from = since - chrono::Duration::milliseconds((REFRESH_SLACK_SECS * 1000.0) as i64);
    let mut out = Vec::new();
    let (mut at, mut after) = (from, String::new());
    loop {
        let rows = sqlx::query!(
            "select deposit_address, created_at from checkout
             where (created_at, deposit_address) > ($1, $2)
             order by created_at, deposit_address limit $3",
            at,
            after,
            PAGE
        )
        .fetch_all(pool)
        .await?;
        let n = rows.len();
        for r in rows {
            out.extend(r.deposit_address.parse::<Address>().ok());
            (at, after) = (r.created_at, r.deposit_address);
        }
        if n < usize::try_from(PAGE).unwrap_or(usize::MAX) {
            break;
        }
    }
    // Finalized since (a checkout finalized after it expired comes back into the hot set).
    let finalized = sqlx::query_scalar!(
        "select deposit_address from checkout where finalized_at > $1",
        from
    )
    .fetch_all(pool)
    .await?;
    out.extend(finalized.iter().filter_map(|a| a.parse::<Address>().ok()));
    Ok(out)
}

/// The hot set: checkouts not expired and not finalized, and the checkouts of purchases not deleted,
/// read by pages along an index.
async fn load_hot(pool: &PgPool) -> Result<HotSet, ChainError> {
    let mut hot = HotSet::default();
    let page = usize::try_from(PAGE).unwrap_or(usize::MAX);
    let (mut at, mut after) = (DateTime::<Utc>::UNIX_EPOCH, String::new());
    loop {
        let rows = sqlx::query!(
            "select deposit_address, expires_at from checkout
             where purchase_id is null and expires_at > now() and (expires_at, deposit_address) > ($1, $2)
             order by expires_at, deposit_address limit $3",
            at,
            after,
            PAGE
        )
        .fetch_all(pool)
        .await?;
        let n = rows.len();
        for r in rows {
            if let Ok(address) = r.deposit_address.parse::<Address>() {
                hot.insert(hot_key(&address));
            }
            (at, after) = (r.expires_at, r.deposit_address);
        }
        if n < page {
            break;
        }
    }
    let mut after = String::new();
    loop {
        let rows = sqlx::query_scalar!(
            "select c.deposit_address from checkout c join purchase p on p.purchase_id = c.purchase_id
             where p.status <> 'deleted' and c.deposit_address > $1
             order by c.deposit_address limit $2",
            after,
            PAGE
        )
        .fetch_all(pool)
        .await?;
        let n = rows.len();
        for address in rows {
            if let Ok(parsed) = address.parse::<Address>() {
                hot.insert(hot_key(&parsed));
            }
            after = address;
        }
        if n < page {
            break;
        }
    }
    Ok(hot)
}

/// Of `addresses`, those watched now, with their checkout sessions: open checkouts and their
/// late-payment window, finalized purchases that still exist, and deleted purchases for `late` after
/// their deletion (late payments there are swept and reported, never credited). One indexed lookup
/// per address (the unique index on the deposit address).
async fn resolve(
    pool: &PgPool,
    addresses: &[Address],
    late: Duration,
) -> Result<Watched, ChainError> {
    let mut out = Watched::new();
    for part in addresses.chunks(RESOLVE_CHUNK) {
        let keys: Vec<String> = part.iter().map(|a| addr_key(*a)).collect();
        let rows = sqlx::query!(
            r#"select c.deposit_address, c.checkout_session_id
               from checkout c left join purchase p on p.purchase_id = c.purchase_id
               where c.deposit_address = any($1)
                 and (c.watch_until > now()
                      or (p.purchase_id is not null
                          and (p.status <> 'deleted' or p.status_changed_at > now() - make_interval(secs => $2))))"#,
            &keys,
            late.as_secs_f64()
        )
        .fetch_all(pool)
        .await?;
        for r in rows {
            if let Ok(address) = r.deposit_address.parse::<Address>() {
                out.insert(address, r.checkout_session_id);
            }
        }
    }
    Ok(out)
}

/// Every watched address (`addresses` mode), by pages along the deposit address index.
async fn watched_addresses(pool: &PgPool, late: Duration) -> Result<Vec<Address>, ChainError> {
    let mut out = Vec::new();
    let mut after = String::new();
    let page = usize::try_from(PAGE).unwrap_or(usize::MAX);
    loop {
        let rows = sqlx::query_scalar!(
            r#"select c.deposit_address
               from checkout c left join purchase p on p.purchase_id = c.purchase_id
               where c.deposit_address > $1
                 and (c.watch_until > now()
                      or (p.purchase_id is not null
                          and (p.status <> 'deleted' or p.status_changed_at > now() - make_interval(secs => $2))))
               order by c.deposit_address limit $3"#,
            after,
            late.as_secs_f64(),
            PAGE
        )
        .fetch_all(pool)
        .await?;
        let n = rows.len();
        for address in rows {
            out.extend(address.parse::<Address>().ok());
            after = address;
        }
        if n < page {
            break;
        }
    }
    Ok(out)
}

/// Where a scan's addresses come from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// A full pass: the hot set, and the late-payment window probed by lookup.
    Hot { hot: &'a HotSet, late: Duration },
    /// One checkout's address, and the block its checkout began at on this chain (if recorded).
    One(&'a Watched, Option<u64>),
}

/// Scans one chain for `scope`'s addresses. Reads the head before the address list, so a checkout
/// created after the list was read cannot have been paid in a block the pass treats as scanned.
#[tracing::instrument(skip_all, fields(chain = chain.name()), err)]
pub async fn scan(
    pool: &PgPool,
    chain: &ChainClient,
    scope: Scope,
) -> Result<ScanReport, ChainError> {
    let head = chain.head().await?;
    match scope {
        Scope::All | Scope::Range { .. } => {
            let hot = load_hot(pool).await?;
            let source = Source::Hot {
                hot: &hot,
                late: chain.late_payment_watch,
            };
            scan_at(pool, chain, scope, head, source, None).await
        }
        Scope::Checkout {
            session,
            address,
            start_block,
        } => {
            let watched: Watched = HashMap::from([(address, session)]);
            scan_at(
                pool,
                chain,
                scope,
                head,
                Source::One(&watched, start_block),
                None,
            )
            .await
        }
    }
}

/// What a rescan found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rescanned {
    pub from: u64,
    /// The last block read (the requested end, or the head when it was above it).
    pub to: u64,
    pub logs: usize,
    /// Transfers to watched addresses in the range (recorded before or now).
    pub matched: usize,
    pub new_deposits: usize,
    /// Deposits seen confirmed and not yet credited (to credit if their checkout is finalized).
    pub confirmed: Vec<i64>,
}

/// Re-reads the Transfer logs of every watched address over `[from, to]` (`to` defaults to the
/// head) and records what the watcher missed, idempotently: a transfer already recorded is matched by
/// its position and never recorded or credited twice. The range is read in windows of one JSON-RPC
/// batch of the chain's `log_chunk_blocks` ranges (each split again when the provider refuses it as
/// too large); each window is committed before the next is read, so an interrupted rescan can be
/// resumed from the last block `progress` was told about.
pub async fn rescan(
    pool: &PgPool,
    chain: &ChainClient,
    from: u64,
    to: Option<u64>,
    mut progress: impl FnMut(u64, u64),
) -> Result<Rescanned, ChainError> {
    let head = chain.head().await?;
    let to = to.unwrap_or(head).min(head);
    if from > to {
        return Err(ChainError::Invalid(format!(
            "from_block {from} is above the last block to read ({to}; the head is {head})"
        )));
    }
    let tokens = chain.config.tokens.len().max(1);
    let per_window = (chain.batch_limit() / tokens).max(1) as u64;
    let window = chain
        .config
        .log_chunk_blocks
        .max(1)
        .saturating_mul(per_window);
    let empty = HotSet::default();
    let source = Source::Hot {
        hot: &empty,
        late: chain.late_payment_watch,
    };
    let mut out = Rescanned {
        from,
        to,
        ..Default::default()
    };
    for (start, end) in chunks(from, to, window) {
        let scope = Scope::Range {
            from: start,
            to: end,
        };
        let report = scan_at(pool, chain, scope, head, source, None).await?;
        out.logs += report.logs;
        out.matched += report.matched;
        out.new_deposits += report.new_deposits;
        out.confirmed.extend(report.confirmed);
        progress(end, to);
    }
    Ok(out)
}

/// Block ranges `[from, to]` in chunks of at most `chunk` blocks.
fn chunks(from: u64, to: u64, chunk: u64) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut start = from;
    while start <= to {
        let end = to.min(start.saturating_add(chunk.max(1) - 1));
        out.push((start, end));
        if end == u64::MAX {
            break;
        }
        start = end + 1;
    }
    out
}

/// A failed block range: `(from, to, error)`.
type Failed = (u64, u64, String);

/// Scans one chain at `head` for `source`'s addresses (read after `head`). `read_at`: when a full pass
/// read the list (recorded for validate's freshness check).
async fn scan_at(
    pool: &PgPool,
    chain: &ChainClient,
    scope: Scope,
    head: u64,
    source: Source<'_>,
    read_at: Option<DateTime<Utc>>,
) -> Result<ScanReport, ChainError> {
    let safe = chain.safe_block(head);
    let chain_id = i64::try_from(chain.id()).map_err(|_| ChainError::Invalid("chain id".into()))?;
    let cursor = sqlx::query_scalar!(
        "select scanned_to from chain_cursor where chain_id = $1",
        chain_id
    )
    .fetch_optional(pool)
    .await?;
    let cursor = match cursor {
        Some(c) => u64::try_from(c).unwrap_or(0),
        None => match chain.config.start_block {
            Some(start) => start.saturating_sub(1),
            None => head.saturating_sub(chain.config.reorg_window_blocks + INITIAL_LOOKBACK_BLOCKS),
        },
    };
    let window = (cursor + 1).min(head.saturating_sub(chain.config.reorg_window_blocks));
    // A checkout's own scan reads from the block its checkout began at: a log the node omitted while
    // the watcher read those blocks is still found (SPEC §9).
    let (from, to) = match (scope, source) {
        (Scope::Range { from, to }, _) => (from, to.min(head)),
        (_, Source::One(_, Some(start))) => (window.min(start), head),
        _ => (window, head),
    };
    let tokens: Vec<Address> = chain.config.tokens.iter().map(|t| t.address).collect();

    let mut report = ScanReport {
        head,
        from,
        ..Default::default()
    };
    // The ranges to read: the window up to the head, and the gaps earlier full passes left.
    let mut ranges = chunks(from, to, chain.config.log_chunk_blocks);
    // (A checkout's own scan reads them too: validate does not answer from the database while a
    // chain has one. A rescan reads only its range.)
    let gaps: Vec<(u64, u64)> = if let Scope::Range { .. } = scope {
        Vec::new()
    } else {
        sqlx::query!(
            "select from_block, to_block from watch_gap where chain_id = $1 order by from_block",
            chain_id
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .filter_map(|g| {
            Some((
                u64::try_from(g.from_block).ok()?,
                u64::try_from(g.to_block).ok()?,
            ))
        })
        .collect()
    };
    for (start, end) in &gaps {
        let end = (*end).min(from.saturating_sub(1));
        if *start <= end {
            ranges.extend(chunks(*start, end, chain.config.log_chunk_blocks));
        }
    }

    // Which addresses the logs are read for, and whether a recorded deposit's address was covered.
    let (logs, failed, filtered): (Vec<Log>, Vec<Failed>, Option<HashSet<Address>>) =
        match (source, chain.config.watch) {
            (Source::One(watched, _), _) => {
                report.addresses = watched.len();
                let addresses: Vec<Address> = watched.keys().copied().collect();
                let (logs, failed) = if addresses.is_empty() {
                    (Vec::new(), Vec::new())
                } else {
                    read_logs(chain, &tokens, &addresses, &ranges).await
                };
                (logs, failed, Some(addresses.into_iter().collect()))
            }
            (Source::Hot { hot, .. }, WatchMode::Logs) => {
                report.addresses = hot.len();
                let (logs, failed) = read_logs(chain, &tokens, &[], &ranges).await;
                (logs, failed, None)
            }
            (Source::Hot { hot, late }, WatchMode::Addresses) => {
                report.addresses = hot.len();
                let addresses = watched_addresses(pool, late).await?;
                let (logs, failed) = if addresses.is_empty() {
                    (Vec::new(), Vec::new())
                } else {
                    read_logs(chain, &tokens, &addresses, &ranges).await
                };
                (logs, failed, Some(addresses.into_iter().collect()))
            }
        };
    if let Scope::Checkout { .. } | Scope::Range { .. } = scope
        && let Some((start, end, error)) = failed.first()
    {
        return Err(chain.rpc_error(format!(
            "blocks {start} to {end} could not be read: {error}"
        )));
    }
    report.logs = logs.len();
    report.failed_ranges = failed.len();
    for (start, end, error) in &failed {
        tracing::warn!(chain = chain.name(), from = start, to = end, error = %error, "a block range could not be read; retrying it alone next pass");
    }

    // Transfers in log order, each with its rank among its transaction's transfers of the same token
    // to the same address (how a re-included transaction is recognised).
    let mut found: Vec<FoundTransfer> = logs.iter().filter_map(|l| parse_log(chain, l)).collect();
    found.sort_by_key(|f| (f.block_number, f.log_index));
    found.dedup_by_key(|f| (f.block_number, f.log_index));
    let mut ranks: HashMap<(B256, Address, Address), i32> = HashMap::new();
    let ordinals: Vec<i32> = found
        .iter()
        .map(|f| {
            let rank = ranks.entry((f.tx_hash, f.token, f.to)).or_insert(0);
            *rank += 1;
            *rank - 1
        })
        .collect();

    // Recipients matched: in memory against the hot set; the others probed (late-payment window).
    let watched: Watched = match source {
        Source::One(watched, _) => watched.clone(),
        Source::Hot { hot, late } => {
            let mut recipients: Vec<Address> = found.iter().map(|f| f.to).collect();
            recipients.sort_unstable();
            recipients.dedup();
            let (hits, others): (Vec<Address>, Vec<Address>) = recipients
                .into_iter()
                .partition(|a| hot.contains(&hot_key(a)));
            let mut watched = resolve(pool, &hits, late).await?;
            watched.extend(resolve(pool, &others, late).await?);
            watched
        }
    };

    let mut tx = pool.begin().await?;
    // Serialise passes over one chain (several replicas, or a validate racing the watcher).
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtext('vendor_server.watch'), $1::int)",
        i32::try_from(chain.id() % 2_147_483_647).unwrap_or(0)
    )
    .execute(&mut *tx)
    .await?;
    for (found, ordinal) in found.iter().zip(ordinals) {
        let Some(session) = watched.get(&found.to) else {
            continue;
        };
        let Some(token) = chain.token_by_address(found.token) else {
            continue;
        };
        report.matched += 1;
        let micros = chain.usd_value(token, found.value).ok_or_else(|| {
            ChainError::Invalid(format!("deposit {} is too large to value", found.tx_hash))
        })?;
        let status = if found.block_number <= safe {
            "confirmed"
        } else {
            "pending"
        };
        let tx_hash = format!("{:#x}", found.tx_hash);
        let reference = format!("deposit:{}:{tx_hash}:{}", chain.id(), found.log_index);
        let row = sqlx::query!(
            r#"insert into deposit (chain_id, tx_hash, log_index, block_number, block_hash, token_address,
                   token_symbol, from_address, deposit_address, checkout_session_id, amount_units,
                   amount_micros, status, reference, ordinal)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
               on conflict (chain_id, tx_hash, token_address, deposit_address, ordinal) do update set
                   block_number = excluded.block_number,
                   block_hash = excluded.block_hash,
                   log_index = excluded.log_index,
                   status = case
                       when deposit.ledger_entry_id is not null then 'credited'
                       else excluded.status end,
                   reorged_at = null
               returning deposit_id, (xmax = 0) as "inserted!",
                   (select d.status from deposit d where d.deposit_id = deposit.deposit_id) as "before""#,
            chain_id,
            tx_hash,
            i64::try_from(found.log_index).unwrap_or(i64::MAX),
            i64::try_from(found.block_number).unwrap_or(i64::MAX),
            format!("{:#x}", found.block_hash),
            addr_key(found.token),
            token.symbol,
            addr_key(found.from),
            addr_key(found.to),
            session,
            to_numeric(found.value),
            micros.0,
            status,
            reference,
            ordinal,
        )
        .fetch_one(&mut *tx)
        .await?;
        if status == "confirmed" && row.before.as_deref() != Some("credited") {
            report.confirmed.push(row.deposit_id);
        }
        if row.inserted {
            crate::telemetry::deposit_detected(chain_id, micros.0);
            report.new_deposits += 1;
            if status == "confirmed" {
                report.newly_confirmed += 1;
            }
        } else {
            match row.before.as_deref() {
                Some("pending") if status == "confirmed" => report.newly_confirmed += 1,
                Some("reorged") => tracing::warn!(%tx_hash, "reorged deposit is back on chain"),
                _ => {}
            }
        }
    }

    if let Scope::All = scope {
        let present: HashSet<(B256, Address, Address)> =
            found.iter().map(|f| (f.tx_hash, f.to, f.token)).collect();
        let read = Coverage {
            from,
            failed: &failed,
            addresses: filtered.as_ref(),
            present: &present,
        };
        reconcile_missing(&mut tx, chain, chain_id, &read, &mut report).await?;
        // The gaps retried in this pass are replaced by what failed again (at or below the safe
        // block: above it the next pass reads again anyway).
        let retried: Vec<i64> = gaps
            .iter()
            .filter_map(|(start, _)| i64::try_from(*start).ok())
            .collect();
        sqlx::query!(
            "delete from watch_gap where chain_id = $1 and from_block = any($2)",
            chain_id,
            &retried
        )
        .execute(&mut *tx)
        .await?;
        for (start, end, error) in &failed {
            let end = (*end).min(safe);
            if *start > end {
                continue;
            }
            sqlx::query!(
                "insert into watch_gap (chain_id, from_block, to_block, last_error)
                 values ($1, $2, $3, $4)
                 on conflict (chain_id, from_block) do update set
                     to_block = greatest(watch_gap.to_block, excluded.to_block),
                     attempts = watch_gap.attempts + 1,
                     last_error = excluded.last_error",
                chain_id,
                i64::try_from(*start).unwrap_or(i64::MAX),
                i64::try_from(end).unwrap_or(i64::MAX),
                error.chars().take(500).collect::<String>(),
            )
            .execute(&mut *tx)
            .await?;
        }
        let new_cursor = i64::try_from(safe.max(cursor)).unwrap_or(i64::MAX);
        sqlx::query!(
            "insert into chain_cursor (chain_id, scanned_to, scanned_at) values ($1, $2, $3)
             on conflict (chain_id) do update set
                 scanned_to = greatest(chain_cursor.scanned_to, excluded.scanned_to),
                 scanned_at = greatest(chain_cursor.scanned_at, excluded.scanned_at)",
            chain_id,
            new_cursor,
            read_at
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(report)
}

/// One `eth_getLogs` to ask: Transfer logs of `tokens` in `[from, to]`, to `topics` when some.
#[derive(Clone)]
struct LogQuery {
    from: u64,
    to: u64,
    tokens: Vec<Address>,
    topics: Option<Arc<Vec<B256>>>,
}

impl LogQuery {
    fn filter(&self) -> Filter {
        let filter = Filter::new()
            .address(self.tokens.clone())
            .event_signature(TRANSFER_TOPIC)
            .from_block(self.from)
            .to_block(self.to);
        match &self.topics {
            Some(topics) => filter.topic2(topics.as_ref().clone()),
            None => filter,
        }
    }
}

/// Reads the Transfer logs of `tokens` over `ranges`: per token without an address filter when
/// `addresses` is empty, else all tokens with the addresses as `topic2` filters of [`ADDRESS_CHUNK`].
/// Requests go out in bounded batches; a range refused as too large is split in two and asked again,
/// and one that still fails is returned as failed (every token's range of those blocks).
async fn read_logs(
    chain: &ChainClient,
    tokens: &[Address],
    addresses: &[Address],
    ranges: &[(u64, u64)],
) -> (Vec<Log>, Vec<Failed>) {
    let mut queue: Vec<LogQuery> = Vec::new();
    if tokens.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let topic_sets: Vec<Option<Arc<Vec<B256>>>> = if addresses.is_empty() {
        vec![None]
    } else {
        addresses
            .chunks(ADDRESS_CHUNK)
            .map(|part| Some(Arc::new(part.iter().map(|a| a.into_word()).collect())))
            .collect()
    };
    for &(from, to) in ranges {
        for topics in &topic_sets {
            if topics.is_none() {
                for token in tokens {
                    queue.push(LogQuery {
                        from,
                        to,
                        tokens: vec![*token],
                        topics: None,
                    });
                }
            } else {
                queue.push(LogQuery {
                    from,
                    to,
                    tokens: tokens.to_vec(),
                    topics: topics.clone(),
                });
            }
        }
    }
    let mut logs = Vec::new();
    let mut failed: Vec<Failed> = Vec::new();
    while !queue.is_empty() {
        let round = std::mem::take(&mut queue);
        let params: Vec<(Filter,)> = round.iter().map(|q| (q.filter(),)).collect();
        let answers = call_many::<_, Vec<Log>>(chain, "eth_getLogs", &params).await;
        for (query, answer) in round.into_iter().zip(answers) {
            match answer {
                Ok(found) => logs.extend(found),
                Err(e) if e.too_large() && query.from < query.to => {
                    let mid = query.from + (query.to - query.from) / 2;
                    queue.push(LogQuery {
                        to: mid,
                        ..query.clone()
                    });
                    queue.push(LogQuery {
                        from: mid + 1,
                        ..query
                    });
                }
                Err(e) => failed.push((query.from, query.to, failure(&e))),
            }
        }
    }
    failed.sort_by_key(|f| (f.0, f.1));
    failed.dedup_by(|b, a| {
        // Merge overlapping or adjacent failures (several tokens of one range).
        if b.0 <= a.1.saturating_add(1) {
            a.1 = a.1.max(b.1);
            true
        } else {
            false
        }
    });
    (logs, failed)
}

fn failure(e: &CallError) -> String {
    e.to_string()
}

/// `eth_getLogs` for Transfer logs of `tokens` to `addresses` in `[from, to]` (address filters of
/// [`ADDRESS_CHUNK`], ranges of the chain's `log_chunk_blocks`, bounded batches, ranges split when
/// refused as too large). Fails when a range cannot be read.
pub async fn fetch_logs(
    chain: &ChainClient,
    tokens: &[Address],
    addresses: &[Address],
    from: u64,
    to: u64,
) -> Result<Vec<Log>, ChainError> {
    if addresses.is_empty() {
        return Ok(Vec::new());
    }
    let ranges = chunks(from, to, chain.config.log_chunk_blocks);
    let (logs, failed) = read_logs(chain, tokens, addresses, &ranges).await;
    match failed.first() {
        Some((_, _, error)) => Err(chain.rpc_error(error)),
        None => Ok(logs),
    }
}

/// What a full pass read: the blocks from `from` up (less the `failed` ranges), the addresses
/// (`None`: every address) and the transfers present there.
struct Coverage<'a> {
    from: u64,
    failed: &'a [Failed],
    addresses: Option<&'a HashSet<Address>>,
    present: &'a HashSet<(B256, Address, Address)>,
}

impl Coverage<'_> {
    /// Whether the pass read the logs that would show this deposit.
    fn covers(&self, block: u64, address: &Address) -> bool {
        block >= self.from
            && !self
                .failed
                .iter()
                .any(|(s, e, _)| (*s..=*e).contains(&block))
            && self.addresses.is_none_or(|set| set.contains(address))
    }
}

#[derive(Debug, serde::Deserialize)]
struct BlockHashOnly {
    hash: B256,
}

/// The canonical block hash at each height (`None`: the node does not have the block yet).
async fn block_hashes(
    chain: &ChainClient,
    heights: &[u64],
) -> Result<HashMap<u64, Option<B256>>, ChainError> {
    let params: Vec<(String, bool)> = heights.iter().map(|h| (format!("{h:#x}"), false)).collect();
    let answers =
        call_many::<_, Option<BlockHashOnly>>(chain, "eth_getBlockByNumber", &params).await;
    let mut out = HashMap::new();
    for (height, answer) in heights.iter().zip(answers) {
        let block = answer.map_err(|e| chain.rpc_error(e))?;
        out.insert(*height, block.map(|b| b.hash));
    }
    Ok(out)
}

/// Recorded deposits in the blocks this pass read whose log the node did not return: decided by the
/// block hash at their height, never by the missing log alone.
async fn reconcile_missing(
    tx: &mut sqlx::PgConnection,
    chain: &ChainClient,
    chain_id: i64,
    read: &Coverage<'_>,
    report: &mut ScanReport,
) -> Result<(), ChainError> {
    // Candidates without locks, then only the missing ones locked.
    let candidates: Vec<i64> = sqlx::query!(
        "select deposit_id, deposit_address, block_number, tx_hash, token_address from deposit
         where chain_id = $1 and block_number >= $2 and status in ('pending', 'confirmed', 'credited')",
        chain_id,
        i64::try_from(read.from).unwrap_or(i64::MAX),
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .filter(|r| {
        let (Ok(address), Ok(tx_hash), Ok(token)) = (
            r.deposit_address.parse::<Address>(),
            r.tx_hash.parse::<B256>(),
            r.token_address.parse::<Address>(),
        ) else {
            return false;
        };
        let block = u64::try_from(r.block_number).unwrap_or_default();
        read.covers(block, &address) && !read.present.contains(&(tx_hash, address, token))
    })
    .map(|r| r.deposit_id)
    .collect();
    if candidates.is_empty() {
        return Ok(());
    }
    let missing = sqlx::query!(
        "select deposit_id, status, tx_hash, reference, amount_micros, deposit_address, purchase_id,
                block_number, block_hash
         from deposit
         where deposit_id = any($1) and status in ('pending', 'confirmed', 'credited')
         order by deposit_id
         for update",
        &candidates
    )
    .fetch_all(&mut *tx)
    .await?;
    if missing.is_empty() {
        return Ok(());
    }
    let mut heights: Vec<u64> = missing
        .iter()
        .filter_map(|r| u64::try_from(r.block_number).ok())
        .collect();
    heights.sort_unstable();
    heights.dedup();
    let canonical = block_hashes(chain, &heights).await?;
    for row in missing {
        let height = u64::try_from(row.block_number).unwrap_or_default();
        match canonical.get(&height).copied().flatten() {
            Some(hash) if format!("{hash:#x}") != row.block_hash => {}
            Some(_) => {
                tracing::warn!(
                    chain = chain.name(),
                    tx_hash = row.tx_hash,
                    block = row.block_number,
                    "the node omitted a recorded deposit's log but its block is unchanged (lagging or load-balanced RPC); keeping it"
                );
                continue;
            }
            None => {
                tracing::warn!(
                    chain = chain.name(),
                    block = row.block_number,
                    "the node does not have a recorded deposit's block yet; deciding next pass"
                );
                continue;
            }
        }
        if row.status == "pending" {
            sqlx::query!("delete from deposit where deposit_id = $1", row.deposit_id)
                .execute(&mut *tx)
                .await?;
            report.dropped += 1;
            continue;
        }
        let reorged = Reorged {
            deposit_id: row.deposit_id,
            credited: row.status == "credited",
            tx_hash: row.tx_hash,
            reference: row.reference,
            amount_micros: row.amount_micros,
            deposit_address: row.deposit_address,
            purchase_id: row.purchase_id,
            block_number: row.block_number,
        };
        mark_reorged(&mut *tx, chain, &reorged).await?;
        report.reorged += 1;
    }
    Ok(())
}

/// A confirmed (or credited) deposit whose block left the canonical chain.
#[derive(Debug, Clone)]
pub struct Reorged {
    pub deposit_id: i64,
    /// It was already posted to its purchase's ledger.
    pub credited: bool,
    pub tx_hash: String,
    pub reference: String,
    pub amount_micros: i64,
    pub deposit_address: String,
    pub purchase_id: Option<Uuid>,
    pub block_number: i64,
}

/// The one place a deposit becomes `reorged` (in the watcher's transaction, the row locked): the
/// status, the reversal of its credit (one `reversal` ledger entry, if it was credited), the log
/// line and the operator alert.
pub async fn mark_reorged(
    tx: &mut sqlx::PgConnection,
    chain: &ChainClient,
    row: &Reorged,
) -> Result<(), ChainError> {
    sqlx::query!(
        "update deposit set status = 'reorged', reorged_at = now() where deposit_id = $1",
        row.deposit_id
    )
    .execute(&mut *tx)
    .await?;
    crate::billing::ledger::reverse_deposit(tx, row.deposit_id).await?;
    tracing::error!(
        chain = chain.name(),
        tx_hash = row.tx_hash,
        credited = row.credited,
        "a confirmed deposit's block left the chain"
    );
    let payload = serde_json::json!({
        "message": format!(
            "Deposit {} on {} ({} USD to {}) was {} but its block {} is no longer on the chain. A credit was reversed (deposit.reversed); it is credited again if the transfer comes back. Check the treasury.",
            row.reference,
            chain.name(),
            crate::domain::money::UsdMicros(row.amount_micros),
            row.deposit_address,
            if row.credited { "credited" } else { "confirmed" },
            row.block_number
        ),
        "chain_id": chain.id(),
        "tx_hash": row.tx_hash,
        "reference": row.reference,
        "credited": row.credited,
    });
    let purchase = row.purchase_id.map(crate::domain::ids::PurchaseId);
    notify::enqueue(
        &mut *tx,
        Channel::Alert,
        "deposit.reorged",
        purchase,
        &payload,
        Some(&format!(
            "deposit.reorged:{}:{}",
            row.deposit_id, row.block_number
        )),
    )
    .await?;
    Ok(())
}

/// Whether every configured chain's last full watcher pass read its address list less than `fresh`
/// ago and after the checkout began (`created_at`, with a margin), and left no block range unread:
/// then the database already holds what a scan of the checkout's address would find, and validate
/// needs no RPC call.
pub async fn fresh_for(
    pool: &PgPool,
    chains: &super::Chains,
    created_at: DateTime<Utc>,
    fresh: Duration,
) -> Result<bool, ChainError> {
    let ids: Vec<i64> = chains
        .iter()
        .filter_map(|c| i64::try_from(c.id()).ok())
        .collect();
    if ids.is_empty() || fresh.is_zero() {
        return Ok(false);
    }
    let fresh_chains = sqlx::query_scalar!(
        r#"select count(*) as "n!" from chain_cursor cc
           where cc.chain_id = any($2)
             and cc.scanned_at > now() - make_interval(secs => $3)
             and cc.scanned_at > $1::timestamptz + make_interval(secs => $4)
             and not exists (select 1 from watch_gap g where g.chain_id = cc.chain_id)"#,
        created_at,
        &ids,
        fresh.as_secs_f64(),
        COVERED_AFTER_SECS
    )
    .fetch_one(pool)
    .await?;
    Ok(usize::try_from(fresh_chains).unwrap_or(0) == ids.len())
}

struct FoundTransfer {
    token: Address,
    from: Address,
    to: Address,
    value: U256,
    tx_hash: B256,
    log_index: u64,
    block_number: u64,
    block_hash: B256,
}

fn parse_log(chain: &ChainClient, log: &Log) -> Option<FoundTransfer> {
    if log.removed {
        return None;
    }
    let decoded = log.log_decode::<IERC20::Transfer>().ok()?;
    let transfer = decoded.inner.data;
    if transfer.value.is_zero() || chain.token_by_address(log.inner.address).is_none() {
        return None;
    }
    Some(FoundTransfer {
        token: log.inner.address,
        from: transfer.from,
        to: transfer.to,
        value: transfer.value,
        tx_hash: log.transaction_hash?,
        log_index: log.log_index?,
        block_number: log.block_number?,
        block_hash: log.block_hash?,
    })
}

/// `purchase.pending_deposit_at` is set while a deposit to the purchase's address is seen but not
/// yet confirmed, and cleared once none is.
pub async fn update_pending_markers(pool: &PgPool) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update purchase set pending_deposit_at = now()
         where pending_deposit_at is null and purchase_id in (
             select c.purchase_id from deposit d join checkout c using (checkout_session_id)
             where d.status = 'pending' and c.purchase_id is not null)"
    )
    .execute(pool)
    .await?;
    sqlx::query!(
        "update purchase p set pending_deposit_at = null
         where p.pending_deposit_at is not null and not exists (
             select 1 from deposit d join checkout c using (checkout_session_id)
             where c.purchase_id = p.purchase_id and d.status = 'pending')"
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// One chain's deposit watcher as the console shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct WatcherStatus {
    /// When the last full pass (any replica) read the chain up to its head; `null` before the first.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_pass_at: Option<DateTime<Utc>>,
    /// Every block up to this one was read for every address watched then.
    pub scanned_to: Option<i64>,
    /// Block ranges that could not be read yet (retried each pass).
    pub gaps: i64,
    /// `logs` or `addresses`.
    #[schema(example = "logs")]
    pub mode: String,
}

/// Per chain (by name), the watcher's last pass and unread ranges (from the database: the same on
/// every replica).
pub async fn status(
    pool: &PgPool,
    chains: &Chains,
) -> Result<std::collections::BTreeMap<String, WatcherStatus>, ChainError> {
    let mut out = std::collections::BTreeMap::new();
    for chain in chains.iter() {
        let chain_id = i64::try_from(chain.id()).unwrap_or(i64::MAX);
        let row = sqlx::query!(
            r#"select (select scanned_at from chain_cursor where chain_id = $1) as scanned_at,
                      (select scanned_to from chain_cursor where chain_id = $1) as scanned_to,
                      (select count(*) from watch_gap where chain_id = $1) as "gaps!""#,
            chain_id
        )
        .fetch_one(pool)
        .await?;
        out.insert(
            chain.name().to_owned(),
            WatcherStatus {
                last_pass_at: row.scanned_at,
                scanned_to: row.scanned_to,
                gaps: row.gaps,
                mode: match chain.config.watch {
                    WatchMode::Logs => "logs",
                    WatchMode::Addresses => "addresses",
                }
                .to_owned(),
            },
        );
    }
    Ok(out)
}
