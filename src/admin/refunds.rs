//! Refunds in the console: the list, and approve / reject / mark-paid / retry, each audited and
//! idempotent by key (the rules live in [`crate::refunds`]).

use serde_json::json;
use sqlx::PgConnection;

use super::{Actor, AdminError, AuditEntry, Done};
use crate::domain::ids::RefundId;
use crate::domain::page::Page;
use crate::refunds::{self, Ctx, Payment, PayoutAction, RefundError, RefundOut};

impl From<RefundError> for AdminError {
    fn from(e: RefundError) -> Self {
        match e {
            RefundError::NotFound => Self::NotFound("refund"),
            RefundError::CheckoutNotFound => Self::NotFound("checkout"),
            RefundError::Insufficient(m) | RefundError::InvalidState(m) => Self::InvalidState(m),
            RefundError::Invalid { code, message } => Self::Invalid { code, message },
            RefundError::IdempotencyConflict(k) => Self::IdempotencyConflict(k),
            RefundError::NotPaid(m) => Self::invalid("payment_not_found", m),
            RefundError::Billing(e) => Self::Billing(e),
            RefundError::Db(e) => Self::Db(e),
            RefundError::Chain(e) => Self::Internal(e.to_string()),
        }
    }
}

/// Adds each refund's payout transaction (the console's view: replacements, stuck state, whether
/// it can be bumped or cancelled).
async fn with_payouts(
    conn: &mut PgConnection,
    cx: &Ctx<'_>,
    outs: &mut [RefundOut],
) -> Result<(), AdminError> {
    let ids: Vec<uuid::Uuid> = outs.iter().map(|o| o.refund_id.0).collect();
    let mut payouts = refunds::payouts(conn, cx.chains, &ids).await?;
    for out in outs {
        out.payout = payouts.remove(&out.refund_id.0);
    }
    Ok(())
}

/// Refunds, newest first (`status`: one status, or `open`), with their payout transactions.
pub async fn list(
    cx: &Ctx<'_>,
    status: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Page<RefundOut>, AdminError> {
    let mut page = refunds::list(cx, status, before, limit).await?;
    with_payouts(&mut *cx.pool.acquire().await?, cx, &mut page.items).await?;
    Ok(page)
}

fn entry(action: &'static str, out: &RefundOut, reason: Option<String>) -> AuditEntry {
    AuditEntry {
        action,
        target_type: "refund",
        target_id: out.refund_id.to_string(),
        reason,
        details: json!({
            "status": out.status,
            "amount_usd": out.amount_usd,
            "to_address": out.to_address,
            "chain_id": out.chain_id,
            "token_symbol": out.token_symbol,
            "purchase_id": out.purchase_id,
            "tx_hash": out.tx_hash,
        }),
    }
}

/// Approves a requested refund. `head`: the chain's head now (the vendor's own payment counts from
/// there when this server does not pay).
pub async fn approve(
    cx: &Ctx<'_>,
    id: RefundId,
    head: Option<u64>,
    actor: &Actor,
) -> Result<Done<RefundOut>, AdminError> {
    let mut tx = cx.pool.begin().await?;
    if let Some(replay) = super::claim_key(&mut tx, actor).await? {
        return Ok(replay);
    }
    let mut out = refunds::approve(&mut tx, cx, id, head).await?;
    with_payouts(&mut tx, cx, std::slice::from_mut(&mut out)).await?;
    let audit = entry("refund.approve", &out, None);
    super::finish(tx, actor, out, audit).await
}

/// Rejects a refund not being paid; the amount is credited back.
pub async fn reject(
    cx: &Ctx<'_>,
    id: RefundId,
    reason: Option<&str>,
    actor: &Actor,
) -> Result<Done<RefundOut>, AdminError> {
    let reason = super::reason(reason, true)?.unwrap_or_default();
    let mut tx = cx.pool.begin().await?;
    if let Some(replay) = super::claim_key(&mut tx, actor).await? {
        return Ok(replay);
    }
    let mut out = refunds::reject(&mut tx, cx, id, &reason).await?;
    with_payouts(&mut tx, cx, std::slice::from_mut(&mut out)).await?;
    let audit = entry("refund.reject", &out, Some(reason));
    super::finish(tx, actor, out, audit).await
}

/// Records the vendor's own payment, found on chain by [`refunds::find_payment`].
pub async fn mark_paid(
    cx: &Ctx<'_>,
    id: RefundId,
    payment: &Payment,
    actor: &Actor,
) -> Result<Done<RefundOut>, AdminError> {
    let mut tx = cx.pool.begin().await?;
    if let Some(replay) = super::claim_key(&mut tx, actor).await? {
        return Ok(replay);
    }
    let mut out = refunds::mark_paid(&mut tx, cx, id, payment).await?;
    with_payouts(&mut tx, cx, std::slice::from_mut(&mut out)).await?;
    let audit = entry("refund.mark_paid", &out, None);
    super::finish(tx, actor, out, audit).await
}

/// Approves a failed refund again (a new payout transaction is signed).
pub async fn retry(
    cx: &Ctx<'_>,
    id: RefundId,
    actor: &Actor,
) -> Result<Done<RefundOut>, AdminError> {
    let mut tx = cx.pool.begin().await?;
    if let Some(replay) = super::claim_key(&mut tx, actor).await? {
        return Ok(replay);
    }
    let mut out = refunds::retry(&mut tx, cx, id).await?;
    with_payouts(&mut tx, cx, std::slice::from_mut(&mut out)).await?;
    let audit = entry("refund.retry", &out, None);
    super::finish(tx, actor, out, audit).await
}

/// Asks the payout job to bump or cancel a refund's payout transaction (next pass).
pub async fn payout_action(
    cx: &Ctx<'_>,
    id: RefundId,
    action: PayoutAction,
    actor: &Actor,
) -> Result<Done<RefundOut>, AdminError> {
    let mut tx = cx.pool.begin().await?;
    if let Some(replay) = super::claim_key(&mut tx, actor).await? {
        return Ok(replay);
    }
    let mut out = refunds::request_payout_action(&mut tx, cx, id, action).await?;
    with_payouts(&mut tx, cx, std::slice::from_mut(&mut out)).await?;
    let name = match action {
        PayoutAction::Bump => "refund.bump",
        PayoutAction::Cancel => "refund.cancel_payout",
    };
    let audit = entry(name, &out, None);
    super::finish(tx, actor, out, audit).await
}
