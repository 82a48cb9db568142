//! Vendor-wide billing tokens in the console: list, create (the secret shown once), revoke; as the
//! `tokens` CLI commands.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::{Actor, AdminError, AuditEntry, Done};
use crate::billing::{BillingError, tokens};
use crate::domain::page::Page;

/// A billing token as listed (never the secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TokenRow {
    pub id: i64,
    /// The token's first characters, to recognise it.
    pub display_prefix: String,
    pub label: String,
    /// `active` or `revoked`.
    pub status: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
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
    let entry = AuditEntry {
        action: "token.revoke",
        target_type: "token",
        target_id: id.to_string(),
        reason: None,
        details: serde_json::json!({"label": row.label, "display_prefix": row.display_prefix}),
    };
    super::finish(tx, actor, row, entry).await
}
