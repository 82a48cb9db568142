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
use crate::config::{AwsConfig, BillingSource, Config};
use crate::domain::Outcome;
use crate::domain::ids::PurchaseId;
use crate::domain::money::UsdMicros;
use crate::state::AppState;

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

// ------------------------------------------------------------------------------------------------
// Exact amounts
// ------------------------------------------------------------------------------------------------

/// An exact signed decimal with 18 fractional digits (units of 10⁻¹⁸), for AWS costs (CUR writes up to
/// about 10 places) and usage amounts. Sums are exact; rounding happens once, in [`Exact::charge_micros`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Exact(pub i128);

const EXACT_ONE: i128 = 1_000_000_000_000_000_000;

impl Exact {
    pub const ZERO: Self = Self(0);
    /// Fractional digits.
    pub const SCALE: i32 = 18;

    /// Parses a plain decimal (`12`, `-0.0000004`, `+.5`) or one with an exponent (`1.6E-9`), as AWS
    /// writes them, exactly. Surrounding ASCII whitespace is ignored. `None` for anything else, for
    /// more than 18 significant fractional digits, or out of range (|x| ≥ 1.7·10²⁰).
    pub fn parse(input: &[u8]) -> Option<Self> {
        let s = input.trim_ascii();
        let (negative, body) = match s.first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let mut mantissa: i128 = 0;
        let mut fraction_digits: i32 = 0;
        let mut seen_digit = false;
        let mut seen_dot = false;
        let mut i = 0;
        while i < body.len() {
            match body[i] {
                b @ b'0'..=b'9' => {
                    seen_digit = true;
                    mantissa = mantissa
                        .checked_mul(10)?
                        .checked_add(i128::from(b - b'0'))?;
                    if seen_dot {
                        fraction_digits += 1;
                    }
                }
                b'.' if !seen_dot => seen_dot = true,
                b'e' | b'E' => break,
                _ => return None,
            }
            i += 1;
        }
        if !seen_digit {
            return None;
        }
        let mut exponent: i32 = 0;
        if i < body.len() {
            let exp = &body[i + 1..];
            let (exp_negative, digits) = match exp.first()? {
                b'-' => (true, &exp[1..]),
                b'+' => (false, &exp[1..]),
                _ => (false, exp),
            };
            if digits.is_empty() || digits.len() > 4 || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let magnitude = digits
                .iter()
                .fold(0i32, |acc, d| acc * 10 + i32::from(d - b'0'));
            exponent = if exp_negative { -magnitude } else { magnitude };
        }
        // value = mantissa × 10^-(fraction_digits - exponent)
        let scale = fraction_digits - exponent;
        let units = if scale <= Self::SCALE {
            let shift = u32::try_from(Self::SCALE - scale).ok()?;
            mantissa.checked_mul(10i128.checked_pow(shift)?)?
        } else {
            let shift = u32::try_from(scale - Self::SCALE).ok()?;
            let divisor = 10i128.checked_pow(shift)?;
            if mantissa % divisor != 0 {
                return None;
            }
            mantissa / divisor
        };
        Some(Self(if negative { -units } else { units }))
    }

    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }

    /// What a customer is charged for this AWS cost: `cost × (1 + markup_bps / 10 000)` in micro-USD,
    /// rounded half up (towards +∞ at exactly half, also for net credits). `None` out of range.
    pub fn charge_micros(self, markup_bps: u32) -> Option<i64> {
        let numerator = self.0.checked_mul(10_000 + i128::from(markup_bps))?;
        // 10⁻¹⁸ units × basis points → micro-USD: divide by 10⁴ × 10¹².
        let denominator: i128 = 10_000 * 1_000_000_000_000;
        let rounded = numerator
            .checked_mul(2)?
            .checked_add(denominator)?
            .div_euclid(2 * denominator);
        i64::try_from(rounded).ok()
    }

    /// The same value as a `numeric`.
    pub fn to_bigdecimal(self) -> BigDecimal {
        // Display is a plain decimal, which BigDecimal always parses.
        BigDecimal::from_str(&self.to_string()).unwrap_or_default()
    }
}

impl fmt::Display for Exact {
    /// A plain decimal without trailing zeros: `0`, `-1.5`, `0.0000004`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let one = EXACT_ONE.unsigned_abs();
        let (int, frac) = (abs / one, abs % one);
        if frac == 0 {
            write!(f, "{sign}{int}")
        } else {
            let digits = format!("{frac:018}");
            write!(f, "{sign}{int}.{}", digits.trim_end_matches('0'))
        }
    }
}

impl Serialize for Exact {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

// ------------------------------------------------------------------------------------------------
// Billing periods
// ------------------------------------------------------------------------------------------------

/// A billing period: one calendar month (UTC), written `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BillingPeriod(NaiveDate);

/// A period that is not `YYYY-MM`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("billing period {0:?} is not YYYY-MM")]
pub struct PeriodError(String);

impl BillingPeriod {
    /// The period `day` falls in.
    pub fn containing(day: NaiveDate) -> Self {
        Self(day.with_day(1).unwrap_or(day))
    }

    pub fn first_day(self) -> NaiveDate {
        self.0
    }

    /// The first day of the next period (exclusive end).
    pub fn end(self) -> NaiveDate {
        self.0
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(NaiveDate::MAX)
    }

    pub fn next(self) -> Self {
        Self(self.end())
    }

    pub fn previous(self) -> Self {
        Self(
            self.0
                .checked_sub_months(chrono::Months::new(1))
                .unwrap_or(NaiveDate::MIN),
        )
    }

    /// Periods a daily run on `today` imports: the current one and, during the first 15 days of a
    /// month (AWS still restates the last one), the previous one first.
    pub fn to_import(today: NaiveDate) -> Vec<Self> {
        let current = Self::containing(today);
        if today.day() <= 15 {
            vec![current.previous(), current]
        } else {
            vec![current]
        }
    }
}

impl fmt::Display for BillingPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.0.year(), self.0.month())
    }
}

impl FromStr for BillingPeriod {
    type Err = PeriodError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PeriodError(s.to_owned());
        let (year, month) = s.trim().split_once('-').ok_or_else(err)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(err());
        }
        let year: i32 = year.parse().map_err(|_| err())?;
        let month: u32 = month.parse().map_err(|_| err())?;
        NaiveDate::from_ymd_opt(year, month, 1)
            .map(Self)
            .ok_or_else(err)
    }
}

// ------------------------------------------------------------------------------------------------
// Totals read from a source
// ------------------------------------------------------------------------------------------------

/// The cost of one tag on one usage day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayTotal {
    /// Exact AWS cost (the configured column), before markup.
    pub cost: Exact,
    pub rows: u64,
    /// Usage per pricing unit (`GB-Mo`, `Requests`, …), when the source has it.
    pub usage: Vec<(String, Exact)>,
}

/// Everything read for one tag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagTotals {
    pub rows: u64,
    pub days: BTreeMap<NaiveDate, DayTotal>,
}

/// Cost per (purchase tag, usage day). Memory grows with the number of keys, never with rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CostTotals {
    tags: HashMap<String, TagTotals>,
}

impl CostTotals {
    /// Adds one row. `Err` when a sum leaves the exact range.
    pub fn add(
        &mut self,
        tag: &str,
        day: NaiveDate,
        cost: Exact,
        usage: Option<(&str, Exact)>,
    ) -> Result<(), CostImportError> {
        let tag_totals = match self.tags.get_mut(tag) {
            Some(t) => t,
            None => self.tags.entry(tag.to_owned()).or_default(),
        };
        tag_totals.rows += 1;
        let day_total = tag_totals.days.entry(day).or_default();
        day_total.rows += 1;
        day_total.cost = day_total
            .cost
            .checked_add(cost)
            .ok_or_else(|| CostImportError::Overflow(format!("cost of {tag} on {day}")))?;
        if let Some((unit, amount)) = usage {
            match day_total.usage.iter_mut().find(|(u, _)| u == unit) {
                Some((_, sum)) => {
                    *sum = sum.checked_add(amount).ok_or_else(|| {
                        CostImportError::Overflow(format!("usage of {tag} on {day}"))
                    })?;
                }
                None => day_total.usage.push((unit.to_owned(), amount)),
            }
        }
        Ok(())
    }

    pub fn tags(&self) -> impl Iterator<Item = (&str, &TagTotals)> {
        self.tags.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn get(&self, tag: &str) -> Option<&TagTotals> {
        self.tags.get(tag)
    }

    /// Number of (tag, day) keys.
    pub fn keys(&self) -> usize {
        self.tags.values().map(|t| t.days.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }
}

/// What reading a period's files saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReadStats {
    /// CUR: data files; Cost Explorer: result pages.
    pub files: u32,
    /// Compressed bytes read (CUR).
    pub bytes: u64,
    pub rows_read: u64,
    /// Rows without the purchase tag (other AWS costs).
    pub untagged_rows: u64,
    /// Malformed rows.
    pub error_rows: u64,
    /// The first messages (file, line, what).
    pub errors: Vec<String>,
}

impl ReadStats {
    /// Counts one malformed row and keeps its message if there is room.
    pub fn row_error(&mut self, message: String) {
        self.error_rows += 1;
        self.note(message);
    }

    /// Keeps a message (without counting a row).
    pub fn note(&mut self, message: String) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(message);
        }
    }
}

/// Progress of a read (the CLI draws a bar; the job draws nothing).
pub trait Progress: Send + Sync {
    /// A data file starts; `size` is its compressed size when known.
    fn file_started(&self, _name: &str, _size: Option<u64>) {}
    /// More compressed bytes were read.
    fn advanced(&self, _bytes: u64) {}
    fn file_finished(&self) {}
}

/// Reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

// ------------------------------------------------------------------------------------------------
// Sources
// ------------------------------------------------------------------------------------------------

/// Where costs come from (`BILLING_SOURCE`).
pub enum CostSource {
    Cur(CurSource),
    CostExplorer(CostExplorerSource),
}

impl CostSource {
    /// Builds the configured source and its AWS client.
    pub async fn from_config(config: &Config) -> Result<Self, CostImportError> {
        let aws = config
            .aws
            .as_ref()
            .ok_or_else(|| CostImportError::NotConfigured("AWS_REGION is not set".into()))?;
        let sdk = sdk_config(aws).await;
        match config.billing.source {
            BillingSource::Cur => Ok(Self::Cur(CurSource::new(&sdk, aws, &config.billing)?)),
            BillingSource::CostExplorer => Ok(Self::CostExplorer(CostExplorerSource::new(
                &sdk,
                &config.billing,
            )?)),
        }
    }

    /// `cur` or `cost_explorer` (as stored in run records).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Cur(_) => "cur",
            Self::CostExplorer(_) => "cost_explorer",
        }
    }

    /// Reads a period's totals; `Ok(None)` when the period has no data yet (no manifest). Fills
    /// `stats` as it goes, also when it fails.
    pub async fn read(
        &self,
        period: BillingPeriod,
        today: NaiveDate,
        stats: &mut ReadStats,
        progress: Arc<dyn Progress>,
    ) -> Result<Option<CostTotals>, CostImportError> {
        match self {
            Self::Cur(cur) => cur.read_period(period, stats, progress).await,
            Self::CostExplorer(ce) => ce.read_period(period, today, stats).await.map(Some),
        }
    }
}

/// Whether the import can run with this configuration (`Err` says why not).
pub fn check_configured(config: &Config) -> Result<(), CostImportError> {
    if config.aws.is_none() {
        return Err(CostImportError::NotConfigured(
            "AWS_REGION is not set".into(),
        ));
    }
    match config.billing.source {
        BillingSource::Cur if config.billing.bucket.is_none() => Err(
            CostImportError::NotConfigured("BILLING_BUCKET_NAME is not set".into()),
        ),
        BillingSource::CostExplorer => {
            super::cost_explorer::metric_for_column(&config.billing.cur_cost_column).map(|_| ())
        }
        BillingSource::Cur => Ok(()),
    }
}

/// The AWS SDK configuration: region, optional endpoint (an emulator) and optional static credentials.
pub async fn sdk_config(aws: &AwsConfig) -> aws_config::SdkConfig {
    use secrecy::ExposeSecret;
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(aws.region.clone()))
        .timeout_config(crate::providers::s3::timeouts(aws));
    if let Some(url) = &aws.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(creds) = &aws.credentials {
        loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.expose_secret().to_owned(),
            creds
                .session_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            None,
            "vendor-server-config",
        ));
    }
    loader.load().await
}

// ------------------------------------------------------------------------------------------------
// Runs
// ------------------------------------------------------------------------------------------------

/// Who started an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Schedule,
    Cli,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::Cli => "cli",
        }
    }
}

/// How an import runs.
#[derive(Clone)]
pub struct ImportOptions {
    pub trigger: Trigger,
    /// Compute and report, charge nothing, record nothing.
    pub dry_run: bool,
    /// The day the import runs (Cost Explorer reads up to it).
    pub today: NaiveDate,
    pub progress: Arc<dyn Progress>,
}

impl ImportOptions {
    pub fn new(trigger: Trigger) -> Self {
        Self {
            trigger,
            dry_run: false,
            today: Utc::now().date_naive(),
            progress: Arc::new(NoProgress),
        }
    }
}

/// How a period's import ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    /// No manifest (yet) for the period, or one listing no files: nothing read, nothing changed.
    NoData,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::NoData => "no_data",
        }
    }
}

/// One purchase's result in a period's import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurchaseCharge {
    pub purchase_id: PurchaseId,
    /// Usage days with a cost now or charged before.
    pub days: usize,
    /// Current AWS cost of the period (before markup).
    pub aws_cost: Exact,
    /// Charged for the period in total after this import (micro-USD, debits positive).
    pub charged: UsdMicros,
    /// Charged by this import (negative = credited back).
    pub delta: UsdMicros,
    /// Ledger rows posted (0 in a dry run).
    pub entries: usize,
    pub balance_after: Option<UsdMicros>,
    /// (before, after) when this import changed the purchase's status.
    pub status_change: Option<(PurchaseStatus, PurchaseStatus)>,
}

/// The result of importing one billing period.
#[derive(Debug, Clone, Serialize)]
pub struct PeriodReport {
    pub period: String,
    pub source: &'static str,
    /// `None` in a dry run (nothing is recorded).
    pub run_id: Option<i64>,
    pub status: RunStatus,
    pub dry_run: bool,
    pub stats: ReadStats,
    pub rows_matched: u64,
    pub unknown_tag_rows: u64,
    /// Some unknown tags with their row counts.
    pub unknown_tags: BTreeMap<String, u64>,
    pub matched_cost: Exact,
    pub purchases: Vec<PurchaseCharge>,
    pub entries_posted: usize,
    /// Net charged by this import (micro-USD, debits positive).
    pub total_charged: UsdMicros,
    pub error: Option<String>,
    pub duration_ms: u64,
}

impl PeriodReport {
    fn new(period: BillingPeriod, source: &'static str, dry_run: bool) -> Self {
        Self {
            period: period.to_string(),
            source,
            run_id: None,
            status: RunStatus::Running,
            dry_run,
            stats: ReadStats::default(),
            rows_matched: 0,
            unknown_tag_rows: 0,
            unknown_tags: BTreeMap::new(),
            matched_cost: Exact::ZERO,
            purchases: Vec::new(),
            entries_posted: 0,
            total_charged: UsdMicros::ZERO,
            error: None,
            duration_ms: 0,
        }
    }

    /// Purchases whose charge changed in this import.
    pub fn purchases_charged(&self) -> usize {
        self.purchases.iter().filter(|p| p.delta.0 != 0).count()
    }
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
pub async fn run_once(state: &AppState) -> anyhow::Result<Outcome> {
    run_once_on(state, Utc::now().date_naive()).await
}

/// [`run_once`] as if today were `today`.
pub async fn run_once_on(state: &AppState, today: NaiveDate) -> anyhow::Result<Outcome> {
    let Some(lock) = ImportLock::try_acquire(&state.pool).await? else {
        tracing::info!("cost import skipped: another replica holds the lock");
        return Ok(Outcome::Idle);
    };
    let result = run_periods(state, today).await;
    lock.release().await;
    result
}

async fn run_periods(state: &AppState, today: NaiveDate) -> anyhow::Result<Outcome> {
    let source = CostSource::from_config(&state.config).await?;
    let options = ImportOptions {
        today,
        ..ImportOptions::new(Trigger::Schedule)
    };
    let mut posted = 0;
    let mut failures = Vec::new();
    for period in BillingPeriod::to_import(today) {
        let report = import_locked(state, &source, period, &options).await;
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
    state: &AppState,
    period: BillingPeriod,
    options: &ImportOptions,
) -> Result<PeriodReport, CostImportError> {
    let source = CostSource::from_config(&state.config).await?;
    if options.dry_run {
        return Ok(import_locked(state, &source, period, options).await);
    }
    let lock = ImportLock::try_acquire(&state.pool)
        .await?
        .ok_or(CostImportError::Busy)?;
    let report = import_locked(state, &source, period, options).await;
    lock.release().await;
    Ok(report)
}

/// Imports one period; the caller holds the lock (or it is a dry run). Never fails: failures are in the
/// report (and its run record).
async fn import_locked(
    state: &AppState,
    source: &CostSource,
    period: BillingPeriod,
    options: &ImportOptions,
) -> PeriodReport {
    use tracing::Instrument;
    let span = tracing::info_span!("cost_import", %period, source = source.kind(), dry_run = options.dry_run);
    import_period_report(state, source, period, options)
        .instrument(span)
        .await
}

async fn import_period_report(
    state: &AppState,
    source: &CostSource,
    period: BillingPeriod,
    options: &ImportOptions,
) -> PeriodReport {
    let started = Instant::now();
    let mut report = PeriodReport::new(period, source.kind(), options.dry_run);
    if !options.dry_run {
        match start_run(&state.pool, source.kind(), period, options.trigger).await {
            Ok(id) => report.run_id = Some(id),
            Err(e) => {
                report.status = RunStatus::Failed;
                report.error = Some(format!("cannot record the run: {e}"));
                return report;
            }
        }
    }
    let result = import_inner(state, source, period, options, &mut report).await;
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
        && let Err(e) = finish_run(&state.pool, run_id, &report).await
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
    state: &AppState,
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
    let by_purchase = resolve(&state.pool, &totals, report).await?;
    let mut purchases: BTreeSet<PurchaseId> = by_purchase.keys().copied().collect();
    // Purchases charged before whose costs vanished from the data: their days are now 0.
    let earlier = sqlx::query_scalar!(
        "select distinct purchase_id from cost_charge where billing_period = $1",
        period.first_day()
    )
    .fetch_all(&state.pool)
    .await?;
    purchases.extend(earlier.into_iter().map(PurchaseId));
    let empty = BTreeMap::new();
    let markup_bps = state.config.billing.cost_markup_bps;
    for id in purchases {
        let days = by_purchase.get(&id).unwrap_or(&empty);
        let charge = if options.dry_run {
            preview_purchase(&state.pool, id, period, days, markup_bps).await?
        } else {
            charge_purchase(
                &state.pool,
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

/// Maps tags to known purchases (merging tags that name the same purchase), counting the rest.
async fn resolve(
    pool: &PgPool,
    totals: &CostTotals,
    report: &mut PeriodReport,
) -> Result<HashMap<PurchaseId, BTreeMap<NaiveDate, DayTotal>>, CostImportError> {
    let parsed: Vec<(&str, Option<PurchaseId>)> = totals
        .tags()
        .map(|(tag, _)| (tag, tag.trim().parse::<PurchaseId>().ok()))
        .collect();
    let candidates: Vec<uuid::Uuid> = parsed
        .iter()
        .filter_map(|(_, id)| id.map(|i| i.0))
        .collect();
    let known: BTreeSet<uuid::Uuid> = sqlx::query_scalar!(
        "select purchase_id from purchase where purchase_id = any($1)",
        &candidates
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    let mut by_purchase: HashMap<PurchaseId, BTreeMap<NaiveDate, DayTotal>> = HashMap::new();
    let mut unknown: Vec<(&str, u64)> = Vec::new();
    for (tag, id) in parsed {
        let Some(tag_totals) = totals.get(tag) else {
            continue;
        };
        match id.filter(|id| known.contains(&id.0)) {
            Some(id) => {
                report.rows_matched += tag_totals.rows;
                let days = by_purchase.entry(id).or_default();
                for (day, total) in &tag_totals.days {
                    report.matched_cost = report
                        .matched_cost
                        .checked_add(total.cost)
                        .ok_or_else(|| CostImportError::Overflow("matched cost".into()))?;
                    let merged = days.entry(*day).or_default();
                    merged.rows += total.rows;
                    merged.cost = merged
                        .cost
                        .checked_add(total.cost)
                        .ok_or_else(|| CostImportError::Overflow(format!("cost of {id}")))?;
                    for (unit, amount) in &total.usage {
                        match merged.usage.iter_mut().find(|(u, _)| u == unit) {
                            Some((_, sum)) => {
                                *sum = sum.checked_add(*amount).ok_or_else(|| {
                                    CostImportError::Overflow(format!("usage of {id}"))
                                })?;
                            }
                            None => merged.usage.push((unit.clone(), *amount)),
                        }
                    }
                }
            }
            None => {
                report.unknown_tag_rows += tag_totals.rows;
                unknown.push((tag, tag_totals.rows));
            }
        }
    }
    unknown.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    report.unknown_tags = unknown
        .into_iter()
        .take(MAX_UNKNOWN_TAGS)
        .map(|(tag, rows)| (tag.to_owned(), rows))
        .collect();
    Ok(by_purchase)
}

/// What was charged before for one key.
#[derive(Debug, Clone, Copy, Default)]
struct Charged {
    aws_cost: Exact,
    micros: i64,
    revision: i32,
    exists: bool,
    /// The markup the day was charged with (`None`: charged before markups were recorded).
    markup_bps: Option<u32>,
}

async fn charged_so_far(
    conn: &mut sqlx::PgConnection,
    id: PurchaseId,
    period: BillingPeriod,
    lock: bool,
) -> Result<BTreeMap<NaiveDate, Charged>, CostImportError> {
    // `for update` only when charging; a dry run only reads.
    let rows = if lock {
        sqlx::query!(
            r#"select usage_date, aws_cost::text as "aws_cost!", charged_micros, revision, markup_bps
               from cost_charge where purchase_id = $1 and billing_period = $2
               for update"#,
            id.0,
            period.first_day()
        )
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|r| (r.usage_date, r.aws_cost, r.charged_micros, r.revision, r.markup_bps))
        .collect::<Vec<_>>()
    } else {
        sqlx::query!(
            r#"select usage_date, aws_cost::text as "aws_cost!", charged_micros, revision, markup_bps
               from cost_charge where purchase_id = $1 and billing_period = $2"#,
            id.0,
            period.first_day()
        )
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|r| (r.usage_date, r.aws_cost, r.charged_micros, r.revision, r.markup_bps))
        .collect::<Vec<_>>()
    };
    rows.into_iter()
        .map(|(day, cost, micros, revision, markup)| {
            let aws_cost = Exact::parse(cost.as_bytes()).ok_or_else(|| {
                CostImportError::Overflow(format!("stored cost {cost} of {id} on {day}"))
            })?;
            Ok((
                day,
                Charged {
                    aws_cost,
                    micros,
                    revision,
                    exists: true,
                    markup_bps: markup.and_then(|m| u32::try_from(m).ok()),
                },
            ))
        })
        .collect()
}

/// One key's new state.
struct Planned {
    day: NaiveDate,
    before: Charged,
    cost: Exact,
    micros: i64,
    /// The markup this day is charged with: its own once charged, else the configured one.
    markup_bps: u32,
    total: DayTotal,
}

fn plan(
    id: PurchaseId,
    days: &BTreeMap<NaiveDate, DayTotal>,
    before: &BTreeMap<NaiveDate, Charged>,
    markup_bps: u32,
) -> Result<Vec<Planned>, CostImportError> {
    let all: BTreeSet<NaiveDate> = days.keys().chain(before.keys()).copied().collect();
    all.into_iter()
        .map(|day| {
            let total = days.get(&day).cloned().unwrap_or_default();
            let before = before.get(&day).copied().unwrap_or_default();
            // A day keeps the markup it was first charged with: changing COST_MARKUP_PERCENT never
            // re-prices the past, restatements included.
            let markup_bps = before.markup_bps.unwrap_or(markup_bps);
            let micros = total
                .cost
                .charge_micros(markup_bps)
                .ok_or_else(|| CostImportError::Overflow(format!("charge of {id} on {day}")))?;
            Ok(Planned {
                day,
                before,
                cost: total.cost,
                micros,
                markup_bps,
                total,
            })
        })
        .collect()
}

fn summarize(id: PurchaseId, planned: &[Planned]) -> Result<PurchaseCharge, CostImportError> {
    let overflow = || CostImportError::Overflow(format!("totals of {id}"));
    let mut charge = PurchaseCharge {
        purchase_id: id,
        days: planned.len(),
        aws_cost: Exact::ZERO,
        charged: UsdMicros::ZERO,
        delta: UsdMicros::ZERO,
        entries: 0,
        balance_after: None,
        status_change: None,
    };
    for p in planned {
        charge.aws_cost = charge.aws_cost.checked_add(p.cost).ok_or_else(overflow)?;
        charge.charged = charge
            .charged
            .checked_add(UsdMicros(p.micros))
            .ok_or_else(overflow)?;
        let delta = p.micros.checked_sub(p.before.micros).ok_or_else(overflow)?;
        charge.delta = charge
            .delta
            .checked_add(UsdMicros(delta))
            .ok_or_else(overflow)?;
    }
    Ok(charge)
}

/// A dry run's view of one purchase: what charging would do.
async fn preview_purchase(
    pool: &PgPool,
    id: PurchaseId,
    period: BillingPeriod,
    days: &BTreeMap<NaiveDate, DayTotal>,
    markup_bps: u32,
) -> Result<PurchaseCharge, CostImportError> {
    let mut conn = pool.acquire().await?;
    let before = charged_so_far(&mut conn, id, period, false).await?;
    summarize(id, &plan(id, days, &before, markup_bps)?)
}

/// Charges one purchase's differences in one transaction.
async fn charge_purchase(
    pool: &PgPool,
    id: PurchaseId,
    period: BillingPeriod,
    days: &BTreeMap<NaiveDate, DayTotal>,
    markup_bps: u32,
    source: &'static str,
    run_id: Option<i64>,
) -> Result<PurchaseCharge, CostImportError> {
    let mut tx = pool.begin().await?;
    let before = charged_so_far(&mut tx, id, period, true).await?;
    let planned = plan(id, days, &before, markup_bps)?;
    let mut charge = summarize(id, &planned)?;
    let mut first_status: Option<PurchaseStatus> = None;
    let mut last_status: Option<PurchaseStatus> = None;
    for p in &planned {
        let delta = p.micros - p.before.micros;
        let revision = if delta != 0 {
            p.before.revision + 1
        } else {
            p.before.revision
        };
        if delta != 0 {
            let cost_change = p
                .cost
                .checked_sub(p.before.aws_cost)
                .ok_or_else(|| CostImportError::Overflow(format!("cost change of {id}")))?;
            let usage: serde_json::Map<String, serde_json::Value> = p
                .total
                .usage
                .iter()
                .map(|(unit, amount)| (unit.clone(), amount.to_string().into()))
                .collect();
            let entry = NewEntry {
                kind: EntryKind::Cost,
                amount: UsdMicros(-delta),
                usage_amount: Some(cost_change.to_bigdecimal()),
                usage_unit: Some(USAGE_UNIT.to_owned()),
                description: Some(if p.before.exists {
                    format!("AWS cost of {} restated ({source})", p.day)
                } else {
                    format!("AWS cost of {} ({source})", p.day)
                }),
                metadata: serde_json::json!({
                    "source": source,
                    "billing_period": period.to_string(),
                    "usage_date": p.day.to_string(),
                    "aws_cost": p.cost,
                    "aws_cost_before": p.before.aws_cost,
                    "charged_total": UsdMicros(p.micros),
                    "charged_before": UsdMicros(p.before.micros),
                    "markup_bps": p.markup_bps,
                    "rows": p.total.rows,
                    "usage": usage,
                    "run_id": run_id,
                }),
                occurred_at: p.day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
                reference: Some(format!("cost:{period}:{}:{revision}", p.day)),
            };
            let posted = ledger::post(&mut tx, id, &entry).await?;
            first_status.get_or_insert(posted.status_before);
            last_status = Some(posted.status_after);
            charge.balance_after = Some(posted.balance_after);
            if !posted.replayed {
                charge.entries += 1;
            }
        }
        if delta != 0 || !p.before.exists || p.cost != p.before.aws_cost {
            sqlx::query!(
                "insert into cost_charge (purchase_id, billing_period, usage_date, aws_cost, charged_micros,
                     revision, source, last_run_id, markup_bps)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 on conflict (purchase_id, billing_period, usage_date) do update
                 set aws_cost = excluded.aws_cost, charged_micros = excluded.charged_micros,
                     revision = excluded.revision, source = excluded.source, last_run_id = excluded.last_run_id,
                     markup_bps = excluded.markup_bps",
                id.0,
                period.first_day(),
                p.day,
                p.cost.to_bigdecimal(),
                p.micros,
                revision,
                source,
                run_id,
                i32::try_from(p.markup_bps).ok(),
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    if let (Some(before), Some(after)) = (first_status, last_status)
        && before != after
    {
        charge.status_change = Some((before, after));
    }
    Ok(charge)
}

async fn start_run(
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

async fn finish_run(pool: &PgPool, run_id: i64, report: &PeriodReport) -> Result<(), sqlx::Error> {
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
