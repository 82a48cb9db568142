//! Background jobs: wiring and scheduling only; each job's logic lives in its domain module and is a
//! plain `run_once` tests call directly.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// Daily cost import schedule.
pub mod cost_import;
/// Business gauges for `/metrics`.
pub mod gauges;
/// The daily reconciliation of deposit addresses with the chain.
pub mod reconcile;
/// The loop that runs one job's passes (knows nothing of the jobs themselves).
pub mod runner;
/// The hourly S3 usage estimate.
pub mod s3_metering;

pub use runner::{run_loop, run_loop_woken};

/// What one pass of a job did (defined with the domain types, so jobs' logic needs nothing from here).
pub use crate::domain::Outcome;

/// Starts every background job; each stops when `shutdown` is cancelled.
pub fn spawn_all(state: &AppState, shutdown: CancellationToken) -> JoinSet<()> {
    type Pass = fn(AppState) -> futures::future::BoxFuture<'static, anyhow::Result<Outcome>>;
    // (name, sleep when idle, sleep after an error, one pass)
    let jobs: [(&'static str, Duration, Duration, Pass); 9] = [
        (
            "deposit_watcher",
            state.config.checkout.watch_interval,
            secs(15),
            |s| Box::pin(async move { crate::checkout::deposits::run_once(&s.checkouts()).await }),
        ),
        ("sweeper", secs(10), secs(30), |s| {
            Box::pin(async move { crate::chain::sweeper::run_once(&s.pool, &s.chains).await })
        }),
        ("refund_payouts", secs(5), secs(30), |s| {
            Box::pin(async move {
                crate::refunds::payout::run_once(&s.pool, &s.chains, &s.config.refunds).await
            })
        }),
        ("provision_retry", secs(5), secs(30), |s| {
            Box::pin(async move { crate::checkout::provision::run_once(&s.checkouts()).await })
        }),
        (
            "officex_records",
            crate::officex::worker::IDLE,
            crate::officex::worker::ON_ERROR,
            |s| {
                Box::pin(async move {
                    crate::officex::worker::run_once(&s.pool, s.officex.as_deref(), &s.config).await
                })
            },
        ),
        ("notify", secs(2), secs(10), |s| {
            Box::pin(
                async move { crate::notify::worker::run_once(&s.pool, &s.config, &s.http).await },
            )
        }),
        ("reconcile", reconcile::INTERVAL, reconcile::INTERVAL, |s| {
            Box::pin(async move { reconcile::run_once(&s.pool, &s.chains).await })
        }),
        ("gauges", gauges::INTERVAL, gauges::INTERVAL, |s| {
            Box::pin(async move { gauges::run_once(&s).await })
        }),
        // Buckets made before the hardening get it at the next start (and when the log bucket changes).
        ("resource_upgrade", secs(3600), secs(300), |s| {
            Box::pin(async move {
                let log_bucket = s
                    .config
                    .aws
                    .as_ref()
                    .and_then(|a| a.access_log_bucket.as_deref());
                crate::providers::upgrade::run_once(&s.pool, &s.providers, log_bucket).await
            })
        }),
    ];
    let mut set = JoinSet::new();
    for (name, idle, on_error, pass) in jobs {
        let state = state.clone();
        set.spawn(run_loop(
            name,
            shutdown.child_token(),
            idle,
            on_error,
            move || pass(state.clone()),
        ));
    }
    cost_import::spawn(&mut set, state, &shutdown);
    s3_metering::spawn(&mut set, state, &shutdown);
    spawn_lifecycle(&mut set, state, &shutdown);
    set
}

/// PostgreSQL channel announcing every purchase status change (a trigger on `purchase`).
const STATUS_CHANNEL: &str = "purchase_status";

/// The lifecycle job: a pass every minute, and at once whenever a purchase's status changes on any
/// replica (LISTEN on [`STATUS_CHANNEL`]), so a suspension reaches the resource within seconds.
fn spawn_lifecycle(set: &mut JoinSet<()>, state: &AppState, shutdown: &CancellationToken) {
    let wake = Arc::new(Notify::new());
    set.spawn(listen_for_status_changes(
        state.pool.clone(),
        Arc::clone(&wake),
        shutdown.child_token(),
    ));
    let state = state.clone();
    let shutdown = shutdown.child_token();
    set.spawn(async move {
        runner::run_loop_woken("lifecycle", shutdown, secs(60), secs(60), &wake, || {
            let s = state.clone();
            async move {
                crate::providers::lifecycle::run_once(&s.pool, &s.providers, &s.config.billing)
                    .await
            }
        })
        .await;
    });
}

/// Notifies `wake` on every status change announced by the database, until `shutdown`. A lost
/// connection is reconnected (changes meanwhile are caught by the next timed pass).
async fn listen_for_status_changes(pool: PgPool, wake: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        let listened = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(STATUS_CHANNEL).await?;
            loop {
                listener.recv().await?;
                wake.notify_one();
            }
        };
        let result: Result<(), sqlx::Error> = tokio::select! {
            () = shutdown.cancelled() => return,
            result = listened => result,
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot listen for purchase status changes; retrying in 5 s");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(secs(5)) => {}
        }
    }
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
