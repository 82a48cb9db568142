//! Sweeps in the console: the list (with transactions, attempts and last errors) and the retry of a
//! failed one, as `vendor-server sweeps retry`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::{Actor, AdminError, AuditEntry, Done};
use crate::billing::statement::tx_link;
use crate::chain::ChainError;
use crate::config::ChainConfig;
use crate::domain::page::Page;

fn chain_name(chains: &[ChainConfig], chain_id: i64) -> Option<String> {
    chains
        .iter()
        .find(|c| i64::try_from(c.chain_id).ok() == Some(chain_id))
        .map(|c| c.name.clone())
}

/// One sweep as listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SweepRow {
    pub id: i64,
    pub chain_id: i64,
    /// The chain's configured name (`null` for a chain no longer configured).
    pub chain: Option<String>,
    pub token_symbol: String,
    pub deposit_address: String,
    /// In the token's smallest unit.
    pub amount_units: String,
    /// `eip3009` or `transfer`.
    pub method: String,
    /// `topup` or `sweep`.
    pub step: String,
    /// `planned`, `signed`, `broadcast`, `confirmed` or `failed`.
    pub status: String,
    pub tx_hash: Option<String>,
    pub explorer_url: Option<String>,
    pub topup_tx_hash: Option<String>,
    pub fee_wei: Option<String>,
    pub dust_wei: Option<String>,
    pub attempts: i32,
    #[schema(value_type = String, format = DateTime)]
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// Only failed sweeps can be retried.
    pub retryable: bool,
    /// The current transaction's nonce (signed or broadcast ones; kept by confirmed and failed ones).
    pub nonce: Option<i64>,
    /// Times its transaction was re-signed at the same nonce with higher fees (or cancelled).
    pub replacements: i32,
    /// When its fees reached the chain's `max_fee_gwei` with the transaction still not mined (one
    /// `tx.stuck` alert went out); the operator may bump or cancel.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub stuck_at: Option<DateTime<Utc>>,
    /// `bump` or `cancel` requested by an operator, carried out on the sweeper's next pass.
    pub operator_action: Option<String>,
    /// Whether its transaction can be bumped or cancelled (signed or broadcast, not yet mined).
    pub replaceable: bool,
    /// The batch it was relayed in (batched EIP-3009 sweeps: many relays in one Multicall3
    /// transaction of the gas wallet); `null` for a sweep sent on its own. A bump or cancel of a
    /// batched sweep applies to the whole batch.
    pub batch_id: Option<i64>,
    /// The batch's current transaction (the same for every sweep of the batch).
    pub batch_tx_hash: Option<String>,
    /// How many sweeps the batch relays.
    pub batch_size: Option<i32>,
    /// The batch's own status: `signed`, `broadcast`, `confirmed` or `failed` (a confirmed batch
    /// may hold failed sweeps: each is settled by its own authorization).
    pub batch_status: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub confirmed_at: Option<DateTime<Utc>>,
}

macro_rules! sweep_rows {
    ($rows:expr, $chains:expr) => {
        $rows
            .into_iter()
            .map(|r| SweepRow {
                chain: chain_name($chains, r.chain_id),
                explorer_url: r
                    .tx_hash
                    .as_deref()
                    .and_then(|h| tx_link($chains, r.chain_id, h)),
                retryable: r.status == "failed",
                replaceable: matches!(r.status.as_str(), "signed" | "broadcast")
                    && r.nonce.is_some(),
                nonce: r.nonce,
                replacements: r.replacements,
                stuck_at: r.stuck_at,
                operator_action: r.operator_action,
                batch_id: r.batch_id,
                batch_tx_hash: r.batch_tx_hash,
                batch_size: r.batch_size,
                batch_status: r.batch_status,
                id: r.sweep_id,
                chain_id: r.chain_id,
                token_symbol: r.token_symbol.to_uppercase(),
                deposit_address: r.deposit_address,
                amount_units: r.amount_units,
                method: r.method,
                step: r.step,
                status: r.status,
                tx_hash: r.tx_hash,
                topup_tx_hash: r.topup_tx_hash,
                fee_wei: r.fee_wei,
                dust_wei: r.dust_wei,
                attempts: r.attempts,
                next_attempt_at: r.next_attempt_at,
                last_error: r.last_error,
                created_at: r.created_at,
                updated_at: r.updated_at,
                confirmed_at: r.confirmed_at,
            })
            .collect::<Vec<_>>()
    };
}

/// `select … from sweep s left join sweep_batch b` with `$tail` (where, order, limit): the columns
/// [`sweep_rows!`] reads.
macro_rules! select_sweeps {
    ($tail:literal, $($arg:expr),*) => {
        sqlx::query!(
            r#"select s.sweep_id, s.chain_id, s.token_symbol, s.deposit_address, s.amount_units::text as "amount_units!",
                      s.method, s.step, s.status, s.tx_hash, s.topup_tx_hash, s.fee_wei::text, s.dust_wei::text,
                      s.attempts, s.next_attempt_at, s.last_error, s.created_at, s.updated_at, s.confirmed_at, s.nonce,
                      s.replacements, s.stuck_at, s.operator_action, s.batch_id,
                      b.tx_hash as "batch_tx_hash?", b.size as "batch_size?", b.status as "batch_status?"
               from sweep s left join sweep_batch b on b.batch_id = s.batch_id "# + $tail,
            $($arg),*
        )
    };
}

/// Sweeps, newest first; `status` `waiting` means every unfinished one (planned, signed, broadcast).
pub async fn sweeps(
    pool: &PgPool,
    status: Option<&str>,
    before: Option<i64>,
    limit: i64,
    chains: &[ChainConfig],
) -> Result<Page<SweepRow>, AdminError> {
    let statuses: Option<Vec<String>> = match status {
        None => None,
        Some("waiting") => Some(vec!["planned".into(), "signed".into(), "broadcast".into()]),
        Some(s @ ("planned" | "signed" | "broadcast" | "confirmed" | "failed")) => {
            Some(vec![s.to_owned()])
        }
        Some(other) => {
            return Err(AdminError::invalid(
                "invalid_status",
                format!(
                    "status {other:?} is not one of waiting, planned, signed, broadcast, confirmed, failed"
                ),
            ));
        }
    };
    let rows = select_sweeps!(
        "where ($1::bigint is null or s.sweep_id < $1) and ($2::text[] is null or s.status = any($2))
         order by s.sweep_id desc limit $3",
        before,
        statuses.as_deref(),
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    let rows = sweep_rows!(rows, chains);
    Ok(Page::from_rows(rows, limit, |r| r.id.to_string()))
}

/// The sweeps of one deposit address, newest first.
pub(crate) async fn sweeps_of_address(
    pool: &PgPool,
    deposit_address: &str,
    limit: i64,
    chains: &[ChainConfig],
) -> Result<Vec<SweepRow>, AdminError> {
    let rows = select_sweeps!(
        "where s.deposit_address = $1 order by s.sweep_id desc limit $2",
        deposit_address,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(sweep_rows!(rows, chains))
}

/// What a sweep retry did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SweepRetryOut {
    pub id: i64,
    pub previous_status: String,
    /// `planned`: the sweeper picks it up on its next pass.
    pub status: String,
}

/// Plans a failed sweep again, as `vendor-server sweeps retry` does; audited, idempotent by key.
pub async fn retry_sweep(
    pool: &PgPool,
    sweep_id: i64,
    actor: &Actor,
) -> Result<Done<SweepRetryOut>, AdminError> {
    let mut tx = pool.begin().await?;
    if let Some(replay) = super::claim_key(&mut tx, actor).await? {
        return Ok(replay);
    }
    let status = sqlx::query_scalar!(
        "select status from sweep where sweep_id = $1 for update",
        sweep_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AdminError::NotFound("sweep"))?;
    crate::chain::sweeper::retry_in(&mut tx, sweep_id)
        .await
        .map_err(|e| match e {
            ChainError::Invalid(m) => AdminError::InvalidState(m),
            ChainError::Db(e) => AdminError::Db(e),
            other => AdminError::Internal(other.to_string()),
        })?;
    let out = SweepRetryOut {
        id: sweep_id,
        previous_status: status,
        status: "planned".into(),
    };
    let entry = AuditEntry {
        action: "sweep.retry",
        target_type: "sweep",
        target_id: sweep_id.to_string(),
        reason: None,
        details: serde_json::json!({"previous_status": out.previous_status}),
    };
    super::finish(tx, actor, out, entry).await
}

/// What an operator may do with a sweep's transaction that is not mined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxAction {
    /// Re-sign at the same nonce with both fees raised 25 % (past the chain's cap if need be).
    Bump,
    /// Replace it with a 0-value transfer of its signer to itself at the same nonce.
    Cancel,
}

impl TxAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bump => "bump",
            Self::Cancel => "cancel",
        }
    }
}

/// What a bump or cancel request did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct SweepActionOut {
    pub id: i64,
    /// `bump` or `cancel`.
    pub action: String,
    /// The nonce whose transaction is replaced.
    pub nonce: i64,
    /// `requested`: the sweeper signs and sends the replacement on its next pass (seconds).
    pub status: String,
}

/// Asks the sweeper to bump or cancel a sweep's signed or broadcast transaction (it signs under its
/// claim on its next pass); audited, idempotent by key.
pub async fn request_tx_action(
    pool: &PgPool,
    sweep_id: i64,
    action: TxAction,
    actor: &Actor,
) -> Result<Done<SweepActionOut>, AdminError> {
    let mut tx = pool.begin().await?;
    if let Some(replay) = super::claim_key(&mut tx, actor).await? {
        return Ok(replay);
    }
    let row = sqlx::query!(
        "select status, nonce, tx_hash from sweep where sweep_id = $1 for update",
        sweep_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AdminError::NotFound("sweep"))?;
    let nonce = match (row.status.as_str(), row.nonce) {
        ("signed" | "broadcast", Some(nonce)) => nonce,
        (status, _) => {
            return Err(AdminError::InvalidState(format!(
                "sweep {sweep_id} is {status}; only a signed or broadcast transaction can be {}",
                if action == TxAction::Bump {
                    "bumped"
                } else {
                    "cancelled"
                }
            )));
        }
    };
    sqlx::query!(
        "update sweep set operator_action = $2, next_attempt_at = now() where sweep_id = $1",
        sweep_id,
        action.as_str()
    )
    .execute(&mut *tx)
    .await?;
    // A batched sweep's transaction is its batch's: the request applies to the whole batch.
    sqlx::query!(
        "update sweep_batch set operator_action = $2, next_attempt_at = now()
         where batch_id = (select batch_id from sweep where sweep_id = $1) and status in ('signed', 'broadcast')",
        sweep_id,
        action.as_str()
    )
    .execute(&mut *tx)
    .await?;
    let out = SweepActionOut {
        id: sweep_id,
        action: action.as_str().into(),
        nonce,
        status: "requested".into(),
    };
    let entry = AuditEntry {
        action: match action {
            TxAction::Bump => "sweep.bump",
            TxAction::Cancel => "sweep.cancel",
        },
        target_type: "sweep",
        target_id: sweep_id.to_string(),
        reason: None,
        details: serde_json::json!({"nonce": nonce, "tx_hash": row.tx_hash, "status": row.status}),
    };
    super::finish(tx, actor, out, entry).await
}
