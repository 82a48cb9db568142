//! Run records: every import's start and finish in `cost_import_run`, and the recent ones.

use super::*;

pub(super) async fn start_run(
    pool: &PgPool,
    source: &str,
    period: BillingPeriod,
    trigger: Trigger,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        "insert into cost_import_run (source, billing_period, trigger) values ($1, $2, $3) returning run_id",
        source,
        period.first_day(),
        trigger.as_str()
    )
    .fetch_one(pool)
    .await
}

pub(super) async fn finish_run(
    pool: &PgPool,
    run_id: i64,
    report: &PeriodReport,
) -> Result<(), sqlx::Error> {
    let mut errors = report.stats.errors.clone();
    if let Some(error) = &report.error {
        errors.insert(0, error.clone());
    }
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let as_i32 = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    sqlx::query!(
        "update cost_import_run set status = $2, files = $3, bytes_read = $4, rows_read = $5,
             rows_matched = $6, unknown_tag_rows = $7, untagged_rows = $8, error_rows = $9,
             purchases_charged = $10, entries_posted = $11, total_charged_micros = $12, matched_cost = $13,
             unknown_tags = $14, errors = $15, finished_at = now(), duration_ms = $16
         where run_id = $1",
        run_id,
        report.status.as_str(),
        i32::try_from(report.stats.files).unwrap_or(i32::MAX),
        as_i64(report.stats.bytes),
        as_i64(report.stats.rows_read),
        as_i64(report.rows_matched),
        as_i64(report.unknown_tag_rows),
        as_i64(report.stats.untagged_rows),
        as_i64(report.stats.error_rows),
        as_i32(report.purchases_charged()),
        as_i32(report.entries_posted),
        report.total_charged.0,
        report.matched_cost.to_bigdecimal(),
        serde_json::to_value(&report.unknown_tags).unwrap_or_default(),
        serde_json::to_value(&errors).unwrap_or_default(),
        as_i64(report.duration_ms),
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// One recorded run (for `billing runs` and the vendor views).
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub run_id: i64,
    pub source: String,
    pub billing_period: String,
    pub trigger: String,
    pub status: String,
    pub files: i32,
    pub bytes_read: i64,
    pub rows_read: i64,
    pub rows_matched: i64,
    pub unknown_tag_rows: i64,
    pub untagged_rows: i64,
    pub error_rows: i64,
    pub purchases_charged: i32,
    pub entries_posted: i32,
    pub total_charged: UsdMicros,
    pub matched_cost: Option<String>,
    pub unknown_tags: serde_json::Value,
    pub errors: serde_json::Value,
    pub started_at: chrono::DateTime<Utc>,
    pub duration_ms: Option<i64>,
}

/// The most recent runs, newest first.
pub async fn recent_runs(pool: &PgPool, limit: i64) -> Result<Vec<RunRecord>, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select run_id, source, billing_period, trigger, status, files, bytes_read, rows_read, rows_matched,
                  unknown_tag_rows, untagged_rows, error_rows, purchases_charged, entries_posted,
                  total_charged_micros, matched_cost::text as matched_cost, unknown_tags, errors, started_at,
                  duration_ms
           from cost_import_run order by started_at desc, run_id desc limit $1"#,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| RunRecord {
            run_id: r.run_id,
            source: r.source,
            billing_period: BillingPeriod::containing(r.billing_period).to_string(),
            trigger: r.trigger,
            status: r.status,
            files: r.files,
            bytes_read: r.bytes_read,
            rows_read: r.rows_read,
            rows_matched: r.rows_matched,
            unknown_tag_rows: r.unknown_tag_rows,
            untagged_rows: r.untagged_rows,
            error_rows: r.error_rows,
            purchases_charged: r.purchases_charged,
            entries_posted: r.entries_posted,
            total_charged: UsdMicros(r.total_charged_micros),
            matched_cost: r.matched_cost,
            unknown_tags: r.unknown_tags,
            errors: r.errors,
            started_at: r.started_at,
            duration_ms: r.duration_ms,
        })
        .collect())
}
