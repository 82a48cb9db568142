//! Operator views: the sweeps list, retrying a failed sweep, the gas wallet's balance and explorer
//! links.

use super::*;

/// A sweep as listed by the CLI.
#[derive(Debug, Clone)]
pub struct SweepSummary {
    pub sweep_id: i64,
    pub chain_id: i64,
    pub token_symbol: String,
    pub deposit_address: String,
    pub amount_units: String,
    pub method: String,
    pub step: String,
    pub status: String,
    pub tx_hash: Option<String>,
    pub dust_wei: Option<String>,
    pub last_error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Sweeps, newest first (only unfinished ones with `pending`).
pub async fn list(
    pool: &PgPool,
    pending: bool,
    limit: i64,
) -> Result<Vec<SweepSummary>, sqlx::Error> {
    let rows = sqlx::query!(
        "select sweep_id, chain_id, token_symbol, deposit_address, amount_units, method, step, status, tx_hash,
                dust_wei, last_error, created_at
         from sweep where not $1 or status not in ('confirmed', 'failed')
         order by sweep_id desc limit $2",
        pending,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| SweepSummary {
            sweep_id: r.sweep_id,
            chain_id: r.chain_id,
            token_symbol: r.token_symbol,
            deposit_address: r.deposit_address,
            amount_units: r.amount_units.to_string(),
            method: r.method,
            step: r.step,
            status: r.status,
            tx_hash: r.tx_hash,
            dust_wei: r.dust_wei.map(|d| d.to_string()),
            last_error: r.last_error,
            created_at: r.created_at,
        })
        .collect())
}

/// Plans a failed sweep again (the operator fixed the cause); its amount is read again from the
/// chain before it is signed. Only failed sweeps: a signed or broadcast one may still be mined, and
/// retrying it could send twice.
pub async fn retry(pool: &PgPool, sweep_id: i64) -> Result<(), ChainError> {
    retry_in(&mut *pool.acquire().await?, sweep_id).await
}

/// [`retry`] inside the caller's transaction (the admin API writes its audit row with it).
pub async fn retry_in(conn: &mut sqlx::PgConnection, sweep_id: i64) -> Result<(), ChainError> {
    let status = sqlx::query_scalar!(
        "select status from sweep where sweep_id = $1 for update",
        sweep_id
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| ChainError::Invalid(format!("no sweep {sweep_id}")))?;
    if status != "failed" {
        return Err(ChainError::Invalid(format!(
            "sweep {sweep_id} is {status}; only failed sweeps can be retried"
        )));
    }
    sqlx::query!(
        "update sweep set status = 'planned', step = case when method = 'transfer' then 'topup' else 'sweep' end,
             from_address = null, nonce = null, tx_hash = null, raw_tx = null, broadcast_at = null,
             attempts = 0, next_attempt_at = now(), last_error = null, replan = true, broadcast_block = null,
             max_cost_wei = null, replaced_tx_hashes = '{}', cancel_tx_hashes = '{}', cancelled = false,
             replacements = 0, stuck_at = null, operator_action = null, batch_id = null
         where sweep_id = $1 and status = 'failed'",
        sweep_id
    )
    .execute(&mut *conn)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => ChainError::Invalid(format!(
            "another sweep of the same token and address is already running; sweep {sweep_id} is not needed"
        )),
        _ => ChainError::Db(e),
    })?;
    Ok(())
}

/// The gas wallet's balance on one chain (the `gas` CLI command).
pub async fn gas_balance(chain: &ChainClient, gas: Address) -> Result<U256, ChainError> {
    chain
        .provider
        .get_balance(gas)
        .await
        .map_err(|e| chain.rpc_error(e))
}

/// A failed sweep's transaction hash may be `None` before signing.
pub fn explorer_tx(chain: &ChainClient, hash: &str) -> String {
    if chain.config.explorer_url.is_empty() {
        hash.to_owned()
    } else {
        format!("{}/tx/{hash}", chain.config.explorer_url)
    }
}
