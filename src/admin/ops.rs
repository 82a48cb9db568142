//! The console's operations views and actions: sweeps (retry a failed one), the notifications
//! outbox (retry), cost import runs, billing tokens (create, list, revoke), the gas wallet per chain
//! and the overview.

use std::collections::BTreeMap;
use std::time::Duration;

use alloy::primitives::U256;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::{Actor, AdminError, AuditEntry, Done};
use crate::billing::statement::tx_link;
use crate::billing::{BillingError, PurchaseStatus, tokens};
use crate::chain::{ChainError, Chains};
use crate::config::ChainConfig;
use crate::domain::ids::PurchaseId;
use crate::domain::money::UsdMicros;
use crate::domain::page::Page;

/// How long one gas-balance read may take before the console shows the chain as unreadable.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// Recent confirmed sweeps whose gas cost estimates the cost of the next one.
const RECENT_SWEEPS: i64 = 20;

fn chain_name(chains: &[ChainConfig], chain_id: i64) -> Option<String> {
    chains
        .iter()
        .find(|c| i64::try_from(c.chain_id).ok() == Some(chain_id))
        .map(|c| c.name.clone())
}

// ---------------------------------------------------------------------------------------------
// Sweeps

/// One sweep as listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
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
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    /// Only failed sweeps can be retried.
    pub retryable: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
    let rows = sqlx::query!(
        r#"select sweep_id, chain_id, token_symbol, deposit_address, amount_units::text as "amount_units!", method,
                  step, status, tx_hash, topup_tx_hash, fee_wei::text, dust_wei::text, attempts, next_attempt_at,
                  last_error, created_at, updated_at, confirmed_at
           from sweep
           where ($1::bigint is null or sweep_id < $1) and ($2::text[] is null or status = any($2))
           order by sweep_id desc limit $3"#,
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
    let rows = sqlx::query!(
        r#"select sweep_id, chain_id, token_symbol, deposit_address, amount_units::text as "amount_units!", method,
                  step, status, tx_hash, topup_tx_hash, fee_wei::text, dust_wei::text, attempts, next_attempt_at,
                  last_error, created_at, updated_at, confirmed_at
           from sweep where deposit_address = $1
           order by sweep_id desc limit $2"#,
        deposit_address,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(sweep_rows!(rows, chains))
}

/// What a sweep retry did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
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
    super::save_answer(&mut tx, actor, &out).await?;
    super::audit(
        &mut tx,
        actor,
        AuditEntry {
            action: "sweep.retry",
            target_type: "sweep",
            target_id: sweep_id.to_string(),
            reason: None,
            details: serde_json::json!({"previous_status": out.previous_status}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Done {
        value: out,
        replayed: false,
    })
}

// ---------------------------------------------------------------------------------------------
// Notifications outbox

/// One outbox row (webhook, email, OfficeX update or alert) with its payload and last error.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NotificationRow {
    pub id: i64,
    /// `webhook`, `email`, `officex` or `alert`.
    pub channel: String,
    /// `evt_<uuid>`.
    pub event_id: String,
    pub event_type: String,
    pub purchase_id: Option<PurchaseId>,
    pub payload: serde_json::Value,
    /// `pending`, `delivered`, `failed` or `skipped`.
    pub status: String,
    pub attempt_count: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// Failed and pending rows can be retried (a pending one is then due at once).
    pub retryable: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

macro_rules! notification_rows {
    ($rows:expr) => {
        $rows
            .into_iter()
            .map(|r| NotificationRow {
                retryable: r.status == "failed" || r.status == "pending",
                id: r.outbox_id,
                channel: r.channel,
                event_id: crate::notify::events::event_wire_id(r.event_id),
                event_type: r.event_type,
                purchase_id: r.purchase_id.map(PurchaseId),
                payload: r.payload,
                status: r.status,
                attempt_count: r.attempt_count,
                next_attempt_at: r.next_attempt_at,
                last_error: r.last_error,
                delivered_at: r.delivered_at,
                created_at: r.created_at,
                updated_at: r.updated_at,
            })
            .collect::<Vec<_>>()
    };
}

const CHANNELS: [&str; 4] = ["webhook", "email", "officex", "alert"];
const OUTBOX_STATUSES: [&str; 4] = ["pending", "delivered", "failed", "skipped"];

/// Outbox rows, newest first, optionally of one status and channel.
pub async fn notifications(
    pool: &PgPool,
    status: Option<&str>,
    channel: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Page<NotificationRow>, AdminError> {
    if let Some(s) = status.filter(|s| !OUTBOX_STATUSES.contains(s)) {
        return Err(AdminError::invalid(
            "invalid_status",
            format!("status {s:?} is not one of {}", OUTBOX_STATUSES.join(", ")),
        ));
    }
    if let Some(c) = channel.filter(|c| !CHANNELS.contains(c)) {
        return Err(AdminError::invalid(
            "invalid_channel",
            format!("channel {c:?} is not one of {}", CHANNELS.join(", ")),
        ));
    }
    let rows = sqlx::query!(
        "select outbox_id, channel, event_id, event_type, purchase_id, payload, status, attempt_count,
                next_attempt_at, last_error, delivered_at, created_at, updated_at
         from outbox
         where ($1::bigint is null or outbox_id < $1) and ($2::text is null or status = $2)
           and ($3::text is null or channel = $3)
         order by outbox_id desc limit $4",
        before,
        status,
        channel,
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    let rows = notification_rows!(rows);
    Ok(Page::from_rows(rows, limit, |r| r.id.to_string()))
}

/// A purchase's outbox rows, newest first (optionally of one channel).
pub(crate) async fn notifications_of_purchase(
    pool: &PgPool,
    id: PurchaseId,
    channel: Option<&str>,
    limit: i64,
) -> Result<Vec<NotificationRow>, AdminError> {
    let rows = sqlx::query!(
        "select outbox_id, channel, event_id, event_type, purchase_id, payload, status, attempt_count,
                next_attempt_at, last_error, delivered_at, created_at, updated_at
         from outbox where purchase_id = $1 and ($2::text is null or channel = $2)
         order by outbox_id desc limit $3",
        id.0,
        channel,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(notification_rows!(rows))
}

/// What a notification retry did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NotificationRetryOut {
    pub id: i64,
    pub previous_status: String,
    /// `pending`, due now with a fresh retry schedule; the notify worker delivers it.
    pub status: String,
}

/// Delivers a failed (or still pending) outbox row again at once, with a fresh retry schedule (its
/// earlier attempts stay recorded). Delivered and skipped rows are final. Audited, idempotent by key.
pub async fn retry_notification(
    pool: &PgPool,
    outbox_id: i64,
    actor: &Actor,
) -> Result<Done<NotificationRetryOut>, AdminError> {
    let mut tx = pool.begin().await?;
    if let Some(replay) = super::claim_key(&mut tx, actor).await? {
        return Ok(replay);
    }
    let status = sqlx::query_scalar!(
        "select status from outbox where outbox_id = $1 for update",
        outbox_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AdminError::NotFound("notification"))?;
    if status != "failed" && status != "pending" {
        return Err(AdminError::InvalidState(format!(
            "notification {outbox_id} is {status}; only failed or pending ones can be retried"
        )));
    }
    sqlx::query!(
        "update outbox set status = 'pending', attempt_count = 0, next_attempt_at = now()
         where outbox_id = $1",
        outbox_id
    )
    .execute(&mut *tx)
    .await?;
    let out = NotificationRetryOut {
        id: outbox_id,
        previous_status: status,
        status: "pending".into(),
    };
    super::save_answer(&mut tx, actor, &out).await?;
    super::audit(
        &mut tx,
        actor,
        AuditEntry {
            action: "notification.retry",
            target_type: "notification",
            target_id: outbox_id.to_string(),
            reason: None,
            details: serde_json::json!({"previous_status": out.previous_status}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Done {
        value: out,
        replayed: false,
    })
}

// ---------------------------------------------------------------------------------------------
// Cost imports

/// One cost import run (the daily job, or `billing import` by hand).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CostImportRow {
    pub id: i64,
    /// The UTC day the run started.
    pub day: NaiveDate,
    /// `YYYY-MM`.
    pub billing_period: String,
    /// `cur` or `cost_explorer`.
    pub source: String,
    /// `schedule` or `cli`.
    pub trigger: String,
    /// `running`, `succeeded`, `failed` or `no_data`.
    pub status: String,
    pub files: i32,
    pub rows_read: i64,
    pub rows_matched: i64,
    /// Rows not charged: unknown tag + untagged + malformed.
    pub rows_skipped: i64,
    pub unknown_tag_rows: i64,
    pub untagged_rows: i64,
    pub error_rows: i64,
    pub purchases_charged: i32,
    pub entries_posted: i32,
    /// Ledger rows of this run that restated a day already charged (AWS changed its cost).
    pub restated_entries: i64,
    /// Net of this run's ledger posts, positive = debited from customers.
    pub charged_usd: UsdMicros,
    /// The AWS cost of the matched rows (before markup).
    pub matched_cost: Option<String>,
    pub unknown_tags: serde_json::Value,
    pub errors: serde_json::Value,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
}

/// Cost import runs, newest first.
pub async fn cost_imports(
    pool: &PgPool,
    before: Option<i64>,
    limit: i64,
) -> Result<Page<CostImportRow>, AdminError> {
    let rows = sqlx::query!(
        r#"select r.run_id, (r.started_at at time zone 'UTC')::date as "day!", r.billing_period, r.source,
                  r.trigger, r.status, r.files, r.rows_read, r.rows_matched, r.unknown_tag_rows, r.untagged_rows,
                  r.error_rows, r.purchases_charged, r.entries_posted, r.total_charged_micros,
                  r.matched_cost::text as matched_cost, r.unknown_tags, r.errors, r.started_at, r.finished_at,
                  r.duration_ms,
                  (select count(*) from ledger_entry l
                   where l.kind = 'cost' and (l.metadata ->> 'run_id')::bigint = r.run_id
                     and coalesce((l.metadata ->> 'aws_cost_before')::numeric, 0) <> 0) as "restated!"
           from cost_import_run r
           where ($1::bigint is null or r.run_id < $1)
           order by r.run_id desc limit $2"#,
        before,
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    let rows = rows
        .into_iter()
        .map(|r| CostImportRow {
            id: r.run_id,
            day: r.day,
            billing_period: r.billing_period.format("%Y-%m").to_string(),
            source: r.source,
            trigger: r.trigger,
            status: r.status,
            files: r.files,
            rows_read: r.rows_read,
            rows_matched: r.rows_matched,
            rows_skipped: r.unknown_tag_rows + r.untagged_rows + r.error_rows,
            unknown_tag_rows: r.unknown_tag_rows,
            untagged_rows: r.untagged_rows,
            error_rows: r.error_rows,
            purchases_charged: r.purchases_charged,
            entries_posted: r.entries_posted,
            restated_entries: r.restated,
            charged_usd: UsdMicros(r.total_charged_micros),
            matched_cost: r.matched_cost,
            unknown_tags: r.unknown_tags,
            errors: r.errors,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_ms: r.duration_ms,
        })
        .collect();
    Ok(Page::from_rows(rows, limit, |r| r.id.to_string()))
}

// ---------------------------------------------------------------------------------------------
// Billing tokens

/// A billing token as listed (never the secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenRow {
    pub id: i64,
    /// The token's first characters, to recognise it.
    pub display_prefix: String,
    pub label: String,
    /// `active` or `revoked`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl From<tokens::BillingToken> for TokenRow {
    fn from(t: tokens::BillingToken) -> Self {
        Self {
            id: t.id,
            display_prefix: t.display_prefix,
            label: t.label,
            status: if t.revoked_at.is_some() {
                "revoked"
            } else {
                "active"
            }
            .into(),
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        }
    }
}

/// A new token: the secret is in `token` this once (a replay with the same idempotency key
/// answers `null` there: the secret is never stored).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TokenCreated {
    #[serde(flatten)]
    pub row: TokenRow,
    pub token: Option<String>,
}

/// Every billing token, newest first.
pub async fn tokens(pool: &PgPool) -> Result<Page<TokenRow>, AdminError> {
    let items = tokens::list(pool)
        .await?
        .into_iter()
        .map(TokenRow::from)
        .collect();
    Ok(Page {
        items,
        next_cursor: None,
    })
}

/// Creates a billing token (as `tokens create`); audited (never with the secret), idempotent by key.
pub async fn create_token(
    pool: &PgPool,
    label: &str,
    actor: &Actor,
) -> Result<Done<TokenCreated>, AdminError> {
    let mut tx = pool.begin().await?;
    if let Some(replay) = super::claim_key(&mut tx, actor).await? {
        return Ok(replay);
    }
    let (token, secret) = tokens::create(&mut *tx, label).await.map_err(|e| match e {
        BillingError::Invalid(m) => AdminError::invalid("invalid_label", m),
        other => other.into(),
    })?;
    let row = TokenRow::from(token);
    super::save_answer(
        &mut tx,
        actor,
        &TokenCreated {
            row: row.clone(),
            token: None,
        },
    )
    .await?;
    super::audit(
        &mut tx,
        actor,
        AuditEntry {
            action: "token.create",
            target_type: "token",
            target_id: row.id.to_string(),
            reason: None,
            details: serde_json::json!({"label": row.label, "display_prefix": row.display_prefix}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Done {
        value: TokenCreated {
            row,
            token: Some(crate::billing::keys::reveal(&secret).to_owned()),
        },
        replayed: false,
    })
}

/// Revokes a billing token at once (as `tokens revoke`); revoking twice is fine. Audited,
/// idempotent by key.
pub async fn revoke_token(
    pool: &PgPool,
    id: i64,
    actor: &Actor,
) -> Result<Done<TokenRow>, AdminError> {
    let mut tx = pool.begin().await?;
    if let Some(replay) = super::claim_key(&mut tx, actor).await? {
        return Ok(replay);
    }
    let row = TokenRow::from(tokens::revoke(&mut *tx, id).await.map_err(|e| match e {
        BillingError::TokenNotFound(_) => AdminError::NotFound("token"),
        other => other.into(),
    })?);
    super::save_answer(&mut tx, actor, &row).await?;
    super::audit(
        &mut tx,
        actor,
        AuditEntry {
            action: "token.revoke",
            target_type: "token",
            target_id: id.to_string(),
            reason: None,
            details: serde_json::json!({"label": row.label, "display_prefix": row.display_prefix}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Done {
        value: row,
        replayed: false,
    })
}

// ---------------------------------------------------------------------------------------------
// Gas wallet

/// The gas wallet on one chain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct GasWallet {
    pub chain: String,
    pub chain_id: u64,
    pub address: String,
    /// `null` when the chain could not be read (see `error`).
    pub balance_wei: Option<String>,
    /// The balance in ETH, as an exact decimal string.
    pub balance_eth: Option<String>,
    /// The sweeper found it too low for the next sweep (sweeps wait; a `gas.low` alert went out).
    pub low: bool,
    pub low_since: Option<DateTime<Utc>>,
    /// Average gas cost of the chain's recent sweeps (`null` until one has confirmed).
    pub sweep_cost_wei: Option<String>,
    /// How many sweeps the balance still pays for at that cost.
    pub sweeps_covered: Option<String>,
    /// Unfinished sweeps on this chain.
    pub sweeps_waiting: i64,
    pub error: Option<String>,
}

/// The gas wallet's balance, low flag and coverage on every configured chain (`[]` without a gas
/// wallet). Each balance read is bounded by a timeout; an unreadable chain carries an `error`.
pub async fn gas(pool: &PgPool, chains: &Chains) -> Result<Vec<GasWallet>, AdminError> {
    let Some(gas) = chains.gas() else {
        return Ok(Vec::new());
    };
    let address = crate::chain::addr_key(gas.address());
    let mut out = Vec::new();
    for chain in chains.iter() {
        let Ok(id) = i64::try_from(chain.id()) else {
            continue;
        };
        let row = sqlx::query!(
            r#"select (select low_since from gas_wallet where chain_id = $1 and address = $2) as low_since,
                      (select avg(case when method = 'eip3009' then fee_wei
                                       else coalesce(topup_wei, 0) + 21000 * fee_wei / gas_used end)::numeric(78, 0)::text
                       from (select method, fee_wei, topup_wei, gas_used from sweep
                             where chain_id = $1 and status = 'confirmed' and fee_wei is not null and gas_used > 0
                             order by confirmed_at desc limit $3) recent) as cost,
                      (select count(*) from sweep where chain_id = $1
                         and status not in ('confirmed', 'failed')) as "waiting!""#,
            id,
            address,
            RECENT_SWEEPS
        )
        .fetch_one(pool)
        .await?;
        let (balance, error) = match tokio::time::timeout(
            RPC_TIMEOUT,
            crate::chain::sweeper::gas_balance(chain, gas.address()),
        )
        .await
        {
            Ok(Ok(b)) => (Some(b), None),
            Ok(Err(e)) => (None, Some(e.to_string())),
            Err(_) => (None, Some(format!("no answer within {RPC_TIMEOUT:?}"))),
        };
        let cost = row
            .cost
            .and_then(|c| c.parse::<U256>().ok())
            .filter(|c| !c.is_zero());
        out.push(GasWallet {
            chain: chain.name().to_owned(),
            chain_id: chain.id(),
            address: address.clone(),
            balance_wei: balance.map(|b| b.to_string()),
            balance_eth: balance.map(|b| crate::chain::format_units(b, 18)),
            low: row.low_since.is_some(),
            low_since: row.low_since,
            sweep_cost_wei: cost.map(|c| c.to_string()),
            sweeps_covered: balance.zip(cost).map(|(b, c)| (b / c).to_string()),
            sweeps_waiting: row.waiting,
            error,
        });
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Overview

/// Money over one window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Money {
    /// Deposits credited.
    pub credited_usd: UsdMicros,
    /// Usage billed (meter-usage, the Gemini gateway, the cost import), net of refunds.
    pub usage_billed_usd: UsdMicros,
    /// Operators' adjustments, net.
    pub adjustments_usd: UsdMicros,
}

/// Money today (since 00:00 UTC), over the last 7 and 30 days (rolling).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MoneyWindows {
    pub today: Money,
    pub last_7_days: Money,
    pub last_30_days: Money,
}

/// The console's first screen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Overview {
    pub money: MoneyWindows,
    /// Every status with its count (0 included).
    pub purchases_by_status: BTreeMap<String, i64>,
    pub purchases_total: i64,
    pub gas: Vec<GasWallet>,
    /// Unfinished sweeps (planned, signed, broadcast).
    pub sweeps_waiting: i64,
    pub sweeps_failed: i64,
    pub notifications_failed: i64,
    pub notifications_pending: i64,
    /// The newest cost import run (`null` before the first).
    pub last_cost_import: Option<CostImportRow>,
    pub generated_at: DateTime<Utc>,
}

/// Everything the overview shows.
pub async fn overview(pool: &PgPool, chains: &Chains) -> Result<Overview, AdminError> {
    let m = sqlx::query!(
        r#"select
             coalesce(sum(amount_micros) filter (where kind = 'deposit' and created_at >= date_trunc('day', now() at time zone 'UTC') at time zone 'UTC'), 0)::bigint as "credited_today!",
             coalesce(sum(amount_micros) filter (where kind = 'deposit' and created_at >= now() - interval '7 days'), 0)::bigint as "credited_7!",
             coalesce(sum(amount_micros) filter (where kind = 'deposit'), 0)::bigint as "credited_30!",
             coalesce(-sum(amount_micros) filter (where kind in ('usage', 'cost') and created_at >= date_trunc('day', now() at time zone 'UTC') at time zone 'UTC'), 0)::bigint as "billed_today!",
             coalesce(-sum(amount_micros) filter (where kind in ('usage', 'cost') and created_at >= now() - interval '7 days'), 0)::bigint as "billed_7!",
             coalesce(-sum(amount_micros) filter (where kind in ('usage', 'cost')), 0)::bigint as "billed_30!",
             coalesce(sum(amount_micros) filter (where kind = 'adjustment' and created_at >= date_trunc('day', now() at time zone 'UTC') at time zone 'UTC'), 0)::bigint as "adjusted_today!",
             coalesce(sum(amount_micros) filter (where kind = 'adjustment' and created_at >= now() - interval '7 days'), 0)::bigint as "adjusted_7!",
             coalesce(sum(amount_micros) filter (where kind = 'adjustment'), 0)::bigint as "adjusted_30!"
           from ledger_entry
           where kind in ('deposit', 'usage', 'cost', 'adjustment') and created_at >= now() - interval '30 days'"#
    )
    .fetch_one(pool)
    .await?;
    let money = MoneyWindows {
        today: Money {
            credited_usd: UsdMicros(m.credited_today),
            usage_billed_usd: UsdMicros(m.billed_today),
            adjustments_usd: UsdMicros(m.adjusted_today),
        },
        last_7_days: Money {
            credited_usd: UsdMicros(m.credited_7),
            usage_billed_usd: UsdMicros(m.billed_7),
            adjustments_usd: UsdMicros(m.adjusted_7),
        },
        last_30_days: Money {
            credited_usd: UsdMicros(m.credited_30),
            usage_billed_usd: UsdMicros(m.billed_30),
            adjustments_usd: UsdMicros(m.adjusted_30),
        },
    };
    let mut purchases_by_status: BTreeMap<String, i64> = [
        PurchaseStatus::Provisioning,
        PurchaseStatus::Active,
        PurchaseStatus::Low,
        PurchaseStatus::Critical,
        PurchaseStatus::Suspended,
        PurchaseStatus::Deleted,
        PurchaseStatus::Failed,
    ]
    .iter()
    .map(|s| (s.as_str().to_owned(), 0))
    .collect();
    let counts = sqlx::query!(r#"select status, count(*) as "n!" from purchase group by status"#)
        .fetch_all(pool)
        .await?;
    for c in counts {
        purchases_by_status.insert(c.status, c.n);
    }
    let purchases_total = purchases_by_status.values().sum();
    let q = sqlx::query!(
        r#"select
             (select count(*) from sweep where status not in ('confirmed', 'failed')) as "sweeps_waiting!",
             (select count(*) from sweep where status = 'failed') as "sweeps_failed!",
             (select count(*) from outbox where status = 'failed') as "notifications_failed!",
             (select count(*) from outbox where status = 'pending') as "notifications_pending!""#
    )
    .fetch_one(pool)
    .await?;
    let last_cost_import = cost_imports(pool, None, 1).await?.items.pop();
    Ok(Overview {
        money,
        purchases_by_status,
        purchases_total,
        gas: gas(pool, chains).await?,
        sweeps_waiting: q.sweeps_waiting,
        sweeps_failed: q.sweeps_failed,
        notifications_failed: q.notifications_failed,
        notifications_pending: q.notifications_pending,
        last_cost_import,
        generated_at: Utc::now(),
    })
}
