//! CUR 2.0 data export in the vendor's billing bucket: the period's manifest and a streaming parser of
//! the gzipped CSV parts it lists.
//!
//! Layout (SPEC §9): `s3://<bucket>/<prefix>/<export>/metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json`
//! names the current data files (`dataFiles`, `s3://` URIs). In "create new file" mode older deliveries
//! stay in `data/`; only the manifest's files are read. Each part is streamed from S3 through gunzip and
//! the CSV reader on a blocking thread: no temporary file, and memory bounded by the number of
//! (purchase tag, usage day) keys, not by rows.

use std::borrow::Cow;
use std::io::{self, Read};
use std::sync::Arc;
use std::sync::mpsc;

use aws_sdk_s3::error::DisplayErrorContext;
use chrono::NaiveDate;
use csv::ByteRecord;
use flate2::read::MultiGzDecoder;
use memchr::memmem;
use serde::Deserialize;
use tokio_util::io::SyncIoBridge;

use super::cost_import::{
    BillingPeriod, CostImportError, CostTotals, Exact, NoProgress, Progress, ReadStats,
};
use crate::config::{AwsConfig, BillingConfig};
use crate::telemetry::spawn_blocking_with_tracing;

/// Key of the purchase tag in the `resource_tags` map (user tag `officex_vendor_purchase_id`).
pub const TAG_KEY: &str = "user_officex_vendor_purchase_id";
/// The tag as its own column, when the export selects it.
pub const FLAT_TAG_COLUMN: &str = "resource_tags_user_officex_vendor_purchase_id";
/// The resource tags map (JSON in the CSV).
pub const TAGS_COLUMN: &str = "resource_tags";
/// The usage day (UTC) comes from here.
pub const USAGE_START_COLUMN: &str = "line_item_usage_start_date";
pub const USAGE_AMOUNT_COLUMN: &str = "line_item_usage_amount";
pub const PRICING_UNIT_COLUMN: &str = "pricing_unit";

/// Decompressed bytes handed from the gunzip thread to the CSV parser at a time.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the two threads (bounds memory at `CHUNK × (DEPTH + 2)`).
const DEPTH: usize = 4;
/// CSV reader buffer.
const CSV_BUFFER: usize = 256 * 1024;

/// How rows are read.
#[derive(Debug, Clone)]
pub struct ParseOptions {
    /// The cost column charged (`CUR_COST_COLUMN`).
    pub cost_column: String,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            cost_column: "line_item_unblended_cost".to_owned(),
        }
    }
}

/// The part of a CUR 2.0 manifest the import needs (other fields are ignored).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// `s3://bucket/key` of every current data file.
    pub data_files: Vec<String>,
    #[serde(default)]
    pub execution_id: Option<String>,
}

/// Column positions in a part's header.
struct Columns {
    cost: usize,
    usage_start: usize,
    tags: Option<usize>,
    flat_tag: Option<usize>,
    usage_amount: Option<usize>,
    pricing_unit: Option<usize>,
    cost_name: String,
    finder: memmem::Finder<'static>,
}

#[derive(Deserialize)]
struct TagsJson<'a> {
    #[serde(borrow, rename = "user_officex_vendor_purchase_id", default)]
    id: Option<Cow<'a, str>>,
}

impl Columns {
    fn locate(headers: &ByteRecord, options: &ParseOptions) -> Result<Self, String> {
        let find = |name: &str| {
            headers.iter().position(|h| {
                // A UTF-8 byte order mark may precede the first name.
                let h = h.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(h);
                h.trim_ascii() == name.as_bytes()
            })
        };
        let cost = find(&options.cost_column)
            .ok_or_else(|| format!("no {} column (CUR_COST_COLUMN)", options.cost_column))?;
        let usage_start =
            find(USAGE_START_COLUMN).ok_or_else(|| format!("no {USAGE_START_COLUMN} column"))?;
        let tags = find(TAGS_COLUMN);
        let flat_tag = find(FLAT_TAG_COLUMN);
        if tags.is_none() && flat_tag.is_none() {
            return Err(format!(
                "no tag column ({TAGS_COLUMN} or {FLAT_TAG_COLUMN})"
            ));
        }
        Ok(Self {
            cost,
            usage_start,
            tags,
            flat_tag,
            usage_amount: find(USAGE_AMOUNT_COLUMN),
            pricing_unit: find(PRICING_UNIT_COLUMN),
            cost_name: options.cost_column.clone(),
            finder: memmem::Finder::new(TAG_KEY.as_bytes()).into_owned(),
        })
    }

    /// The purchase tag of a row; `None` when it has none (or an empty one).
    fn tag<'r>(&self, record: &'r ByteRecord) -> Result<Option<Cow<'r, str>>, String> {
        if let Some(i) = self.flat_tag {
            let value = record.get(i).unwrap_or_default().trim_ascii();
            if !value.is_empty() {
                return std::str::from_utf8(value)
                    .map(|s| Some(Cow::Borrowed(s)))
                    .map_err(|_| format!("{FLAT_TAG_COLUMN} is not UTF-8"));
            }
        }
        let Some(i) = self.tags else {
            return Ok(None);
        };
        let field = record.get(i).unwrap_or_default();
        // Most rows carry no purchase tag: skip the JSON parse unless the key is there.
        if self.finder.find(field).is_none() {
            return Ok(None);
        }
        let parsed: TagsJson<'r> = serde_json::from_slice(field)
            .map_err(|e| format!("{TAGS_COLUMN} is not a JSON map of strings: {e}"))?;
        Ok(parsed.id.and_then(|id| match id {
            Cow::Borrowed(s) => Some(Cow::Borrowed(s.trim())).filter(|s| !s.is_empty()),
            Cow::Owned(s) => Some(s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .map(Cow::Owned),
        }))
    }

    /// Adds one row to the totals; `Err` describes a malformed row.
    fn add_row(
        &self,
        record: &ByteRecord,
        totals: &mut CostTotals,
        stats: &mut ReadStats,
    ) -> Result<(), String> {
        let cost_field = record.get(self.cost).unwrap_or_default();
        // An empty cell is SQL NULL in the export (e.g. a net cost without discounts): no cost.
        let cost = if cost_field.trim_ascii().is_empty() {
            Exact::ZERO
        } else {
            Exact::parse(cost_field).ok_or_else(|| {
                format!(
                    "{} is not a decimal: {:?}",
                    self.cost_name,
                    String::from_utf8_lossy(cost_field)
                )
            })?
        };
        let start = record.get(self.usage_start).unwrap_or_default();
        let day = parse_day(start).ok_or_else(|| {
            format!(
                "{USAGE_START_COLUMN} is not a date: {:?}",
                String::from_utf8_lossy(start)
            )
        })?;
        let tag = self.tag(record)?;
        let Some(tag) = tag else {
            stats.untagged_rows += 1;
            return Ok(());
        };
        let usage = match (self.usage_amount, self.pricing_unit) {
            (Some(a), Some(u)) => {
                let amount = record.get(a).unwrap_or_default();
                let unit = record.get(u).unwrap_or_default().trim_ascii();
                if amount.trim_ascii().is_empty() || unit.is_empty() {
                    None
                } else {
                    let amount = Exact::parse(amount).ok_or_else(|| {
                        format!(
                            "{USAGE_AMOUNT_COLUMN} is not a decimal: {:?}",
                            String::from_utf8_lossy(amount)
                        )
                    })?;
                    let unit = std::str::from_utf8(unit)
                        .map_err(|_| format!("{PRICING_UNIT_COLUMN} is not UTF-8"))?;
                    Some((unit, amount))
                }
            }
            _ => None,
        };
        totals
            .add(&tag, day, cost, usage)
            .map_err(|e| e.to_string())
    }
}

/// `YYYY-MM-DD` with an optional time after `T` or a space (`2026-03-01T00:00:00.000Z`).
fn parse_day(field: &[u8]) -> Option<NaiveDate> {
    let f = field.trim_ascii();
    if f.len() < 10 {
        return None;
    }
    let (date, rest) = f.split_at(10);
    if !(rest.is_empty() || rest[0] == b'T' || rest[0] == b' ')
        || date[4] != b'-'
        || date[7] != b'-'
    {
        return None;
    }
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0u32, |acc, b| {
            b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
        })
    };
    let year = i32::try_from(number(&date[0..4])?).ok()?;
    NaiveDate::from_ymd_opt(year, number(&date[5..7])?, number(&date[8..10])?)
}

/// Reads one decompressed CSV part into `totals`. Malformed rows are counted in `stats` (and the read
/// goes on, to report them all); `Err` only for what stops reading (I/O, missing columns).
pub fn parse_csv<R: Read>(
    reader: R,
    name: &str,
    options: &ParseOptions,
    totals: &mut CostTotals,
    stats: &mut ReadStats,
) -> Result<(), CostImportError> {
    let bad = |detail: String| CostImportError::BadFile {
        file: name.to_owned(),
        detail,
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .buffer_capacity(CSV_BUFFER)
        .from_reader(reader);
    let headers = match csv.byte_headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(bad(format!("cannot read the header: {e}"))),
    };
    if headers.is_empty() {
        // An empty part (no header, no rows).
        return Ok(());
    }
    let columns = Columns::locate(&headers, options).map_err(bad)?;
    let mut record = ByteRecord::new();
    loop {
        match csv.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                if e.is_io_error() {
                    return Err(bad(format!("read failed near line {line}: {e}")));
                }
                stats.rows_read += 1;
                stats.row_error(format!("{name} line {line}: {e}"));
                continue;
            }
        }
        stats.rows_read += 1;
        if let Err(detail) = columns.add_row(&record, totals, stats) {
            let line = record.position().map_or(0, csv::Position::line);
            stats.row_error(format!("{name} line {line}: {detail}"));
        }
    }
    Ok(())
}

/// Reads one gzipped CSV part (`compressed` yields the `.csv.gz` bytes). Gunzip runs on its own thread,
/// handing fixed-size chunks to this one through a bounded channel, so decompression and parsing overlap
/// while memory stays bounded.
pub fn parse_part<R: Read + Send>(
    compressed: R,
    name: &str,
    options: &ParseOptions,
    totals: &mut CostTotals,
    stats: &mut ReadStats,
    progress: &dyn Progress,
) -> Result<(), CostImportError> {
    let counting = Counting {
        inner: compressed,
        progress,
        pending: 0,
        total: 0,
    };
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(DEPTH);
    let (recycle_tx, recycle_rx) = mpsc::channel::<Vec<u8>>();
    std::thread::scope(|scope| {
        let inflater = scope.spawn(move || {
            let mut gz = MultiGzDecoder::new(counting);
            loop {
                let mut buf = recycle_rx
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
                buf.resize(CHUNK, 0);
                match read_full(&mut gz, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.send(Ok(buf)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        break;
                    }
                }
            }
            let mut counting = gz.into_inner();
            counting.flush_progress();
            counting.total
        });
        let chunks = ChunkReader {
            rx,
            recycle: recycle_tx,
            current: Vec::new(),
            pos: 0,
        };
        let parsed = parse_csv(chunks, name, options, totals, stats);
        // parse_csv returned: the receiver is gone, so the inflater stops at its next send.
        match inflater.join() {
            Ok(bytes) => stats.bytes += bytes,
            Err(_) => {
                return Err(CostImportError::Task(format!(
                    "{name}: gunzip thread panicked"
                )));
            }
        }
        parsed
    })
}

/// Fills `buf` as far as the reader allows; `Ok(0)` only at the end.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Counts compressed bytes and reports them in steps.
struct Counting<'p, R> {
    inner: R,
    progress: &'p dyn Progress,
    pending: u64,
    total: u64,
}

impl<R> Counting<'_, R> {
    fn flush_progress(&mut self) {
        if self.pending > 0 {
            self.progress.advanced(self.pending);
            self.pending = 0;
        }
    }
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let n64 = n as u64;
        self.total += n64;
        self.pending += n64;
        if self.pending >= 1 << 20 {
            self.flush_progress();
        }
        Ok(n)
    }
}

/// The parser's side of the channel.
struct ChunkReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    recycle: mpsc::Sender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.current.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    let used = std::mem::replace(&mut self.current, chunk);
                    self.pos = 0;
                    if used.capacity() > 0 {
                        let _ = self.recycle.send(used);
                    }
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The CUR data export in S3.
pub struct CurSource {
    s3: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
    export_name: String,
    parse: ParseOptions,
}

impl CurSource {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        aws: &AwsConfig,
        billing: &BillingConfig,
    ) -> Result<Self, CostImportError> {
        let bucket = billing.bucket.clone().ok_or_else(|| {
            CostImportError::NotConfigured("BILLING_BUCKET_NAME is not set".into())
        })?;
        // Emulators and S3-compatible stores want path-style addressing.
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(aws.endpoint_url.is_some())
            .build();
        Ok(Self {
            s3: aws_sdk_s3::Client::from_conf(config),
            bucket,
            prefix: billing.cur_prefix.trim_matches('/').to_owned(),
            export_name: billing.cur_export_name.trim_matches('/').to_owned(),
            parse: ParseOptions {
                cost_column: billing.cur_cost_column.clone(),
            },
        })
    }

    /// `<prefix>/<export>/metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json`.
    pub fn manifest_key(&self, period: BillingPeriod) -> String {
        manifest_key(&self.prefix, &self.export_name, period)
    }

    /// The period's manifest; `None` when AWS has not delivered one (yet).
    pub async fn manifest(
        &self,
        period: BillingPeriod,
    ) -> Result<Option<Manifest>, CostImportError> {
        let key = self.manifest_key(period);
        let location = format!("s3://{}/{key}", self.bucket);
        let object = match self
            .s3
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => {
                let e = e.into_service_error();
                if e.is_no_such_key() {
                    return Ok(None);
                }
                return Err(CostImportError::S3(format!(
                    "cannot read {location}: {}",
                    DisplayErrorContext(&e)
                )));
            }
        };
        let bytes = object
            .body
            .collect()
            .await
            .map_err(|e| CostImportError::S3(format!("cannot read {location}: {e}")))?
            .into_bytes();
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CostImportError::BadManifest {
                location,
                detail: e.to_string(),
            })
    }

    /// Reads every data file the period's manifest lists; `None` without a manifest (or with one
    /// listing no file).
    pub async fn read_period(
        &self,
        period: BillingPeriod,
        stats: &mut ReadStats,
        progress: Arc<dyn Progress>,
    ) -> Result<Option<CostTotals>, CostImportError> {
        let Some(manifest) = self.manifest(period).await? else {
            return Ok(None);
        };
        if manifest.data_files.is_empty() {
            return Ok(None);
        }
        tracing::info!(
            files = manifest.data_files.len(),
            execution_id = manifest.execution_id.as_deref().unwrap_or_default(),
            "reading CUR data files"
        );
        let mut totals = CostTotals::default();
        for uri in &manifest.data_files {
            let (bucket, key) = self.locate(uri)?;
            stats.files += 1;
            let object = match self.s3.get_object().bucket(bucket).key(key).send().await {
                Ok(o) => o,
                Err(e) => {
                    let e = e.into_service_error();
                    if e.is_no_such_key() {
                        return Err(CostImportError::MissingFile(uri.clone()));
                    }
                    return Err(CostImportError::S3(format!(
                        "cannot read {uri}: {}",
                        DisplayErrorContext(&e)
                    )));
                }
            };
            progress.file_started(
                uri,
                object.content_length.and_then(|n| u64::try_from(n).ok()),
            );
            let body = object.body.into_async_read();
            let options = self.parse.clone();
            let name = uri.clone();
            let part_progress = progress.clone();
            let mut part_totals = std::mem::take(&mut totals);
            let mut part_stats = std::mem::take(stats);
            let (part_totals, part_stats, result) = spawn_blocking_with_tracing(move || {
                let reader = SyncIoBridge::new(body);
                let result = parse_part(
                    reader,
                    &name,
                    &options,
                    &mut part_totals,
                    &mut part_stats,
                    &*part_progress,
                );
                (part_totals, part_stats, result)
            })
            .await
            .map_err(|e| CostImportError::Task(e.to_string()))?;
            totals = part_totals;
            *stats = part_stats;
            result?;
            progress.file_finished();
        }
        Ok(Some(totals))
    }

    /// Bucket and key of a manifest entry: an `s3://bucket/key` URI, or a key in the billing bucket.
    fn locate<'a>(&'a self, uri: &'a str) -> Result<(&'a str, &'a str), CostImportError> {
        match uri.strip_prefix("s3://") {
            Some(rest) => match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok((bucket, key)),
                _ => Err(CostImportError::BadManifest {
                    location: format!("s3://{}/…-Manifest.json", self.bucket),
                    detail: format!("data file {uri:?} is not s3://bucket/key"),
                }),
            },
            None => Ok((self.bucket.as_str(), uri.trim_start_matches('/'))),
        }
    }
}

/// The manifest key of a period for an export.
pub fn manifest_key(prefix: &str, export_name: &str, period: BillingPeriod) -> String {
    let mut key = String::new();
    let prefix = prefix.trim_matches('/');
    if !prefix.is_empty() {
        key.push_str(prefix);
        key.push('/');
    }
    key.push_str(&format!(
        "{export_name}/metadata/BILLING_PERIOD={period}/{export_name}-Manifest.json"
    ));
    key
}

/// Parses a local part (benchmarks, tests): same code path as S3, from any reader.
pub fn parse_local_part<R: Read + Send>(
    compressed: R,
    options: &ParseOptions,
) -> Result<(CostTotals, ReadStats), CostImportError> {
    let mut totals = CostTotals::default();
    let mut stats = ReadStats::default();
    parse_part(
        compressed,
        "local",
        options,
        &mut totals,
        &mut stats,
        &NoProgress,
    )?;
    Ok((totals, stats))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    const HEADER: &str = "bill_bill_type,bill_billing_period_start_date,identity_line_item_id,line_item_line_item_type,line_item_usage_start_date,line_item_usage_end_date,line_item_product_code,line_item_usage_amount,pricing_unit,line_item_unblended_cost,line_item_blended_cost,product,resource_tags,some_future_column";
    const P1: &str = "CustomerPurchaseID_0b6f5a6e-1d0e-4a8e-9d39-0d3c6f3a1b11";

    fn gz(text: &str) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(text.as_bytes()).unwrap();
        e.finish().unwrap()
    }

    fn row(day: &str, cost: &str, tags: &str) -> String {
        let tags = tags.replace('"', "\"\"");
        format!(
            "Anniversary,2026-03-01T00:00:00.000Z,id,Usage,{day}T00:00:00.000Z,{day}T23:59:59.000Z,AmazonS3,1.5,GB-Mo,{cost},0,\"{{\"\"region\"\":\"\"us-east-1\"\"}}\",\"{tags}\",x\n"
        )
    }

    fn parse(text: &str) -> (CostTotals, ReadStats) {
        parse_local_part(&gz(text)[..], &ParseOptions::default()).unwrap()
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
    }

    #[test]
    fn sums_cost_per_tag_and_day_exactly() {
        let tag = format!(r#"{{"user_officex_vendor_purchase_id":"{P1}","user_team":"x"}}"#);
        let mut text = format!("{HEADER}\n");
        text += &row("2026-03-01", "0.0000000001", &tag);
        text += &row("2026-03-01", "0.0000000002", &tag);
        text += &row("2026-03-02", "1.25", &tag);
        text += &row("2026-03-02", "-0.25", &tag); // a credit
        text += &row("2026-03-02", "3", "{}");
        text += &row("2026-03-02", "3", "");
        text += &row(
            "2026-03-02",
            "3",
            r#"{"user_officex_vendor_purchase_id":""}"#,
        );
        text += &row(
            "2026-03-03",
            "2",
            r#"{"user_officex_vendor_purchase_id":"not-a-purchase"}"#,
        );
        let (totals, stats) = parse(&text);
        assert_eq!(stats.rows_read, 8);
        assert_eq!(stats.untagged_rows, 3);
        assert_eq!(stats.error_rows, 0, "{:?}", stats.errors);
        let p = totals.get(P1).unwrap();
        assert_eq!(p.rows, 4);
        assert_eq!(p.days[&day(1)].cost, Exact::parse(b"0.0000000003").unwrap());
        assert_eq!(p.days[&day(2)].cost, Exact::parse(b"1").unwrap());
        assert_eq!(
            p.days[&day(2)].usage,
            vec![("GB-Mo".to_owned(), Exact::parse(b"3").unwrap())]
        );
        assert_eq!(totals.get("not-a-purchase").unwrap().rows, 1);
        assert!(stats.bytes > 0);
    }

    #[test]
    fn flat_tag_column_and_configured_cost_column() {
        let text = format!(
            "line_item_usage_start_date,line_item_blended_cost,line_item_unblended_cost,{FLAT_TAG_COLUMN}\n\
             2026-03-04T00:00:00Z,2.5,1,{P1}\n\
             2026-03-04T00:00:00Z,\"0.5\",1,\" {P1} \"\n\
             2026-03-04T00:00:00Z,9,9,\n"
        );
        let options = ParseOptions {
            cost_column: "line_item_blended_cost".into(),
        };
        let (totals, stats) = parse_local_part(&gz(&text)[..], &options).unwrap();
        assert_eq!(
            totals.get(P1).unwrap().days[&day(4)].cost,
            Exact::parse(b"3").unwrap()
        );
        assert_eq!(stats.untagged_rows, 1);
    }

    #[test]
    fn malformed_rows_are_counted_with_their_line() {
        let tag = format!(r#"{{"user_officex_vendor_purchase_id":"{P1}"}}"#);
        let mut text = format!("{HEADER}\n");
        text += &row("2026-03-01", "1", &tag);
        text += &row("2026-03-01", "1.2.3", &tag);
        text += &row("2026-13-01", "1", &tag);
        text += "too,few,fields\n";
        text += &row(
            "2026-03-01",
            "1",
            r#"{"user_officex_vendor_purchase_id": broken"#,
        );
        let (totals, stats) = parse(&text);
        assert_eq!(stats.rows_read, 5);
        assert_eq!(stats.error_rows, 4, "{:?}", stats.errors);
        assert!(stats.errors[0].contains("line 3"), "{:?}", stats.errors);
        assert!(
            stats.errors[0].contains("line_item_unblended_cost"),
            "{:?}",
            stats.errors
        );
        assert_eq!(totals.get(P1).unwrap().rows, 1);
    }

    #[test]
    fn missing_columns_and_corrupt_gzip_stop_the_read() {
        let text = "line_item_usage_start_date,line_item_unblended_cost\n2026-03-01,1\n";
        let err = parse_local_part(&gz(text)[..], &ParseOptions::default()).unwrap_err();
        assert!(err.to_string().contains("no tag column"), "{err}");
        let text = format!("{HEADER}\n");
        let err = parse_local_part(
            &gz(&text)[..],
            &ParseOptions {
                cost_column: "nope".into(),
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("no nope column"), "{err}");
        let mut data = gz(&format!("{HEADER}\n{}", row("2026-03-01", "1", "{}")));
        let len = data.len();
        data.truncate(len - 12);
        assert!(parse_local_part(&data[..], &ParseOptions::default()).is_err());
        assert!(parse_local_part(&b"not gzip at all"[..], &ParseOptions::default()).is_err());
    }

    #[test]
    fn empty_part_is_fine_and_bom_is_ignored() {
        let (totals, stats) = parse("");
        assert!(totals.is_empty() && stats.rows_read == 0);
        let text = format!(
            "\u{feff}line_item_usage_start_date,line_item_unblended_cost,resource_tags\n2026-03-02,0.5,\"{{\"\"user_officex_vendor_purchase_id\"\":\"\"{P1}\"\"}}\"\n"
        );
        let (totals, _) = parse(&text);
        assert_eq!(
            totals.get(P1).unwrap().days[&day(2)].cost,
            Exact::parse(b"0.5").unwrap()
        );
    }

    #[test]
    fn concatenated_gzip_members_are_read() {
        let tag = format!(r#"{{"user_officex_vendor_purchase_id":"{P1}"}}"#);
        let mut data = gz(&format!("{HEADER}\n{}", row("2026-03-01", "1", &tag)));
        data.extend(gz(&row("2026-03-01", "2", &tag)));
        let (totals, _) = parse_local_part(&data[..], &ParseOptions::default()).unwrap();
        assert_eq!(
            totals.get(P1).unwrap().days[&day(1)].cost,
            Exact::parse(b"3").unwrap()
        );
    }

    #[test]
    fn days_parse_in_the_formats_aws_writes() {
        assert_eq!(parse_day(b"2026-03-01T00:00:00.000Z"), Some(day(1)));
        assert_eq!(parse_day(b"2026-03-01T00:00:00Z"), Some(day(1)));
        assert_eq!(parse_day(b"2026-03-01 00:00:00"), Some(day(1)));
        assert_eq!(parse_day(b"2026-03-01"), Some(day(1)));
        for bad in [
            &b""[..],
            b"2026-3-01",
            b"2026-02-30",
            b"20260301",
            b"2026-03-01X",
            b"abcd-ef-gh",
        ] {
            assert_eq!(parse_day(bad), None);
        }
    }

    #[test]
    fn manifest_keys_follow_the_export_layout() {
        let p: BillingPeriod = "2026-03".parse().unwrap();
        assert_eq!(
            manifest_key("officex-vendor-billing-reports/", "report", p),
            "officex-vendor-billing-reports/report/metadata/BILLING_PERIOD=2026-03/report-Manifest.json"
        );
        assert_eq!(
            manifest_key("", "report", p),
            "report/metadata/BILLING_PERIOD=2026-03/report-Manifest.json"
        );
    }
}
