//! Delivers `Channel::Officex` outbox rows: each sends the purchase's CURRENT state to the customer's
//! OfficeX record (rows only say "something changed"; the payload is `{}`), so a retry or a late
//! row never writes a stale state, and rows of one purchase in a batch collapse into one call.
//!
//! Outcomes: 2xx → delivered; 404 (the client's own `purchases/create` has not landed yet) → retried
//! with backoff for 24 h after the row was written; other 4xx, a disallowed host or an invalid target
//! → failed and alerted; 5xx / network → retried on the outbox schedule, then failed and alerted.
//! Rows for purchases without OfficeX data, or while updates are off, complete as `skipped`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::StreamExt;

use sqlx::PgPool;

use super::{DriveTarget, OfficexClient, OfficexError, PurchaseUpdate};
use crate::billing::PurchaseStatus;
use crate::config::Config;
use crate::domain::Outcome;
use crate::domain::ids::PurchaseId;
use crate::domain::money::UsdMicros;
use crate::notify::{self, Channel, Delivery, OutboxItem};

/// Rows claimed per pass.
pub const BATCH_SIZE: i64 = 20;
/// Drive calls in flight per pass.
const CONCURRENCY: usize = 4;
/// How long a 404 (record not created yet) is retried after the row was written.
pub const NOT_FOUND_RETRY_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);
/// The canister's limit on short strings (`pricing`).
const SHORT_STRING_MAX: usize = 256;

/// Outbox event types that ask for a record sync (payload `{}`).
pub const EVENT_PURCHASE_CREATED: &str = "purchase.created";
pub const EVENT_DEPOSIT_CREDITED: &str = "deposit.credited";
pub const EVENT_STATUS_CHANGED: &str = "purchase.status_changed";

/// What a pass works with.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    pool: &'a PgPool,
    officex: Option<&'a dyn OfficexClient>,
    config: &'a Config,
}

/// What one sync of a purchase came to.
#[derive(Debug)]
enum Attempt {
    /// Nothing to send (reason recorded).
    Skip(String),
    /// Sent; the drive's answer.
    Sent(Result<serde_json::Value, OfficexError>),
}

/// One pass: claims due rows, syncs each purchase once, records every row's outcome.
pub async fn run_once(
    pool: &PgPool,
    officex: Option<&dyn OfficexClient>,
    config: &Config,
) -> anyhow::Result<Outcome> {
    let cx = &Ctx {
        pool,
        officex,
        config,
    };
    let items = notify::claim_due(cx.pool, Channel::Officex, BATCH_SIZE)
        .await
        .context("claiming OfficeX outbox rows")?;
    if items.is_empty() {
        return Ok(Outcome::Idle);
    }
    let count = items.len();
    let mut groups: BTreeMap<Option<PurchaseId>, Vec<OutboxItem>> = BTreeMap::new();
    for item in items {
        groups.entry(item.purchase_id).or_default().push(item);
    }
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(groups)
        .map(|(purchase_id, items)| deliver(cx, purchase_id, items))
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    // Rows whose outcome could not be recorded come back after their lease.
    results.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    Ok(Outcome::Processed(count))
}

async fn deliver(
    cx: &Ctx<'_>,
    purchase_id: Option<PurchaseId>,
    items: Vec<OutboxItem>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let attempt = sync(cx, purchase_id).await?;
    let elapsed = started.elapsed();
    let now = Utc::now();
    for item in &items {
        let delivery = classify(&attempt, item.created_at, now);
        let failed = notify::record(cx.pool, item, &delivery, elapsed)
            .await
            .context("recording an OfficeX delivery")?;
        log(item, &delivery);
        if failed {
            alert(cx, item, &delivery).await?;
        }
    }
    Ok(())
}

/// Reads the purchase's current state and sends it, holding a per-purchase advisory lock so that
/// two workers never race an older state past a newer one.
async fn sync(cx: &Ctx<'_>, purchase_id: Option<PurchaseId>) -> anyhow::Result<Attempt> {
    let Some(client) = cx.officex else {
        return Ok(Attempt::Skip(
            "OfficeX updates are off (no vendor identity configured)".into(),
        ));
    };
    let Some(purchase_id) = purchase_id else {
        return Ok(Attempt::Skip("the row names no purchase".into()));
    };
    let mut tx = cx.pool.begin().await?;
    sqlx::query!(
        "select pg_advisory_xact_lock(hashtextextended($1, 0))::text as locked",
        format!("officex-record:{}", purchase_id.0)
    )
    .fetch_one(&mut *tx)
    .await?;
    let row = sqlx::query!(
        "select p.status, p.title, p.balance_micros, p.officex_purchase_id, p.customer_org_id,
                p.customer_org_host, o.pricing_line
         from purchase p join offer o using (offer_id)
         where p.purchase_id = $1",
        purchase_id.0
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(Attempt::Skip("the purchase does not exist".into()));
    };
    let (Some(officex_purchase_id), Some(org_host), Some(org_id)) = (
        row.officex_purchase_id,
        row.customer_org_host,
        row.customer_org_id,
    ) else {
        return Ok(Attempt::Skip(
            "the purchase has no OfficeX record (officex_purchase_id, org host or org id missing)"
                .into(),
        ));
    };
    let status = PurchaseStatus::parse(&row.status)
        .with_context(|| format!("purchase {purchase_id} has status {:?}", row.status))?;
    let update = build_update(
        cx.config,
        RecordState {
            purchase_id,
            officex_purchase_id,
            title: row.title,
            status,
            balance: UsdMicros(row.balance_micros),
            pricing_line: row.pricing_line,
        },
    );
    let target = DriveTarget { org_host, org_id };
    let result = client.update_purchase(&target, &update).await;
    // Nothing was written: the transaction only held the lock.
    tx.rollback().await?;
    Ok(Attempt::Sent(result))
}

/// What the record is built from.
#[derive(Debug, Clone)]
pub struct RecordState {
    pub purchase_id: PurchaseId,
    pub officex_purchase_id: String,
    pub title: String,
    pub status: PurchaseStatus,
    pub balance: UsdMicros,
    pub pricing_line: String,
}

/// The record fields for a purchase's state. Links open the customer page, which asks for the key
/// (the purchase id rides in the fragment; no secret ever goes into a record).
pub fn build_update(config: &Config, state: RecordState) -> PurchaseUpdate {
    let page = config.public_url(&format!(
        "/v1/dashboard/customer#vendor_purchase_id={}",
        state.purchase_id
    ));
    let grace_days = config.billing.suspension_grace.as_secs() / 86_400;
    PurchaseUpdate {
        id: state.officex_purchase_id,
        title: state.title,
        status: state.status.officex().to_owned(),
        billing_url: page.clone(),
        support_url: page.clone(),
        delivery_url: page,
        pricing: state.pricing_line.chars().take(SHORT_STRING_MAX).collect(),
        vendor_notes: vendor_notes(state.status, state.balance, grace_days),
    }
}

fn vendor_notes(status: PurchaseStatus, balance: UsdMicros, grace_days: u64) -> String {
    match status {
        PurchaseStatus::Provisioning => format!(
            "Being set up; this record updates when it is ready. Prepaid balance: {balance} USD."
        ),
        PurchaseStatus::Failed => format!(
            "Setup hit a problem and is retried automatically; your balance is kept. \
             Prepaid balance: {balance} USD."
        ),
        PurchaseStatus::Active => format!(
            "Running. Prepaid balance: {balance} USD. Top up any time from the billing page."
        ),
        PurchaseStatus::Low => format!(
            "Running, balance low: {balance} USD left. Top up soon from the billing page to avoid \
             an interruption."
        ),
        PurchaseStatus::Critical => format!(
            "Payment required: only {balance} USD left. Top up from the billing page to keep it \
             running."
        ),
        PurchaseStatus::Suspended => format!(
            "Blocked: the prepaid balance ran out ({balance} USD). Your data is kept for \
             {grace_days} days; top up from the billing page to resume."
        ),
        PurchaseStatus::Deleted => format!(
            "Canceled: the resources were deleted after the balance ran out. Remaining balance: \
             {balance} USD."
        ),
    }
}

fn classify(attempt: &Attempt, created_at: DateTime<Utc>, now: DateTime<Utc>) -> Delivery {
    let result = match attempt {
        Attempt::Skip(reason) => {
            return Delivery::Skipped {
                reason: reason.clone(),
            };
        }
        Attempt::Sent(result) => result,
    };
    let Err(error) = result else {
        return Delivery::Delivered {
            http_status: Some(200),
        };
    };
    let message = error.to_string();
    match error {
        OfficexError::Drive {
            status: 404,
            retry_after,
            ..
        } => {
            if now - created_at < NOT_FOUND_RETRY_WINDOW {
                Delivery::Retry {
                    http_status: Some(404),
                    error: format!("{message} (the customer's record may not be created yet)"),
                    retry_after: *retry_after,
                }
            } else {
                Delivery::GiveUp {
                    http_status: Some(404),
                    error: format!("{message} (still missing 24 h after the change)"),
                }
            }
        }
        OfficexError::Drive {
            status: status @ (408 | 425 | 429),
            retry_after,
            ..
        } => Delivery::Retry {
            http_status: Some(i32::from(*status)),
            error: message,
            retry_after: *retry_after,
        },
        OfficexError::Drive {
            status: status @ 400..=499,
            ..
        } => Delivery::GiveUp {
            http_status: Some(i32::from(*status)),
            error: message,
        },
        OfficexError::Drive {
            status,
            retry_after,
            ..
        } => Delivery::Retry {
            http_status: Some(i32::from(*status)),
            error: message,
            retry_after: *retry_after,
        },
        OfficexError::HostNotAllowed(_) | OfficexError::InvalidTarget(_) => Delivery::GiveUp {
            http_status: None,
            error: message,
        },
        OfficexError::Network(_)
        | OfficexError::Protocol(_)
        | OfficexError::Signing(_)
        | OfficexError::Identity { .. }
        | OfficexError::VendorIdMissing { .. }
        | OfficexError::VendorIdMismatch { .. } => Delivery::Retry {
            http_status: None,
            error: message,
            retry_after: None,
        },
    }
}

fn log(item: &OutboxItem, delivery: &Delivery) {
    let purchase_id = item.purchase_id.map(|p| p.to_string()).unwrap_or_default();
    match delivery {
        Delivery::Delivered { .. } => tracing::info!(
            outbox_id = item.outbox_id,
            %purchase_id,
            event_type = %item.event_type,
            "OfficeX record updated"
        ),
        Delivery::Skipped { reason } => tracing::debug!(
            outbox_id = item.outbox_id,
            %purchase_id,
            %reason,
            "OfficeX update skipped"
        ),
        Delivery::Retry { error, .. } => tracing::warn!(
            outbox_id = item.outbox_id,
            %purchase_id,
            attempt = item.attempt,
            %error,
            "OfficeX update failed; will retry"
        ),
        Delivery::GiveUp { error, .. } => tracing::warn!(
            outbox_id = item.outbox_id,
            %purchase_id,
            %error,
            "OfficeX update refused"
        ),
    }
}

/// A row that failed for good: logged as an error and reported to the operator (alert channel).
async fn alert(cx: &Ctx<'_>, item: &OutboxItem, delivery: &Delivery) -> anyhow::Result<()> {
    let (http_status, error) = match delivery {
        Delivery::Retry {
            http_status, error, ..
        }
        | Delivery::GiveUp { http_status, error } => (*http_status, error.as_str()),
        Delivery::Delivered { .. } | Delivery::Skipped { .. } => return Ok(()),
    };
    let purchase_id = item.purchase_id.map(|p| p.to_string()).unwrap_or_default();
    tracing::error!(
        outbox_id = item.outbox_id,
        %purchase_id,
        %error,
        "OfficeX record update failed for good; the customer's record may be out of date"
    );
    let mut conn = cx.pool.acquire().await?;
    notify::enqueue(
        &mut conn,
        Channel::Alert,
        "officex.update_failed",
        item.purchase_id,
        &serde_json::json!({
            "subject": "OfficeX record update failed",
            "message": format!(
                "The OfficeX purchase record of {purchase_id} could not be updated: {error}"
            ),
            "purchase_id": purchase_id,
            "outbox_id": item.outbox_id,
            "event_type": item.event_type,
            "http_status": http_status,
            "error": error,
        }),
        Some(&format!("officex.update_failed:{}", item.outbox_id)),
    )
    .await
    .context("enqueueing the OfficeX failure alert")?;
    Ok(())
}

/// How long after a failure the job waits before its next pass.
pub const ON_ERROR: Duration = Duration::from_secs(30);
/// How long the job sleeps when there is nothing to do.
pub const IDLE: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    fn drive_error(status: u16) -> Attempt {
        Attempt::Sent(Err(OfficexError::Drive {
            status,
            message: "x".into(),
            retry_after: None,
        }))
    }

    #[test]
    fn outcomes_follow_the_policy() {
        let now = Utc::now();
        let fresh = now - chrono::TimeDelta::minutes(5);
        let old = now - chrono::TimeDelta::hours(25);
        assert!(matches!(
            classify(&Attempt::Sent(Ok(serde_json::json!({}))), fresh, now),
            Delivery::Delivered { .. }
        ));
        assert!(matches!(
            classify(&drive_error(404), fresh, now),
            Delivery::Retry { .. }
        ));
        assert!(matches!(
            classify(&drive_error(404), old, now),
            Delivery::GiveUp { .. }
        ));
        for status in [400, 401, 403] {
            assert!(matches!(
                classify(&drive_error(status), fresh, now),
                Delivery::GiveUp { .. }
            ));
        }
        for status in [429, 500, 502, 503] {
            assert!(matches!(
                classify(&drive_error(status), fresh, now),
                Delivery::Retry { .. }
            ));
        }
        assert!(matches!(
            classify(
                &Attempt::Sent(Err(OfficexError::HostNotAllowed("evil.com".into()))),
                fresh,
                now
            ),
            Delivery::GiveUp { .. }
        ));
        assert!(matches!(
            classify(
                &Attempt::Sent(Err(OfficexError::Network("refused".into()))),
                fresh,
                now
            ),
            Delivery::Retry { .. }
        ));
        assert!(matches!(
            classify(&Attempt::Skip("off".into()), fresh, now),
            Delivery::Skipped { .. }
        ));
    }

    #[test]
    fn statuses_sent_exist_in_the_canister_enum() {
        let canister = [
            "REQUESTED",
            "AWAITING",
            "RUNNING",
            "BLOCKED",
            "COMPLETED",
            "FAILED",
            "CANCELED",
            "PAYMENT_REQUIRED",
            "REFUNDED",
            "ARCHIVED",
            "UNKNOWN",
        ];
        for status in [
            PurchaseStatus::Provisioning,
            PurchaseStatus::Active,
            PurchaseStatus::Low,
            PurchaseStatus::Critical,
            PurchaseStatus::Suspended,
            PurchaseStatus::Deleted,
            PurchaseStatus::Failed,
        ] {
            assert!(canister.contains(&status.officex()), "{status:?}");
            assert!(!vendor_notes(status, UsdMicros(1), 7).is_empty());
        }
    }
}
