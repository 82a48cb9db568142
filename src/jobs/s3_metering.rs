//! Schedules the S3 usage estimate every `S3_METERING_INTERVAL_SECS` (the work is
//! [`crate::billing::s3_usage::Metering::run_once`]; its advisory lock keeps replicas from
//! overlapping, and a second pass in the same hour finds nothing new to charge).

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::billing::s3_usage::Metering;
use crate::domain::Outcome;
use crate::state::AppState;

/// Adds the job to `set` when AWS is configured; otherwise nothing (the S3 offer is off too).
pub fn spawn(set: &mut JoinSet<()>, state: &AppState, shutdown: &CancellationToken) {
    if state.config.aws.is_none() {
        return;
    }
    let state = state.clone();
    let shutdown = shutdown.child_token();
    set.spawn(async move {
        let metering = match Metering::from_config(&state.config).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!("S3 usage estimate is off: {e}");
                return;
            }
        };
        let interval = state.config.billing.metering_interval;
        super::run_loop("s3_metering", shutdown, interval, interval, move || {
            let metering = metering.clone();
            let pool = state.pool.clone();
            async move {
                let report = metering.run_once(&pool, chrono::Utc::now()).await?;
                if !report.busy {
                    tracing::info!(?report, "S3 usage estimate done");
                }
                // Always wait the interval: a pass takes everything there is.
                Ok(Outcome::Idle)
            }
        })
        .await;
    });
}
