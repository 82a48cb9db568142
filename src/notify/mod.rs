//! Notifications outbox: `enqueue` inside the transaction that makes the change; a worker delivers.

pub mod events;
pub mod worker;

use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::ids::PurchaseId;

/// Where an outbox row goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// HMAC-signed webhook to `VENDOR_WEBHOOK_URL`.
    Webhook,
    /// Email to the customer (the checkout's address).
    Email,
    /// OfficeX purchase record update.
    Officex,
    /// Operator alert (`VENDOR_ALERT_EMAIL` and the logs), never through the webhook.
    Alert,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Email => "email",
            Self::Officex => "officex",
            Self::Alert => "alert",
        }
    }
}

/// Writes one outbox row. With a `dedupe_key`, a second enqueue of the same key is a no-op
/// (returns `false`).
pub async fn enqueue(
    conn: &mut PgConnection,
    channel: Channel,
    event_type: &str,
    purchase_id: Option<PurchaseId>,
    payload: &impl Serialize,
    dedupe_key: Option<&str>,
) -> Result<bool, sqlx::Error> {
    let payload = serde_json::to_value(payload).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let inserted = sqlx::query!(
        "insert into outbox (channel, event_id, event_type, purchase_id, payload, dedupe_key)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (dedupe_key) do nothing",
        channel.as_str(),
        Uuid::new_v4(),
        event_type,
        purchase_id.map(|p| p.0),
        payload,
        dedupe_key,
    )
    .execute(conn)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// A claimed outbox row, handed to the channel's deliverer.
#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub outbox_id: i64,
    pub channel: String,
    pub event_id: Uuid,
    pub event_type: String,
    pub purchase_id: Option<PurchaseId>,
    pub payload: serde_json::Value,
    /// 1 for the first attempt.
    pub attempt: i32,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// How long a claimed row is hidden from other workers while it is being delivered.
const CLAIM_LEASE_SECS: f64 = 300.0;

/// Claims up to `limit` due rows of `channel` (`FOR UPDATE SKIP LOCKED`, then a lease), so several
/// workers or replicas never deliver the same row at once. Each claim counts as one attempt.
pub async fn claim_due(
    pool: &sqlx::PgPool,
    channel: Channel,
    limit: i64,
) -> Result<Vec<OutboxItem>, sqlx::Error> {
    let rows = sqlx::query!(
        "update outbox o set attempt_count = o.attempt_count + 1,
             next_attempt_at = now() + make_interval(secs => $3)
         where o.outbox_id in (
             select outbox_id from outbox
             where channel = $1 and status = 'pending' and next_attempt_at <= now()
             order by next_attempt_at
             limit $2
             for update skip locked)
         returning o.outbox_id, o.channel, o.event_id, o.event_type, o.purchase_id, o.payload, o.attempt_count,
                   o.created_at",
        channel.as_str(),
        limit,
        CLAIM_LEASE_SECS,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| OutboxItem {
            outbox_id: r.outbox_id,
            channel: r.channel,
            event_id: r.event_id,
            event_type: r.event_type,
            purchase_id: r.purchase_id.map(PurchaseId),
            payload: r.payload,
            attempt: r.attempt_count,
            created_at: r.created_at,
        })
        .collect())
}

/// The outcome of one delivery attempt.
#[derive(Debug, Clone)]
pub enum Delivery {
    Delivered {
        http_status: Option<i32>,
    },
    /// Try again after `retry_after` (or the schedule's next step when `None`).
    Retry {
        http_status: Option<i32>,
        error: String,
        retry_after: Option<std::time::Duration>,
    },
    /// Never retry (e.g. a 4xx that will not change).
    GiveUp {
        http_status: Option<i32>,
        error: String,
    },
    /// Nothing to deliver (e.g. the feature is off or the row does not apply): completes as
    /// `skipped`, with `reason` recorded, never retried and no alert.
    Skipped {
        reason: String,
    },
}

/// Retry schedule in seconds, applied with ±20 % jitter; after the last step the row fails.
pub const RETRY_SCHEDULE_SECS: &[u64] = &[5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 43200];

/// Records an attempt and moves the row on: delivered, rescheduled with backoff, or failed.
/// Returns `true` when the row has now failed for good (callers raise an alert).
pub async fn record(
    pool: &sqlx::PgPool,
    item: &OutboxItem,
    outcome: &Delivery,
    duration: std::time::Duration,
) -> Result<bool, sqlx::Error> {
    use rand::Rng;
    let (ok, http_status, error) = match outcome {
        Delivery::Delivered { http_status } => (true, *http_status, None),
        Delivery::Retry {
            http_status, error, ..
        }
        | Delivery::GiveUp { http_status, error } => (false, *http_status, Some(error.as_str())),
        Delivery::Skipped { reason } => (true, None, Some(reason.as_str())),
    };
    let duration_ms = i32::try_from(duration.as_millis()).unwrap_or(i32::MAX);
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "insert into outbox_attempt (outbox_id, ok, http_status, error, duration_ms) values ($1, $2, $3, $4, $5)",
        item.outbox_id,
        ok,
        http_status,
        error,
        duration_ms,
    )
    .execute(&mut *tx)
    .await?;
    let step = usize::try_from(item.attempt.max(1) - 1).unwrap_or(usize::MAX);
    let (status, delay_secs) = match outcome {
        Delivery::Delivered { .. } => ("delivered", 0.0),
        Delivery::GiveUp { .. } => ("failed", 0.0),
        Delivery::Skipped { .. } => ("skipped", 0.0),
        Delivery::Retry { retry_after, .. } => match RETRY_SCHEDULE_SECS.get(step) {
            None => ("failed", 0.0),
            Some(base) => {
                let base =
                    retry_after.map_or(*base as f64, |r| r.as_secs_f64().clamp(1.0, 86_400.0));
                ("pending", base * rand::thread_rng().gen_range(0.8..1.2))
            }
        },
    };
    sqlx::query!(
        "update outbox set status = $2, last_error = $3,
             next_attempt_at = now() + make_interval(secs => $4),
             delivered_at = case when $2 = 'delivered' then now() else delivered_at end
         where outbox_id = $1",
        item.outbox_id,
        status,
        error,
        delay_secs,
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(status == "failed")
}
