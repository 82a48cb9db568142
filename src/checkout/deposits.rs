//! Deposits of checkouts. The deposit job: one pass scans every chain for payments to watched deposit
//! addresses (the chain module's watcher), then credits the confirmed deposits of finalized checkouts
//! to their purchases, refreshes the pending markers and erases expired receipts (the chain side never
//! reaches into checkouts: this module drives it). And the payments still on their way, with their
//! confirmations, for the customer page.

use std::collections::HashMap;
use std::time::Duration;

use sqlx::PgPool;

use super::{CheckoutError, Checkouts, credit, receipt};
use crate::chain::{Chains, watcher};
use crate::domain::Outcome;
use crate::domain::ids::{CheckoutSessionId, PurchaseId};
use crate::domain::money::UsdMicros;

/// One pass over every chain, then credits and pending markers. A pass credits the deposits it saw
/// confirmed; the periodic full pass (with the full list reload) also credits anything left over (a
/// crash between scan and credit) and erases expired receipts.
pub async fn run_once(cx: &Checkouts) -> anyhow::Result<Outcome> {
    if cx.chains.keys().is_err() {
        return Ok(Outcome::Idle);
    }
    if let Err(e) = crate::chain::watch_endpoints(&cx.pool, &cx.chains).await {
        tracing::warn!(error = %e, "RPC endpoint health pass failed");
    }
    let pass =
        watcher::scan_chains(&cx.pool, &cx.chains, cx.config.checkout.late_payment_watch).await?;
    let mut work = pass.work;
    work += if pass.full {
        credit::credit_ready(cx).await?.len()
    } else {
        credit_confirmed(&cx.pool, &cx.chains, &pass.confirmed).await?
    };
    watcher::update_pending_markers(&cx.pool).await?;
    if pass.full {
        receipt::erase_expired(&cx.pool).await?;
    }
    if work == 0 && !pass.failures.is_empty() {
        anyhow::bail!("deposit scan failed: {}", pass.failures.join("; "));
    }
    Ok(if work > 0 {
        Outcome::Processed(work)
    } else {
        Outcome::Idle
    })
}

/// What a rescan did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rescan {
    pub found: watcher::Rescanned,
    /// Deposits credited to finalized purchases by this rescan.
    pub credited: usize,
}

/// Re-reads one chain's Transfer logs over `[from, to]` for every watched address
/// ([`watcher::rescan`]) and credits what it found confirmed to finalized checkouts: a deposit the
/// watcher missed is recorded and credited once, one already recorded is left as it is.
pub async fn rescan(
    pool: &PgPool,
    chains: &Chains,
    chain_id: u64,
    from: u64,
    to: Option<u64>,
    progress: impl FnMut(u64, u64),
) -> Result<Rescan, CheckoutError> {
    let chain = chains
        .by_id(chain_id)
        .ok_or_else(|| CheckoutError::Invalid(format!("chain {chain_id} is not configured")))?;
    let found = watcher::rescan(pool, chain, from, to, progress).await?;
    let credited = credit_confirmed(pool, chains, &found.confirmed)
        .await
        .map_err(|e| CheckoutError::Internal(format!("{e:#}")))?;
    watcher::update_pending_markers(pool).await?;
    Ok(Rescan { found, credited })
}

/// Credits the given confirmed deposits of finalized checkouts (each in its own transaction).
async fn credit_confirmed(pool: &PgPool, chains: &Chains, ids: &[i64]) -> anyhow::Result<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    let rows = sqlx::query!(
        r#"select d.deposit_id, c.purchase_id as "purchase_id!"
           from deposit d join checkout c using (checkout_session_id)
           where d.deposit_id = any($1) and d.status = 'confirmed' and d.unclaimed_at is null
             and c.purchase_id is not null
           order by d.deposit_id"#,
        ids
    )
    .fetch_all(pool)
    .await?;
    let mut credited = 0;
    for row in rows {
        let purchase = PurchaseId(row.purchase_id);
        if credit::credit_one(pool, chains, row.deposit_id, purchase)
            .await?
            .is_some()
        {
            credited += 1;
        }
    }
    Ok(credited)
}

/// A payment to a purchase's deposit address that is not in its balance yet (waiting for
/// confirmations, or confirmed and about to be credited).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Incoming {
    pub chain_id: u64,
    pub token_symbol: String,
    /// At the token's USD rate, as it will be credited.
    pub amount_usd: UsdMicros,
    pub tx_hash: String,
    /// `pending` (below the chain's confirmation depth) or `confirmed` (being credited).
    pub status: String,
    /// Blocks since the payment's block, counting it; `None` when the chain's node did not answer.
    pub confirmations: Option<u64>,
    /// Confirmations the chain requires before the payment counts.
    pub required_confirmations: u64,
    /// The transaction on the chain's block explorer (none for local chains).
    pub explorer_url: Option<String>,
}

/// The payments on their way to a checkout's purchase, oldest first. Confirmations are counted from
/// each chain's head, read once per chain with a short deadline (a slow node leaves them unknown).
pub async fn incoming(
    pool: &PgPool,
    chains: &Chains,
    session: CheckoutSessionId,
) -> Result<Vec<Incoming>, CheckoutError> {
    let rows = sqlx::query!(
        "select chain_id, token_symbol, amount_micros, tx_hash, status, block_number
         from deposit
         where checkout_session_id = $1 and status in ('pending', 'confirmed')
           and unclaimed_at is null
         order by deposit_id limit 50",
        session.0
    )
    .fetch_all(pool)
    .await?;
    let mut heads: HashMap<i64, Option<u64>> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let chain = u64::try_from(r.chain_id)
            .ok()
            .and_then(|id| chains.by_id(id));
        let head = match heads.get(&r.chain_id) {
            Some(head) => *head,
            None => {
                let head = match chain {
                    Some(c) => tokio::time::timeout(HEAD_DEADLINE, c.head())
                        .await
                        .ok()
                        .and_then(Result::ok),
                    None => None,
                };
                heads.insert(r.chain_id, head);
                head
            }
        };
        let block = u64::try_from(r.block_number).unwrap_or(u64::MAX);
        out.push(Incoming {
            chain_id: u64::try_from(r.chain_id).unwrap_or_default(),
            token_symbol: r.token_symbol,
            amount_usd: UsdMicros(r.amount_micros),
            status: r.status,
            confirmations: head.map(|h| if h >= block { h - block + 1 } else { 0 }),
            required_confirmations: chain.map_or(0, |c| c.config.confirmations),
            explorer_url: chain
                .filter(|c| !c.config.explorer_url.is_empty())
                .map(|c| crate::chain::sweeper::explorer_tx(c, &r.tx_hash)),
            tx_hash: r.tx_hash,
        });
    }
    Ok(out)
}

/// How long [`incoming`] waits for a chain's head.
const HEAD_DEADLINE: Duration = Duration::from_secs(2);
