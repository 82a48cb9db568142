//! Where costs come from: the totals a source reads (per purchase tag and day), read statistics,
//! progress reporting, and the two sources (CUR 2.0 files in S3, Cost Explorer).

use super::*;

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

// Sources

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
        let sdk = crate::aws::sdk_config(aws).await;
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
            crate::billing::cost_explorer::metric_for_column(&config.billing.cur_cost_column)
                .map(|_| ())
        }
        BillingSource::Cur => Ok(()),
    }
}
