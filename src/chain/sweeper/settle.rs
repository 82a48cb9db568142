//! Broadcast and settlement: sending the stored bytes (reconciled by hash, then by nonce, after a
//! restart), confirmation at the chain's depth, failures and the vendor's alerts.

use super::*;

/// Longest wait before a sweep whose bytes the node refused is looked at again (its replacement
/// may be due).
const REFUSED_RETRY_SECS: f64 = 30.0;

/// Sends a signed transaction: reconciles by hash, then by nonce, then sends the stored bytes.
pub(super) async fn broadcast(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    sweep: &SweepRow,
    head: u64,
) -> Result<bool, ChainError> {
    let (Some(hash), Some(raw), Some(from), Some(nonce)) = (
        sweep.tx_hash,
        sweep.raw_tx.as_ref(),
        sweep.from_address,
        sweep.nonce,
    ) else {
        return Err(ChainError::Invalid(format!(
            "sweep {} is signed without a transaction",
            sweep.sweep_id
        )));
    };
    let known = chain
        .provider
        .get_transaction_by_hash(hash)
        .await
        .map_err(|e| chain.rpc_error(e))?;
    if known.is_none() {
        let used = chain
            .provider
            .get_transaction_count(from)
            .latest()
            .await
            .map_err(|e| chain.rpc_error(e))?;
        if used > nonce {
            // One of this sweep's own transactions at that nonce (an earlier fee level) may be the
            // one mined: settling finds it.
            if sweep.hashes().len() > 1
                && replace::mined_among(chain, &sweep.hashes())
                    .await?
                    .is_some()
            {
                sqlx::query!(
                    "update sweep set status = 'broadcast' where sweep_id = $1 and status = 'signed'",
                    sweep.sweep_id
                )
                .execute(cx.pool)
                .await?;
                return Ok(true);
            }
            fail(cx, chain, sweep.sweep_id, &format!("nonce {nonce} of {from} was used by another transaction; {hash} can never be mined")).await?;
            return Ok(true);
        }
        // Blocks are counted from the first attempt to send: a node that refuses the bytes (fees
        // under the base fee) or drops them from its pool gets a replacement all the same.
        let first_attempt = sqlx::query_scalar!(
            "update sweep set broadcast_block = coalesce(broadcast_block, $2) where sweep_id = $1
             returning broadcast_block",
            sweep.sweep_id,
            i64::try_from(head).unwrap_or(i64::MAX)
        )
        .fetch_one(cx.pool)
        .await?;
        if let Err(e) = chain.provider.send_raw_transaction(raw).await {
            let message = chain.rpc_error(e).to_string();
            // The node may already have it (a send whose answer was lost).
            let again = chain
                .provider
                .get_transaction_by_hash(hash)
                .await
                .map_err(|e| chain.rpc_error(e))?;
            if again.is_none() {
                let sweep = SweepRow {
                    broadcast_block: first_attempt.and_then(|b| u64::try_from(b).ok()),
                    ..sweep.clone()
                };
                if replace_if_stuck(cx, chain, &sweep, head).await? {
                    return Ok(true);
                }
                setback(cx, chain, sweep.sweep_id, &message).await?;
                // Its replacement is due after a number of blocks, not of attempts: look again
                // at least every REFUSED_RETRY_SECS whatever the backoff says.
                sqlx::query!(
                    "update sweep set next_attempt_at = least(next_attempt_at, now() + make_interval(secs => $2))
                     where sweep_id = $1",
                    sweep.sweep_id,
                    REFUSED_RETRY_SECS
                )
                .execute(cx.pool)
                .await?;
                return Ok(false);
            }
        }
    }
    sqlx::query!(
        "update sweep set status = 'broadcast', broadcast_at = coalesce(broadcast_at, now()), last_error = null,
             broadcast_block = coalesce(broadcast_block, $2)
         where sweep_id = $1 and status = 'signed'",
        sweep.sweep_id,
        i64::try_from(head).unwrap_or(i64::MAX)
    )
    .execute(cx.pool)
    .await?;
    tracing::info!(sweep_id = sweep.sweep_id, tx_hash = %hash, "sweep transaction broadcast");
    Ok(true)
}

/// Waits for the receipt at `head - confirmations` of whichever transaction at the sweep's nonce got
/// mined (the current one or one it replaced); finishes the step or fails the sweep. A pending one is
/// replaced when stuck.
pub(super) async fn settle(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    sweep: &SweepRow,
    head: u64,
    safe: u64,
) -> Result<bool, ChainError> {
    let Some(current) = sweep.tx_hash else {
        return Err(ChainError::Invalid(format!(
            "sweep {} is broadcast without a hash",
            sweep.sweep_id
        )));
    };
    let Some((hash, receipt)) = replace::mined_among(chain, &sweep.hashes()).await? else {
        // Pending, or dropped by the node (e.g. after a reorg): reconcile like a signed one.
        let known = chain
            .provider
            .get_transaction_by_hash(current)
            .await
            .map_err(|e| chain.rpc_error(e))?;
        if known.is_none() {
            sqlx::query!(
                "update sweep set status = 'signed' where sweep_id = $1 and status = 'broadcast'",
                sweep.sweep_id
            )
            .execute(cx.pool)
            .await?;
            return Ok(true);
        }
        return replace_if_stuck(cx, chain, sweep, head).await;
    };
    let Some(block) = receipt.block_number else {
        return Ok(false);
    };
    if block > safe {
        return Ok(false);
    }
    let hash_text = format!("{hash:#x}");
    if sweep.cancels.contains(&hash) || (hash == current && sweep.cancelled) {
        sqlx::query!(
            "update sweep set tx_hash = $2 where sweep_id = $1",
            sweep.sweep_id,
            hash_text
        )
        .execute(cx.pool)
        .await?;
        fail(
            cx,
            chain,
            sweep.sweep_id,
            &format!("cancelled by the operator: {hash} (a 0-value transfer at the same nonce) was mined; nothing moved"),
        )
        .await?;
        return Ok(true);
    }
    let fee = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
    if !receipt.status() {
        // A relay that reverted because its authorization was already used (someone else relayed the
        // same signed authorization first) moved the funds all the same: the sweep is done.
        let relayed = match (sweep.method.as_str(), sweep.authorization) {
            ("eip3009", Some(nonce)) => {
                erc20::authorization_state(
                    chain,
                    sweep.token,
                    sweep.deposit,
                    nonce,
                    BlockId::number(safe),
                )
                .await?
            }
            _ => false,
        };
        if !relayed {
            fail(
                cx,
                chain,
                sweep.sweep_id,
                &format!("transaction {hash} reverted"),
            )
            .await?;
            return Ok(true);
        }
        tracing::warn!(sweep_id = sweep.sweep_id, tx_hash = %hash,
            "relay reverted but its authorization was used: the funds reached the treasury");
    }
    if sweep.step == "topup" {
        sqlx::query!(
            "update sweep set step = 'sweep', status = 'planned', topup_tx_hash = $2, from_address = null,
                 nonce = null, tx_hash = null, raw_tx = null, broadcast_at = null, next_attempt_at = now(),
                 broadcast_block = null, max_cost_wei = null, replaced_tx_hashes = '{}', cancel_tx_hashes = '{}',
                 replacements = 0, stuck_at = null, operator_action = null, topup_fee_wei = $3,
                 topup_confirmed_at = now()
             where sweep_id = $1 and status = 'broadcast'",
            sweep.sweep_id,
            hash_text,
            to_numeric(fee)
        )
        .execute(cx.pool)
        .await?;
        tracing::info!(sweep_id = sweep.sweep_id, tx_hash = %hash, "gas top-up confirmed");
        return Ok(true);
    }
    let dust = if sweep.method == "transfer" {
        Some(
            chain
                .provider
                .get_balance(sweep.deposit)
                .await
                .map_err(|e| chain.rpc_error(e))?,
        )
    } else {
        None
    };
    let mut tx = cx.pool.begin().await?;
    let updated = sqlx::query!(
        "update sweep set status = 'confirmed', confirmed_at = now(), block_number = $2, gas_used = $3,
             fee_wei = $4, dust_wei = $5, raw_tx = null, tx_hash = $6, stuck_at = null, operator_action = null
         where sweep_id = $1 and status = 'broadcast'",
        sweep.sweep_id,
        i64::try_from(block).unwrap_or(i64::MAX),
        i64::try_from(receipt.gas_used).unwrap_or(i64::MAX),
        to_numeric(fee),
        dust.map(to_numeric),
        hash_text
    )
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 1 {
        let purchase = sqlx::query_scalar!(
            "select purchase_id from checkout where deposit_address = $1",
            addr_key(sweep.deposit)
        )
        .fetch_one(&mut *tx)
        .await?;
        if let Some(purchase) = purchase {
            crate::billing::ledger::charge_sweep_fees(
                &mut tx,
                crate::domain::ids::PurchaseId(purchase),
                |c| cx.chains.sweep_fee(c),
            )
            .await?;
        }
    }
    tx.commit().await?;
    if let Some(dust) = dust.filter(|d| !d.is_zero()) {
        tracing::info!(sweep_id = sweep.sweep_id, dust_wei = %dust, "ETH dust left on the deposit address");
    }
    tracing::info!(sweep_id = sweep.sweep_id, tx_hash = %hash, gas_used = receipt.gas_used, "sweep confirmed");
    Ok(true)
}

/// Marks a sweep failed and tells the vendor (webhook and alert). The funds stay on the deposit
/// address; `vendor-server sweeps retry ID` plans it again.
pub(super) async fn fail(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    sweep_id: i64,
    error: &str,
) -> Result<(), ChainError> {
    let mut tx = cx.pool.begin().await?;
    let row = sqlx::query!(
        "update sweep set status = 'failed', last_error = $2
         where sweep_id = $1 and status not in ('confirmed', 'failed')
         returning token_address, deposit_address, tx_hash",
        sweep_id,
        error
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(());
    };
    let data = json!({
        "sweep_id": sweep_id,
        "chain_id": chain.id(),
        "chain": chain.name(),
        "token_address": row.token_address,
        "deposit_address": row.deposit_address,
        "tx_hash": row.tx_hash,
        "error": error,
        "message": format!("Sweep {sweep_id} from {} failed: {error}. The funds stay on the deposit address; run `vendor-server sweeps retry {sweep_id}` after fixing the cause.", row.deposit_address),
    });
    let key = format!(
        "sweep.failed:{sweep_id}:{}",
        row.tx_hash.as_deref().unwrap_or_default()
    );
    tell_vendor(&mut tx, "sweep.failed", &data, &key).await?;
    tx.commit().await?;
    tracing::error!(sweep_id, error, "sweep failed");
    Ok(())
}

/// A vendor-side event: the signed webhook and an operator alert, each once per `key`.
pub(super) async fn tell_vendor(
    conn: &mut sqlx::PgConnection,
    event_type: &str,
    data: &serde_json::Value,
    key: &str,
) -> Result<(), sqlx::Error> {
    for (channel, prefix) in [(Channel::Webhook, "webhook"), (Channel::Alert, "alert")] {
        let dedupe = format!("{prefix}:{key}");
        notify::enqueue(&mut *conn, channel, event_type, None, data, Some(&dedupe)).await?;
    }
    Ok(())
}
