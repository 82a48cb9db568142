//! The Gemini gateway key shown again on the customer page while the receipt is kept (24 h): read
//! from the sealed receipt, and only while it is still the purchase's live key (a rotated key is
//! never shown again; the new one was shown once).

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::{CredentialError, CredentialKind, cipher, epoch_ms};
use crate::billing::keys;
use crate::config::Config;
use crate::domain::ids::{CheckoutSessionId, PurchaseId};

/// The gateway key as the customer page shows it (masked until revealed).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RevealedKey {
    pub kind: CredentialKind,
    /// The key itself (`vsg_…`).
    pub secret: String,
    /// Its last 4 characters.
    pub hint: String,
    /// When it was issued, epoch milliseconds.
    pub created_at: i64,
    /// Until when it is shown here (the receipt's 24 hours), epoch milliseconds.
    pub shown_until: i64,
}

/// The purchase's gateway key from its receipt, while the receipt is kept and the key is live;
/// `None` otherwise (another kind of purchase, receipt erased, key replaced or revoked).
pub async fn receipt_gateway_key(
    pool: &PgPool,
    config: &Config,
    id: PurchaseId,
) -> Result<Option<RevealedKey>, CredentialError> {
    let row = sqlx::query!(
        r#"select checkout_session_id, receipt_sealed as "sealed!", receipt_sealed_until as "until!"
           from checkout
           where purchase_id = $1 and receipt_sealed is not null and receipt_sealed_until > now()"#,
        id.0
    )
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let until: DateTime<Utc> = row.until;
    let aad = CheckoutSessionId(row.checkout_session_id).to_string();
    let Some(secret) = cipher(config)?
        .open(&row.sealed, &aad)
        .and_then(|receipt| receipt.redeem_code)
    else {
        return Ok(None);
    };
    let live = sqlx::query!(
        "select created_at from gateway_key
         where purchase_id = $1 and key_hash = $2 and status <> 'revoked'",
        id.0,
        keys::hash(&secret)
    )
    .fetch_optional(pool)
    .await?;
    Ok(live.map(|k| RevealedKey {
        kind: CredentialKind::GatewayKey,
        hint: keys::hint(&secret),
        secret,
        created_at: epoch_ms(k.created_at),
        shown_until: epoch_ms(until),
    }))
}
