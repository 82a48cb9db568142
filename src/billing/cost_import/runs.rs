//! Runs: who started an import, its options, its outcome and the per-period report.

use super::*;

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
    pub(super) fn new(period: BillingPeriod, source: &'static str, dry_run: bool) -> Self {
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
