//! Provisioning a purchase's resource through its offer's provider, retried with backoff until it is
//! ready. A purchase being provisioned holds a lease (`next_provision_at` in the future) so that
//! finalize, the retry job and other replicas never provision it twice at once. Provider failures never
//! touch the balance: the credit was committed before provisioning started.

use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

use super::receipt::{Receipt, ReceiptCipher};
use super::{CheckoutError, Checkouts, Loaded, finalize};
use crate::billing::{PurchaseStatus, ledger, purchases};
use crate::catalog::{self, Offer};
use crate::domain::Outcome;
use crate::domain::ids::PurchaseId;
use crate::notify::{self, Channel};
use crate::providers::{Delivered, ProviderError, ProvisionRequest};

/// How long a provisioning attempt may hold its purchase before another worker may retry it.
pub const LEASE_SECS: f64 = 600.0;
// A provisioning attempt (creation, then cleanup) always ends before another worker may retry it.
const _: () = assert!(crate::providers::s3::PROVISION_DEADLINE.as_secs() * 2 <= LEASE_SECS as u64);
/// Backoff between attempts (seconds); after the last one the purchase stays `failed` and an alert
/// is raised (an operator may retry it: `POST /v1/admin/purchases/{id}/reprovision`). A provider that
/// is not configured is never given up on (see [`UNCONFIGURED_RETRY_SECS`]).
pub const RETRY_SCHEDULE_SECS: &[u64] = &[10, 30, 60, 300, 900, 1800, 3600, 7200, 21600, 43200];
/// Backoff cap for a purchase whose provider is not configured (retried for ever, at least hourly).
pub const UNCONFIGURED_RETRY_SECS: u64 = 3600;
/// Purchases claimed per retry pass.
const BATCH_SIZE: i64 = 10;

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Ready,
    /// Failed; retried at the next step of the schedule (or given up: `retry = false`).
    Failed {
        error: String,
        retry: bool,
    },
}

/// Runs one provisioning attempt for a purchase whose lease the caller holds, and records it (the
/// retry job, a reprovision): the purchase's checkout and terms are loaded once for it.
#[tracing::instrument(skip_all, fields(purchase_id = %purchase_id))]
pub async fn attempt(cx: &Checkouts, purchase_id: PurchaseId) -> Result<Attempt, CheckoutError> {
    let row = sqlx::query!(
        "select offer_id, customer_email, resource_status from purchase where purchase_id = $1",
        purchase_id.0
    )
    .fetch_optional(&cx.pool)
    .await?
    .ok_or(CheckoutError::Billing(
        crate::billing::BillingError::PurchaseNotFound,
    ))?;
    if row.resource_status == "ready" {
        return Ok(Attempt::Ready);
    }
    // The purchase's offer on the terms its checkout was started with (a retired offer still
    // delivers what was paid for); purchases without a checkout use the offer row.
    let loaded = Loaded::by_purchase(&cx.pool, purchase_id).await?;
    let offer = match &loaded {
        Some(l) => Some(l.offer.clone()),
        None => catalog::find_offer_any(&cx.pool, &row.offer_id).await?,
    };
    let Some(offer) = offer else {
        let gone = ProviderError::Permanent(format!("offer {} is gone", row.offer_id));
        return record_failure(cx, purchase_id, &gone).await;
    };
    let (attempt, _) = run(
        cx,
        &Provisioning {
            purchase_id,
            offer,
            customer_email: row.customer_email,
            loaded: loaded.as_ref(),
            customer_key: None,
        },
    )
    .await?;
    Ok(attempt)
}

/// What one attempt works from, loaded by its caller.
pub(super) struct Provisioning<'a> {
    pub purchase_id: PurchaseId,
    pub offer: Offer,
    pub customer_email: Option<String>,
    /// The purchase's checkout, whose receipt delivers the secrets (none for purchases made
    /// otherwise).
    pub loaded: Option<&'a Loaded>,
    /// The customer key for the receipt when the caller holds it (finalize); else it is taken from
    /// the receipt sealed before.
    pub customer_key: Option<&'a SecretString>,
}

/// Provisions and records the outcome; with it, the full receipt sealed for the checkout when the
/// resource is ready.
pub(super) async fn run(
    cx: &Checkouts,
    p: &Provisioning<'_>,
) -> Result<(Attempt, Option<Receipt>), CheckoutError> {
    let purchase_id = p.purchase_id;
    let result = match cx.providers.get(&p.offer.provider) {
        Err(e) => Err(e),
        Ok(provider) => {
            let request = ProvisionRequest {
                purchase_id,
                offer: p.offer.clone(),
                customer_email: p.customer_email.clone(),
                // The gift card's billing link: the customer page for this purchase. No key:
                // the retry job never has it, and a gift card may be passed on.
                customer_url: cx.config.public_url(&format!(
                    "/v1/dashboard/customer#vendor_purchase_id={purchase_id}"
                )),
            };
            provider.provision(&request).await
        }
    };
    match result {
        Ok(delivered) => {
            let receipt = record_ready(cx, p, &delivered).await?;
            Ok((Attempt::Ready, receipt))
        }
        Err(e) => Ok((record_failure(cx, purchase_id, &e).await?, None)),
    }
}

async fn record_ready(
    cx: &Checkouts,
    p: &Provisioning<'_>,
    delivered: &Delivered,
) -> Result<Option<Receipt>, CheckoutError> {
    let purchase_id = p.purchase_id;
    let mut tx = cx.pool.begin().await?;
    let updated = sqlx::query!(
        "update purchase set resource_state = $2, resource_status = 'ready', next_provision_at = null,
             last_provision_error = null
         where purchase_id = $1 and resource_status <> 'ready'",
        purchase_id.0,
        delivered.state
    )
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 0 {
        tx.rollback().await?;
        tracing::warn!("purchase was already provisioned; keeping the first resource");
        return Ok(None);
    }
    // The ledger announces the crossing (webhook, email, OfficeX) itself, once.
    ledger::activate(&mut tx, purchase_id).await?;
    // Deliver the secrets through the sealed receipt (replayed to the same officex_purchase_id for 24 h).
    let mut receipt = None;
    if let (Some(Loaded { checkout, offer }), Some(key)) =
        (p.loaded, cx.config.data_encryption_key.as_ref())
    {
        let cipher = ReceiptCipher::new(key)?;
        let aad = checkout.session.to_string();
        let customer_key = match p.customer_key {
            Some(key) => Some(key.expose_secret().to_owned()),
            None => checkout
                .receipt_sealed
                .as_deref()
                .and_then(|sealed| cipher.open(sealed, &aad))
                .and_then(|r| r.customer_billing_api_key),
        };
        let full = finalize::build_receipt(
            cx,
            offer,
            checkout,
            purchase_id,
            customer_key.as_deref(),
            Some(delivered),
            true,
        );
        let public = finalize::build_receipt(cx, offer, checkout, purchase_id, None, None, true);
        super::receipt::store(&mut tx, &cipher, checkout.session, &full, &public).await?;
        receipt = Some(full);
    }
    tx.commit().await?;
    tracing::info!("resource provisioned");
    Ok(receipt)
}

async fn record_failure(
    cx: &Checkouts,
    purchase_id: PurchaseId,
    error: &ProviderError,
) -> Result<Attempt, CheckoutError> {
    let message = error.to_string();
    let mut tx = cx.pool.begin().await?;
    let attempts: i32 = sqlx::query_scalar!(
        "update purchase set provision_attempts = provision_attempts + 1, last_provision_error = $2,
             resource_status = 'failed'
         where purchase_id = $1 returning provision_attempts",
        purchase_id.0,
        message
    )
    .fetch_one(&mut *tx)
    .await?;
    let step = usize::try_from(attempts.max(1) - 1).unwrap_or(usize::MAX);
    let not_configured = matches!(error, ProviderError::NotConfigured(_));
    let scheduled = RETRY_SCHEDULE_SECS.get(step).copied();
    // A provider that is not configured is retried until it is (as its alert says), at least
    // hourly: configuring it and restarting delivers within the hour; it is never given up.
    let delay = if not_configured {
        Some(scheduled.map_or(UNCONFIGURED_RETRY_SECS, |d| d.min(UNCONFIGURED_RETRY_SECS)))
    } else {
        scheduled
    };
    sqlx::query!(
        "update purchase set next_provision_at = case when $2::float8 is null then null
                                                     else now() + make_interval(secs => $2) end
         where purchase_id = $1",
        purchase_id.0,
        delay.map(|d| d as f64)
    )
    .execute(&mut *tx)
    .await?;
    purchases::set_status(&mut tx, purchase_id, PurchaseStatus::Failed).await?;
    if not_configured {
        // Paid for, but this server cannot deliver it (SPEC §9): keep retrying and tell the vendor now.
        notify::enqueue(
            &mut tx,
            Channel::Alert,
            "provision.unavailable",
            Some(purchase_id),
            &json!({
                "message": format!("Purchase {purchase_id} is paid for but its offer's provider is not configured on this server ({message}); it stays failed and is retried until the provider is configured. The customer's balance is intact."),
                "purchase_id": purchase_id.to_string(),
            }),
            Some(&format!("provision.unavailable:{purchase_id}")),
        )
        .await?;
    }
    if delay.is_none() {
        notify::enqueue(
            &mut tx,
            Channel::Alert,
            "provision.failed",
            Some(purchase_id),
            &json!({
                "message": format!("Provisioning {purchase_id} failed {attempts} times and is no longer retried: {message}. The customer's balance is intact."),
                "purchase_id": purchase_id.to_string(),
                "attempts": attempts,
            }),
            Some(&format!("provision.failed:{purchase_id}")),
        )
        .await?;
    }
    tx.commit().await?;
    tracing::warn!(attempts, error = %message, retry_in_secs = ?delay, "provisioning failed");
    Ok(Attempt::Failed {
        error: message,
        retry: delay.is_some(),
    })
}

/// The retry job: claims purchases whose provisioning is due and runs an attempt for each.
pub async fn run_once(cx: &Checkouts) -> anyhow::Result<Outcome> {
    let claimed = sqlx::query_scalar!(
        "update purchase set next_provision_at = now() + make_interval(secs => $2)
         where purchase_id in (
             select purchase_id from purchase
             where status in ('provisioning', 'failed') and resource_status <> 'ready'
               and next_provision_at is not null and next_provision_at <= now()
             order by next_provision_at limit $1
             for update skip locked)
         returning purchase_id",
        BATCH_SIZE,
        LEASE_SECS
    )
    .fetch_all(&cx.pool)
    .await?;
    if claimed.is_empty() {
        return Ok(Outcome::Idle);
    }
    for id in &claimed {
        attempt(cx, PurchaseId(*id)).await?;
    }
    Ok(Outcome::Processed(claimed.len()))
}
