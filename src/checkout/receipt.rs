//! Receipts: the reference's `receipt` object, a copy without secrets, and the full one sealed with
//! `DATA_ENCRYPTION_KEY` (ChaCha20-Poly1305, bound to the checkout session) for 24 hours.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::CheckoutError;
use crate::domain::ids::CheckoutSessionId;

/// How long a receipt with secrets is kept for replay.
pub const SEALED_FOR_HOURS: i64 = 24;

/// `IResponseCheckoutFinalize.receipt` (`@officexapp/types`), plus the optional fields the types allow.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Receipt {
    pub vendor_disclaimer: String,
    pub checkout_session_id: String,
    pub checkout_flow_id: String,
    pub skip_to_final_redirect: String,
    pub skip_to_final_cta: String,
    pub vendor_name: String,
    pub vendor_id: String,
    /// `RUNNING` when the resource is ready, `AWAITING` while it is provisioned.
    pub status: String,
    pub description: String,
    pub about_url: String,
    pub billing_url: String,
    pub support_url: String,
    pub title: String,
    pub subtitle: String,
    pub pricing: String,
    pub vendor_notes: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeem_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_url: Option<String>,
    /// Our purchase id (`CustomerPurchaseID_…`).
    pub vendor_purchase_id: String,
    /// The customer's billing key; only in the first answer and in replays to the same
    /// `officex_purchase_id` within 24 hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_billing_api_key: Option<String>,
}

/// Seals and opens receipts.
pub struct ReceiptCipher {
    cipher: ChaCha20Poly1305,
}

impl ReceiptCipher {
    /// From the 64-hex-character `DATA_ENCRYPTION_KEY` (validated by the config).
    pub fn new(key: &SecretString) -> Result<Self, CheckoutError> {
        let bytes = hex::decode(key.expose_secret())
            .ok()
            .filter(|b| b.len() == 32)
            .ok_or_else(|| CheckoutError::NotConfigured("DATA_ENCRYPTION_KEY is invalid".into()))?;
        let cipher = ChaCha20Poly1305::new_from_slice(&bytes)
            .map_err(|_| CheckoutError::NotConfigured("DATA_ENCRYPTION_KEY is invalid".into()))?;
        Ok(Self { cipher })
    }

    /// `nonce || ciphertext` of the JSON, authenticated with `aad`.
    pub fn seal(&self, receipt: &Receipt, aad: &str) -> Result<Vec<u8>, CheckoutError> {
        self.seal_json(receipt, aad)
    }

    /// Opens a sealed receipt; `None` if it does not authenticate (other key, other session).
    pub fn open(&self, sealed: &[u8], aad: &str) -> Option<Receipt> {
        self.open_json(sealed, aad)
    }

    /// `nonce || ciphertext` of any value's JSON (a credential kept for a replay), authenticated
    /// with `aad`.
    pub fn seal_json<T: Serialize>(&self, value: &T, aad: &str) -> Result<Vec<u8>, CheckoutError> {
        let plain =
            serde_json::to_vec(value).map_err(|e| CheckoutError::Internal(e.to_string()))?;
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plain,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CheckoutError::Internal("sealing failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(out)
    }

    /// Opens what [`Self::seal_json`] sealed; `None` if it does not authenticate or parse.
    pub fn open_json<T: DeserializeOwned>(&self, sealed: &[u8], aad: &str) -> Option<T> {
        if sealed.len() < 12 {
            return None;
        }
        let (nonce, body) = sealed.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().ok()?;
        let plain = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: body,
                    aad: aad.as_bytes(),
                },
            )
            .ok()?;
        serde_json::from_slice(&plain).ok()
    }
}

/// Stores a checkout's receipts in the caller's transaction: `public` as it is, `full` sealed for
/// [`SEALED_FOR_HOURS`].
pub async fn store(
    conn: &mut sqlx::PgConnection,
    cipher: &ReceiptCipher,
    session: CheckoutSessionId,
    full: &Receipt,
    public: &Receipt,
) -> Result<(), CheckoutError> {
    let sealed = cipher.seal(full, &session.to_string())?;
    sqlx::query!(
        "update checkout set receipt_sealed = $2, receipt_public = $3,
             receipt_sealed_until = now() + make_interval(hours => $4)
         where checkout_session_id = $1",
        session.0,
        sealed,
        serde_json::to_value(public).map_err(|e| CheckoutError::Internal(e.to_string()))?,
        i32::try_from(SEALED_FOR_HOURS).unwrap_or(24),
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Erases sealed receipts older than 24 hours (the copy without secrets stays), and the sealed
/// answers of credential rotations kept as long.
pub async fn erase_expired(pool: &PgPool) -> Result<u64, sqlx::Error> {
    let receipts = sqlx::query!(
        "update checkout set receipt_sealed = null, receipt_sealed_until = null
         where receipt_sealed is not null and receipt_sealed_until < now()"
    )
    .execute(pool)
    .await?
    .rows_affected();
    let rotations = sqlx::query!(
        "update credential_rotation set answer_sealed = null, answer_sealed_until = null
         where answer_sealed is not null and answer_sealed_until < now()"
    )
    .execute(pool)
    .await?
    .rows_affected();
    Ok(receipts + rotations)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt() -> Receipt {
        Receipt {
            vendor_disclaimer: "d".into(),
            checkout_session_id: "s".into(),
            checkout_flow_id: "f".into(),
            skip_to_final_redirect: "https://x/#k".into(),
            skip_to_final_cta: "Open".into(),
            vendor_name: "V".into(),
            vendor_id: "UserID_x".into(),
            status: "RUNNING".into(),
            description: String::new(),
            about_url: String::new(),
            billing_url: String::new(),
            support_url: String::new(),
            title: String::new(),
            subtitle: String::new(),
            pricing: String::new(),
            vendor_notes: String::new(),
            redeem_code: Some("secret".into()),
            delivery_url: None,
            vendor_purchase_id: "CustomerPurchaseID_x".into(),
            customer_billing_api_key: Some("vsc_key".into()),
        }
    }

    #[test]
    fn sealed_receipts_open_only_with_the_same_key_and_session() {
        let key = SecretString::from("11".repeat(32));
        let cipher = ReceiptCipher::new(&key).unwrap();
        let sealed = cipher.seal(&receipt(), "session-a").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(cipher.open(&sealed, "session-a"), Some(receipt()));
        assert_eq!(cipher.open(&sealed, "session-b"), None);
        let other = ReceiptCipher::new(&SecretString::from("22".repeat(32))).unwrap();
        assert_eq!(other.open(&sealed, "session-a"), None);
        assert_eq!(cipher.open(&sealed[..5], "session-a"), None);
    }
}
