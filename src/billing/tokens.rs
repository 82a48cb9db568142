//! Vendor-wide billing tokens: one token lets an AI server meter any purchase. Created from the CLI
//! (shown once), stored only as a SHA-256 hash with a display prefix, revocable.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use sqlx::PgPool;

use super::BillingError;
use super::keys::{self, KeyKind};

/// A token as listed (never the secret).
#[derive(Debug, Clone, serde::Serialize)]
pub struct BillingToken {
    pub id: i64,
    pub display_prefix: String,
    pub label: String,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Creates a token; the secret is returned once and never stored. `db`: a pool or the caller's
/// transaction.
pub async fn create<'e>(
    db: impl sqlx::PgExecutor<'e>,
    label: &str,
) -> Result<(BillingToken, SecretString), BillingError> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > 100 {
        return Err(BillingError::Invalid(
            "the label must be 1 to 100 characters".into(),
        ));
    }
    let key = keys::generate(KeyKind::BillingToken);
    let row = sqlx::query!(
        "insert into billing_token (token_hash, display_prefix, label) values ($1, $2, $3)
         returning token_id, created_at",
        key.hash,
        key.display_prefix,
        label
    )
    .fetch_one(db)
    .await?;
    Ok((
        BillingToken {
            id: row.token_id,
            display_prefix: key.display_prefix,
            label: label.to_owned(),
            created_at: row.created_at,
            revoked_at: None,
        },
        key.secret,
    ))
}

/// Every token, newest first.
pub async fn list(pool: &PgPool) -> Result<Vec<BillingToken>, BillingError> {
    let rows = sqlx::query_as!(
        BillingToken,
        "select token_id as id, display_prefix, label, created_at, revoked_at
         from billing_token order by token_id desc"
    )
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// Revokes a token (at once: every request checks the table). Revoking twice is fine; an unknown
/// id is an error. `db`: a pool or the caller's transaction.
pub async fn revoke<'e>(
    db: impl sqlx::PgExecutor<'e>,
    id: i64,
) -> Result<BillingToken, BillingError> {
    sqlx::query_as!(
        BillingToken,
        "update billing_token set revoked_at = coalesce(revoked_at, now()) where token_id = $1
         returning token_id as id, display_prefix, label, created_at, revoked_at",
        id
    )
    .fetch_optional(db)
    .await?
    .ok_or(BillingError::TokenNotFound(id))
}

/// Whether `presented` is a live (not revoked) billing token.
pub async fn is_valid(pool: &PgPool, presented: &str) -> Result<bool, BillingError> {
    if !presented.starts_with(KeyKind::BillingToken.prefix()) {
        return Ok(false);
    }
    let found = sqlx::query_scalar!(
        "select token_hash from billing_token where token_hash = $1 and revoked_at is null",
        keys::hash(presented)
    )
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some_and(|stored| keys::matches(presented, &stored)))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[sqlx::test]
    async fn tokens_are_created_listed_and_revoked(pool: PgPool) {
        let (token, secret) = create(&pool, " ai-server-1 ").await.unwrap();
        let secret = secret.expose_secret().to_owned();
        assert!(secret.starts_with("vst_") && secret.starts_with(&token.display_prefix));
        assert_eq!(token.label, "ai-server-1");
        assert!(is_valid(&pool, &secret).await.unwrap());
        assert!(!is_valid(&pool, "vst_nope").await.unwrap());
        let listed = list(&pool).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert!(!format!("{listed:?}").contains(&secret));
        let revoked = revoke(&pool, token.id).await.unwrap();
        assert!(revoked.revoked_at.is_some());
        assert!(!is_valid(&pool, &secret).await.unwrap());
        assert!(matches!(
            revoke(&pool, 999).await,
            Err(BillingError::TokenNotFound(999))
        ));
        assert!(matches!(
            create(&pool, "  ").await,
            Err(BillingError::Invalid(_))
        ));
    }
}
