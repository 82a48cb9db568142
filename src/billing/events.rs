//! What billing announces, enqueued in the transaction that makes the change: a status change goes
//! to the vendor's webhook, the customer's email (when the checkout gave one) and the OfficeX
//! purchase record. Dedupe keys derive from the purchase's status version, so each crossing is
//! announced exactly once whatever the concurrency.

use serde_json::json;
use sqlx::PgConnection;

use super::purchases::NewPurchase;
use super::{BillingError, PurchaseStatus};
use crate::domain::ids::PurchaseId;
use crate::domain::money::UsdMicros;
use crate::notify::events::{self, Email, WebhookEvent};
use crate::notify::{self, Channel};

/// One status change of one purchase.
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub purchase_id: PurchaseId,
    pub offer_id: String,
    pub title: String,
    pub customer_email: Option<String>,
    pub from: PurchaseStatus,
    pub to: PurchaseStatus,
    /// The purchase's status version after the change (unique per change).
    pub version: i64,
    /// The balance right after the change.
    pub balance: UsdMicros,
    /// What caused it: a ledger entry kind (`usage`, `deposit`, …), `provisioned`, `set_status`.
    pub cause: &'static str,
}

/// Enqueues the notifications of a status change (webhook, customer email, OfficeX record).
pub async fn status_changed(conn: &mut PgConnection, c: &StatusChange) -> Result<(), BillingError> {
    let base = format!("purchase.status_changed:{}:{}", c.purchase_id, c.version);
    let data = json!({
        "purchase_id": c.purchase_id,
        "offer_id": c.offer_id,
        "title": c.title,
        "previous_status": c.from,
        "status": c.to,
        "officex_status": c.to.officex(),
        "balance_usd": c.balance,
        "status_version": c.version,
        "cause": c.cause,
    });
    events::webhook(
        conn,
        WebhookEvent::PurchaseStatusChanged,
        Some(c.purchase_id),
        &data,
        Some(&format!("{base}:webhook")),
    )
    .await?;
    if let Some(to) = c.customer_email.as_deref().filter(|e| !e.is_empty()) {
        events::email(
            conn,
            WebhookEvent::PurchaseStatusChanged.as_str(),
            Some(c.purchase_id),
            &status_email(to, c),
            Some(&format!("{base}:email")),
        )
        .await?;
    }
    notify::enqueue(
        conn,
        Channel::Officex,
        WebhookEvent::PurchaseStatusChanged.as_str(),
        Some(c.purchase_id),
        &json!({}),
        Some(&format!("{base}:officex")),
    )
    .await?;
    Ok(())
}

fn status_email(to: &str, c: &StatusChange) -> Email {
    let what = match c.to {
        PurchaseStatus::Active
            if matches!(c.from, PurchaseStatus::Provisioning | PurchaseStatus::Failed) =>
        {
            "is ready".to_owned()
        }
        PurchaseStatus::Active => "is active again".to_owned(),
        PurchaseStatus::Low => "is running low on balance".to_owned(),
        PurchaseStatus::Critical => "is almost out of balance; top up to keep it running".to_owned(),
        PurchaseStatus::Suspended => {
            "is suspended: its balance is used up. Top up to resume it; without a top-up its resources will be deleted after the grace period".to_owned()
        }
        PurchaseStatus::Deleted => "has been deleted".to_owned(),
        other => format!("is now {}", other.as_str()),
    };
    Email {
        to: to.to_owned(),
        subject: format!("{}: {}", c.title, c.to.as_str()),
        text: format!(
            "Your purchase \"{}\" ({}) {what}.\n\nBalance: {} USD\nStatus: {} (was {})\n",
            c.title,
            c.purchase_id,
            c.balance,
            c.to.as_str(),
            c.from.as_str()
        ),
    }
}

/// Enqueues `purchase.created` for a purchase just inserted.
pub async fn purchase_created(
    conn: &mut PgConnection,
    id: PurchaseId,
    new: &NewPurchase,
) -> Result<(), BillingError> {
    let data = json!({
        "purchase_id": id,
        "offer_id": new.offer_id,
        "title": new.title,
        "officex_purchase_id": new.officex_purchase_id,
        "status": PurchaseStatus::Provisioning,
    });
    events::webhook(
        conn,
        WebhookEvent::PurchaseCreated,
        Some(id),
        &data,
        Some(&format!("purchase.created:{id}")),
    )
    .await?;
    Ok(())
}
