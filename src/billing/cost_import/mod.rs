//! The daily cost import: AWS costs of the S3 product, read from the CUR 2.0 data export
//! ([`super::cur`]) or Cost Explorer ([`super::cost_explorer`]), charged to purchases through the ledger.
//!
//! AWS rewrites a month's rows every day (restatement), so rows are never charged one by one: each
//! import recomputes the exact AWS cost per (purchase, usage day) of a billing period, applies the markup
//! (the day's own once charged: a new `COST_MARKUP_PERCENT` applies to days charged after it),
//! rounds half up to micro-USD, and posts only the difference from what `cost_charge` says was already
//! charged for that key — a debit when it went up, a credit back when it went down, nothing when it did
//! not change. Each purchase is one transaction (ledger rows + `cost_charge`), so a repeated or
//! interrupted run never charges twice. Exactly one replica imports at a time (PostgreSQL advisory lock).
//!
//! Failure policy: the files are read completely before anything is charged. A missing data file, a
//! corrupt gzip stream or any malformed row (bad number, bad date, wrong field count, unreadable tags)
//! fails the period's import with nothing charged, reported in its run record: a partial total would
//! only be wrong in a new way, and the next run after the fix charges exactly what is owed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use bigdecimal::BigDecimal;
use chrono::{Datelike, NaiveDate, Utc};
use serde::Serialize;
use sqlx::pool::PoolConnection;
use sqlx::{PgPool, Postgres};

use super::cost_explorer::CostExplorerSource;
use super::cur::CurSource;
use super::ledger::{self, EntryKind, NewEntry};
use super::{BillingError, PurchaseStatus};
use crate::config::{BillingSource, Config};
use crate::domain::Outcome;
use crate::domain::ids::PurchaseId;
use crate::domain::money::UsdMicros;

mod amounts;
mod charge;
mod records;
mod runs;
mod source;

pub use amounts::*;
use charge::*;
pub use records::*;
pub use runs::*;
pub use source::*;

/// The ledger `usage_unit` of cost rows: their `usage_amount` is the change of the AWS cost (before
/// markup) in USD, so a purchase's cost rows sum to its current AWS cost.
pub const USAGE_UNIT: &str = "aws_cost_usd";

/// Error messages kept per run (the count is always exact).
const MAX_ERRORS: usize = 20;
/// Unknown tags listed per run (the row count is always exact).
const MAX_UNKNOWN_TAGS: usize = 20;
/// `pg_try_advisory_lock` key of the import ("costimpt").
const LOCK_KEY: i64 = 0x636f_7374_696d_7074;

/// Cost import failures.
#[derive(Debug, thiserror::Error)]
pub enum CostImportError {
    #[error("cost import is not configured: {0}")]
    NotConfigured(String),
    #[error("another cost import is running (on this or another replica)")]
    Busy,
    #[error("manifest {location} is not valid: {detail}")]
    BadManifest { location: String, detail: String },
    #[error("data file {0} listed by the manifest does not exist")]
    MissingFile(String),
    #[error("{file}: {detail}")]
    BadFile { file: String, detail: String },
    #[error("{count} malformed row(s), nothing charged; first: {first}")]
    MalformedRows { count: u64, first: String },
    #[error("S3: {0}")]
    S3(String),
    #[error("Cost Explorer: {0}")]
    CostExplorer(String),
    #[error("amount out of range: {0}")]
    Overflow(String),
    #[error("the import task failed: {0}")]
    Task(String),
    #[error(transparent)]
    Billing(#[from] BillingError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The import's advisory lock: held on one dedicated session for the whole run. If the run is dropped
/// midway (panic, shutdown) the connection is closed instead of returned to the pool, which frees it.
pub struct ImportLock {
    conn: PoolConnection<Postgres>,
}

impl ImportLock {
    /// Takes the lock if no other session holds it.
    pub async fn try_acquire(pool: &PgPool) -> Result<Option<Self>, sqlx::Error> {
        let mut conn = pool.acquire().await?;
        let locked = sqlx::query_scalar!("select pg_try_advisory_lock($1)", LOCK_KEY)
            .fetch_one(&mut *conn)
            .await?
            .unwrap_or(false);
        if !locked {
            return Ok(None);
        }
        conn.close_on_drop();
        // A run that holds no lock cannot still be running: earlier ones were interrupted.
        sqlx::query!(
            "update cost_import_run
             set status = 'failed', finished_at = now(),
                 errors = errors || '[\"interrupted before it finished\"]'::jsonb
             where status = 'running'"
        )
        .execute(&mut *conn)
        .await?;
        Ok(Some(Self { conn }))
    }

    /// Frees the lock (the session closes too).
    pub async fn release(mut self) {
        if let Err(e) = sqlx::query_scalar!("select pg_advisory_unlock($1)", LOCK_KEY)
            .fetch_one(&mut *self.conn)
            .await
        {
            tracing::warn!(error = %e, "releasing the cost import lock failed; closing its session");
        }
    }
}

/// The daily job: imports the current period and, during the first 15 days, the previous one. `Idle`
/// when another replica holds the lock; `Processed(n)` with the ledger rows posted; `Err` when a period
/// failed (each period is recorded either way).
pub async fn run_once(pool: &PgPool, config: &Config) -> anyhow::Result<Outcome> {
    run_once_on(pool, config, Utc::now().date_naive()).await
}

/// What an import works with.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    pool: &'a PgPool,
    config: &'a Config,
}

/// [`run_once`] as if today were `today`.
pub async fn run_once_on(
    pool: &PgPool,
    config: &Config,
    today: NaiveDate,
) -> anyhow::Result<Outcome> {
    let cx = &Ctx { pool, config };
    let Some(lock) = ImportLock::try_acquire(cx.pool).await? else {
        tracing::info!("cost import skipped: another replica holds the lock");
        return Ok(Outcome::Idle);
    };
    let result = run_periods(cx, today).await;
    lock.release().await;
    result
}

async fn run_periods(cx: &Ctx<'_>, today: NaiveDate) -> anyhow::Result<Outcome> {
    let source = CostSource::from_config(cx.config).await?;
    let options = ImportOptions {
        today,
        ..ImportOptions::new(Trigger::Schedule)
    };
    let mut posted = 0;
    let mut failures = Vec::new();
    for period in BillingPeriod::to_import(today) {
        let report = import_locked(cx, &source, period, &options).await;
        match report.status {
            RunStatus::Failed => failures.push(format!(
                "{period}: {}",
                report.error.as_deref().unwrap_or("failed")
            )),
            RunStatus::NoData => tracing::warn!(
                %period,
                source = source.kind(),
                "cost import: no data for the period yet (no manifest)"
            ),
            _ => {}
        }
        posted += report.entries_posted;
    }
    if !failures.is_empty() {
        anyhow::bail!("cost import failed: {}", failures.join("; "));
    }
    Ok(Outcome::Processed(posted))
}

/// Imports one period by hand (the CLI): takes the lock unless it is a dry run (which writes nothing).
pub async fn import_period(
    pool: &PgPool,
    config: &Config,
    period: BillingPeriod,
    options: &ImportOptions,
) -> Result<PeriodReport, CostImportError> {
    let cx = &Ctx { pool, config };
    let source = CostSource::from_config(cx.config).await?;
    if options.dry_run {
        return Ok(import_locked(cx, &source, period, options).await);
    }
    let lock = ImportLock::try_acquire(cx.pool)
        .await?
        .ok_or(CostImportError::Busy)?;
    let report = import_locked(cx, &source, period, options).await;
    lock.release().await;
    Ok(report)
}

/// Imports one period; the caller holds the lock (or it is a dry run). Never fails: failures are in the
/// report (and its run record).
async fn import_locked(
    cx: &Ctx<'_>,
    source: &CostSource,
    period: BillingPeriod,
    options: &ImportOptions,
) -> PeriodReport {
    use tracing::Instrument;
    let span = tracing::info_span!("cost_import", %period, source = source.kind(), dry_run = options.dry_run);
    import_period_report(cx, source, period, options)
        .instrument(span)
        .await
}

async fn import_period_report(
    cx: &Ctx<'_>,
    source: &CostSource,
    period: BillingPeriod,
    options: &ImportOptions,
) -> PeriodReport {
    let started = Instant::now();
    let mut report = PeriodReport::new(period, source.kind(), options.dry_run);
    if !options.dry_run {
        match start_run(cx.pool, source.kind(), period, options.trigger).await {
            Ok(id) => report.run_id = Some(id),
            Err(e) => {
                report.status = RunStatus::Failed;
                report.error = Some(format!("cannot record the run: {e}"));
                return report;
            }
        }
    }
    let result = import_inner(cx, source, period, options, &mut report).await;
    report.status = match result {
        Ok(true) => RunStatus::Succeeded,
        Ok(false) => RunStatus::NoData,
        Err(e) => {
            report.error = Some(e.to_string());
            RunStatus::Failed
        }
    };
    report.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if let Some(run_id) = report.run_id
        && let Err(e) = finish_run(cx.pool, run_id, &report).await
    {
        tracing::error!(run_id, error = %e, "cannot record the end of a cost import run");
    }
    match report.status {
        RunStatus::Failed => tracing::error!(
            %period,
            source = report.source,
            error = report.error.as_deref().unwrap_or_default(),
            "cost import failed"
        ),
        _ => tracing::info!(
            %period,
            source = report.source,
            status = report.status.as_str(),
            rows = report.stats.rows_read,
            matched = report.rows_matched,
            unknown_tag_rows = report.unknown_tag_rows,
            purchases_charged = report.purchases_charged(),
            total_charged = %report.total_charged,
            dry_run = report.dry_run,
            "cost import finished"
        ),
    }
    report
}

/// `Ok(false)` when there is no data for the period.
async fn import_inner(
    cx: &Ctx<'_>,
    source: &CostSource,
    period: BillingPeriod,
    options: &ImportOptions,
    report: &mut PeriodReport,
) -> Result<bool, CostImportError> {
    let totals = source
        .read(
            period,
            options.today,
            &mut report.stats,
            options.progress.clone(),
        )
        .await?;
    let Some(totals) = totals else {
        return Ok(false);
    };
    if report.stats.error_rows > 0 {
        return Err(CostImportError::MalformedRows {
            count: report.stats.error_rows,
            first: report.stats.errors.first().cloned().unwrap_or_default(),
        });
    }
    let by_purchase = resolve(cx.pool, &totals, report).await?;
    let mut purchases: BTreeSet<PurchaseId> = by_purchase.keys().copied().collect();
    // Purchases charged before whose costs vanished from the data: their days are now 0.
    let earlier = sqlx::query_scalar!(
        "select distinct purchase_id from cost_charge where billing_period = $1",
        period.first_day()
    )
    .fetch_all(cx.pool)
    .await?;
    purchases.extend(earlier.into_iter().map(PurchaseId));
    let empty = BTreeMap::new();
    let markup_bps = cx.config.billing.cost_markup_bps;
    for id in purchases {
        let days = by_purchase.get(&id).unwrap_or(&empty);
        let charge = if options.dry_run {
            preview_purchase(cx.pool, id, period, days, markup_bps).await?
        } else {
            charge_purchase(
                cx.pool,
                id,
                period,
                days,
                markup_bps,
                source.kind(),
                report.run_id,
            )
            .await?
        };
        report.entries_posted += charge.entries;
        report.total_charged = report
            .total_charged
            .checked_add(charge.delta)
            .ok_or_else(|| CostImportError::Overflow("run total".into()))?;
        if charge.delta.0 != 0 || charge.aws_cost != Exact::ZERO || charge.charged.0 != 0 {
            report.purchases.push(charge);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(s: &str) -> Exact {
        Exact::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn exact_parses_aws_numbers() {
        assert_eq!(exact("0.0000004"), Exact(400_000_000_000));
        assert_eq!(exact("12"), Exact(12 * EXACT_ONE));
        assert_eq!(exact("-1.5"), Exact(-EXACT_ONE - EXACT_ONE / 2));
        assert_eq!(exact("+.5"), Exact(EXACT_ONE / 2));
        assert_eq!(exact("5."), Exact(5 * EXACT_ONE));
        assert_eq!(exact(" 0.1234567891 "), Exact(123_456_789_100_000_000));
        assert_eq!(exact("1.6E-9"), Exact(1_600_000_000));
        assert_eq!(exact("2e3"), Exact(2000 * EXACT_ONE));
        assert_eq!(exact("-4.0E+1"), Exact(-40 * EXACT_ONE));
        assert_eq!(exact("0.100000000000000000000000"), Exact(EXACT_ONE / 10));
        assert_eq!(exact("0.000000000000000001"), Exact(1));
        for bad in [
            "",
            " ",
            "-",
            ".",
            "1.2.3",
            "abc",
            "NaN",
            "inf",
            "1e",
            "1e+",
            "1,5",
            "0x10",
            "1e99999",
            "0.0000000000000000001",
            "1e-19",
            "99999999999999999999999",
        ] {
            assert_eq!(Exact::parse(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn exact_displays_plainly() {
        for s in [
            "0",
            "12",
            "-1.5",
            "0.0000004",
            "0.000000000000000001",
            "-0.25",
        ] {
            assert_eq!(exact(s).to_string(), s);
        }
        assert_eq!(exact("1.6E-9").to_string(), "0.0000000016");
        assert_eq!(
            exact("0.0000004").to_bigdecimal().to_string(),
            "4E-7".parse::<BigDecimal>().unwrap().to_string()
        );
    }

    #[test]
    fn charges_round_half_up_after_markup() {
        // 1 USD + 36 % = 1.36 USD.
        assert_eq!(exact("1").charge_micros(3600), Some(1_360_000));
        // 0.0000004 × 1.36 = 0.000000544 → 0.000001 (0.544 µ rounds up).
        assert_eq!(exact("0.0000004").charge_micros(3600), Some(1));
        // 0.00000036764705882 × 1.36 ≈ 0.4999999 µ → 0.
        assert_eq!(exact("0.00000036764705882").charge_micros(3600), Some(0));
        // Exactly half a micro-dollar rounds up; a credit of exactly half rounds towards +∞.
        assert_eq!(exact("0.0000005").charge_micros(0), Some(1));
        assert_eq!(exact("-0.0000005").charge_micros(0), Some(0));
        assert_eq!(exact("-0.0000015").charge_micros(0), Some(-1));
        assert_eq!(exact("-1").charge_micros(3600), Some(-1_360_000));
        // Sums of many tiny rows are exact before rounding: 10 000 × 0.0000000001 = 0.000001.
        let mut sum = Exact::ZERO;
        for _ in 0..10_000 {
            sum = sum.checked_add(exact("0.0000000001")).unwrap();
        }
        assert_eq!(sum.charge_micros(0), Some(1));
    }

    #[test]
    fn periods_parse_and_step() {
        let p: BillingPeriod = "2026-01".parse().unwrap();
        assert_eq!(p.to_string(), "2026-01");
        assert_eq!(p.previous().to_string(), "2025-12");
        assert_eq!(p.next().to_string(), "2026-02");
        assert_eq!(p.end(), NaiveDate::from_ymd_opt(2026, 2, 1).unwrap());
        for bad in [
            "2026-13", "2026-1", "26-01", "2026/01", "", "2026-00", "abcd-ef",
        ] {
            assert!(bad.parse::<BillingPeriod>().is_err(), "{bad}");
        }
    }

    #[test]
    fn daily_runs_cover_the_previous_month_for_15_days() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        let names = |v: Vec<BillingPeriod>| v.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            names(BillingPeriod::to_import(day(1))),
            ["2026-02", "2026-03"]
        );
        assert_eq!(
            names(BillingPeriod::to_import(day(15))),
            ["2026-02", "2026-03"]
        );
        assert_eq!(names(BillingPeriod::to_import(day(16))), ["2026-03"]);
        assert_eq!(
            names(BillingPeriod::to_import(
                NaiveDate::from_ymd_opt(2026, 1, 3).unwrap()
            )),
            ["2025-12", "2026-01"]
        );
    }

    #[test]
    fn the_import_says_what_configuration_it_lacks() {
        let config = |pairs: &[(&str, &str)]| {
            let mut vars: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            vars.insert("DATABASE_URL".into(), "postgres://u@localhost/db".into());
            Config::from_vars(&vars).unwrap()
        };
        let err = check_configured(&config(&[])).unwrap_err();
        assert!(err.to_string().contains("AWS_REGION"), "{err}");
        let err = check_configured(&config(&[("AWS_REGION", "us-east-1")])).unwrap_err();
        assert!(err.to_string().contains("BILLING_BUCKET_NAME"), "{err}");
        check_configured(&config(&[
            ("AWS_REGION", "us-east-1"),
            ("BILLING_BUCKET_NAME", "b"),
        ]))
        .unwrap();
        check_configured(&config(&[
            ("AWS_REGION", "us-east-1"),
            ("BILLING_SOURCE", "cost_explorer"),
        ]))
        .unwrap();
        let err = check_configured(&config(&[
            ("AWS_REGION", "us-east-1"),
            ("BILLING_SOURCE", "cost_explorer"),
            ("CUR_COST_COLUMN", "line_item_usage_amount"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("no Cost Explorer metric"), "{err}");
    }

    #[test]
    fn totals_group_by_tag_and_day() {
        let d1 = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        let d2 = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let mut t = CostTotals::default();
        t.add("a", d1, exact("0.1"), Some(("GB-Mo", exact("2"))))
            .unwrap();
        t.add("a", d1, exact("-0.03"), Some(("GB-Mo", exact("1"))))
            .unwrap();
        t.add("a", d2, exact("1"), Some(("Requests", exact("1000"))))
            .unwrap();
        t.add("b", d1, exact("5"), None).unwrap();
        assert_eq!(t.keys(), 3);
        let a = t.get("a").unwrap();
        assert_eq!(a.rows, 3);
        assert_eq!(a.days[&d1].cost, exact("0.07"));
        assert_eq!(a.days[&d1].usage, vec![("GB-Mo".to_owned(), exact("3"))]);
        assert!(t.add("b", d1, Exact(i128::MAX), None).is_err());
    }
}
