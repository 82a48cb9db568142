//! The notifications outbox in the console: webhooks, emails, OfficeX updates and alerts with their
//! payloads and last errors, and the retry of a failed one.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::{Actor, AdminError, AuditEntry, Done};
use crate::domain::ids::PurchaseId;
use crate::domain::page::Page;

/// One outbox row (webhook, email, OfficeX update or alert) with its payload and last error.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
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
    #[schema(value_type = String, format = DateTime)]
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<DateTime<Utc>>,
    /// Failed and pending rows can be retried (a pending one is then due at once).
    pub retryable: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
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
    let entry = AuditEntry {
        action: "notification.retry",
        target_type: "notification",
        target_id: outbox_id.to_string(),
        reason: None,
        details: serde_json::json!({"previous_status": out.previous_status}),
    };
    super::finish(tx, actor, out, entry).await
}
