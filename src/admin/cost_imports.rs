//! Cost import runs in the console: per run (daily), what was charged, restated and skipped.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::AdminError;
use crate::domain::money::UsdMicros;
use crate::domain::page::Page;

/// One cost import run (the daily job, or `billing import` by hand).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct CostImportRow {
    pub id: i64,
    /// The UTC day the run started.
    #[schema(value_type = String, format = Date)]
    pub day: NaiveDate,
    /// `YYYY-MM`.
    pub billing_period: String,
    /// `cur` or `cost_explorer`.
    pub source: String,
    /// `schedule` or `cli`.
    pub trigger: String,
    /// `running`, `succeeded`, `failed` or `no_data`.
    pub status: String,
    pub files: i32,
    pub rows_read: i64,
    pub rows_matched: i64,
    /// Rows not charged: unknown tag + untagged + malformed.
    pub rows_skipped: i64,
    pub unknown_tag_rows: i64,
    pub untagged_rows: i64,
    pub error_rows: i64,
    pub purchases_charged: i32,
    pub entries_posted: i32,
    /// Ledger rows of this run that restated a day already charged (AWS changed its cost).
    pub restated_entries: i64,
    /// Net of this run's ledger posts, positive = debited from customers.
    pub charged_usd: UsdMicros,
    /// The AWS cost of the matched rows (before markup).
    pub matched_cost: Option<String>,
    pub unknown_tags: serde_json::Value,
    pub errors: serde_json::Value,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
}

/// Cost import runs, newest first.
pub async fn cost_imports(
    pool: &PgPool,
    before: Option<i64>,
    limit: i64,
) -> Result<Page<CostImportRow>, AdminError> {
    let rows = sqlx::query!(
        r#"select r.run_id, (r.started_at at time zone 'UTC')::date as "day!", r.billing_period, r.source,
                  r.trigger, r.status, r.files, r.rows_read, r.rows_matched, r.unknown_tag_rows, r.untagged_rows,
                  r.error_rows, r.purchases_charged, r.entries_posted, r.total_charged_micros,
                  r.matched_cost::text as matched_cost, r.unknown_tags, r.errors, r.started_at, r.finished_at,
                  r.duration_ms,
                  (select count(*) from ledger_entry l
                   where l.kind = 'cost' and (l.metadata ->> 'run_id')::bigint = r.run_id
                     and coalesce((l.metadata ->> 'aws_cost_before')::numeric, 0) <> 0) as "restated!"
           from cost_import_run r
           where ($1::bigint is null or r.run_id < $1)
           order by r.run_id desc limit $2"#,
        before,
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    let rows = rows
        .into_iter()
        .map(|r| CostImportRow {
            id: r.run_id,
            day: r.day,
            billing_period: r.billing_period.format("%Y-%m").to_string(),
            source: r.source,
            trigger: r.trigger,
            status: r.status,
            files: r.files,
            rows_read: r.rows_read,
            rows_matched: r.rows_matched,
            rows_skipped: r.unknown_tag_rows + r.untagged_rows + r.error_rows,
            unknown_tag_rows: r.unknown_tag_rows,
            untagged_rows: r.untagged_rows,
            error_rows: r.error_rows,
            purchases_charged: r.purchases_charged,
            entries_posted: r.entries_posted,
            restated_entries: r.restated,
            charged_usd: UsdMicros(r.total_charged_micros),
            matched_cost: r.matched_cost,
            unknown_tags: r.unknown_tags,
            errors: r.errors,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_ms: r.duration_ms,
        })
        .collect();
    Ok(Page::from_rows(rows, limit, |r| r.id.to_string()))
}
