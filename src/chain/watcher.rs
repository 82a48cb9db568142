//! The deposit watcher: finds ERC-20 `Transfer` logs to watched deposit addresses on every configured
//! chain and token, records them (chain id, tx hash, log index, block number and hash), counts them at
//! `head - confirmations`, notices reorgs and hands confirmed deposits of finalized checkouts to the
//! ledger.
//!
//! RPC strategy (measured on anvil with 10,000 watched addresses, see the README): one pass is
//! `eth_blockNumber` plus `eth_getLogs` over the new and recent blocks, addresses chunked 1,000 per filter
//! (`topic2` OR-list) and block ranges chunked by `log_chunk_blocks`, all filters of a pass sent as
//! JSON-RPC batches. Logs carry exactly what a deposit needs (tx hash, log index, block hash) and their
//! cost does not grow with the number of idle addresses; Multicall3 balance reads would need one
//! call per token per 1,000 addresses and still could not say which transaction paid.
//!
//! Identity: a deposit is one log, unique on (chain id, tx hash, log index); two equal transfers in one
//! transaction are two deposits. A transaction re-included after a reorg is matched by position (the
//! transfer's rank among that transaction's transfers of the token to the address) and moved, never
//! recorded or credited again (the ledger reference is fixed at first sighting).
//!
//! Reorgs: each pass rescans the last `reorg_window_blocks` blocks. A recorded deposit whose log the
//! node no longer returns is judged by the block hash at its height (`eth_getBlockByNumber`): the same
//! hash means the node lagged or omitted the log (load-balanced RPCs do) and nothing changes; another
//! hash means a reorg: a pending deposit is dropped, a confirmed or credited one is marked `reorged`
//! and an alert raised (its ledger credit, if any, is never repeated).
//!
//! Cost: the watched address list is kept in memory and refreshed each pass with only the checkouts
//! created since the last pass (a full reload every few minutes drops the ones no longer watched), so
//! a pass costs what changed, not the number of historical checkouts.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::rpc::types::{Filter, Log};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use super::erc20::{IERC20, TRANSFER_TOPIC};
use super::{ChainClient, ChainError, Chains, addr_key, to_numeric};
use crate::notify::{self, Channel};

/// Addresses per `eth_getLogs` filter (node limits on OR-lists are commonly 1,000).
pub const ADDRESS_CHUNK: usize = 1_000;
/// Requests per JSON-RPC batch.
pub const MAX_BATCH: usize = 50;
/// Blocks scanned below the head when a chain has no cursor and no `start_block`.
pub const INITIAL_LOOKBACK_BLOCKS: u64 = 10_000;
/// How often the watched list is reloaded in full (dropping checkouts no longer watched).
pub const FULL_RELOAD: Duration = Duration::from_secs(300);
/// Checkouts created up to this long before the last refresh are read again (an initiate that
/// committed late is not missed).
const REFRESH_SLACK_SECS: f64 = 60.0;
/// A checkout counts as covered by a pass that read the list at least this long after it began (its
/// initiate transaction committed by then).
const COVERED_AFTER_SECS: f64 = 1.0;

/// Watched deposit addresses and their checkout sessions.
pub type Watched = HashMap<Address, Uuid>;

/// The watcher's in-memory address list (see the module docs).
#[derive(Default)]
pub struct WatchList {
    set: Arc<Watched>,
    loaded_at: Option<Instant>,
    read_at: Option<DateTime<Utc>>,
}

/// Which addresses a scan covers.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// Every watched address; reconciles the reorg window and advances the cursor.
    All,
    /// One checkout's address (validate, finalize, topup): records what it finds, nothing else.
    Checkout(Uuid),
}

/// What a scan did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanReport {
    pub head: u64,
    pub from: u64,
    pub addresses: usize,
    pub logs: usize,
    pub new_deposits: usize,
    pub newly_confirmed: usize,
    pub dropped: usize,
    pub reorged: usize,
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
    /// The watched list was reloaded in full.
    pub full: bool,
}

/// Scans every chain for every watched address (the list read once for all chains, after their
/// heads).
pub async fn scan_chains(
    pool: &PgPool,
    chains: &Chains,
    late_payment_watch: Duration,
) -> Result<PassScan, ChainError> {
    let mut pass = PassScan::default();
    let mut heads = Vec::new();
    for chain in chains.iter() {
        match chain.head().await {
            Ok(head) => heads.push((chain, head)),
            Err(e @ ChainError::Rpc { .. }) => {
                tracing::warn!(chain = chain.name(), error = %e, "deposit scan failed; retrying next pass");
                pass.failures.push(e.to_string());
            }
            Err(e) => return Err(e),
        }
    }
    if heads.is_empty() {
        return Ok(pass);
    }
    let (watched, read_at, full) = refresh_watch_list(pool, chains, late_payment_watch).await?;
    pass.full = full;
    for (chain, head) in heads {
        match scan_at(pool, chain, Scope::All, head, &watched, Some(read_at)).await {
            Ok(report) => {
                pass.work += report.new_deposits + report.newly_confirmed + report.reorged;
                pass.confirmed.extend(report.confirmed);
            }
            Err(e @ ChainError::Rpc { .. }) => {
                tracing::warn!(chain = chain.name(), error = %e, "deposit scan failed; retrying next pass");
                pass.failures.push(e.to_string());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(pass)
}

/// The watched list, refreshed with the checkouts created since the last refresh (in full every
/// [`FULL_RELOAD`]). Returns it with the database time the refresh read at.
async fn refresh_watch_list(
    pool: &PgPool,
    chains: &Chains,
    late: Duration,
) -> Result<(Arc<Watched>, DateTime<Utc>, bool), ChainError> {
    let mut list = chains.watch_list.lock().await;
    let now = sqlx::query_scalar!(r#"select now() as "now!""#)
        .fetch_one(pool)
        .await?;
    let mut full = false;
    match (list.loaded_at, list.read_at) {
        (Some(loaded), Some(since)) if loaded.elapsed() < FULL_RELOAD => {
            let rows = sqlx::query!(
                "select deposit_address, checkout_session_id from checkout
                 where created_at > $1::timestamptz - make_interval(secs => $2)",
                since,
                REFRESH_SLACK_SECS
            )
            .fetch_all(pool)
            .await?;
            if !rows.is_empty() {
                let set = Arc::make_mut(&mut list.set);
                for r in rows {
                    if let Ok(address) = r.deposit_address.parse::<Address>() {
                        set.insert(address, r.checkout_session_id);
                    }
                }
            }
        }
        _ => {
            list.set = Arc::new(load_watched(pool, late).await?);
            list.loaded_at = Some(Instant::now());
            full = true;
        }
    }
    list.read_at = Some(now);
    Ok((list.set.clone(), now, full))
}

/// Drops the in-memory watched list; the next pass reloads it in full.
pub async fn reload_watch_list(chains: &Chains) {
    let mut list = chains.watch_list.lock().await;
    *list = WatchList::default();
}

/// Every watched address: open checkouts and their late-payment window, finalized purchases that
/// still exist, and deleted purchases for `late` after their deletion (late payments there are
/// swept and reported, never credited).
async fn load_watched(pool: &PgPool, late: Duration) -> Result<Watched, ChainError> {
    let rows = sqlx::query!(
        r#"select deposit_address as "deposit_address!", checkout_session_id as "checkout_session_id!"
           from checkout where watch_until > now()
           union
           select c.deposit_address, c.checkout_session_id
           from checkout c join purchase p on p.purchase_id = c.purchase_id
           where p.status <> 'deleted' or p.status_changed_at > now() - make_interval(secs => $1)"#,
        late.as_secs_f64()
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            r.deposit_address
                .parse::<Address>()
                .ok()
                .map(|a| (a, r.checkout_session_id))
        })
        .collect())
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
    let watched = match scope {
        Scope::All => load_watched(pool, chain.late_payment_watch).await?,
        Scope::Checkout(session) => sqlx::query!(
            "select deposit_address, checkout_session_id from checkout where checkout_session_id = $1",
            session
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .filter_map(|r| {
            r.deposit_address
                .parse::<Address>()
                .ok()
                .map(|a| (a, r.checkout_session_id))
        })
        .collect(),
    };
    scan_at(pool, chain, scope, head, &watched, None).await
}

/// Scans one chain at `head` for `watched` (read after `head`). `read_at`: when a full pass read
/// the list (recorded for validate's freshness check).
async fn scan_at(
    pool: &PgPool,
    chain: &ChainClient,
    scope: Scope,
    head: u64,
    watched: &Watched,
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
    let from = (cursor + 1).min(head.saturating_sub(chain.config.reorg_window_blocks));

    let mut report = ScanReport {
        head,
        from,
        addresses: watched.len(),
        ..Default::default()
    };
    let addresses: Vec<Address> = watched.keys().copied().collect();
    let tokens: Vec<Address> = chain.config.tokens.iter().map(|t| t.address).collect();
    let logs = if addresses.is_empty() || tokens.is_empty() {
        Vec::new()
    } else {
        fetch_logs(chain, &tokens, &addresses, from, head).await?
    };
    report.logs = logs.len();

    // Transfers in log order, each with its rank among its transaction's transfers of the same token
    // to the same address (how a re-included transaction is recognised).
    let mut found: Vec<FoundTransfer> = logs.iter().filter_map(|l| parse_log(chain, l)).collect();
    found.sort_by_key(|f| (f.block_number, f.log_index));
    let mut ranks: HashMap<(B256, Address, Address), i32> = HashMap::new();
    let ordinals: Vec<i32> = found
        .iter()
        .map(|f| {
            let rank = ranks.entry((f.tx_hash, f.token, f.to)).or_insert(0);
            *rank += 1;
            *rank - 1
        })
        .collect();

    let mut tx = pool.begin().await?;
    // Serialise passes over one chain (several replicas, or a validate racing the watcher).
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtext('vendor_server.watch'), $1::int)",
        i32::try_from(chain.id() % 2_147_483_647).unwrap_or(0)
    )
    .execute(&mut *tx)
    .await?;
    let mut seen: HashSet<i64> = HashSet::new();
    for (found, ordinal) in found.iter().zip(ordinals) {
        let Some(session) = watched.get(&found.to) else {
            continue;
        };
        let Some(token) = chain.token_by_address(found.token) else {
            continue;
        };
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
        seen.insert(row.deposit_id);
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
        reconcile_missing(&mut tx, chain, chain_id, from, watched, &seen, &mut report).await?;
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

#[derive(Debug, serde::Deserialize)]
struct BlockHashOnly {
    hash: B256,
}

/// The canonical block hash at each height (`None`: the node does not have the block yet).
async fn block_hashes(
    chain: &ChainClient,
    heights: &[u64],
) -> Result<HashMap<u64, Option<B256>>, ChainError> {
    let mut out = HashMap::new();
    for group in heights.chunks(MAX_BATCH) {
        let mut batch = chain.rpc().new_batch();
        let mut waiters = Vec::with_capacity(group.len());
        for height in group {
            waiters.push((
                *height,
                batch
                    .add_call::<_, Option<BlockHashOnly>>(
                        "eth_getBlockByNumber",
                        &(format!("{height:#x}"), false),
                    )
                    .map_err(|e| chain.rpc_error(e))?,
            ));
        }
        batch.send().await.map_err(|e| chain.rpc_error(e))?;
        for (height, waiter) in waiters {
            let block = waiter.await.map_err(|e| chain.rpc_error(e))?;
            out.insert(height, block.map(|b| b.hash));
        }
    }
    Ok(out)
}

/// Recorded deposits in the rescanned window whose log the node did not return: decided by the
/// block hash at their height, never by the missing log alone.
async fn reconcile_missing(
    tx: &mut sqlx::PgConnection,
    chain: &ChainClient,
    chain_id: i64,
    from: u64,
    watched: &Watched,
    seen: &HashSet<i64>,
    report: &mut ScanReport,
) -> Result<(), ChainError> {
    // Candidates without locks (the window may hold rows of addresses no longer watched), then
    // only the missing ones locked.
    let candidates: Vec<i64> = sqlx::query!(
        "select deposit_id, deposit_address from deposit
         where chain_id = $1 and block_number >= $2 and status in ('pending', 'confirmed', 'credited')",
        chain_id,
        i64::try_from(from).unwrap_or(i64::MAX),
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .filter(|r| !seen.contains(&r.deposit_id))
    .filter(|r| {
        r.deposit_address
            .parse::<Address>()
            .is_ok_and(|a| watched.contains_key(&a))
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
        sqlx::query!(
            "update deposit set status = 'reorged', reorged_at = now() where deposit_id = $1",
            row.deposit_id
        )
        .execute(&mut *tx)
        .await?;
        crate::billing::ledger::reverse_deposit(tx, row.deposit_id).await?;
        report.reorged += 1;
        tracing::error!(
            chain = chain.name(),
            tx_hash = row.tx_hash,
            credited = row.status == "credited",
            "a confirmed deposit's block left the chain"
        );
        let payload = serde_json::json!({
            "message": format!(
                "Deposit {} on {} ({} USD to {}) was {} but its block {} is no longer on the chain. A credit was reversed (deposit.reversed); it is credited again if the transfer comes back. Check the treasury.",
                row.reference,
                chain.name(),
                crate::domain::money::UsdMicros(row.amount_micros),
                row.deposit_address,
                if row.status == "credited" { "credited" } else { "confirmed" },
                row.block_number
            ),
            "chain_id": chain.id(),
            "tx_hash": row.tx_hash,
            "reference": row.reference,
            "credited": row.status == "credited",
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
    }
    Ok(())
}

/// Whether every configured chain's last full watcher pass read its address list less than `fresh`
/// ago and after the checkout began (with a margin): then the database already holds what a scan of
/// the checkout's address would find, and validate needs no RPC call.
pub async fn fresh_for(
    pool: &PgPool,
    chains: &super::Chains,
    session: Uuid,
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
        r#"select count(*) as "n!" from chain_cursor cc, checkout c
           where c.checkout_session_id = $1 and cc.chain_id = any($2)
             and cc.scanned_at > now() - make_interval(secs => $3)
             and cc.scanned_at > c.created_at + make_interval(secs => $4)"#,
        session,
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

/// `eth_getLogs` for Transfer logs of `tokens` to `addresses` in `[from, to]`: addresses chunked by
/// [`ADDRESS_CHUNK`], blocks by the chain's `log_chunk_blocks`, sent as JSON-RPC batches.
pub async fn fetch_logs(
    chain: &ChainClient,
    tokens: &[Address],
    addresses: &[Address],
    from: u64,
    to: u64,
) -> Result<Vec<Log>, ChainError> {
    let mut filters = Vec::new();
    let mut start = from;
    while start <= to {
        let end = to.min(start.saturating_add(chain.config.log_chunk_blocks - 1));
        for part in addresses.chunks(ADDRESS_CHUNK) {
            let topics: Vec<B256> = part.iter().map(|a| a.into_word()).collect();
            filters.push(
                Filter::new()
                    .address(tokens.to_vec())
                    .event_signature(TRANSFER_TOPIC)
                    .topic2(topics)
                    .from_block(start)
                    .to_block(end),
            );
        }
        start = end + 1;
    }
    let mut logs = Vec::new();
    for group in filters.chunks(MAX_BATCH) {
        if let [filter] = group {
            use alloy::providers::Provider;
            logs.extend(
                chain
                    .provider
                    .get_logs(filter)
                    .await
                    .map_err(|e| chain.rpc_error(e))?,
            );
            continue;
        }
        let mut batch = chain.rpc().new_batch();
        let mut waiters = Vec::with_capacity(group.len());
        for filter in group {
            waiters.push(
                batch
                    .add_call::<_, Vec<Log>>("eth_getLogs", &(filter,))
                    .map_err(|e| chain.rpc_error(e))?,
            );
        }
        batch.send().await.map_err(|e| chain.rpc_error(e))?;
        for waiter in waiters {
            logs.extend(waiter.await.map_err(|e| chain.rpc_error(e))?);
        }
    }
    Ok(logs)
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
