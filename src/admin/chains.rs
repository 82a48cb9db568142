//! Chains in the console: rescanning a block range for deposits the watcher missed (as
//! `vendor-server deposits rescan`) and reconciling deposit addresses with the chain (as
//! `vendor-server reconcile`).

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::{Actor, AdminError, AuditEntry, Done};
use crate::chain::{ChainError, Chains};
use crate::checkout::CheckoutError;

/// The most blocks one rescan through the admin API reads (it answers within the request's time);
/// the command line has no limit.
pub const API_MAX_RESCAN_BLOCKS: u64 = 200_000;

/// What a rescan did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RescanOut {
    pub chain_id: u64,
    pub from_block: u64,
    /// The last block read (the requested `to_block`, or the head when it was above it or unset).
    pub to_block: u64,
    /// Transfer logs read.
    pub logs: u64,
    /// Transfers to watched addresses in the range, recorded before or now.
    pub matched: u64,
    /// Deposits the watcher had missed, recorded now.
    pub new_deposits: u64,
    /// Deposits credited to finalized purchases by this rescan (each at most once, ever).
    pub credited: u64,
    /// How long it took.
    pub elapsed_ms: u64,
}

fn chain_error(e: ChainError) -> AdminError {
    match e {
        ChainError::Rpc { .. } | ChainError::NotConfigured(_) => {
            AdminError::ChainUnavailable(e.to_string())
        }
        ChainError::Invalid(m) => AdminError::invalid("invalid_range", m),
        ChainError::Db(e) => AdminError::Db(e),
        other => AdminError::Internal(other.to_string()),
    }
}

fn checkout_error(e: CheckoutError) -> AdminError {
    match e {
        CheckoutError::Chain(e) => chain_error(e),
        CheckoutError::NotConfigured(m) => AdminError::ChainUnavailable(m),
        CheckoutError::Invalid(m) => AdminError::invalid("invalid_range", m),
        CheckoutError::Db(e) => AdminError::Db(e),
        other => AdminError::Internal(other.to_string()),
    }
}

/// Re-reads the Transfer logs of every watched address on chain `chain_id` over `[from, to]` (`to`:
/// the head when unset) and records and credits what the watcher missed, idempotently (a deposit
/// found again is never credited twice). `max_blocks` bounds the range (the admin API's limit).
/// Audited (`chain.rescan`), idempotent by the actor's key. `progress` is told each block read up to.
#[allow(clippy::too_many_arguments)]
pub async fn rescan(
    pool: &PgPool,
    chains: &Chains,
    chain_id: u64,
    from: u64,
    to: Option<u64>,
    max_blocks: Option<u64>,
    actor: &Actor,
    progress: impl FnMut(u64, u64),
) -> Result<Done<RescanOut>, AdminError> {
    let chain = chains
        .by_id(chain_id)
        .ok_or(AdminError::NotFound("chain"))?;
    if let Some(to) = to
        && to < from
    {
        return Err(AdminError::invalid(
            "invalid_range",
            format!("to_block {to} is below from_block {from}"),
        ));
    }
    let head = chain.head().await.map_err(chain_error)?;
    let last = to.unwrap_or(head).min(head);
    if from > last {
        return Err(AdminError::invalid(
            "invalid_range",
            format!("from_block {from} is above the chain's head {head}"),
        ));
    }
    if let Some(max) = max_blocks
        && last - from + 1 > max
    {
        return Err(AdminError::invalid(
            "range_too_large",
            format!(
                "{} blocks is more than {max} in one request: split the range, or run `vendor-server deposits rescan` on the server (no limit)",
                last - from + 1
            ),
        ));
    }
    let mut tx = pool.begin().await?;
    if let Some(replay) = super::claim_key(&mut tx, actor).await? {
        return Ok(replay);
    }
    let started = std::time::Instant::now();
    let done =
        crate::checkout::deposits::rescan(pool, chains, chain_id, from, Some(last), progress)
            .await
            .map_err(checkout_error)?;
    let out = RescanOut {
        chain_id,
        from_block: done.found.from,
        to_block: done.found.to,
        logs: done.found.logs as u64,
        matched: done.found.matched as u64,
        new_deposits: done.found.new_deposits as u64,
        credited: done.credited as u64,
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    tracing::info!(
        chain_id,
        from = out.from_block,
        to = out.to_block,
        new_deposits = out.new_deposits,
        credited = out.credited,
        actor = actor.source.as_str(),
        "deposits rescanned"
    );
    let entry = AuditEntry {
        action: "chain.rescan",
        target_type: "chain",
        target_id: chain_id.to_string(),
        reason: None,
        details: serde_json::json!({
            "from_block": out.from_block,
            "to_block": out.to_block,
            "matched": out.matched,
            "new_deposits": out.new_deposits,
            "credited": out.credited,
        }),
    };
    super::finish(tx, actor, out, entry).await
}

/// Compares every deposit address's on-chain balance with its records (alerting each new
/// difference once), as `vendor-server reconcile` and the daily job do.
pub async fn reconcile(
    pool: &PgPool,
    chains: &Chains,
) -> Result<crate::chain::reconcile::ReconcileReport, AdminError> {
    crate::chain::reconcile::run(pool, chains)
        .await
        .map_err(chain_error)
}
