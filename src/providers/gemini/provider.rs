//! The Gemini resource provider: issues, suspends, resumes and revokes a purchase's gateway key.

use super::*;

/// The Gemini provider: gateway keys in the database.
pub struct GeminiProvider {
    pool: PgPool,
    /// The base URL customers give their Gemini client (`PUBLIC_BASE_URL`).
    base_url: String,
}

impl GeminiProvider {
    pub fn new(pool: PgPool, base_url: String) -> Self {
        Self { pool, base_url }
    }

    /// Moves the purchase's live key from one status to another. `Ok(false)` when no key was in
    /// `from` (the caller decides whether that is fine).
    async fn set_key_status(
        &self,
        purchase_id: PurchaseId,
        from: &str,
        to: &str,
    ) -> Result<bool, ProviderError> {
        let updated = sqlx::query!(
            "update gateway_key set status = $3,
                 revoked_at = case when $3 = 'revoked' then now() else revoked_at end
             where purchase_id = $1 and status = $2",
            purchase_id.0,
            from,
            to
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(updated.rows_affected() > 0)
    }

    async fn has_key_in(
        &self,
        purchase_id: PurchaseId,
        status: &str,
    ) -> Result<bool, ProviderError> {
        sqlx::query_scalar!(
            r#"select exists(select 1 from gateway_key where purchase_id = $1 and status = $2) as "exists!""#,
            purchase_id.0,
            status
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)
    }
}

/// A gateway key just issued.
struct Issued {
    secret: SecretString,
    key_id: Uuid,
    prefix: String,
    hint: String,
}

/// Inserts a new key for the purchase with `status`, in the caller's transaction (which has
/// revoked the previous one: one usable key per purchase).
async fn issue_key(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    purchase_id: PurchaseId,
    status: &str,
) -> Result<Issued, ProviderError> {
    let (secret, hash, prefix) = generate_key();
    let hint = keys::hint(secret.expose_secret());
    let key_id = Uuid::new_v4();
    sqlx::query!(
        "insert into gateway_key (gateway_key_id, purchase_id, key_hash, key_prefix, key_hint, status)
         values ($1, $2, $3, $4, $5, $6)",
        key_id,
        purchase_id.0,
        hash,
        prefix,
        hint,
        status
    )
    .execute(&mut **tx)
    .await
    .map_err(db_error)?;
    Ok(Issued {
        secret,
        key_id,
        prefix,
        hint,
    })
}

pub(super) fn db_error(e: sqlx::Error) -> ProviderError {
    ProviderError::Retryable(format!("database: {e}"))
}

#[async_trait]
impl ResourceProvider for GeminiProvider {
    fn kind(&self) -> &'static str {
        "gemini"
    }

    fn info(&self, _state: &serde_json::Value) -> ResourceInfo {
        ResourceInfo {
            kind: self.kind(),
            gateway_base_url: Some(self.base_url.clone()),
            ..ResourceInfo::default()
        }
    }

    /// Issues the purchase's gateway key. A retried provisioning revokes the earlier key (its
    /// secret was never delivered) and issues a new one.
    #[tracing::instrument(skip_all, fields(purchase_id = %request.purchase_id), err)]
    async fn provision(&self, request: &ProvisionRequest) -> Result<Delivered, ProviderError> {
        let settings = GatewaySettings::from_offer_settings(&request.offer.settings)
            .map_err(|e| ProviderError::Permanent(e.to_string()))?;
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query!(
            "update gateway_key set status = 'revoked', revoked_at = now()
             where purchase_id = $1 and status <> 'revoked'",
            request.purchase_id.0
        )
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let issued = issue_key(&mut tx, request.purchase_id, "active").await?;
        tx.commit().await.map_err(db_error)?;
        let (secret, key_id, prefix) = (issued.secret, issued.key_id, issued.prefix);
        let models: Vec<&str> = settings.models.keys().map(String::as_str).collect();
        Ok(Delivered {
            description: format!(
                "Gemini API key for {}; use it with any Gemini client whose base URL is {}",
                models.join(", "),
                self.base_url
            ),
            redeem_url: None,
            redeem_code: Some(secret),
            state: json!({
                "gateway_key_id": key_id,
                "key_prefix": prefix,
                "base_url": self.base_url,
            }),
        })
    }

    /// A new gateway key in place of the live one, which is revoked in the same transaction (refused
    /// from the next call on). A suspended purchase's new key is suspended too.
    #[tracing::instrument(skip_all, fields(purchase_id = %purchase_id), err)]
    async fn rotate_credential(
        &self,
        purchase_id: PurchaseId,
        state: &serde_json::Value,
    ) -> Result<NewCredential, ProviderError> {
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        let old = sqlx::query!(
            "select gateway_key_id, status from gateway_key
             where purchase_id = $1 and status <> 'revoked' for update",
            purchase_id.0
        )
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error)?
        .ok_or_else(|| {
            ProviderError::Permanent("this purchase has no gateway key to replace".to_owned())
        })?;
        sqlx::query!(
            "update gateway_key set status = 'revoked', revoked_at = now() where gateway_key_id = $1",
            old.gateway_key_id
        )
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        let issued = issue_key(&mut tx, purchase_id, &old.status).await?;
        tx.commit().await.map_err(db_error)?;
        let mut state = state.clone();
        if let Some(map) = state.as_object_mut() {
            map.insert("gateway_key_id".into(), json!(issued.key_id));
            map.insert("key_prefix".into(), json!(issued.prefix));
        }
        Ok(NewCredential {
            secret: issued.secret,
            access_key_id: None,
            hint: issued.hint,
            state: Some(state),
        })
    }

    #[tracing::instrument(skip_all, fields(purchase_id = %purchase_id), err)]
    async fn suspend(
        &self,
        purchase_id: PurchaseId,
        _state: &serde_json::Value,
    ) -> Result<(), ProviderError> {
        if self
            .set_key_status(purchase_id, "active", "disabled")
            .await?
            || self.has_key_in(purchase_id, "disabled").await?
        {
            Ok(())
        } else {
            Err(ProviderError::Permanent(
                "this purchase has no gateway key to suspend".to_owned(),
            ))
        }
    }

    #[tracing::instrument(skip_all, fields(purchase_id = %purchase_id), err)]
    async fn resume(
        &self,
        purchase_id: PurchaseId,
        _state: &serde_json::Value,
    ) -> Result<(), ProviderError> {
        if self
            .set_key_status(purchase_id, "disabled", "active")
            .await?
            || self.has_key_in(purchase_id, "active").await?
        {
            Ok(())
        } else {
            Err(ProviderError::Permanent(
                "this purchase has no gateway key to resume".to_owned(),
            ))
        }
    }

    #[tracing::instrument(skip_all, fields(purchase_id = %purchase_id), err)]
    async fn delete(
        &self,
        purchase_id: PurchaseId,
        _state: &serde_json::Value,
    ) -> Result<(), ProviderError> {
        self.set_key_status(purchase_id, "active", "revoked")
            .await?;
        self.set_key_status(purchase_id, "disabled", "revoked")
            .await?;
        Ok(())
    }
}
