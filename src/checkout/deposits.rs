//! The deposit job: one pass scans every chain for payments to watched deposit addresses (the chain
//! module's watcher), then credits the confirmed deposits of finalized checkouts to their purchases,
//! refreshes the pending markers and erases expired receipts. The chain side never reaches into
//! checkouts: this module drives it.

use crate::billing::ledger;
use crate::chain::watcher;
use crate::domain::Outcome;
use crate::domain::ids::PurchaseId;

use super::{Checkouts, credit, receipt};

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
        credit::credit_ready(cx, None).await?.len()
    } else {
        credit_confirmed(cx, &pass.confirmed).await?
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

/// Credits the given confirmed deposits of finalized checkouts (each in its own transaction).
async fn credit_confirmed(cx: &Checkouts, ids: &[i64]) -> anyhow::Result<usize> {
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
    .fetch_all(&cx.pool)
    .await?;
    let mut credited = 0;
    for row in rows {
        let purchase = PurchaseId(row.purchase_id);
        let mut tx = cx.pool.begin().await?;
        let done = credit::credit_deposit(&mut tx, row.deposit_id, purchase, true).await?;
        ledger::charge_sweep_fees(&mut tx, purchase, |c| cx.chains.sweep_fee(c)).await?;
        tx.commit().await?;
        if let Some(c) = done {
            tracing::info!(purchase_id = %c.purchase_id, amount = %c.amount, reference = c.reference, "deposit credited");
            credited += 1;
        }
    }
    Ok(credited)
}
