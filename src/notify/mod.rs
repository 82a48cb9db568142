//! Notifications outbox: `enqueue` inside the transaction that makes the change; a worker delivers.

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
