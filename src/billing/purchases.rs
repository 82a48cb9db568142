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

/// A new purchase and its two keys, shown once.
pub struct CreatedPurchase {
    pub id: PurchaseId,
    pub customer_key: SecretString,
    pub vendor_key: SecretString,
}

/// Inserts a purchase in `provisioning` with zero balance, inside the caller's transaction.
pub async fn create(
    conn: &mut PgConnection,
    new: &NewPurchase,
) -> Result<CreatedPurchase, BillingError> {
    let id = PurchaseId::new();
    let customer = keys::generate(KeyKind::Customer);
    let vendor = keys::generate(KeyKind::Vendor);
    sqlx::query!(
        "insert into purchase (purchase_id, offer_id, status, title, customer_email, customer_user_id,
             customer_org_id, customer_org_host, officex_purchase_id, tracer,
             customer_key_hash, customer_key_prefix, vendor_key_hash, vendor_key_prefix)
         values ($1, $2, 'provisioning', $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
        vendor.hash,
        vendor.display_prefix,
    )
    .execute(&mut *conn)
    .await?;
    super::events::purchase_created(conn, id, new).await?;
    Ok(CreatedPurchase {
        id,
        customer_key: customer.secret,
        vendor_key: vendor.secret,
    })
}

/// Whether `key` is the purchase's key of `kind`. Unknown purchases and wrong keys look the same.
pub async fn key_matches(
    pool: &PgPool,
    cache: &KeyHashes,
    id: PurchaseId,
    kind: KeyKind,
    key: &str,
) -> Result<bool, BillingError> {
    let Some(hashes) = cache.get(pool, id).await? else {
        return Ok(false);
    };
    Ok(match kind {
        KeyKind::Customer => keys::matches(key, &hashes.customer),
        KeyKind::Vendor => keys::matches(key, &hashes.vendor),
        KeyKind::BillingToken => false,
    })
}

/// A purchase's key hashes.
#[derive(Debug)]
pub struct PurchaseKeyHashes {
    pub customer: Vec<u8>,
    pub vendor: Vec<u8>,
}

/// Purchase key hashes never change once a purchase exists, so they are cached (bounded) and
/// authenticating a request costs no database round trip after the first for that purchase.
/// Only purchases that exist are cached.
#[derive(Debug, Default)]
pub struct KeyHashes(
    std::sync::RwLock<std::collections::HashMap<uuid::Uuid, std::sync::Arc<PurchaseKeyHashes>>>,
);

/// Entries kept at most (about 150 bytes each); the cache starts over when full.
const KEY_CACHE_MAX: usize = 100_000;

impl KeyHashes {
    /// The hashes of a purchase, `None` when it does not exist.
    pub async fn get(
        &self,
        pool: &PgPool,
        id: PurchaseId,
    ) -> Result<Option<std::sync::Arc<PurchaseKeyHashes>>, BillingError> {
        if let Some(hit) = self.0.read().ok().and_then(|m| m.get(&id.0).cloned()) {
            return Ok(Some(hit));
        }
        let row = sqlx::query!(
            "select customer_key_hash, vendor_key_hash from purchase where purchase_id = $1",
            id.0
        )
        .fetch_optional(pool)
        .await?;
        Ok(row.map(|r| {
            let hashes = std::sync::Arc::new(PurchaseKeyHashes {
                customer: r.customer_key_hash,
                vendor: r.vendor_key_hash,
            });
            if let Ok(mut map) = self.0.write() {
                if map.len() >= KEY_CACHE_MAX {
                    map.clear();
                }
                map.insert(id.0, hashes.clone());
            }
            hashes
        }))
    }
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
