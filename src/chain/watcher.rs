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
//! Reorgs: each pass rescans the last `reorg_window_blocks` blocks and reconciles the rows recorded
//! there with what the chain now says: a pending deposit that vanished is dropped, a confirmed or
//! credited one is marked `reorged` and an alert raised (its ledger credit, if any, is never repeated;
//! the reference is fixed at first sighting), and a transaction re-included elsewhere is moved.

use std::collections::{HashMap, HashSet};

use alloy::primitives::{Address, B256, U256};
use alloy::rpc::types::{Filter, Log};
use sqlx::PgPool;
use uuid::Uuid;

use super::erc20::{IERC20, TRANSFER_TOPIC};
use super::{ChainClient, ChainError, addr_key, to_numeric};
use crate::jobs::Outcome;
use crate::notify::{self, Channel};
use crate::state::AppState;

/// Addresses per `eth_getLogs` filter (node limits on OR-lists are commonly 1,000).
pub const ADDRESS_CHUNK: usize = 1_000;
/// Requests per JSON-RPC batch.
pub const MAX_BATCH: usize = 50;
/// Blocks scanned below the head when a chain has no cursor and no `start_block`.
pub const INITIAL_LOOKBACK_BLOCKS: u64 = 10_000;

/// Which addresses a scan covers.
#[derive(Debug, Clone, Copy)]
pub enum Scope {
    /// Every watched address; reconciles the reorg window and advances the cursor.
    All,
    /// One checkout's address (validate, finalize, topup): records what it finds, nothing else.
    Checkout(Uuid),
}

/// What a scan did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanReport {
    pub head: u64,
    pub from: u64,
    pub addresses: usize,
    pub logs: usize,
    pub new_deposits: usize,
    pub newly_confirmed: usize,
    pub dropped: usize,
    pub reorged: usize,
}

/// One watcher pass over every chain, then credits and pending markers.
pub async fn run_once(state: &AppState) -> anyhow::Result<Outcome> {
    if state.chains.keys().is_err() {
        return Ok(Outcome::Idle);
    }
    let mut work = 0;
    let mut failures = Vec::new();
    for chain in state.chains.iter() {
        match scan(&state.pool, chain, Scope::All).await {
            Ok(report) => work += report.new_deposits + report.newly_confirmed + report.reorged,
            Err(e @ ChainError::Rpc { .. }) => {
                tracing::warn!(chain = chain.name(), error = %e, "deposit scan failed; retrying next pass");
                failures.push(e.to_string());
            }
            Err(e) => return Err(e.into()),
        }
    }
    work += crate::checkout::credit::credit_ready(state, None)
        .await?
        .len();
    update_pending_markers(&state.pool).await?;
    crate::checkout::receipt::erase_expired(&state.pool).await?;
    if work == 0 && !failures.is_empty() {
        anyhow::bail!("deposit scan failed: {}", failures.join("; "));
    }
    Ok(if work > 0 {
        Outcome::Processed(work)
    } else {
        Outcome::Idle
    })
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

    let watched = watched_addresses(pool, scope).await?;
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

    let mut tx = pool.begin().await?;
    // Serialise passes over one chain (several replicas, or a validate racing the watcher).
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtext('vendor_server.watch'), $1::int)",
        i32::try_from(chain.id() % 2_147_483_647).unwrap_or(0)
    )
    .execute(&mut *tx)
    .await?;
    let mut seen: HashSet<i64> = HashSet::new();
    for log in &logs {
        let Some(found) = parse_log(chain, log) else {
            continue;
        };
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
                   amount_micros, status, reference)
               values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
               on conflict (chain_id, tx_hash, token_address, deposit_address, amount_units) do update set
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
        )
        .fetch_one(&mut *tx)
        .await?;
        seen.insert(row.deposit_id);
        if row.inserted {
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
        // Rows in the rescanned window whose log is gone.
        let watched_keys: Vec<String> = addresses.iter().map(|a| addr_key(*a)).collect();
        let missing = sqlx::query!(
            "select deposit_id, status, tx_hash, reference, amount_micros, deposit_address, purchase_id, block_number
             from deposit
             where chain_id = $1 and block_number >= $2 and status in ('pending', 'confirmed', 'credited')
               and deposit_address = any($3) and not (deposit_id = any($4))
             for update",
            chain_id,
            i64::try_from(from).unwrap_or(i64::MAX),
            &watched_keys,
            &seen.iter().copied().collect::<Vec<_>>(),
        )
        .fetch_all(&mut *tx)
        .await?;
        for row in missing {
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
            report.reorged += 1;
            tracing::error!(
                chain = chain.name(),
                tx_hash = row.tx_hash,
                credited = row.status == "credited",
                "a confirmed deposit's block left the chain"
            );
            let payload = serde_json::json!({
                "message": format!(
                    "Deposit {} on {} ({} USD to {}) was {} but its block {} is no longer on the chain. It will not be credited again; check the purchase and the treasury.",
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
                &mut tx,
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
        let new_cursor = i64::try_from(safe.max(cursor)).unwrap_or(i64::MAX);
        sqlx::query!(
            "insert into chain_cursor (chain_id, scanned_to) values ($1, $2)
             on conflict (chain_id) do update set scanned_to = greatest(chain_cursor.scanned_to, excluded.scanned_to)",
            chain_id,
            new_cursor
        )
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(report)
}

/// Watched addresses and their checkout sessions: open or late-payment-window checkouts and
/// finalized purchases that still exist.
async fn watched_addresses(
    pool: &PgPool,
    scope: Scope,
) -> Result<HashMap<Address, Uuid>, ChainError> {
    let rows = match scope {
        Scope::All => {
            sqlx::query!(
                "select c.deposit_address, c.checkout_session_id from checkout c
                 left join purchase p on p.purchase_id = c.purchase_id
                 where c.watch_until > now() or (c.purchase_id is not null and p.status <> 'deleted')"
            )
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|r| (r.deposit_address, r.checkout_session_id))
            .collect::<Vec<_>>()
        }
        Scope::Checkout(session) => sqlx::query!(
            "select deposit_address, checkout_session_id from checkout where checkout_session_id = $1",
            session
        )
        .fetch_all(pool)
        .await?
        .into_iter()
        .map(|r| (r.deposit_address, r.checkout_session_id))
        .collect(),
    };
    Ok(rows
        .into_iter()
        .filter_map(|(address, session)| address.parse::<Address>().ok().map(|a| (a, session)))
        .collect())
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
