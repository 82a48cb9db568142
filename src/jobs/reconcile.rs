//! The daily reconciliation of deposit addresses with the chain ([`crate::chain::reconcile`]): an
//! hourly pass that runs it once per UTC day whatever the replica count (the day's `job_day_run`
//! claim). A run a chain's RPC failed gives its claim back, so the next hourly pass tries again.

use chrono::NaiveDate;
use sqlx::PgPool;

use crate::chain::Chains;
use crate::domain::Outcome;

/// How often the job looks whether today's run is due.
pub const INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Runs today's reconciliation unless a replica already did. `Ok(None)`: nothing to do.
pub async fn run_daily(
    pool: &PgPool,
    chains: &Chains,
    today: NaiveDate,
) -> anyhow::Result<Option<crate::chain::reconcile::ReconcileReport>> {
    if chains.keys().is_err() {
        return Ok(None);
    }
    let claimed = sqlx::query!(
        "insert into job_day_run (job, day) values ('reconcile', $1) on conflict do nothing",
        today
    )
    .execute(pool)
    .await?
    .rows_affected()
        == 1;
    if !claimed {
        return Ok(None);
    }
    let result = crate::chain::reconcile::run(pool, chains).await;
    let retry = match &result {
        Ok(report) => report.chains.iter().any(|c| c.error.is_some()),
        Err(_) => true,
    };
    if retry {
        sqlx::query!(
            "delete from job_day_run where job = 'reconcile' and day = $1",
            today
        )
        .execute(pool)
        .await?;
    }
    let report = result?;
    tracing::info!(
        clean = report.clean,
        mismatches = report.chains.iter().map(|c| c.mismatches).sum::<usize>(),
        "daily reconciliation done"
    );
    Ok(Some(report))
}

/// One pass of the hourly loop.
pub async fn run_once(pool: &PgPool, chains: &Chains) -> anyhow::Result<Outcome> {
    run_daily(pool, chains, chrono::Utc::now().date_naive()).await?;
    Ok(Outcome::Idle)
}
