//! Schedules the daily cost import with tokio-cron-scheduler (`BILLING_CRON`, UTC). The work is
//! [`crate::billing::cost_import::run_once`]; its advisory lock keeps two runs from overlapping, and
//! the day's claim ([`run_daily`]) makes it run once per day whatever the replica count.

use chrono::NaiveDate;
use tokio::task::JoinSet;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::sync::CancellationToken;

use crate::billing::cost_import;
use crate::domain::Outcome;
use crate::state::AppState;

/// The scheduled import for `today` (UTC), once per day across replicas: the first replica to insert
/// the day's `job_day_run` row runs it; the others (their cron fired too, maybe seconds later) skip
/// with `None`. A failed run gives its claim back, so a later trigger that day may try again.
pub async fn run_daily(state: &AppState, today: NaiveDate) -> anyhow::Result<Option<Outcome>> {
    let claimed = sqlx::query!(
        "insert into job_day_run (job, day) values ('cost_import', $1) on conflict do nothing",
        today
    )
    .execute(&state.pool)
    .await?
    .rows_affected()
        == 1;
    if !claimed {
        tracing::info!(%today, "daily cost import skipped: another replica ran it today");
        return Ok(None);
    }
    let result = cost_import::run_once_on(&state.pool, &state.config, today).await;
    if result.is_err() {
        sqlx::query!(
            "delete from job_day_run where job = 'cost_import' and day = $1",
            today
        )
        .execute(&state.pool)
        .await?;
    }
    result.map(Some)
}

/// Adds the scheduler to `set` when AWS and the billing source are configured; otherwise one warning.
pub fn spawn(set: &mut JoinSet<()>, state: &AppState, shutdown: &CancellationToken) {
    if let Err(e) = cost_import::check_configured(&state.config) {
        tracing::warn!("daily cost import is off: {e}");
        return;
    }
    set.spawn(schedule(state.clone(), shutdown.clone()));
}

async fn schedule(state: AppState, shutdown: CancellationToken) {
    let cron = state.config.billing.cron.clone();
    let job_state = state.clone();
    let job = Job::new_async(cron.as_str(), move |_id, _scheduler| {
        let state = job_state.clone();
        Box::pin(async move {
            match run_daily(&state, chrono::Utc::now().date_naive()).await {
                Ok(None) => {}
                Ok(Some(outcome)) => tracing::info!(?outcome, "daily cost import done"),
                Err(e) => tracing::error!(error = format!("{e:#}"), "daily cost import failed"),
            }
        })
    });
    let job = match job {
        Ok(job) => job,
        Err(e) => {
            tracing::error!(cron, error = %e, "BILLING_CRON is not a valid schedule; daily cost import is off");
            return;
        }
    };
    let mut scheduler = match JobScheduler::new().await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the job scheduler; daily cost import is off");
            return;
        }
    };
    if let Err(e) = scheduler.add(job).await {
        tracing::error!(error = %e, "cannot schedule the daily cost import");
        return;
    }
    if let Err(e) = scheduler.start().await {
        tracing::error!(error = %e, "cannot start the job scheduler; daily cost import is off");
        return;
    }
    tracing::info!(cron, source = ?state.config.billing.source, "daily cost import scheduled");
    shutdown.cancelled().await;
    if let Err(e) = scheduler.shutdown().await {
        tracing::warn!(error = %e, "job scheduler did not shut down cleanly");
    }
    tracing::info!(job = "cost_import", "job stopped");
}
