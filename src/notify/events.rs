//! Typed helpers other modules call (inside their own transaction) to announce something, and the
//! webhook wire format: body `{id: "evt_<uuid>", type, created_at, data}`, headers
//! `X-Vendor-Event-Id` and `X-Vendor-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
//! Each event's `data` is documented in the README ("Webhooks").

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Channel, enqueue};
use crate::domain::ids::PurchaseId;

/// The webhook events this server sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookEvent {
    /// A purchase was created by finalize.
    PurchaseCreated,
    /// A purchase's status changed (balance crossing, provisioning, suspension, deletion).
    PurchaseStatusChanged,
    /// A confirmed deposit was credited to a purchase.
    DepositCredited,
    /// A credited deposit's block left the chain (reorg): its credit was reversed.
    DepositReversed,
    /// A sweep to the treasury failed for good.
    SweepFailed,
    /// A gas wallet is running low.
    GasLow,
}

impl WebhookEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PurchaseCreated => "purchase.created",
            Self::PurchaseStatusChanged => "purchase.status_changed",
            Self::DepositCredited => "deposit.credited",
            Self::DepositReversed => "deposit.reversed",
            Self::SweepFailed => "sweep.failed",
            Self::GasLow => "gas.low",
        }
    }
}

/// Enqueues a webhook event in the caller's transaction. With a `dedupe_key`, the same key enqueues
/// once (returns `false` the second time). `data` becomes the body's `data`.
pub async fn webhook(
    conn: &mut PgConnection,
    event: WebhookEvent,
    purchase_id: Option<PurchaseId>,
    data: &impl Serialize,
    dedupe_key: Option<&str>,
) -> Result<bool, sqlx::Error> {
    enqueue(
        conn,
        Channel::Webhook,
        event.as_str(),
        purchase_id,
        data,
        dedupe_key,
    )
    .await
}

/// A plain-text email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
}

/// Enqueues an email to a customer in the caller's transaction.
pub async fn email(
    conn: &mut PgConnection,
    event_type: &str,
    purchase_id: Option<PurchaseId>,
    email: &Email,
    dedupe_key: Option<&str>,
) -> Result<bool, sqlx::Error> {
    enqueue(
        conn,
        Channel::Email,
        event_type,
        purchase_id,
        email,
        dedupe_key,
    )
    .await
}

/// An operator alert: sent to `VENDOR_ALERT_EMAIL` and logged at error level, never through the
/// webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Alert {
    pub subject: String,
    pub text: String,
}

/// Enqueues an operator alert in the caller's transaction.
pub async fn alert(
    conn: &mut PgConnection,
    event_type: &str,
    purchase_id: Option<PurchaseId>,
    alert: &Alert,
    dedupe_key: Option<&str>,
) -> Result<bool, sqlx::Error> {
    enqueue(
        conn,
        Channel::Alert,
        event_type,
        purchase_id,
        alert,
        dedupe_key,
    )
    .await
}

/// The wire id of an event.
pub fn event_wire_id(event_id: Uuid) -> String {
    format!("evt_{event_id}")
}

/// The webhook body, byte for byte what is signed and sent.
pub fn webhook_body(
    event_id: Uuid,
    event_type: &str,
    created_at: DateTime<Utc>,
    data: &serde_json::Value,
) -> String {
    serde_json::json!({
        "id": event_wire_id(event_id),
        "type": event_type,
        "created_at": created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": data,
    })
    .to_string()
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length; the error branch cannot happen.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// `X-Vendor-Signature` for `body` sent at `timestamp` (unix seconds).
pub fn signature_header(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

/// Checks an `X-Vendor-Signature` header (what a receiver does), in constant time. `tolerance`
/// bounds the age of `t` against `now` (unix seconds).
pub fn verify_signature(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: i64,
) -> bool {
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > tolerance {
        return false;
    }
    v1.iter()
        .any(|tag| mac(secret, t, body).verify_slice(tag).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trips_and_rejects_tampering() {
        let body = br#"{"id":"evt_1"}"#;
        let header = signature_header(b"secret", 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert!(verify_signature(
            b"secret",
            &header,
            body,
            1_700_000_010,
            300
        ));
        assert!(!verify_signature(
            b"other",
            &header,
            body,
            1_700_000_010,
            300
        ));
        assert!(!verify_signature(
            b"secret",
            &header,
            b"{}",
            1_700_000_010,
            300
        ));
        assert!(!verify_signature(
            b"secret",
            &header,
            body,
            1_700_009_000,
            300
        ));
        assert!(!verify_signature(
            b"secret",
            "v1=00",
            body,
            1_700_000_000,
            300
        ));
    }

    #[test]
    fn signature_matches_an_independent_hmac() {
        // HMAC-SHA256(key="whsec", "42.{}") computed with Python's hmac module.
        let header = signature_header(b"whsec", 42, b"{}");
        assert_eq!(
            header,
            "t=42,v1=ea434e072981912fd364a5e2196d0bc7e27ecc0799faca867a571a7d2e09795b"
        );
    }

    #[test]
    fn body_has_the_documented_shape() {
        let id = Uuid::nil();
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let body: serde_json::Value = serde_json::from_str(&webhook_body(
            id,
            "gas.low",
            at,
            &serde_json::json!({"a": 1}),
        ))
        .unwrap();
        assert_eq!(body["id"], format!("evt_{id}"));
        assert_eq!(body["type"], "gas.low");
        assert_eq!(body["created_at"], "2026-01-02T03:04:05.000Z");
        assert_eq!(body["data"]["a"], 1);
    }
}
