//! Credentials on the customer page (SPEC §9 "Customers get what they paid for"): a purchase's
//! credentials listed by hint (never a secret), the Gemini gateway key shown again from the sealed
//! receipt while it is kept (24 h), and rotation: a new gateway key, S3 access key or customer key,
//! shown once, the old one stopping at once.
//!
//! A rotation is idempotent by the caller's key (`credential_rotation`, one row per key): the answer
//! is sealed with `DATA_ENCRYPTION_KEY` for 24 hours so that a retry gets the same secret and nothing
//! is rotated twice. Rotations of one purchase run one at a time (an advisory lock), and each is
//! written to the audit log with its actor (the customer, or an operator on their behalf).

mod reveal;

pub use reveal::{RevealedKey, receipt_gateway_key};

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::admin::{self, Actor, AuditEntry, Done, Idempotency};
use crate::billing::keys::{self, KeyKind};
use crate::checkout::receipt::{ReceiptCipher, SEALED_FOR_HOURS};
use crate::config::Config;
use crate::domain::ids::PurchaseId;
use crate::providers::s3::S3State;
use crate::providers::{ProviderError, Providers};

/// The credentials a purchase can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// The Gemini gateway key (`vsg_…`).
    GatewayKey,
    /// The S3 bucket's IAM access key.
    S3AccessKey,
    /// The customer key (`vsc_…`) that opens the customer page and this API.
    CustomerKey,
}

impl CredentialKind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "gateway_key" => Some(Self::GatewayKey),
            "s3_access_key" => Some(Self::S3AccessKey),
            "customer_key" => Some(Self::CustomerKey),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::GatewayKey => "gateway_key",
            Self::S3AccessKey => "s3_access_key",
            Self::CustomerKey => "customer_key",
        }
    }

    /// The provider whose resource holds this credential (`None`: the purchase's own key).
    fn provider(self) -> Option<&'static str> {
        match self {
            Self::GatewayKey => Some("gemini"),
            Self::S3AccessKey => Some("s3"),
            Self::CustomerKey => None,
        }
    }
}

/// One credential as listed: which one, never its secret.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CredentialOut {
    pub kind: CredentialKind,
    /// Its last 4 characters (`null` for a credential issued before hints were kept).
    pub hint: Option<String>,
    /// When it was issued, epoch milliseconds.
    pub created_at: i64,
}

/// A new credential, shown once (a retry with the same idempotency key within 24 hours shows it
/// again).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = RotatedCredential)]
pub struct RotatedOut {
    pub kind: CredentialKind,
    /// The new secret: the gateway key, the S3 secret access key or the customer key.
    pub secret: String,
    /// Its last 4 characters (the S3 access key id's), as listed from now on.
    pub hint: String,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// S3: the new access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// S3: the new secret access key (the same as `secret`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<String>,
    /// Customer key: the customer page's new link (the key in its fragment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_url: Option<String>,
}

/// Why a credential cannot be listed, shown or rotated.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("purchase not found")]
    NotFound,
    #[error("{1}")]
    Invalid(&'static str, String),
    #[error("{0}")]
    InvalidState(String),
    #[error("this purchase is deleted: its credentials no longer open anything")]
    Deleted,
    #[error("the idempotency key {0:?} was already used with a different request")]
    IdempotencyConflict(String),
    #[error(
        "the answer to this idempotency key is no longer kept (24 hours): rotate again with a new key"
    )]
    AnswerExpired,
    #[error("{0}")]
    NotConfigured(String),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<admin::AdminError> for CredentialError {
    fn from(e: admin::AdminError) -> Self {
        match e {
            admin::AdminError::Db(e) => Self::Db(e),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<crate::checkout::CheckoutError> for CredentialError {
    fn from(e: crate::checkout::CheckoutError) -> Self {
        Self::Internal(e.to_string())
    }
}

/// What credentials work with.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub pool: &'a PgPool,
    pub providers: &'a Providers,
    pub config: &'a Config,
}

fn epoch_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// Secrets at rest (receipts, rotation answers) need `DATA_ENCRYPTION_KEY`.
pub(crate) fn cipher(config: &Config) -> Result<ReceiptCipher, CredentialError> {
    let key = config.data_encryption_key.as_ref().ok_or_else(|| {
        CredentialError::NotConfigured(
            "DATA_ENCRYPTION_KEY is not set: credentials are not kept for a replay without it"
                .into(),
        )
    })?;
    ReceiptCipher::new(key).map_err(|e| CredentialError::NotConfigured(e.to_string()))
}

/// The purchase's credentials by hint: its customer key, and its resource's (the live gateway
/// key, the S3 access key once the bucket is ready).
pub async fn list(pool: &PgPool, id: PurchaseId) -> Result<Vec<CredentialOut>, CredentialError> {
    let p = sqlx::query!(
        r#"select p.customer_key_hint, coalesce(p.customer_key_created_at, p.created_at) as "key_at!",
                  p.created_at, p.resource_status, p.resource_state, o.provider
           from purchase p join offer o using (offer_id) where p.purchase_id = $1"#,
        id.0
    )
    .fetch_optional(pool)
    .await?
    .ok_or(CredentialError::NotFound)?;
    let mut out = vec![CredentialOut {
        kind: CredentialKind::CustomerKey,
        hint: p.customer_key_hint,
        created_at: epoch_ms(p.key_at),
    }];
    match p.provider.as_str() {
        "gemini" => {
            let live = sqlx::query!(
                "select key_hint, created_at from gateway_key
                 where purchase_id = $1 and status <> 'revoked'",
                id.0
            )
            .fetch_optional(pool)
            .await?;
            out.extend(live.map(|k| CredentialOut {
                kind: CredentialKind::GatewayKey,
                hint: k.key_hint,
                created_at: epoch_ms(k.created_at),
            }));
        }
        "s3" if p.resource_status == "ready" => {
            let state: Option<S3State> = serde_json::from_value(p.resource_state).ok();
            out.extend(state.map(|s| CredentialOut {
                kind: CredentialKind::S3AccessKey,
                hint: Some(keys::hint(&s.access_key_id)),
                created_at: epoch_ms(s.access_key_created_at.unwrap_or(p.created_at)),
            }));
        }
        _ => {}
    }
    Ok(out)
}

/// Rotates the purchase's credential of `kind`: the new one is returned (once), the old one is
/// refused from now on. `actor` carries the idempotency key (required) and who acts; `caller_key`
/// is the customer key that asked (kept hashed so that a retry with it still gets the answer after
/// a customer_key rotation replaced it).
pub async fn rotate(
    cx: &Ctx<'_>,
    id: PurchaseId,
    kind: CredentialKind,
    actor: &Actor,
    caller_key: Option<&str>,
) -> Result<Done<RotatedOut>, CredentialError> {
    let idem = actor.idempotency.as_ref().ok_or_else(|| {
        CredentialError::Invalid(
            "idempotency_key_required",
            "a rotation needs an idempotency key (the Idempotency-Key header or the body's idempotency_key): a retry with the same key then gets the same credential".into(),
        )
    })?;
    let cipher = cipher(cx.config)?;
    let mut tx = cx.pool.begin().await?;
    // One rotation of a purchase at a time: a retry with the same key waits here for the first
    // and replays its answer.
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtextextended($1, 0))",
        format!("credential_rotation:{id}")
    )
    .execute(&mut *tx)
    .await?;
    if let Some(done) = stored(&mut tx, &cipher, id, actor.source.as_str(), idem, None).await? {
        return Ok(done);
    }
    let p = sqlx::query!(
        "select p.status, p.resource_status, p.resource_state, o.provider
         from purchase p join offer o using (offer_id) where p.purchase_id = $1",
        id.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(CredentialError::NotFound)?;
    if p.status == "deleted" {
        return Err(CredentialError::Deleted);
    }
    let out = match kind.provider() {
        None => new_customer_key(&mut tx, cx.config, id).await?,
        Some(provider) if provider != p.provider => {
            return Err(CredentialError::Invalid(
                "invalid_kind",
                format!(
                    "this purchase's resource ({}) has no {}",
                    p.provider,
                    kind.as_str()
                ),
            ));
        }
        Some(_) if p.resource_status != "ready" => {
            return Err(CredentialError::InvalidState(
                "the purchase's resource is not ready yet: its credential is delivered with it"
                    .into(),
            ));
        }
        Some(provider) => {
            let new = cx
                .providers
                .get(provider)?
                .rotate_credential(id, &p.resource_state)
                .await?;
            if let Some(state) = &new.state {
                sqlx::query!(
                    "update purchase set resource_state = $2 where purchase_id = $1",
                    id.0,
                    state
                )
                .execute(&mut *tx)
                .await?;
            }
            let secret = new.secret.expose_secret().to_owned();
            RotatedOut {
                kind,
                secret_access_key: new.access_key_id.as_ref().map(|_| secret.clone()),
                secret,
                hint: new.hint,
                created_at: epoch_ms(Utc::now()),
                access_key_id: new.access_key_id,
                customer_url: None,
            }
        }
    };
    record(&mut tx, &cipher, id, actor, idem, caller_key, &out).await?;
    tx.commit().await?;
    tracing::info!(purchase_id = %id, kind = kind.as_str(), actor = actor.source.as_str(), "credential rotated");
    Ok(Done {
        value: out,
        replayed: false,
    })
}

/// A retry with a customer key that is no longer the purchase's: the answer of the customer_key
/// rotation that very key made with this idempotency key, if any (else the caller is refused).
pub async fn replay_for_replaced_key(
    cx: &Ctx<'_>,
    id: PurchaseId,
    idem: &Idempotency,
    caller_key: &str,
) -> Result<Option<Done<RotatedOut>>, CredentialError> {
    let cipher = cipher(cx.config)?;
    let mut conn = cx.pool.acquire().await?;
    stored(
        &mut conn,
        &cipher,
        id,
        admin::Source::Customer.as_str(),
        idem,
        Some(&keys::hash(caller_key)),
    )
    .await
}

/// The answer already given to this idempotency key, or a conflict for another request.
/// With `caller_hash`, only a customer_key rotation made by that key counts.
async fn stored(
    conn: &mut sqlx::PgConnection,
    cipher: &ReceiptCipher,
    id: PurchaseId,
    actor: &str,
    idem: &Idempotency,
    caller_hash: Option<&[u8]>,
) -> Result<Option<Done<RotatedOut>>, CredentialError> {
    let row = sqlx::query!(
        "select credential_rotation_id, kind, request_hash, caller_key_hash, answer_sealed
         from credential_rotation
         where purchase_id = $1 and actor = $2 and idempotency_key = $3",
        id.0,
        actor,
        idem.key
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    if let Some(hash) = caller_hash {
        use subtle::ConstantTimeEq;
        let theirs = row.kind == CredentialKind::CustomerKey.as_str()
            && row
                .caller_key_hash
                .as_deref()
                .is_some_and(|stored| bool::from(stored.ct_eq(hash)));
        if !theirs {
            return Ok(None);
        }
    }
    if row.request_hash != idem.request_hash() {
        // A replaced key gets nothing but the replay of that very request.
        if caller_hash.is_some() {
            return Ok(None);
        }
        return Err(CredentialError::IdempotencyConflict(idem.key.clone()));
    }
    let answer = row
        .answer_sealed
        .as_deref()
        .and_then(|sealed| cipher.open_json(sealed, &row.credential_rotation_id.to_string()))
        .ok_or(CredentialError::AnswerExpired)?;
    Ok(Some(Done {
        value: answer,
        replayed: true,
    }))
}

/// A new customer key in place of the old one (which no longer opens anything), with the customer
/// page's link.
async fn new_customer_key(
    tx: &mut Transaction<'_, Postgres>,
    config: &Config,
    id: PurchaseId,
) -> Result<RotatedOut, CredentialError> {
    let key = keys::generate(KeyKind::Customer);
    sqlx::query!(
        "update purchase set customer_key_hash = $2, customer_key_prefix = $3, customer_key_hint = $4,
             customer_key_created_at = now()
         where purchase_id = $1",
        id.0,
        key.hash,
        key.display_prefix,
        key.hint
    )
    .execute(&mut **tx)
    .await?;
    let secret = key.secret.expose_secret().to_owned();
    let page = config.public_url("/v1/dashboard/customer");
    Ok(RotatedOut {
        kind: CredentialKind::CustomerKey,
        customer_url: Some(format!(
            "{page}#vendor_purchase_id={id}&customer_billing_api_key={secret}"
        )),
        secret,
        hint: key.hint,
        created_at: epoch_ms(Utc::now()),
        access_key_id: None,
        secret_access_key: None,
    })
}

/// Keeps the rotation (its answer sealed for replays) and writes the audit row, in its transaction.
async fn record(
    tx: &mut Transaction<'_, Postgres>,
    cipher: &ReceiptCipher,
    id: PurchaseId,
    actor: &Actor,
    idem: &Idempotency,
    caller_key: Option<&str>,
    out: &RotatedOut,
) -> Result<(), CredentialError> {
    let rotation_id = Uuid::new_v4();
    let sealed = cipher.seal_json(out, &rotation_id.to_string())?;
    sqlx::query!(
        "insert into credential_rotation (credential_rotation_id, purchase_id, kind, actor,
             idempotency_key, request_hash, caller_key_hash, hint, answer_sealed, answer_sealed_until)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, now() + make_interval(hours => $10))",
        rotation_id,
        id.0,
        out.kind.as_str(),
        actor.source.as_str(),
        idem.key,
        idem.request_hash(),
        caller_key.map(keys::hash),
        out.hint,
        sealed,
        i32::try_from(SEALED_FOR_HOURS).unwrap_or(24),
    )
    .execute(&mut **tx)
    .await?;
    admin::audit(
        tx,
        actor,
        AuditEntry {
            action: "purchase.credentials_rotate",
            target_type: "purchase",
            target_id: id.to_string(),
            reason: None,
            details: json!({"kind": out.kind, "hint": out.hint}),
        },
    )
    .await?;
    Ok(())
}
