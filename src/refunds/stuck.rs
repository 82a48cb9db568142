//! Stuck refund payouts (SPEC §9 "Chains that recover by themselves"), with the machinery sweeps
//! use ([`crate::chain::replace`]): a payout refused by the node or held without being mined is
//! re-signed at the same nonce with both fees raised 25 % once `replace_after_blocks` passed since it
//! was sent, up to the chain's `max_fee_gwei`; at the cap one `tx.stuck` alert goes out and the
//! operator may bump (past the cap) or cancel (a 0-value transfer of the payout wallet to itself at
//! that nonce; once mined the refund fails, nothing paid, and may be retried).
//!
//! The row keeps every hash signed at its nonce; whichever is mined is the one that counts.

use std::collections::HashMap;

use alloy::primitives::{Address, B256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Ctx, RefundError, Row};
use crate::chain::replace::{self, Mode, Replacement};
use crate::chain::{ChainClient, ChainError, Chains, addr_key, to_numeric};
use crate::domain::ids::RefundId;
use crate::notify::{self, Channel};

/// The payout transaction this server signed for a refund, as the console shows it: where it
/// stands among its replacements, whether it is stuck at the fee cap, and whether the operator may
/// bump or cancel it (`/v1/admin/refunds/{id}/bump|cancel-payout`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = RefundPayout)]
pub struct PayoutTx {
    /// The payout wallet.
    pub from_address: String,
    pub nonce: i64,
    /// The current transaction at that nonce (the last replacement, or the cancellation).
    pub tx_hash: Option<String>,
    /// The current transaction's max fee per gas, in wei.
    pub max_fee_per_gas_wei: Option<String>,
    /// The chain's `max_fee_gwei`, in wei: the server's own replacements stay under it.
    pub fee_cap_wei: Option<String>,
    /// The current max fee cannot be raised again under the cap: only an operator's bump (past the
    /// cap) or cancel replaces it.
    pub at_fee_cap: bool,
    /// Times it was re-signed at the same nonce with higher fees (or cancelled).
    pub replacements: i32,
    /// Earlier hashes at that nonce (replaced by higher fees): whichever is mined counts.
    pub replaced_tx_hashes: Vec<String>,
    /// The operator's cancellations at that nonce (0-value transfers of the wallet to itself).
    pub cancel_tx_hashes: Vec<String>,
    /// The current transaction is the operator's cancellation.
    pub cancelled: bool,
    /// When it became stuck: its fees reached the cap (or what the wallet can pay) and it is still
    /// not mined; one `tx.stuck` alert went out.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub stuck_at: Option<DateTime<Utc>>,
    /// `bump` or `cancel` requested by an operator, carried out on the payout job's next pass.
    pub operator_action: Option<String>,
    /// Whether it can be bumped or cancelled now (signed, not yet mined).
    pub replaceable: bool,
    /// What its mined transactions cost the payout wallet in gas, in wei (`null` until one is mined).
    pub fee_wei: Option<String>,
}

/// The payout transactions of the refunds `ids` that have one (signed by this server), by refund.
pub async fn payouts(
    conn: &mut PgConnection,
    chains: &Chains,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, PayoutTx>, RefundError> {
    let rows = sqlx::query!(
        r#"select refund_id, chain_id, status, from_address as "from_address!", nonce as "nonce!", tx_hash,
                  raw_tx is not null as "signed!", max_fee_per_gas::text, replacements, replaced_tx_hashes,
                  cancel_tx_hashes, cancelled, stuck_at, operator_action, payout_fee_wei::text
           from refund
           where refund_id = any($1) and from_address is not null and nonce is not null
             and paid_by is distinct from 'scan' and paid_by is distinct from 'mark_paid'"#,
        ids
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let chain = u64::try_from(r.chain_id)
                .ok()
                .and_then(|id| chains.by_id(id));
            let max_fee = r
                .max_fee_per_gas
                .as_deref()
                .and_then(|f| f.parse::<u128>().ok());
            let payout = PayoutTx {
                from_address: r.from_address,
                nonce: r.nonce,
                tx_hash: r.tx_hash,
                fee_cap_wei: chain.map(|c| replace::max_fee_cap(c).to_string()),
                at_fee_cap: chain
                    .zip(max_fee)
                    .is_some_and(|(c, f)| replace::at_fee_cap(c, f)),
                max_fee_per_gas_wei: r.max_fee_per_gas,
                replacements: r.replacements,
                replaced_tx_hashes: r.replaced_tx_hashes,
                cancel_tx_hashes: r.cancel_tx_hashes,
                cancelled: r.cancelled,
                stuck_at: r.stuck_at,
                operator_action: r.operator_action,
                replaceable: r.status == "paying" && r.signed,
                fee_wei: r.payout_fee_wei,
            };
            (r.refund_id, payout)
        })
        .collect())
}

/// A payout's transactions at its nonce, beyond what [`Row`] holds.
#[derive(Debug, Clone)]
pub(super) struct Attempts {
    pub broadcast_block: Option<i64>,
    pub replaced: Vec<String>,
    pub cancels: Vec<String>,
    pub cancelled: bool,
    pub stuck: bool,
    pub operator_action: Option<String>,
}

impl Attempts {
    pub(super) async fn load(cx: &Ctx<'_>, row: &Row) -> Result<Self, RefundError> {
        let r = sqlx::query!(
            "select broadcast_block, replaced_tx_hashes, cancel_tx_hashes, cancelled,
                    stuck_at is not null as \"stuck!\", operator_action
             from refund where refund_id = $1",
            row.refund_id
        )
        .fetch_one(cx.pool)
        .await?;
        Ok(Self {
            broadcast_block: r.broadcast_block,
            replaced: r.replaced_tx_hashes,
            cancels: r.cancel_tx_hashes,
            cancelled: r.cancelled,
            stuck: r.stuck,
            operator_action: r.operator_action,
        })
    }

    /// Every hash signed at the payout's nonce: the current one first.
    pub(super) fn hashes(&self, current: B256) -> Vec<B256> {
        std::iter::once(current)
            .chain(
                self.replaced
                    .iter()
                    .chain(&self.cancels)
                    .filter_map(|h| h.parse().ok()),
            )
            .collect()
    }

    /// Whether `hash` is one of the operator's cancellations (nothing paid when it is mined).
    pub(super) fn is_cancel(&self, hash: B256, current: B256) -> bool {
        (self.cancelled && hash == current)
            || self
                .cancels
                .iter()
                .any(|h| h.parse::<B256>().ok() == Some(hash))
    }
}

/// Called while the payout's current transaction is not mined (held by the node, or refused by
/// it): replaces it once due (or at the operator's request), or marks it stuck at the cap. Returns
/// whether the replacement was sent.
pub(super) async fn replace_if_stuck(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    signer: &PrivateKeySigner,
    row: &Row,
    head: u64,
) -> Result<bool, RefundError> {
    let attempts = Attempts::load(cx, row).await?;
    let mode = match attempts.operator_action.as_deref() {
        Some("bump") => Mode::Bump,
        Some("cancel") => Mode::Cancel,
        _ => Mode::Auto,
    };
    let (Some(raw), Some(old_hash), Some(nonce)) = (
        row.raw_tx.as_deref(),
        row.tx_hash.as_deref().and_then(|h| h.parse::<B256>().ok()),
        row.nonce,
    ) else {
        return Ok(false);
    };
    let Some(sent_at) = attempts.broadcast_block.and_then(|b| u64::try_from(b).ok()) else {
        // First sent now (or refused now): counted from here.
        sqlx::query!(
            "update refund set broadcast_block = $2 where refund_id = $1 and broadcast_block is null",
            row.refund_id,
            i64::try_from(head).unwrap_or(i64::MAX)
        )
        .execute(cx.pool)
        .await?;
        return Ok(false);
    };
    if mode == Mode::Auto && attempts.stuck {
        // At the cap: waits for block space or the operator.
        return Ok(false);
    }
    let from = signer.address();
    let balance = chain
        .provider
        .get_balance(from)
        .await
        .map_err(|e| chain.rpc_error(e))?;
    let fees = chain
        .provider
        .estimate_eip1559_fees()
        .await
        .map_err(|e| chain.rpc_error(e))?;
    let estimate = (fees.max_fee_per_gas, fees.max_priority_fee_per_gas);
    let new = match replace::replacement(
        chain,
        signer,
        raw,
        sent_at,
        head,
        estimate,
        mode,
        Some(balance),
    )? {
        Replacement::NotDue => return Ok(false),
        Replacement::AtCap { max_fee_per_gas } => {
            let why = format!(
                "its max fee of {max_fee_per_gas} wei per gas reached the chain's max_fee_gwei ({}) or what the payout wallet {from} can pay",
                chain.config.max_fee_gwei
            );
            mark_stuck(cx, chain, row, old_hash, nonce, &why).await?;
            return Ok(false);
        }
        Replacement::Signed(new) => new,
    };
    let signed = replace::decode(&new.raw)?;
    // Stored before it is sent: whatever happens next, the row knows every hash at this nonce.
    let stored = sqlx::query!(
        "update refund set
             replaced_tx_hashes = case when cancelled then replaced_tx_hashes else replaced_tx_hashes || tx_hash end,
             cancel_tx_hashes = case when cancelled then cancel_tx_hashes || tx_hash else cancel_tx_hashes end,
             tx_hash = $3, raw_tx = $4, gas_limit = $5, max_fee_per_gas = $6, max_priority_fee_per_gas = $7,
             broadcast_block = $8, replacements = replacements + 1, cancelled = cancelled or $9,
             operator_action = null, stuck_at = case when $10 then stuck_at else null end
         where refund_id = $1 and tx_hash = $2 and status = 'paying'",
        row.refund_id,
        format!("{old_hash:#x}"),
        format!("{:#x}", new.hash),
        new.raw,
        i64::try_from(signed.gas_limit).unwrap_or(i64::MAX),
        to_numeric(alloy::primitives::U256::from(signed.max_fee_per_gas)),
        to_numeric(alloy::primitives::U256::from(
            signed.max_priority_fee_per_gas
        )),
        i64::try_from(head).unwrap_or(i64::MAX),
        mode == Mode::Cancel,
        mode == Mode::Auto,
    )
    .execute(cx.pool)
    .await?;
    if stored.rows_affected() != 1 {
        return Ok(false);
    }
    if let Err(e) = chain.provider.send_raw_transaction(&new.raw).await {
        let message = chain.rpc_error(e).to_string();
        let known = chain
            .provider
            .get_transaction_by_hash(new.hash)
            .await
            .map_err(|e| chain.rpc_error(e))?;
        if known.is_none() {
            restore(cx, row, &attempts, old_hash, raw, new.hash, mode).await?;
            let why = format!("the node refused its replacement: {message}");
            mark_stuck(cx, chain, row, old_hash, nonce, &why).await?;
            return Ok(false);
        }
    }
    sqlx::query!(
        "update refund set broadcast_at = coalesce(broadcast_at, now()), last_error = null
         where refund_id = $1 and status = 'paying'",
        row.refund_id
    )
    .execute(cx.pool)
    .await?;
    tracing::warn!(
        refund_id = %RefundId(row.refund_id),
        nonce,
        old = %old_hash,
        new = %new.hash,
        max_fee_per_gas = new.max_fee_per_gas,
        ?mode,
        "stuck refund payout replaced at the same nonce"
    );
    Ok(true)
}

/// The node refused the replacement: the old transaction stays current; the refused hash is kept
/// among the earlier ones all the same (a lost answer may hide a send that worked).
async fn restore(
    cx: &Ctx<'_>,
    row: &Row,
    attempts: &Attempts,
    old_hash: B256,
    raw: &[u8],
    refused: B256,
    mode: Mode,
) -> Result<(), RefundError> {
    let old = replace::decode(raw)?;
    sqlx::query!(
        "update refund set tx_hash = $2, raw_tx = $3, gas_limit = $4, max_fee_per_gas = $5,
             max_priority_fee_per_gas = $6, cancelled = $7, replacements = replacements - 1,
             replaced_tx_hashes = array_remove(replaced_tx_hashes, $2)
                 || case when $9 then '{}'::text[] else array[$8] end,
             cancel_tx_hashes = array_remove(cancel_tx_hashes, $2)
                 || case when $9 then array[$8] else '{}'::text[] end
         where refund_id = $1 and tx_hash = $8",
        row.refund_id,
        format!("{old_hash:#x}"),
        raw,
        i64::try_from(old.gas_limit).unwrap_or(i64::MAX),
        to_numeric(alloy::primitives::U256::from(old.max_fee_per_gas)),
        to_numeric(alloy::primitives::U256::from(old.max_priority_fee_per_gas)),
        attempts.cancelled,
        format!("{refused:#x}"),
        attempts.cancelled || mode == Mode::Cancel,
    )
    .execute(cx.pool)
    .await?;
    Ok(())
}

/// Marks the payout stuck and tells the vendor once per (refund, nonce): `tx.stuck` (webhook and
/// alert). An operator request that could not be carried out is cleared.
async fn mark_stuck(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    row: &Row,
    hash: B256,
    nonce: i64,
    why: &str,
) -> Result<(), RefundError> {
    let id = RefundId(row.refund_id);
    let mut tx = cx.pool.begin().await?;
    sqlx::query!(
        "update refund set stuck_at = coalesce(stuck_at, now()), operator_action = null, last_error = $2
         where refund_id = $1",
        row.refund_id,
        format!("transaction {hash:#x} is not mined: {why}")
    )
    .execute(&mut *tx)
    .await?;
    let from = row
        .from_address
        .as_deref()
        .and_then(|a| a.parse::<Address>().ok())
        .map(addr_key);
    let data = json!({
        "kind": "refund",
        "refund_id": id.to_string(),
        "chain_id": chain.id(),
        "chain": chain.name(),
        "from_address": from,
        "nonce": nonce,
        "tx_hash": format!("{hash:#x}"),
        "reason": why,
        "message": format!(
            "Refund {id} on {}: its payout {hash:#x} (nonce {nonce}) is not mined and {why}. Later payouts of the wallet wait behind it. Bump it (POST /v1/admin/refunds/{id}/bump) or cancel it (POST /v1/admin/refunds/{id}/cancel-payout), or wait for fees to fall.",
            chain.name()
        ),
    });
    for (channel, prefix) in [(Channel::Webhook, "webhook"), (Channel::Alert, "alert")] {
        let dedupe = format!("{prefix}:tx.stuck:refund:{}:{nonce}", row.refund_id);
        notify::enqueue(&mut tx, channel, "tx.stuck", None, &data, Some(&dedupe)).await?;
    }
    tx.commit().await?;
    tracing::error!(refund_id = %id, nonce, %hash, why, "refund payout stuck; operator alerted");
    Ok(())
}

/// Whether the node knows nothing of the payout's current hash and its nonce was used: by one of
/// its own hashes (then it is mined and settles), or by another transaction (never mined).
pub(super) async fn mined_hash(
    chain: &ChainClient,
    attempts: &Attempts,
    current: B256,
) -> Result<Option<(B256, alloy::rpc::types::TransactionReceipt)>, ChainError> {
    replace::mined_among(chain, &attempts.hashes(current)).await
}
