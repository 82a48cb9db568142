//! The hourly S3 usage estimate (SPEC §9 "S3 spend is bounded between daily imports").
//!
//! The daily cost import lags AWS by a day or two; this job bounds a bucket's spend to hours:
//!
//! 1. **Access logs.** Each customer bucket logs its requests into `access-logs/<bucket>/` of
//!    `S3_ACCESS_LOG_BUCKET`. Every new log object is streamed line by line
//!    ([`access_log`]), summed per (bucket, hour) and added to `s3_usage_hour` in the same
//!    transaction that records its key in `s3_log_object`, so each object counts exactly once,
//!    whatever the replica count or crashes. Malformed lines and lines of buckets that are no
//!    purchase's are counted and skipped.
//! 2. **Storage.** CloudWatch's daily `BucketSizeBytes` (`AWS/S3`, `BucketName` + `StorageType`,
//!    the storage types summed) of each bucket, the last three days, into `s3_storage_day`.
//! 3. **Charge.** For each (purchase, UTC day) of the last three days the day's estimate is
//!    recomputed from those counts and the offer's price table ([`prices`]): exact to 10⁻¹⁸ USD,
//!    `COST_MARKUP_PERCENT` applied, rounded half up once to micro-USD for the day. Only the
//!    difference from what `s3_estimate_day` says the estimates charged for that day is posted, as a
//!    `usage_estimate` ledger entry (reference `s3est:<day>:<revision>`), so running again charges
//!    nothing more and rounding never accumulates over hours. A day the daily import has charged
//!    (`cost_charge` has it) is no longer estimated: the AWS figure replaced it, and the import
//!    posted that figure less what the estimates charged.
//! 4. **Limits.** `max_egress_gb_per_day` (today's egress) and `max_storage_gb` (the latest storage
//!    figure) hold the purchase suspended (cause `limit`) when passed, and lift the hold when back
//!    under (for egress: the next UTC day).
//! 5. **Log prefixes of deleted buckets** are removed once the purchase has been deleted for
//!    [`PURGE_AFTER`] (AWS delivers logs within hours; every log read is charged by then).
//!
//! One replica runs a pass at a time (a PostgreSQL advisory lock on a session that closes with it).

pub mod access_log;
pub mod prices;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use tokio::io::AsyncBufReadExt;
use uuid::Uuid;

use self::access_log::{HourUsage, LogTotals};
use self::prices::{DayUsage, S3Limits, S3Prices, days_in_month};
use super::ledger::{self, EntryKind, LockedPurchase, NewEntry};
use super::{BillingError, PurchaseStatus};
use crate::aws::{LOG_PREFIX_ROOT, log_prefix};
use crate::config::Config;
use crate::domain::ids::PurchaseId;
use crate::domain::money::UsdMicros;

/// `pg_try_advisory_lock` key of the job ("s3meterx").
const LOCK_KEY: i64 = 0x7333_6d65_7465_7278;
/// Days estimated back from today (logs arrive late; older days are the daily import's).
pub const DAYS_BACK: i64 = 2;
/// How long after its deletion a purchase's log prefix is removed.
pub const PURGE_AFTER: Duration = Duration::hours(48);
/// The storage types whose `BucketSizeBytes` are summed (what a customer can store with its key).
pub const STORAGE_TYPES: &[&str] = &[
    "StandardStorage",
    "IntelligentTieringFAStorage",
    "IntelligentTieringIAStorage",
    "IntelligentTieringAIAStorage",
    "StandardIAStorage",
    "OneZoneIAStorage",
    "ReducedRedundancyStorage",
    "GlacierInstantRetrievalStorage",
    "GlacierStorage",
    "DeepArchiveStorage",
];
/// GetMetricData takes at most 500 queries per call.
const QUERIES_PER_CALL: usize = 500;
/// The ledger `usage_unit` of estimate entries: their `usage_amount` is the change of the day's
/// estimated AWS cost (before markup) in USD.
pub const USAGE_UNIT: &str = "aws_cost_estimate_usd";

/// Metering failures.
#[derive(Debug, thiserror::Error)]
pub enum MeteringError {
    #[error("S3 usage estimate is not configured: {0}")]
    NotConfigured(String),
    #[error("S3: {0}")]
    S3(String),
    #[error("CloudWatch: {0}")]
    CloudWatch(String),
    #[error("reading {key}: {detail}")]
    Read { key: String, detail: String },
    #[error("amount out of range: {0}")]
    Overflow(String),
    #[error(transparent)]
    Billing(#[from] BillingError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl MeteringError {
    /// An S3 call's failure (`call`: what and where) with the SDK's whole cause chain.
    fn s3(call: std::fmt::Arguments<'_>, e: impl std::error::Error) -> Self {
        Self::S3(format!("{call}: {}", DisplayErrorContext(e)))
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct MeteringReport {
    /// Another replica was running a pass: this one did nothing.
    pub busy: bool,
    pub log_objects: u64,
    pub log_bytes: u64,
    pub lines: u64,
    pub malformed_lines: u64,
    pub unknown_bucket_lines: u64,
    pub storage_points: u64,
    /// (purchase, day) estimates that changed.
    pub days_charged: u64,
    pub entries_posted: u64,
    /// Net of this pass's entries, positive = debited.
    pub charged: UsdMicros,
    pub limit_suspended: u64,
    pub limit_lifted: u64,
    pub log_prefixes_purged: u64,
}

/// The job's AWS clients and settings.
#[derive(Clone)]
pub struct Metering {
    s3: aws_sdk_s3::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
    log_bucket: Option<String>,
    markup_bps: u32,
}

impl Metering {
    /// Clients for `config.aws` (same region, endpoint, credentials and deadlines as the provider).
    pub async fn from_config(config: &Config) -> Result<Self, MeteringError> {
        let aws = config
            .aws
            .as_ref()
            .ok_or_else(|| MeteringError::NotConfigured("AWS_REGION is not set".into()))?;
        let sdk = crate::aws::sdk_config(aws).await;
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(&sdk)
                .force_path_style(aws.endpoint_url.is_some())
                .build(),
        );
        let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk);
        Ok(Self::with_clients(
            s3,
            cloudwatch,
            aws.access_log_bucket.clone(),
            config.billing.cost_markup_bps,
        ))
    }

    /// From ready clients (tests point them at an emulator).
    pub fn with_clients(
        s3: aws_sdk_s3::Client,
        cloudwatch: aws_sdk_cloudwatch::Client,
        log_bucket: Option<String>,
        markup_bps: u32,
    ) -> Self {
        Self {
            s3,
            cloudwatch,
            log_bucket,
            markup_bps,
        }
    }

    /// One pass at `now`: new logs, storage, charges, limits, purges.
    pub async fn run_once(
        &self,
        pool: &PgPool,
        now: DateTime<Utc>,
    ) -> Result<MeteringReport, MeteringError> {
        let mut report = MeteringReport::default();
        let mut lock = pool.acquire().await?;
        let locked: Option<bool> = sqlx::query_scalar!("select pg_try_advisory_lock($1)", LOCK_KEY)
            .fetch_one(&mut *lock)
            .await?;
        if locked != Some(true) {
            report.busy = true;
            return Ok(report);
        }
        // The lock ends with the session, whatever happens to this pass.
        lock.close_on_drop();
        if let Some(log_bucket) = &self.log_bucket {
            self.read_logs(pool, log_bucket, &mut report).await?;
        }
        let today = now.date_naive();
        let first_day = today - Duration::days(DAYS_BACK);
        self.read_storage(pool, first_day, now, &mut report).await?;
        charge(pool, first_day, today, self.markup_bps, &mut report).await?;
        if let Some(log_bucket) = &self.log_bucket {
            self.purge_deleted(pool, log_bucket, now, &mut report)
                .await?;
        }
        // Released now, not when the closing session is reaped in the background: a pass that
        // follows at once (the CLI, a test, another replica) must not find it still held.
        sqlx::query("select pg_advisory_unlock($1)")
            .bind(LOCK_KEY)
            .execute(&mut *lock)
            .await?;
        drop(lock);
        Ok(report)
    }

    /// Reads every log object not read before.
    async fn read_logs(
        &self,
        pool: &PgPool,
        log_bucket: &str,
        report: &mut MeteringReport,
    ) -> Result<(), MeteringError> {
        for prefix in self.bucket_prefixes(log_bucket).await? {
            let Some(bucket) = prefix
                .strip_prefix(LOG_PREFIX_ROOT)
                .and_then(|b| b.strip_suffix('/'))
            else {
                continue;
            };
            // Keys are `<prefix>YYYY-mm-DD-HH-MM-SS-<unique>` (delivery time): list from a day
            // before the newest one read, and skip those already read.
            let newest = sqlx::query_scalar!(
                "select max(log_key) from s3_log_object where bucket = $1",
                bucket
            )
            .fetch_one(pool)
            .await?;
            let start_after = newest.as_deref().and_then(|key| {
                let date = key.strip_prefix(prefix.as_str())?.get(..10)?;
                let day = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
                Some(format!(
                    "{prefix}{}",
                    (day - Duration::days(1)).format("%Y-%m-%d")
                ))
            });
            let read: HashSet<String> = sqlx::query_scalar!(
                "select log_key from s3_log_object where bucket = $1 and log_key > $2",
                bucket,
                start_after.clone().unwrap_or_default()
            )
            .fetch_all(pool)
            .await?
            .into_iter()
            .collect();
            let mut pages = self
                .list(log_bucket, &prefix)
                .set_start_after(start_after)
                .into_paginator()
                .send();
            while let Some(listed) = pages.next().await {
                let listed = listed.map_err(|e| {
                    MeteringError::s3(format_args!("ListObjectsV2 {log_bucket}/{prefix}"), e)
                })?;
                for object in listed.contents() {
                    let Some(key) = object.key() else { continue };
                    if read.contains(key) {
                        continue;
                    }
                    self.read_object(pool, log_bucket, bucket, key, report)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// ListObjectsV2 of the log bucket under `prefix`.
    fn list(
        &self,
        log_bucket: &str,
        prefix: &str,
    ) -> aws_sdk_s3::operation::list_objects_v2::builders::ListObjectsV2FluentBuilder {
        self.s3.list_objects_v2().bucket(log_bucket).prefix(prefix)
    }

    /// `access-logs/<bucket>/` prefixes present in the log bucket.
    async fn bucket_prefixes(&self, log_bucket: &str) -> Result<Vec<String>, MeteringError> {
        let mut out = Vec::new();
        let mut pages = self
            .list(log_bucket, LOG_PREFIX_ROOT)
            .delimiter("/")
            .into_paginator()
            .send();
        while let Some(listed) = pages.next().await {
            let listed = listed
                .map_err(|e| MeteringError::s3(format_args!("ListObjectsV2 {log_bucket}"), e))?;
            out.extend(
                listed
                    .common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_owned)),
            );
        }
        Ok(out)
    }

    /// Streams one log object and adds its counts, exactly once.
    async fn read_object(
        &self,
        pool: &PgPool,
        log_bucket: &str,
        bucket: &str,
        key: &str,
        report: &mut MeteringReport,
    ) -> Result<(), MeteringError> {
        let object = match self
            .s3
            .get_object()
            .bucket(log_bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => o,
            // Removed meanwhile (a purge): nothing to count.
            Err(e) if e.code() == Some("NoSuchKey") => return Ok(()),
            Err(e) => {
                return Err(MeteringError::s3(
                    format_args!("GetObject {log_bucket}/{key}"),
                    e,
                ));
            }
        };
        let reader = tokio::io::BufReader::new(object.body.into_async_read());
        let (totals, bytes) = sum_log(reader).await.map_err(|e| MeteringError::Read {
            key: key.to_owned(),
            detail: e.to_string(),
        })?;
        let unknown = record_object(pool, bucket, key, bytes, &totals).await?;
        let Some(unknown) = unknown else {
            // Another pass recorded it first.
            return Ok(());
        };
        if let Some(first) = &totals.first_malformed {
            tracing::warn!(key, malformed = totals.malformed, first = %first, "malformed access log lines skipped");
        }
        report.log_objects += 1;
        report.log_bytes += bytes;
        report.lines += totals.lines;
        report.malformed_lines += totals.malformed;
        report.unknown_bucket_lines += unknown;
        Ok(())
    }

    /// CloudWatch's daily `BucketSizeBytes` of every live S3 purchase since `first_day`.
    async fn read_storage(
        &self,
        pool: &PgPool,
        first_day: NaiveDate,
        now: DateTime<Utc>,
        report: &mut MeteringReport,
    ) -> Result<(), MeteringError> {
        use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
        let buckets = sqlx::query!(
            r#"select p.purchase_id, p.resource_state ->> 'bucket' as "bucket!"
               from purchase p join offer o using (offer_id)
               where o.provider = 's3' and p.resource_status in ('ready', 'suspended')
                 and p.resource_state ? 'bucket'
               order by p.purchase_id"#
        )
        .fetch_all(pool)
        .await?;
        let queries: Vec<(Uuid, MetricDataQuery)> = buckets
            .iter()
            .flat_map(|b| STORAGE_TYPES.iter().map(move |t| (b, *t)))
            .enumerate()
            .map(|(i, (b, storage_type))| {
                let dimension =
                    |name: &str, value: &str| Dimension::builder().name(name).value(value).build();
                let metric = Metric::builder()
                    .namespace("AWS/S3")
                    .metric_name("BucketSizeBytes")
                    .dimensions(dimension("BucketName", &b.bucket))
                    .dimensions(dimension("StorageType", storage_type))
                    .build();
                let query = MetricDataQuery::builder()
                    .id(format!("q{i}"))
                    .metric_stat(
                        MetricStat::builder()
                            .metric(metric)
                            .period(86_400)
                            .stat("Average")
                            .build(),
                    )
                    .return_data(true)
                    .build();
                (b.purchase_id, query)
            })
            .collect();
        let start = first_day.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        let (Some(start), end) = (start, now + Duration::hours(1)) else {
            return Ok(());
        };
        let mut sizes: BTreeMap<(Uuid, NaiveDate), u64> = BTreeMap::new();
        for chunk in queries.chunks(QUERIES_PER_CALL) {
            let owners: HashMap<String, Uuid> = chunk
                .iter()
                .filter_map(|(id, q)| q.id().map(|qid| (qid.to_owned(), *id)))
                .collect();
            let mut pages = self
                .cloudwatch
                .get_metric_data()
                .set_metric_data_queries(Some(chunk.iter().map(|(_, q)| q.clone()).collect()))
                .start_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
                    start.timestamp(),
                ))
                .end_time(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
                    end.timestamp(),
                ))
                .into_paginator()
                .send();
            while let Some(answer) = pages.next().await {
                let answer = answer.map_err(|e| {
                    MeteringError::CloudWatch(format!("GetMetricData: {}", DisplayErrorContext(&e)))
                })?;
                for result in answer.metric_data_results() {
                    let Some(owner) = result.id().and_then(|id| owners.get(id)) else {
                        continue;
                    };
                    for (at, value) in result.timestamps().iter().zip(result.values()) {
                        let Some(day) =
                            DateTime::from_timestamp(at.secs(), 0).map(|t| t.date_naive())
                        else {
                            continue;
                        };
                        if day < first_day || !value.is_finite() || *value < 0.0 {
                            continue;
                        }
                        // BucketSizeBytes is a whole number of bytes.
                        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                        let bytes = value.round() as u64;
                        let sum = sizes.entry((*owner, day)).or_default();
                        *sum = sum.saturating_add(bytes);
                    }
                }
            }
        }
        for ((id, day), bytes) in sizes {
            let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
            let changed = sqlx::query!(
                "insert into s3_storage_day (purchase_id, day, bytes) values ($1, $2, $3)
                 on conflict (purchase_id, day) do update set bytes = excluded.bytes, read_at = now()
                 where s3_storage_day.bytes <> excluded.bytes",
                id,
                day,
                bytes
            )
            .execute(pool)
            .await?
            .rows_affected();
            report.storage_points += changed;
        }
        Ok(())
    }

    /// Removes the log prefix of purchases deleted at least [`PURGE_AFTER`] ago.
    async fn purge_deleted(
        &self,
        pool: &PgPool,
        log_bucket: &str,
        now: DateTime<Utc>,
        report: &mut MeteringReport,
    ) -> Result<(), MeteringError> {
        let rows = sqlx::query!(
            r#"select p.purchase_id, p.resource_state ->> 'bucket' as "bucket!"
               from purchase p join offer o using (offer_id)
               left join s3_bucket_setup s using (purchase_id)
               where o.provider = 's3' and p.status = 'deleted' and p.resource_status = 'deleted'
                 and p.resource_state ? 'bucket' and p.status_changed_at <= $1
                 and s.logs_purged_at is null
               limit 100"#,
            now - PURGE_AFTER
        )
        .fetch_all(pool)
        .await?;
        for row in rows {
            let prefix = log_prefix(&row.bucket);
            loop {
                let listed = self.list(log_bucket, &prefix).send().await.map_err(|e| {
                    MeteringError::s3(format_args!("ListObjectsV2 {log_bucket}/{prefix}"), e)
                })?;
                let keys: Vec<_> = listed
                    .contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .filter_map(|k| {
                        aws_sdk_s3::types::ObjectIdentifier::builder()
                            .key(k)
                            .build()
                            .ok()
                    })
                    .collect();
                if keys.is_empty() {
                    break;
                }
                let delete = aws_sdk_s3::types::Delete::builder()
                    .set_objects(Some(keys))
                    .quiet(true)
                    .build()
                    .map_err(|e| MeteringError::S3(e.to_string()))?;
                let deleted = self
                    .s3
                    .delete_objects()
                    .bucket(log_bucket)
                    .delete(delete)
                    .send()
                    .await
                    .map_err(|e| {
                        MeteringError::s3(format_args!("DeleteObjects {log_bucket}/{prefix}"), e)
                    })?;
                if let Some(failed) = deleted.errors().first() {
                    return Err(MeteringError::S3(format!(
                        "DeleteObjects {log_bucket}/{prefix}: {}",
                        failed.code().unwrap_or_default()
                    )));
                }
            }
            sqlx::query!(
                "insert into s3_bucket_setup (purchase_id, log_bucket, logs_purged_at) values ($1, $2, now())
                 on conflict (purchase_id) do update set logs_purged_at = now()",
                row.purchase_id,
                log_bucket
            )
            .execute(pool)
            .await?;
            tracing::info!(purchase_id = %PurchaseId(row.purchase_id), prefix, "access logs of a deleted bucket removed");
            report.log_prefixes_purged += 1;
        }
        Ok(())
    }
}

/// Streams a log object line by line into its totals (memory: one line and the (bucket, hour)
/// counters). Returns the totals and the bytes read. Lines that are not UTF-8 count as malformed.
pub async fn sum_log<R: tokio::io::AsyncBufRead + Unpin>(
    mut reader: R,
) -> std::io::Result<(LogTotals, u64)> {
    let mut totals = LogTotals::default();
    let mut buf = Vec::with_capacity(4096);
    let mut bytes: u64 = 0;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf).await?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        match std::str::from_utf8(&buf) {
            Ok(line) => totals.add_line(line),
            Err(_) => {
                totals.lines += 1;
                totals.malformed += 1;
            }
        }
    }
    Ok((totals, bytes))
}

/// Records a read log object and adds its counts, in one transaction. `None` when the object was
/// already recorded (nothing added); else the number of lines of buckets that are no purchase's.
async fn record_object(
    pool: &PgPool,
    bucket: &str,
    key: &str,
    bytes: u64,
    totals: &LogTotals,
) -> Result<Option<u64>, MeteringError> {
    let mut tx = pool.begin().await?;
    let names: Vec<String> = totals.usage.keys().cloned().collect();
    let owners: HashMap<String, Uuid> = sqlx::query!(
        r#"select p.purchase_id, p.resource_state ->> 'bucket' as "bucket!"
           from purchase p join offer o using (offer_id)
           where o.provider = 's3' and p.resource_state ->> 'bucket' = any($1)"#,
        &names
    )
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .map(|r| (r.bucket, r.purchase_id))
    .collect();
    let mut unknown: u64 = 0;
    let (mut ids, mut hours, mut egress, mut gets, mut puts) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (name, by_hour) in &totals.usage {
        let Some(id) = owners.get(name) else {
            unknown += by_hour.values().map(|u| u.lines).sum::<u64>();
            continue;
        };
        for (
            hour,
            HourUsage {
                egress_bytes,
                get_requests,
                put_requests,
                ..
            },
        ) in by_hour
        {
            let Some(at) = access_log::hour_timestamp(*hour) else {
                continue;
            };
            let big = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            ids.push(*id);
            hours.push(at);
            egress.push(big(*egress_bytes));
            gets.push(big(*get_requests));
            puts.push(big(*put_requests));
        }
    }
    let inserted = sqlx::query!(
        "insert into s3_log_object (log_key, bucket, lines, malformed_lines, unknown_lines, bytes)
         values ($1, $2, $3, $4, $5, $6) on conflict (log_key) do nothing",
        key,
        bucket,
        i64::try_from(totals.lines).unwrap_or(i64::MAX),
        i64::try_from(totals.malformed).unwrap_or(i64::MAX),
        i64::try_from(unknown).unwrap_or(i64::MAX),
        i64::try_from(bytes).unwrap_or(i64::MAX),
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(None);
    }
    sqlx::query!(
        "insert into s3_usage_hour (purchase_id, hour, egress_bytes, get_requests, put_requests)
         select * from unnest($1::uuid[], $2::timestamptz[], $3::bigint[], $4::bigint[], $5::bigint[])
         on conflict (purchase_id, hour) do update
         set egress_bytes = s3_usage_hour.egress_bytes + excluded.egress_bytes,
             get_requests = s3_usage_hour.get_requests + excluded.get_requests,
             put_requests = s3_usage_hour.put_requests + excluded.put_requests",
        &ids,
        &hours,
        &egress,
        &gets,
        &puts
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(unknown))
}

/// The (purchase, day) keys with usage or storage since `first_day`, by purchase.
async fn usage_days(
    pool: &PgPool,
    first_day: NaiveDate,
) -> Result<BTreeMap<Uuid, BTreeSet<NaiveDate>>, MeteringError> {
    let rows = sqlx::query!(
        r#"select purchase_id as "purchase_id!", day as "day!" from (
             select purchase_id, (hour at time zone 'UTC')::date as day from s3_usage_hour
             where hour >= ($1::date)::timestamp at time zone 'UTC'
             union
             select purchase_id, day from s3_storage_day where day >= $1
             union
             select purchase_id, usage_date from s3_estimate_day where usage_date >= $1
           ) d"#,
        first_day
    )
    .fetch_all(pool)
    .await?;
    let mut out: BTreeMap<Uuid, BTreeSet<NaiveDate>> = BTreeMap::new();
    for r in rows {
        out.entry(r.purchase_id).or_default().insert(r.day);
    }
    Ok(out)
}

/// One day's usage of a purchase.
async fn day_usage(
    conn: &mut PgConnection,
    id: Uuid,
    day: NaiveDate,
) -> Result<DayUsage, MeteringError> {
    let r = sqlx::query!(
        r#"select coalesce(sum(egress_bytes), 0)::bigint as "egress!",
                  coalesce(sum(get_requests), 0)::bigint as "gets!",
                  coalesce(sum(put_requests), 0)::bigint as "puts!",
                  (select bytes from s3_storage_day where purchase_id = $1 and day = $2) as storage
           from s3_usage_hour
           where purchase_id = $1 and hour >= ($2::date)::timestamp at time zone 'UTC'
             and hour < ($2::date + 1)::timestamp at time zone 'UTC'"#,
        id,
        day
    )
    .fetch_one(&mut *conn)
    .await?;
    let u = |v: i64| u64::try_from(v).unwrap_or(0);
    Ok(DayUsage {
        egress_bytes: u(r.egress),
        get_requests: u(r.gets),
        put_requests: u(r.puts),
        storage_bytes: r.storage.map(u),
    })
}

/// Posts each (purchase, day)'s estimate change and applies the limits, one transaction per purchase.
async fn charge(
    pool: &PgPool,
    first_day: NaiveDate,
    today: NaiveDate,
    markup_bps: u32,
    report: &mut MeteringReport,
) -> Result<(), MeteringError> {
    for (id, days) in usage_days(pool, first_day).await? {
        let mut tx = pool.begin().await?;
        let locked = ledger::lock(&mut tx, PurchaseId(id)).await?;
        let settings = sqlx::query_scalar!(
            "select o.settings from offer o join purchase p using (offer_id) where p.purchase_id = $1",
            id
        )
        .fetch_one(&mut *tx)
        .await?;
        let prices = match S3Prices::from_settings(&settings) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(purchase_id = %locked.id, error = %e, "no S3 estimate: the offer's price table is invalid");
                continue;
            }
        };
        let limits = S3Limits::from_settings(&settings).unwrap_or_else(|e| {
            tracing::error!(purchase_id = %locked.id, error = %e, "S3 limits ignored: invalid");
            S3Limits::default()
        });
        for day in days.into_iter().filter(|d| *d <= today) {
            // The AWS figure replaced the estimate once the daily import charged the day.
            let imported = sqlx::query_scalar!(
                "select 1 as one from cost_charge where purchase_id = $1 and usage_date = $2 limit 1",
                id,
                day
            )
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
            if imported {
                continue;
            }
            let usage = day_usage(&mut tx, id, day).await?;
            let overflow =
                || MeteringError::Overflow(format!("estimate of {} on {day}", locked.id));
            let cost = prices
                .day_cost(&usage, days_in_month(day))
                .ok_or_else(overflow)?;
            let micros = cost.charge_micros(markup_bps).ok_or_else(overflow)?;
            let before = sqlx::query!(
                "select charged_micros, revision from s3_estimate_day
                 where purchase_id = $1 and usage_date = $2 for update",
                id,
                day
            )
            .fetch_optional(&mut *tx)
            .await?;
            let (charged, revision) = before.map_or((0, 0), |b| (b.charged_micros, b.revision));
            let delta = micros.checked_sub(charged).ok_or_else(overflow)?;
            if delta == 0 {
                continue;
            }
            let revision = revision + 1;
            let entry = NewEntry {
                kind: EntryKind::UsageEstimate,
                amount: UsdMicros(-delta),
                usage_amount: Some(cost.to_bigdecimal()),
                usage_unit: Some(USAGE_UNIT.to_owned()),
                description: Some(format!(
                    "S3 usage estimate for {day} (replaced by the daily AWS figure)"
                )),
                metadata: serde_json::json!({
                    "usage_date": day.to_string(),
                    "egress_bytes": usage.egress_bytes,
                    "get_requests": usage.get_requests,
                    "put_requests": usage.put_requests,
                    "storage_bytes": usage.storage_bytes,
                    "estimated_aws_cost": cost,
                    "charged_total": UsdMicros(micros),
                    "charged_before": UsdMicros(charged),
                    "markup_bps": markup_bps,
                }),
                occurred_at: day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
                reference: Some(format!("s3est:{day}:{revision}")),
            };
            ledger::post(&mut tx, locked.id, &entry).await?;
            sqlx::query!(
                "insert into s3_estimate_day (purchase_id, usage_date, charged_micros, revision)
                 values ($1, $2, $3, $4)
                 on conflict (purchase_id, usage_date) do update
                 set charged_micros = excluded.charged_micros, revision = excluded.revision, updated_at = now()",
                id,
                day,
                micros,
                revision
            )
            .execute(&mut *tx)
            .await?;
            report.days_charged += 1;
            report.entries_posted += 1;
            report.charged = report
                .charged
                .checked_add(UsdMicros(delta))
                .ok_or_else(overflow)?;
        }
        apply_limits(&mut tx, locked.id, today, &limits, report).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// What passed a limit, if anything.
fn over_limit(limits: &S3Limits, egress_today: u64, storage: Option<u64>) -> Option<&'static str> {
    if limits
        .egress_bytes_per_day
        .is_some_and(|max| egress_today > max)
    {
        Some("egress")
    } else if limits
        .storage_bytes
        .zip(storage)
        .is_some_and(|(max, bytes)| bytes > max)
    {
        Some("storage")
    } else {
        None
    }
}

/// Holds the purchase suspended while a limit is passed; lifts the hold when back under.
async fn apply_limits(
    conn: &mut PgConnection,
    id: PurchaseId,
    today: NaiveDate,
    limits: &S3Limits,
    report: &mut MeteringReport,
) -> Result<(), MeteringError> {
    let r = sqlx::query!(
        r#"select
             (select coalesce(sum(egress_bytes), 0)::bigint from s3_usage_hour
              where purchase_id = $1 and hour >= ($2::date)::timestamp at time zone 'UTC') as "egress!",
             (select bytes from s3_storage_day where purchase_id = $1 order by day desc limit 1) as storage"#,
        id.0,
        today
    )
    .fetch_one(&mut *conn)
    .await?;
    let over = over_limit(
        limits,
        u64::try_from(r.egress).unwrap_or(0),
        r.storage.and_then(|s| u64::try_from(s).ok()),
    );
    let locked = ledger::lock(conn, id).await?;
    match over {
        Some(reason) if !locked.limit_held && locked.status.follows_balance() => {
            hold(conn, &locked, reason).await?;
            report.limit_suspended += 1;
        }
        None if locked.limit_held => {
            lift(conn, &locked).await?;
            report.limit_lifted += 1;
        }
        _ => {}
    }
    Ok(())
}

async fn hold(
    conn: &mut PgConnection,
    locked: &LockedPurchase,
    reason: &'static str,
) -> Result<(), MeteringError> {
    sqlx::query!(
        "update purchase set limit_hold_at = now(), limit_hold_reason = $2 where purchase_id = $1",
        locked.id.0,
        reason
    )
    .execute(&mut *conn)
    .await?;
    ledger::set_locked_status(conn, locked, PurchaseStatus::Suspended, "limit").await?;
    tracing::warn!(purchase_id = %locked.id, reason, "S3 purchase suspended: offer limit passed");
    Ok(())
}

async fn lift(conn: &mut PgConnection, locked: &LockedPurchase) -> Result<(), MeteringError> {
    sqlx::query!(
        "update purchase set limit_hold_at = null, limit_hold_reason = null where purchase_id = $1",
        locked.id.0
    )
    .execute(&mut *conn)
    .await?;
    if locked.status.follows_balance() && !locked.held {
        let after = locked
            .triggers
            .map_or(PurchaseStatus::Active, |t| t.status_for(locked.balance));
        ledger::set_locked_status(conn, locked, after, "limit_lifted").await?;
    }
    tracing::info!(purchase_id = %locked.id, "S3 limit hold lifted");
    Ok(())
}

/// What the customer and the console see of a purchase's estimates: per day, the estimate charged
/// and (once imported) the AWS figure that replaced it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct EstimateDay {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// What the hourly estimates charged for the day (micro-USD as a USD decimal).
    pub estimated_usd: UsdMicros,
    /// What the daily import charged for the day in total (AWS cost plus markup), once imported.
    pub imported_usd: Option<UsdMicros>,
    pub egress_bytes: i64,
    pub get_requests: i64,
    pub put_requests: i64,
    pub storage_bytes: Option<i64>,
}

/// A purchase's S3 usage view.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct S3UsageView {
    /// Today's estimated spend (UTC day so far).
    pub today_estimated_usd: UsdMicros,
    /// Newest first, the last `days` days that have an estimate or an imported figure.
    pub days: Vec<EstimateDay>,
    /// `egress` or `storage` when an offer limit holds the purchase suspended.
    pub limit: Option<String>,
    /// What the customer should do about the limit, in words.
    pub limit_message: Option<String>,
}

/// The usage view of `id` over the last `days` days up to `today`.
pub async fn usage_view(
    pool: &PgPool,
    id: PurchaseId,
    today: NaiveDate,
    days: i64,
) -> Result<S3UsageView, sqlx::Error> {
    let first = today - Duration::days(days.max(1) - 1);
    let rows = sqlx::query!(
        r#"with d as (
             select usage_date as day from s3_estimate_day where purchase_id = $1 and usage_date >= $2
             union select usage_date from cost_charge where purchase_id = $1 and usage_date >= $2
             union select (hour at time zone 'UTC')::date from s3_usage_hour
                   where purchase_id = $1 and hour >= ($2::date)::timestamp at time zone 'UTC'
           )
           select d.day as "day!",
                  coalesce((select charged_micros from s3_estimate_day e where e.purchase_id = $1 and e.usage_date = d.day), 0)::bigint as "estimated!",
                  (select sum(charged_micros)::bigint from cost_charge c where c.purchase_id = $1 and c.usage_date = d.day) as imported_part,
                  (select 1 from cost_charge c where c.purchase_id = $1 and c.usage_date = d.day limit 1) as imported_flag,
                  coalesce((select sum(egress_bytes) from s3_usage_hour h where h.purchase_id = $1
                     and h.hour >= d.day::timestamp at time zone 'UTC' and h.hour < (d.day + 1)::timestamp at time zone 'UTC'), 0)::bigint as "egress!",
                  coalesce((select sum(get_requests) from s3_usage_hour h where h.purchase_id = $1
                     and h.hour >= d.day::timestamp at time zone 'UTC' and h.hour < (d.day + 1)::timestamp at time zone 'UTC'), 0)::bigint as "gets!",
                  coalesce((select sum(put_requests) from s3_usage_hour h where h.purchase_id = $1
                     and h.hour >= d.day::timestamp at time zone 'UTC' and h.hour < (d.day + 1)::timestamp at time zone 'UTC'), 0)::bigint as "puts!",
                  (select bytes from s3_storage_day s where s.purchase_id = $1 and s.day = d.day) as storage
           from d order by d.day desc"#,
        id.0,
        first
    )
    .fetch_all(pool)
    .await?;
    let hold = sqlx::query!(
        "select limit_hold_reason from purchase where purchase_id = $1",
        id.0
    )
    .fetch_optional(pool)
    .await?
    .and_then(|r| r.limit_hold_reason);
    let mut today_estimated_usd = UsdMicros::ZERO;
    let days = rows
        .into_iter()
        .map(|r| {
            // cost_charge holds what the imports charged beyond the estimates: the day's AWS total
            // is the two together.
            let imported_usd = r
                .imported_flag
                .map(|_| UsdMicros(r.imported_part.unwrap_or(0).saturating_add(r.estimated)));
            if r.day == today {
                today_estimated_usd = UsdMicros(r.estimated);
            }
            EstimateDay {
                day: r.day.to_string(),
                estimated_usd: UsdMicros(r.estimated),
                imported_usd,
                egress_bytes: r.egress,
                get_requests: r.gets,
                put_requests: r.puts,
                storage_bytes: r.storage,
            }
        })
        .collect();
    let limit_message = hold.as_deref().map(|reason| match reason {
        "egress" => "Downloads from this bucket passed the offer's daily egress limit, so its access \
                     key is paused. It works again from 00:00 UTC tomorrow; ask the vendor if you need \
                     a higher limit."
            .to_owned(),
        _ => "This bucket holds more than the offer's storage limit, so its access key is paused. \
              Ask the vendor to raise the limit or to remove data; the key works again once the \
              bucket is back under it."
            .to_owned(),
    });
    Ok(S3UsageView {
        today_estimated_usd,
        days,
        limit: hold,
        limit_message,
    })
}
