//! Purchase rows: creation (with their keys) and key checks.

use secrecy::SecretString;
use sqlx::{PgConnection, PgPool};

use super::keys::{self, KeyKind};
use super::{BillingError, PurchaseStatus};
use crate::domain::ids::PurchaseId;

/// What finalize knows when it creates a purchase.
#[derive(Debug, Clone, Default)]
pub struct NewPurchase {
    pub offer_id: String,
    pub title: String,
    pub customer_email: Option<String>,
    pub customer_user_id: Option<String>,
    pub customer_org_id: Option<String>,
    pub customer_org_host: Option<String>,
    pub officex_purchase_id: Option<String>,
    pub tracer: Option<String>,
}

/// A new purchase and its customer key, shown once. (The vendor meters with a vendor-wide billing
/// token; a purchase has no vendor key.)
pub struct CreatedPurchase {
    pub id: PurchaseId,
    pub customer_key: SecretString,
}

/// Inserts a purchase in `provisioning` with zero balance, inside the caller's transaction.
pub async fn create(
    conn: &mut PgConnection,
    new: &NewPurchase,
) -> Result<CreatedPurchase, BillingError> {
    let id = PurchaseId::new();
    let customer = keys::generate(KeyKind::Customer);
    sqlx::query!(
        "insert into purchase (purchase_id, offer_id, status, title, customer_email, customer_user_id,
             customer_org_id, customer_org_host, officex_purchase_id, tracer,
             customer_key_hash, customer_key_prefix, customer_key_hint)
         values ($1, $2, 'provisioning', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        id.0,
        new.offer_id,
        new.title,
        new.customer_email,
        new.customer_user_id,
        new.customer_org_id,
        new.customer_org_host,
        new.officex_purchase_id,
        new.tracer,
        customer.hash,
        customer.display_prefix,
        customer.hint,
    )
    .execute(&mut *conn)
    .await?;
    super::events::purchase_created(conn, id, new).await?;
    Ok(CreatedPurchase {
        id,
        customer_key: customer.secret,
    })
}

/// Whether `key` is the purchase's key of `kind`. Unknown purchases and wrong keys look the same.
pub async fn key_matches(
    pool: &PgPool,
    id: PurchaseId,
    kind: KeyKind,
    key: &str,
) -> Result<bool, BillingError> {
    let row = sqlx::query!(
        "select customer_key_hash from purchase where purchase_id = $1",
        id.0
    )
    .fetch_optional(pool)
    .await?;
    Ok(match (row, kind) {
        (Some(r), KeyKind::Customer) => keys::matches_stored(key, Some(&r.customer_key_hash)),
        // An unknown purchase costs the same comparison as a wrong key (no timing oracle).
        _ => keys::matches_stored(key, None),
    })
}

/// Moves a purchase to a status set outside the balance (provisioning done, failed, deleted),
/// announcing the change in the same transaction. Returns the previous status.
pub async fn set_status(
    conn: &mut PgConnection,
    id: PurchaseId,
    status: PurchaseStatus,
) -> Result<PurchaseStatus, BillingError> {
    let locked = super::ledger::lock(conn, id).await?;
    super::ledger::set_locked_status(conn, &locked, status, "set_status").await?;
    Ok(locked.status)
}

/// Whether the purchase exists.
pub async fn exists(pool: &PgPool, id: PurchaseId) -> Result<bool, BillingError> {
    let found = sqlx::query_scalar!(
        "select 1 as \"one!\" from purchase where purchase_id = $1",
        id.0
    )
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}

/// What an operator's status action did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusMove {
    pub before: PurchaseStatus,
    pub after: PurchaseStatus,
}

/// An operator suspends a purchase (admin API): status `suspended` and held there — credits do not
/// lift it and the grace-period deletion does not apply — until [`resume`]. The lifecycle job then
/// suspends the resource as for a balance suspension. Only a running purchase (active, low,
/// critical, or suspended by its balance) can be suspended.
pub async fn suspend(conn: &mut PgConnection, id: PurchaseId) -> Result<StatusMove, BillingError> {
    let locked = super::ledger::lock(conn, id).await?;
    if locked.held {
        return Err(BillingError::InvalidState(
            "the purchase is already suspended by an operator".into(),
        ));
    }
    if !locked.status.follows_balance() {
        return Err(BillingError::InvalidState(format!(
            "a {} purchase cannot be suspended",
            locked.status.as_str()
        )));
    }
    sqlx::query!(
        "update purchase set admin_hold_at = now() where purchase_id = $1",
        id.0
    )
    .execute(&mut *conn)
    .await?;
    super::ledger::set_locked_status(conn, &locked, PurchaseStatus::Suspended, "admin_suspend")
        .await?;
    Ok(StatusMove {
        before: locked.status,
        after: PurchaseStatus::Suspended,
    })
}

/// Lifts an operator's suspension: the purchase takes the status its balance gives (still
/// `suspended` when the balance is at or below the termination threshold: a credit lifts that).
pub async fn resume(conn: &mut PgConnection, id: PurchaseId) -> Result<StatusMove, BillingError> {
    let locked = super::ledger::lock(conn, id).await?;
    if !locked.held {
        return Err(BillingError::InvalidState(
            "the purchase is not suspended by an operator (a balance suspension ends with a credit)"
                .into(),
        ));
    }
    sqlx::query!(
        "update purchase set admin_hold_at = null where purchase_id = $1",
        id.0
    )
    .execute(&mut *conn)
    .await?;
    let after = if locked.status.follows_balance() {
        locked
            .triggers
            .map_or(PurchaseStatus::Active, |t| t.status_for(locked.balance))
    } else {
        locked.status
    };
    super::ledger::set_locked_status(conn, &locked, after, "admin_resume").await?;
    Ok(StatusMove {
        before: locked.status,
        after,
    })
}

/// An operator deletes a purchase: status `deleted` (announced); the lifecycle job then deletes its
/// resource. The ledger stays. Deleting twice is an error.
pub async fn delete(conn: &mut PgConnection, id: PurchaseId) -> Result<StatusMove, BillingError> {
    let locked = super::ledger::lock(conn, id).await?;
    if locked.status == PurchaseStatus::Deleted {
        return Err(BillingError::InvalidState(
            "the purchase is already deleted".into(),
        ));
    }
    sqlx::query!(
        "update purchase set admin_hold_at = null where purchase_id = $1",
        id.0
    )
    .execute(&mut *conn)
    .await?;
    super::ledger::set_locked_status(conn, &locked, PurchaseStatus::Deleted, "admin_delete")
        .await?;
    Ok(StatusMove {
        before: locked.status,
        after: PurchaseStatus::Deleted,
    })
}
