//! Suspension lifecycle: a purchase whose balance suspended it has its resource suspended at the
//! provider (credentials off, data kept); a credit that lifts the status (the ledger restores it)
//! resumes it; after `SUSPENSION_GRACE_DAYS` suspended without any credit, never while a deposit is
//! pending nor while an operator holds it suspended (admin API), the purchase is deleted (status
//! `deleted`, announced) and then its resource.
//!
//! Provider calls happen outside any transaction and are idempotent; the resource status is moved
//! on only after the provider succeeded, so a failure is retried on the next pass and no state is
//! lost. One replica runs a pass at a time (session advisory lock on a connection that is closed,
//! not pooled again, when the pass ends).

use anyhow::Context;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::Providers;
use crate::billing::{PurchaseStatus, ledger, meter};
use crate::config::BillingConfig;
use crate::domain::Outcome;
use crate::domain::ids::PurchaseId;

/// Purchases handled per step and pass.
pub const BATCH_SIZE: i64 = 50;
/// `pg_try_advisory_lock` key of this job.
const LOCK_KEY: i64 = 0x7665_6e64_6c69_6665; // "vendlife"

struct Candidate {
    purchase_id: Uuid,
    provider: String,
    resource_state: serde_json::Value,
}

/// What a lifecycle pass works with.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    pool: &'a PgPool,
    providers: &'a Providers,
    billing: &'a BillingConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Suspend,
    Resume,
    Delete,
}

/// One pass: suspend, resume, delete after the grace period. Returns how many purchases moved.
pub async fn run_once(
    pool: &PgPool,
    providers: &Providers,
    billing: &BillingConfig,
) -> anyhow::Result<Outcome> {
    let cx = &Ctx {
        pool,
        providers,
        billing,
    };
    let mut conn = cx
        .pool
        .acquire()
        .await
        .context("lifecycle: no connection")?;
    let locked: Option<bool> = sqlx::query_scalar!("select pg_try_advisory_lock($1)", LOCK_KEY)
        .fetch_one(&mut *conn)
        .await?;
    if locked != Some(true) {
        return Ok(Outcome::Idle);
    }
    // Whatever happens from here (error, cancellation), the session and its lock end with it.
    conn.close_on_drop();
    let mut done = 0;
    done += step(cx, &mut conn, Action::Suspend).await?;
    done += step(cx, &mut conn, Action::Resume).await?;
    done += expire(cx, &mut conn).await?;
    done += step(cx, &mut conn, Action::Delete).await?;
    let purged = meter::purge_expired_keys(cx.pool).await?;
    if purged > 0 {
        tracing::info!(purged, "expired idempotency keys deleted");
    }
    Ok(if done == 0 {
        Outcome::Idle
    } else {
        Outcome::Processed(done)
    })
}

async fn candidates(conn: &mut PgConnection, action: Action) -> anyhow::Result<Vec<Candidate>> {
    let rows = match action {
        Action::Suspend => {
            sqlx::query_as!(
                Candidate,
                "select p.purchase_id, o.provider, p.resource_state from purchase p join offer o using (offer_id)
                 where p.status = 'suspended' and p.resource_status = 'ready'
                 order by p.status_changed_at limit $1",
                BATCH_SIZE
            )
            .fetch_all(&mut *conn)
            .await?
        }
        Action::Resume => {
            sqlx::query_as!(
                Candidate,
                "select p.purchase_id, o.provider, p.resource_state from purchase p join offer o using (offer_id)
                 where p.status in ('active', 'low', 'critical') and p.resource_status = 'suspended'
                 order by p.status_changed_at limit $1",
                BATCH_SIZE
            )
            .fetch_all(&mut *conn)
            .await?
        }
        Action::Delete => {
            sqlx::query_as!(
                Candidate,
                "select p.purchase_id, o.provider, p.resource_state from purchase p join offer o using (offer_id)
                 where p.status = 'deleted' and p.resource_status in ('ready', 'suspended')
                 order by p.status_changed_at limit $1",
                BATCH_SIZE
            )
            .fetch_all(&mut *conn)
            .await?
        }
    };
    Ok(rows)
}

/// Calls the provider for each candidate of `action`, then records the new resource status.
async fn step(cx: &Ctx<'_>, conn: &mut PgConnection, action: Action) -> anyhow::Result<usize> {
    let mut done = 0;
    for c in candidates(conn, action).await? {
        let id = PurchaseId(c.purchase_id);
        let provider = match cx.providers.get(&c.provider) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(purchase_id = %id, provider = %c.provider, error = %e, ?action, "lifecycle: no provider; retried next pass");
                continue;
            }
        };
        let result = match action {
            Action::Suspend => provider.suspend(id, &c.resource_state).await,
            Action::Resume => provider.resume(id, &c.resource_state).await,
            Action::Delete => provider.delete(id, &c.resource_state).await,
        };
        if let Err(e) = result {
            tracing::warn!(purchase_id = %id, error = %e, ?action, "lifecycle: provider failed; retried next pass");
            continue;
        }
        let (from, to): (&[&str], &str) = match action {
            Action::Suspend => (&["ready"], "suspended"),
            Action::Resume => (&["suspended"], "ready"),
            Action::Delete => (&["ready", "suspended"], "deleted"),
        };
        let from: Vec<String> = from.iter().map(|s| (*s).to_owned()).collect();
        sqlx::query!(
            "update purchase set resource_status = $2 where purchase_id = $1 and resource_status = any($3)",
            id.0,
            to,
            &from
        )
        .execute(&mut *conn)
        .await?;
        tracing::info!(purchase_id = %id, ?action, "lifecycle: resource {to}");
        done += 1;
    }
    Ok(done)
}

/// Suspended purchases past the grace period with no credit since and no pending or
/// confirmed-but-uncredited deposit become
/// `deleted` (re-checked under the row lock, announced in the same transaction).
async fn expire(cx: &Ctx<'_>, conn: &mut PgConnection) -> anyhow::Result<usize> {
    let grace = cx.billing.suspension_grace.as_secs_f64();
    let ids: Vec<Uuid> = sqlx::query_scalar!(
        "select purchase_id from purchase
         where status = 'suspended' and admin_hold_at is null and pending_deposit_at is null
           and not exists (select 1 from checkout c join deposit d using (checkout_session_id)
                           where c.purchase_id = purchase.purchase_id and d.status = 'confirmed')
           and greatest(status_changed_at, coalesce(last_credit_at, status_changed_at))
               < now() - make_interval(secs => $1)
         order by status_changed_at limit $2",
        grace,
        BATCH_SIZE
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut done = 0;
    for id in ids {
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        let locked = ledger::lock(&mut tx, PurchaseId(id)).await?;
        let still_due: Option<bool> = sqlx::query_scalar!(
            "select status = 'suspended' and admin_hold_at is null and pending_deposit_at is null
                    and not exists (select 1 from checkout c join deposit d using (checkout_session_id)
                                    where c.purchase_id = purchase.purchase_id and d.status = 'confirmed')
                    and greatest(status_changed_at, coalesce(last_credit_at, status_changed_at))
                        < now() - make_interval(secs => $2)
             from purchase where purchase_id = $1",
            id,
            grace
        )
        .fetch_one(&mut *tx)
        .await?;
        if still_due == Some(true) && locked.status == PurchaseStatus::Suspended {
            ledger::set_locked_status(&mut tx, &locked, PurchaseStatus::Deleted, "grace_expired")
                .await?;
            tx.commit().await?;
            tracing::info!(purchase_id = %PurchaseId(id), "lifecycle: purchase deleted after the grace period");
            done += 1;
        }
    }
    Ok(done)
}
