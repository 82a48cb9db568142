//! Stuck transactions: a broadcast sweep or gas top-up the node holds but does not mine is replaced
//! at the same nonce with higher fees ([`replace`]), one `tx.stuck` alert goes out at the chain's
//! cap, and the operator's bump and cancel are carried out here, under the sweep's claim.

use super::*;
use crate::chain::replace::{Mode, Replacement};

/// The key that signed the sweep's current transaction: the gas wallet, or the deposit key (the
/// `transfer` step of tokens without EIP-3009).
fn signer_of(
    cx: &Ctx<'_>,
    sweep: &SweepRow,
    from: Address,
) -> Result<PrivateKeySigner, ChainError> {
    if let Some(gas) = cx.chains.gas()
        && gas.address() == from
    {
        return Ok(gas.signer.clone());
    }
    let depositor = cx.chains.keys()?.signer(sweep.deposit_index)?;
    if depositor.address() != from {
        return Err(ChainError::Wallet(format!(
            "sweep {}: no key for {from} (was DEPOSIT_MNEMONIC or the gas key changed?)",
            sweep.sweep_id
        )));
    }
    Ok(depositor)
}

/// Called while the sweep's current transaction is not mined (held by the node, or refused by it):
/// replaces it once due (or at the operator's request), or marks it stuck at the cap. Returns
/// whether anything changed; a replacement the node accepts makes the sweep `broadcast`.
pub(super) async fn replace_if_stuck(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    sweep: &SweepRow,
    head: u64,
) -> Result<bool, ChainError> {
    let mode = match sweep.operator_action.as_deref() {
        Some("bump") => Mode::Bump,
        Some("cancel") => Mode::Cancel,
        _ => Mode::Auto,
    };
    let (Some(raw), Some(old_hash), Some(from), Some(nonce)) = (
        sweep.raw_tx.as_deref(),
        sweep.tx_hash,
        sweep.from_address,
        sweep.nonce,
    ) else {
        return Ok(false);
    };
    let Some(sent_at) = sweep.broadcast_block else {
        // Broadcast before heights were recorded: counted from now.
        sqlx::query!(
            "update sweep set broadcast_block = $2 where sweep_id = $1 and broadcast_block is null",
            sweep.sweep_id,
            i64::try_from(head).unwrap_or(i64::MAX)
        )
        .execute(cx.pool)
        .await?;
        return Ok(false);
    };
    if mode == Mode::Auto && sweep.stuck {
        // At the cap: waits for the block space or the operator.
        return Ok(false);
    }
    let signer = signer_of(cx, sweep, from)?;
    let gas_wallet = cx.chains.gas().is_some_and(|g| g.address() == from);
    let affordable = if gas_wallet {
        None
    } else {
        Some(
            chain
                .provider
                .get_balance(from)
                .await
                .map_err(|e| chain.rpc_error(e))?,
        )
    };
    let estimate = estimated_fees(chain).await?;
    let new = match replace::replacement(
        chain, &signer, raw, sent_at, head, estimate, mode, affordable,
    )? {
        Replacement::NotDue => return Ok(false),
        Replacement::AtCap { max_fee_per_gas } => {
            let why = if affordable.is_some() {
                format!(
                    "its signer {from} cannot pay a higher fee than {max_fee_per_gas} wei per gas"
                )
            } else {
                format!(
                    "its max fee of {max_fee_per_gas} wei per gas reached the chain's max_fee_gwei ({})",
                    chain.config.max_fee_gwei
                )
            };
            mark_stuck(cx, chain, sweep, old_hash, nonce, &why).await?;
            return Ok(true);
        }
        Replacement::Signed(new) => new,
    };
    // Stored before it is sent: whatever happens next, the row knows every hash at this nonce.
    let stored = sqlx::query!(
        "update sweep set
             replaced_tx_hashes = case when cancelled then replaced_tx_hashes else replaced_tx_hashes || tx_hash end,
             cancel_tx_hashes = case when cancelled then cancel_tx_hashes || tx_hash else cancel_tx_hashes end,
             tx_hash = $3, raw_tx = $4, max_cost_wei = $5, broadcast_block = $6, replacements = replacements + 1,
             cancelled = cancelled or $7, operator_action = null,
             stuck_at = case when $8 then stuck_at else null end
         where sweep_id = $1 and tx_hash = $2 and status in ('signed', 'broadcast')",
        sweep.sweep_id,
        format!("{old_hash:#x}"),
        format!("{:#x}", new.hash),
        new.raw,
        to_numeric(new.max_cost),
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
            // Refused (e.g. underpriced): the old transaction stays current; the refused hash is
            // kept among the earlier ones all the same (a lost answer may hide a send that worked).
            let new_is_cancel = sweep.cancelled || mode == Mode::Cancel;
            sqlx::query!(
                "update sweep set tx_hash = $2, raw_tx = $3, max_cost_wei = $4, cancelled = $5,
                     replacements = replacements - 1,
                     replaced_tx_hashes = array_remove(replaced_tx_hashes, $2)
                         || case when $7 then '{}'::text[] else array[$6] end,
                     cancel_tx_hashes = array_remove(cancel_tx_hashes, $2)
                         || case when $7 then array[$6] else '{}'::text[] end
                 where sweep_id = $1 and tx_hash = $6",
                sweep.sweep_id,
                format!("{old_hash:#x}"),
                raw,
                to_numeric(replace::max_cost(&replace::decode(raw)?)),
                sweep.cancelled,
                format!("{:#x}", new.hash),
                new_is_cancel,
            )
            .execute(cx.pool)
            .await?;
            let why = format!("the node refused its replacement: {message}");
            mark_stuck(cx, chain, sweep, old_hash, nonce, &why).await?;
            return Ok(true);
        }
    }
    sqlx::query!(
        "update sweep set status = 'broadcast', broadcast_at = coalesce(broadcast_at, now()), last_error = null
         where sweep_id = $1 and status = 'signed'",
        sweep.sweep_id
    )
    .execute(cx.pool)
    .await?;
    tracing::warn!(
        sweep_id = sweep.sweep_id,
        nonce,
        old = %old_hash,
        new = %new.hash,
        max_fee_per_gas = new.max_fee_per_gas,
        ?mode,
        "stuck sweep transaction replaced at the same nonce"
    );
    Ok(true)
}

/// Marks the sweep's transaction stuck and tells the vendor once per (sweep, nonce): `tx.stuck`
/// (webhook and alert). An operator request that could not be carried out is cleared.
async fn mark_stuck(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    sweep: &SweepRow,
    hash: B256,
    nonce: u64,
    why: &str,
) -> Result<(), ChainError> {
    let mut tx = cx.pool.begin().await?;
    sqlx::query!(
        "update sweep set stuck_at = coalesce(stuck_at, now()), operator_action = null, last_error = $2
         where sweep_id = $1",
        sweep.sweep_id,
        format!("transaction {hash:#x} is not mined: {why}")
    )
    .execute(&mut *tx)
    .await?;
    let data = json!({
        "kind": "sweep",
        "sweep_id": sweep.sweep_id,
        "chain_id": chain.id(),
        "chain": chain.name(),
        "step": sweep.step,
        "from_address": sweep.from_address.map(addr_key),
        "nonce": nonce,
        "tx_hash": format!("{hash:#x}"),
        "reason": why,
        "message": format!(
            "Sweep {} on {}: transaction {hash:#x} (nonce {nonce}) is not mined and {why}. Later transactions of its signer wait behind it. Bump it (POST /v1/admin/sweeps/{}/bump) or cancel it (POST /v1/admin/sweeps/{}/cancel), or wait for fees to fall.",
            sweep.sweep_id,
            chain.name(),
            sweep.sweep_id,
            sweep.sweep_id
        ),
    });
    let key = format!("tx.stuck:sweep:{}:{nonce}", sweep.sweep_id);
    tell_vendor(&mut tx, "tx.stuck", &data, &key).await?;
    tx.commit().await?;
    tracing::error!(sweep_id = sweep.sweep_id, nonce, %hash, why, "sweep transaction stuck; operator alerted");
    Ok(())
}
