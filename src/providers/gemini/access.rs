//! Gateway keys and reservations: what a presented key gives access to, the balance a call holds
//! while it runs (renewed, released on drop) and its settlement into the ledger.

use super::*;

/// What a presented gateway key gives access to.
#[derive(Debug, Clone)]
pub struct KeyAccess {
    pub purchase_id: PurchaseId,
    pub key_status: String,
    pub purchase_status: PurchaseStatus,
    pub balance: UsdMicros,
    pub settings: serde_json::Value,
}

impl KeyAccess {
    /// Whether the key may be used at all: revoked keys and deleted purchases are refused like an
    /// invalid key; suspended ones (key disabled or purchase suspended) need a topup.
    pub fn check_usable(&self) -> Result<(), GatewayError> {
        if self.key_status == "revoked" || self.purchase_status == PurchaseStatus::Deleted {
            return Err(GatewayError::InvalidKey);
        }
        if self.key_status == "disabled" || self.purchase_status == PurchaseStatus::Suspended {
            return Err(GatewayError::PaymentRequired(
                "This purchase is suspended: its balance is used up. Top up to resume.".to_owned(),
            ));
        }
        if !matches!(
            self.purchase_status,
            PurchaseStatus::Active | PurchaseStatus::Low | PurchaseStatus::Critical
        ) {
            return Err(GatewayError::PaymentRequired(
                "This purchase is not active yet.".to_owned(),
            ));
        }
        Ok(())
    }
}

/// Looks a presented key up (by its hash). The settings are the purchase's terms: the offer as
/// stored at checkout (`checkout.offer_terms`), so a price change or a removed model in the offers
/// file applies only to purchases made after it. A purchase without stored terms (checked out
/// before they were stored) reads the offer row.
pub async fn find_key(pool: &PgPool, key: &str) -> Result<Option<KeyAccess>, GatewayError> {
    if !key.starts_with(KEY_PREFIX) || key.len() > 128 {
        return Ok(None);
    }
    let row = sqlx::query!(
        r#"select k.purchase_id, k.status as key_status, p.status as purchase_status, p.balance_micros,
                  coalesce(c.offer_terms -> 'settings', o.settings) as "settings!"
           from gateway_key k
           join purchase p using (purchase_id)
           join offer o using (offer_id)
           left join checkout c on c.purchase_id = k.purchase_id
           where k.key_hash = $1"#,
        keys::hash(key)
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|r| {
        Some(KeyAccess {
            purchase_id: PurchaseId(r.purchase_id),
            key_status: r.key_status,
            purchase_status: PurchaseStatus::parse(&r.purchase_status)?,
            balance: UsdMicros(r.balance_micros),
            settings: r.settings,
        })
    }))
}

/// A call's worst-case cost held against its purchase's balance while the call runs (a
/// `gateway_reservation` row, seen by every replica). Settled by [`Metered::post`] (the row goes
/// in the charge's own transaction) or [`Reservation::release`]; a guard dropped unsettled frees
/// the row in the background, and a row whose request crashed lapses after
/// [`RESERVATION_TTL_SECS`].
#[derive(Debug)]
pub struct Reservation {
    pub(super) id: Uuid,
    pub amount: UsdMicros,
    pool: PgPool,
    armed: bool,
}

impl Reservation {
    /// Holds `amount` for one call of `model`, or refuses: 429 when the purchase already has
    /// `max_concurrent` calls in progress, 402 when its balance less what running calls hold
    /// cannot cover `amount`. The purchase row is locked meanwhile, so concurrent reservations
    /// (on any replica) and charges see each other.
    pub async fn take(
        pool: &PgPool,
        purchase_id: PurchaseId,
        model: &str,
        amount: UsdMicros,
        max_concurrent: u32,
    ) -> Result<Self, GatewayError> {
        let mut tx = pool.begin().await?;
        let balance = sqlx::query_scalar!(
            "select balance_micros from purchase where purchase_id = $1 for update",
            purchase_id.0
        )
        .fetch_optional(&mut *tx)
        .await?
        .map(UsdMicros)
        .ok_or(GatewayError::InvalidKey)?;
        sqlx::query!(
            "delete from gateway_reservation where purchase_id = $1 and expires_at <= now()",
            purchase_id.0
        )
        .execute(&mut *tx)
        .await?;
        let held = sqlx::query!(
            r#"select count(*) as "calls!", coalesce(sum(amount_micros), 0)::bigint as "held!"
               from gateway_reservation where purchase_id = $1"#,
            purchase_id.0
        )
        .fetch_one(&mut *tx)
        .await?;
        if held.calls >= i64::from(max_concurrent) {
            return Err(GatewayError::TooManyConcurrent {
                limit: max_concurrent,
            });
        }
        if balance.0 <= 0 {
            return Err(GatewayError::PaymentRequired(format!(
                "The balance of this purchase is ${balance}. Top up to continue."
            )));
        }
        let available = UsdMicros(balance.0.saturating_sub(held.held));
        if amount > available {
            return Err(GatewayError::PaymentRequired(format!(
                "The balance of this purchase (${balance}, of which ${} is held by calls in \
                 progress) cannot cover this request (up to ${amount}). Top up, wait for the other \
                 calls, or lower generationConfig.maxOutputTokens.",
                UsdMicros(held.held)
            )));
        }
        let id = Uuid::new_v4();
        sqlx::query!(
            "insert into gateway_reservation (reservation_id, purchase_id, amount_micros, model, expires_at)
             values ($1, $2, $3, $4, now() + make_interval(secs => $5))",
            id,
            purchase_id.0,
            amount.0,
            model,
            RESERVATION_TTL_SECS
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Self {
            id,
            amount,
            pool: pool.clone(),
            armed: true,
        })
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The call is still running: its hold lapses [`RESERVATION_TTL_SECS`] from now.
    pub async fn extend(&self) -> Result<(), GatewayError> {
        extend_reservation(&self.pool, self.id).await
    }

    /// The call costs nothing (an upstream error, nothing delivered): frees the hold now.
    pub async fn release(mut self) -> Result<(), GatewayError> {
        self.armed = false;
        delete_reservation(&self.pool, self.id).await
    }

    /// The row is gone with the charge, or is deliberately left to lapse (a charge that could not
    /// be recorded keeps its worst case held until then).
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (pool, id) = (self.pool.clone(), self.id);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = delete_reservation(&pool, id).await {
                    tracing::warn!(reservation_id = %id, error = %e, "cannot release a gateway reservation; it lapses by itself");
                }
            });
        }
    }
}

pub(super) async fn extend_reservation(pool: &PgPool, id: Uuid) -> Result<(), GatewayError> {
    sqlx::query!(
        "update gateway_reservation set expires_at = now() + make_interval(secs => $2)
         where reservation_id = $1",
        id,
        RESERVATION_TTL_SECS
    )
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn delete_reservation(pool: &PgPool, id: Uuid) -> Result<(), GatewayError> {
    sqlx::query!(
        "delete from gateway_reservation where reservation_id = $1",
        id
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Ends a call: posts its charge (if any) with its reservation's release in one transaction, or
/// releases the reservation alone when there is nothing to charge.
pub async fn settle(
    pool: &PgPool,
    metered: Option<&Metered>,
    reservation: Option<Reservation>,
) -> Result<Option<Posted>, GatewayError> {
    let Some(metered) = metered else {
        if let Some(r) = reservation {
            r.release().await?;
        }
        return Ok(None);
    };
    let posted = metered
        .post(pool, reservation.as_ref().map(Reservation::id))
        .await;
    if let Some(r) = reservation {
        // Posted: the row went with the charge. Failed: the worst case stays held until it lapses.
        r.disarm();
    }
    posted
}

/// A new gateway key: the secret (shown once), its hash and display prefix (its hint is
/// [`keys::hint`] of the secret).
pub(super) fn generate_key() -> (SecretString, Vec<u8>, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let key = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = keys::hash(&key);
    let prefix = key.chars().take(12).collect();
    (SecretString::from(key), hash, prefix)
}
