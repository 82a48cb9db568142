//! The daily cost import against a real moto_server: CUR 2.0 manifests and gzipped parts generated here
//! with the export's real column set, and Cost Explorer through moto's configurable results.

mod cli;
mod cost_explorer;
mod s3_estimate;

use chrono::NaiveDate;
use flate2::Compression;
use flate2::write::GzEncoder;
use sqlx::PgPool;
use vendor_server::billing::cost_import::{
    self, BillingPeriod, ImportLock, ImportOptions, Trigger,
};
use vendor_server::billing::cur_sample::{COLUMNS, SampleRow, SampleWriter};
use vendor_server::billing::ledger::{self, EntryKind, NewEntry};
use vendor_server::billing::purchases::{self, NewPurchase};
use vendor_server::domain::ids::PurchaseId;
use vendor_server::domain::money::UsdMicros;
use vendor_server::jobs::Outcome;

use crate::helpers::{TestApp, spawn_app_with};
use crate::moto::Moto;

pub const BUCKET: &str = "officex-vendor-billing-reports-test";
pub const PREFIX: &str = "officex-vendor-billing-reports";
pub const EXPORT: &str = "officex-vendor-billing-report";

pub struct Env {
    pub app: TestApp,
    pub moto: Moto,
    pub s3: aws_sdk_s3::Client,
    deliveries: u32,
}

/// The app configured for AWS on a fresh moto, with the billing bucket created.
pub async fn env(pool: PgPool, extra: &[(&str, &str)]) -> Env {
    let moto = Moto::start().await;
    let mut vars = vec![
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", moto.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("BILLING_BUCKET_NAME", BUCKET),
    ];
    vars.extend_from_slice(extra);
    let app = spawn_app_with(pool, &vars).await;
    let sdk = vendor_server::aws::sdk_config(app.state.config.aws.as_ref().unwrap()).await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    Env {
        app,
        moto,
        s3,
        deliveries: 0,
    }
}

pub fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// A row of `cost` USD for `tag` on `day`.
pub fn row<'a>(day: NaiveDate, cost: &'a str, tag: Option<&'a str>) -> SampleRow<'a> {
    SampleRow {
        usage_day: day,
        cost,
        tag,
        usage_amount: "1.5",
        pricing_unit: "GB-Mo",
        line_item_type: if cost.starts_with('-') {
            "Credit"
        } else {
            "Usage"
        },
        resource_id: "officex-test-bucket",
    }
}

/// A gzipped CUR 2.0 part.
pub fn part(rows: &[SampleRow<'_>]) -> Vec<u8> {
    part_with(rows, false, &[])
}

pub fn part_with(rows: &[SampleRow<'_>], flat_tag: bool, extra: &[&str]) -> Vec<u8> {
    let mut writer = SampleWriter::new(
        GzEncoder::new(Vec::new(), Compression::default()),
        flat_tag,
        extra,
    )
    .unwrap();
    for r in rows {
        writer.write(r).unwrap();
    }
    writer.finish().unwrap().finish().unwrap()
}

impl Env {
    pub fn state(&self) -> &vendor_server::state::AppState {
        &self.app.state
    }

    pub fn pool(&self) -> &PgPool {
        &self.app.state.pool
    }

    /// Uploads `parts` as a new delivery of `period` ("create new file": earlier deliveries stay in
    /// data/) and rewrites the manifest to list exactly them. Returns their s3:// URIs.
    pub async fn deliver(&mut self, period: &str, parts: &[Vec<u8>]) -> Vec<String> {
        self.deliveries += 1;
        let execution = uuid::Uuid::new_v4();
        let folder = format!(
            "{PREFIX}/{EXPORT}/data/BILLING_PERIOD={period}/{period}-{:02}T05:00:00.000Z-{execution}",
            self.deliveries
        );
        let mut uris = Vec::new();
        for (i, body) in parts.iter().enumerate() {
            let key = format!("{folder}/{EXPORT}-{:05}.csv.gz", i + 1);
            self.put(&key, body.clone()).await;
            uris.push(format!("s3://{BUCKET}/{key}"));
        }
        self.manifest(period, &uris).await;
        uris
    }

    /// Writes the period's manifest listing `uris`.
    pub async fn manifest(&self, period: &str, uris: &[String]) {
        let start: BillingPeriod = period.parse().unwrap();
        let manifest = serde_json::json!({
            "version": "2024-10-21",
            "exportArn": format!("arn:aws:bcm-data-exports:us-east-1:123456789012:export/{EXPORT}-0c5a"),
            "exportName": EXPORT,
            "executionId": uuid::Uuid::new_v4().to_string(),
            "billingPeriod": {
                "start": format!("{}T00:00:00.000Z", start.first_day()),
                "end": format!("{}T00:00:00.000Z", start.end()),
            },
            "bucket": BUCKET,
            "dataFiles": uris,
            "columns": COLUMNS.iter().map(|c| serde_json::json!({"name": c, "type": "string"})).collect::<Vec<_>>(),
        });
        let key =
            format!("{PREFIX}/{EXPORT}/metadata/BILLING_PERIOD={period}/{EXPORT}-Manifest.json");
        self.put(&key, serde_json::to_vec(&manifest).unwrap()).await;
    }

    pub async fn put(&self, key: &str, body: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(BUCKET)
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap();
    }

    pub async fn run(&self, today: NaiveDate) -> anyhow::Result<Outcome> {
        cost_import::run_once_on(&self.state().pool, &self.state().config, today).await
    }
}

/// An active purchase credited with `usd` dollars.
pub async fn purchase(pool: &PgPool, usd: i64) -> PurchaseId {
    let mut tx = pool.begin().await.unwrap();
    let created = purchases::create(
        &mut tx,
        &NewPurchase {
            offer_id: "aws-s3-storage-giftcard".into(),
            title: "S3 bucket".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    ledger::activate(&mut tx, created.id).await.unwrap();
    ledger::post(
        &mut tx,
        created.id,
        &NewEntry::new(EntryKind::Deposit, UsdMicros(usd * 1_000_000))
            .reference(format!("deposit:{}", uuid::Uuid::new_v4())),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    created.id
}

/// The purchase's cost rows: (amount_micros, occurred_at day, reference, usage_amount).
pub async fn cost_rows(pool: &PgPool, id: PurchaseId) -> Vec<(i64, NaiveDate, String, String)> {
    sqlx::query_as::<_, (i64, NaiveDate, String, String)>(
        "select amount_micros, (occurred_at at time zone 'utc')::date, reference, usage_amount::text
         from ledger_entry where purchase_id = $1 and kind = 'cost' order by entry_id",
    )
    .bind(id.0)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Balance, and the ledger sum (always equal).
pub async fn balance(pool: &PgPool, id: PurchaseId) -> i64 {
    let mut conn = pool.acquire().await.unwrap();
    let (balance, sum) = ledger::balance_and_ledger_sum(&mut conn, id).await.unwrap();
    assert_eq!(balance, sum, "balance equals the ledger sum");
    balance.0
}

/// (status, rows_read, rows_matched, unknown_tag_rows, untagged_rows, error_rows, purchases_charged,
/// total_charged_micros, errors) of every run, oldest first.
#[allow(clippy::type_complexity)]
pub async fn runs(
    pool: &PgPool,
) -> Vec<(
    String,
    String,
    i64,
    i64,
    i64,
    i64,
    i64,
    i32,
    i64,
    serde_json::Value,
)> {
    sqlx::query_as(
        "select status, to_char(billing_period, 'YYYY-MM'), rows_read, rows_matched, unknown_tag_rows,
                untagged_rows, error_rows, purchases_charged, total_charged_micros, errors
         from cost_import_run order by run_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Past the 15th: daily runs import March only.
fn today() -> NaiveDate {
    day(2026, 3, 20)
}

#[sqlx::test]
async fn restatement_charges_only_the_difference_and_credits_back(pool: PgPool) {
    let mut env = env(pool, &[]).await;
    let p = purchase(env.pool(), 100).await;
    let tag = p.to_string();
    let d5 = day(2026, 3, 5);
    let d6 = day(2026, 3, 6);

    // Day 5 costs 1.00 (two rows), day 6 costs 0.0000004 (rounds up to one micro-dollar after markup).
    env.deliver(
        "2026-03",
        &[part(&[
            row(d5, "0.4", Some(&tag)),
            row(d5, "0.6", Some(&tag)),
            row(d6, "0.0000004", Some(&tag)),
        ])],
    )
    .await;
    assert_eq!(env.run(today()).await.unwrap(), Outcome::Processed(2));
    assert_eq!(balance(env.pool(), p).await, 100_000_000 - 1_360_000 - 1);

    // AWS restates day 5 higher (1.50): only the difference is charged.
    env.deliver(
        "2026-03",
        &[part(&[
            row(d5, "1.5", Some(&tag)),
            row(d6, "0.0000004", Some(&tag)),
        ])],
    )
    .await;
    assert_eq!(env.run(today()).await.unwrap(), Outcome::Processed(1));
    assert_eq!(balance(env.pool(), p).await, 100_000_000 - 2_040_000 - 1);

    // ... then lower (0.50), split over two parts: credited back.
    env.deliver(
        "2026-03",
        &[
            part(&[row(d5, "0.25", Some(&tag))]),
            part(&[
                row(d5, "0.25", Some(&tag)),
                row(d6, "0.0000004", Some(&tag)),
            ]),
        ],
    )
    .await;
    assert_eq!(env.run(today()).await.unwrap(), Outcome::Processed(1));
    assert_eq!(balance(env.pool(), p).await, 100_000_000 - 680_000 - 1);

    let rows = cost_rows(env.pool(), p).await;
    assert_eq!(
        rows,
        vec![
            (
                -1_360_000,
                d5,
                "cost:2026-03:2026-03-05:1".into(),
                "1".into()
            ),
            (
                -1,
                d6,
                "cost:2026-03:2026-03-06:1".into(),
                "0.0000004".into()
            ),
            (
                -680_000,
                d5,
                "cost:2026-03:2026-03-05:2".into(),
                "0.5".into()
            ),
            (
                1_360_000,
                d5,
                "cost:2026-03:2026-03-05:3".into(),
                "-1".into()
            ),
        ]
    );
    // Three deliveries' files sit in data/; only the manifest's were read each time.
    let listed = env
        .s3
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(format!("{PREFIX}/{EXPORT}/data/"))
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 4);
    let runs = runs(env.pool()).await;
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| r.0 == "succeeded"), "{runs:?}");
    assert_eq!(
        runs.iter().map(|r| r.8).collect::<Vec<_>>(),
        [1_360_001, 680_000, -1_360_000]
    );
}

#[sqlx::test]
async fn a_repeated_run_changes_nothing(pool: PgPool) {
    let mut env = env(pool, &[]).await;
    let p = purchase(env.pool(), 10).await;
    let tag = p.to_string();
    env.deliver(
        "2026-03",
        &[part(&[row(day(2026, 3, 1), "0.123456789", Some(&tag))])],
    )
    .await;
    assert_eq!(env.run(today()).await.unwrap(), Outcome::Processed(1));
    let after_first = balance(env.pool(), p).await;
    // 0.123456789 × 1.36 = 0.16790123304 → 0.167901
    assert_eq!(after_first, 10_000_000 - 167_901);
    for _ in 0..2 {
        assert_eq!(env.run(today()).await.unwrap(), Outcome::Processed(0));
    }
    assert_eq!(balance(env.pool(), p).await, after_first);
    assert_eq!(cost_rows(env.pool(), p).await.len(), 1);
    let runs = runs(env.pool()).await;
    assert_eq!(runs.len(), 3);
    assert_eq!(
        (runs[1].0.as_str(), runs[1].7, runs[1].8),
        ("succeeded", 0, 0)
    );
}

#[sqlx::test]
async fn a_malformed_row_fails_the_run_and_charges_nothing(pool: PgPool) {
    let mut env = env(pool, &[]).await;
    let p = purchase(env.pool(), 10).await;
    let tag = p.to_string();
    env.deliver(
        "2026-03",
        &[part(&[
            row(day(2026, 3, 1), "1", Some(&tag)),
            row(day(2026, 3, 2), "1,5", Some(&tag)),
            row(day(2026, 3, 3), "2", Some(&tag)),
        ])],
    )
    .await;
    let err = env.run(today()).await.unwrap_err();
    assert!(format!("{err:#}").contains("malformed"), "{err:#}");
    assert!(cost_rows(env.pool(), p).await.is_empty());
    assert_eq!(balance(env.pool(), p).await, 10_000_000);
    let runs = runs(env.pool()).await;
    assert_eq!(runs.len(), 1);
    let r = &runs[0];
    assert_eq!((r.0.as_str(), r.2, r.6, r.7, r.8), ("failed", 3, 1, 0, 0));
    let errors = r.9.to_string();
    assert!(
        errors.contains("line 3") && errors.contains("\\\"1,5\\\""),
        "{errors}"
    );
    let charged: i64 = sqlx::query_scalar("select count(*) from cost_charge")
        .fetch_one(env.pool())
        .await
        .unwrap();
    assert_eq!(charged, 0);
}

#[sqlx::test]
async fn a_missing_part_fails_the_run_and_nothing_is_half_charged(pool: PgPool) {
    let mut env = env(pool, &[]).await;
    let p = purchase(env.pool(), 10).await;
    let q = purchase(env.pool(), 10).await;
    let (tp, tq) = (p.to_string(), q.to_string());
    let mut uris = env
        .deliver(
            "2026-03",
            &[part(&[
                row(day(2026, 3, 1), "1", Some(&tp)),
                row(day(2026, 3, 1), "2", Some(&tq)),
            ])],
        )
        .await;
    uris.push(uris[0].replace("-00001.csv.gz", "-00002.csv.gz"));
    env.manifest("2026-03", &uris).await;
    let err = env.run(today()).await.unwrap_err();
    assert!(format!("{err:#}").contains("does not exist"), "{err:#}");
    for id in [p, q] {
        assert!(cost_rows(env.pool(), id).await.is_empty());
        assert_eq!(balance(env.pool(), id).await, 10_000_000);
    }
    let runs = runs(env.pool()).await;
    assert_eq!((runs[0].0.as_str(), runs[0].2), ("failed", 2));
    // Once AWS has delivered the part, the next run charges everything, once.
    env.put(
        &uris[1].replace(&format!("s3://{BUCKET}/"), ""),
        part(&[row(day(2026, 3, 2), "1", Some(&tp))]),
    )
    .await;
    assert_eq!(env.run(today()).await.unwrap(), Outcome::Processed(3));
    assert_eq!(balance(env.pool(), p).await, 10_000_000 - 2 * 1_360_000);
    assert_eq!(balance(env.pool(), q).await, 10_000_000 - 2_720_000);
}

#[sqlx::test]
async fn two_concurrent_runs_charge_once(pool: PgPool) {
    let mut env = env(pool, &[]).await;
    let p = purchase(env.pool(), 10).await;
    let tag = p.to_string();
    env.deliver(
        "2026-03",
        &[part(&[
            row(day(2026, 3, 1), "1", Some(&tag)),
            row(day(2026, 3, 2), "1", Some(&tag)),
        ])],
    )
    .await;

    // Another replica holds the lock: this one does nothing.
    let held = ImportLock::try_acquire(env.pool()).await.unwrap().unwrap();
    assert_eq!(env.run(today()).await.unwrap(), Outcome::Idle);
    assert!(runs(env.pool()).await.is_empty());
    held.release().await;

    // Two replicas (separate pools on one database) start at once: one does the work.
    let other = vendor_server::state::AppState::new(
        sqlx::postgres::PgPoolOptions::new()
            .connect_with(env.pool().connect_options().as_ref().clone())
            .await
            .unwrap(),
        env.state().config.clone(),
    )
    .unwrap();
    let (a, b) = tokio::join!(
        cost_import::run_once_on(&env.state().pool, &env.state().config, today()),
        cost_import::run_once_on(&other.pool, &other.config, today())
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    let posted: usize = outcomes
        .iter()
        .map(|o| match o {
            Outcome::Processed(n) => *n,
            Outcome::Idle => 0,
        })
        .sum();
    assert_eq!(posted, 2, "{outcomes:?}");
    assert_eq!(balance(env.pool(), p).await, 10_000_000 - 2 * 1_360_000);
    assert_eq!(cost_rows(env.pool(), p).await.len(), 2);
    let charged_runs = runs(env.pool()).await.iter().filter(|r| r.7 > 0).count();
    assert_eq!(charged_runs, 1);
}

#[sqlx::test]
async fn unknown_tags_and_untagged_rows_are_reported_not_charged(pool: PgPool) {
    let mut env = env(pool, &[]).await;
    let p = purchase(env.pool(), 10).await;
    let tag = p.to_string();
    let stranger = PurchaseId::new().to_string();
    let d = day(2026, 3, 7);
    env.deliver(
        "2026-03",
        &[part(&[
            row(d, "1", Some(&tag)),
            row(d, "5", Some(&stranger)),
            row(d, "5", Some(&stranger)),
            row(d, "5", Some("officex_vendor_billing_reports")),
            row(d, "5", Some("")),
            row(d, "5", None),
        ])],
    )
    .await;
    assert_eq!(env.run(today()).await.unwrap(), Outcome::Processed(1));
    assert_eq!(balance(env.pool(), p).await, 10_000_000 - 1_360_000);
    let r = &runs(env.pool()).await[0];
    assert_eq!((r.2, r.3, r.4, r.5, r.7, r.8), (6, 1, 3, 2, 1, 1_360_000));
    let unknown: serde_json::Value = sqlx::query_scalar("select unknown_tags from cost_import_run")
        .fetch_one(env.pool())
        .await
        .unwrap();
    assert_eq!(unknown[&stranger], 2);
    assert_eq!(unknown["officex_vendor_billing_reports"], 1);
    let charged: i64 = sqlx::query_scalar("select count(*) from cost_charge")
        .fetch_one(env.pool())
        .await
        .unwrap();
    assert_eq!(charged, 1);
}

#[sqlx::test]
async fn credits_and_refunds_reduce_the_charge(pool: PgPool) {
    let mut env = env(pool, &[]).await;
    let p = purchase(env.pool(), 10).await;
    let tag = p.to_string();
    env.deliver(
        "2026-03",
        &[part(&[
            row(day(2026, 3, 1), "2", Some(&tag)),
            row(day(2026, 3, 1), "-0.5", Some(&tag)),
            // A day that nets to a credit (e.g. a refund).
            row(day(2026, 3, 2), "-1", Some(&tag)),
        ])],
    )
    .await;
    assert_eq!(env.run(today()).await.unwrap(), Outcome::Processed(2));
    let rows = cost_rows(env.pool(), p).await;
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        [-2_040_000, 1_360_000]
    );
    assert_eq!(balance(env.pool(), p).await, 10_000_000 - 680_000);
}

#[sqlx::test]
async fn costs_can_take_the_balance_below_zero(pool: PgPool) {
    let mut env = env(pool, &[]).await;
    let p = purchase(env.pool(), 1).await;
    let tag = p.to_string();
    env.deliver(
        "2026-03",
        &[part(&[row(day(2026, 3, 1), "10", Some(&tag))])],
    )
    .await;
    assert_eq!(env.run(today()).await.unwrap(), Outcome::Processed(1));
    assert_eq!(balance(env.pool(), p).await, 1_000_000 - 13_600_000);
    let status: String = sqlx::query_scalar("select status from purchase where purchase_id = $1")
        .bind(p.0)
        .fetch_one(env.pool())
        .await
        .unwrap();
    assert_eq!(status, "suspended");
}

#[sqlx::test]
async fn the_previous_month_is_imported_during_the_first_15_days(pool: PgPool) {
    let mut env = env(pool, &[]).await;
    let p = purchase(env.pool(), 10).await;
    let tag = p.to_string();
    env.deliver(
        "2026-02",
        &[part(&[row(day(2026, 2, 28), "1", Some(&tag))])],
    )
    .await;
    env.deliver("2026-03", &[part(&[row(day(2026, 3, 1), "1", Some(&tag))])])
        .await;
    assert_eq!(
        env.run(day(2026, 3, 10)).await.unwrap(),
        Outcome::Processed(2)
    );
    let periods: Vec<String> = runs(env.pool()).await.into_iter().map(|r| r.1).collect();
    assert_eq!(periods, ["2026-02", "2026-03"]);

    // February is restated after the 15th: no longer imported.
    env.deliver(
        "2026-02",
        &[part(&[row(day(2026, 2, 28), "3", Some(&tag))])],
    )
    .await;
    assert_eq!(
        env.run(day(2026, 3, 16)).await.unwrap(),
        Outcome::Processed(0)
    );
    assert_eq!(balance(env.pool(), p).await, 10_000_000 - 2 * 1_360_000);
    // A month start: January and February (January has no manifest: no data, not a failure).
    assert_eq!(
        env.run(day(2026, 2, 1)).await.unwrap(),
        Outcome::Processed(1)
    );
    assert_eq!(
        balance(env.pool(), p).await,
        10_000_000 - 1_360_000 - 3 * 1_360_000
    );
    let last_two: Vec<(String, String)> = runs(env.pool())
        .await
        .into_iter()
        .rev()
        .take(2)
        .map(|r| (r.0, r.1))
        .collect();
    assert_eq!(
        last_two,
        [
            ("succeeded".to_owned(), "2026-02".to_owned()),
            ("no_data".to_owned(), "2026-01".to_owned())
        ]
    );
}

#[sqlx::test]
async fn stale_files_in_data_are_never_read(pool: PgPool) {
    let mut env = env(pool, &[]).await;
    let p = purchase(env.pool(), 10).await;
    let tag = p.to_string();
    // An older delivery of the same period, and a malformed leftover: neither is in the manifest.
    env.put(
        &format!("{PREFIX}/{EXPORT}/data/BILLING_PERIOD=2026-03/old/{EXPORT}-00001.csv.gz"),
        part(&[row(day(2026, 3, 1), "999", Some(&tag))]),
    )
    .await;
    env.put(
        &format!("{PREFIX}/{EXPORT}/data/BILLING_PERIOD=2026-03/old/{EXPORT}-00002.csv.gz"),
        b"garbage".to_vec(),
    )
    .await;
    env.deliver("2026-03", &[part(&[row(day(2026, 3, 1), "1", Some(&tag))])])
        .await;
    assert_eq!(env.run(today()).await.unwrap(), Outcome::Processed(1));
    assert_eq!(balance(env.pool(), p).await, 10_000_000 - 1_360_000);
    let r = &runs(env.pool()).await[0];
    assert_eq!(r.2, 1);
}

#[sqlx::test]
async fn flat_tag_column_extra_columns_and_a_vanished_day(pool: PgPool) {
    let mut env = env(pool, &[("COST_MARKUP_PERCENT", "0")]).await;
    let p = purchase(env.pool(), 10).await;
    let tag = p.to_string();
    env.deliver(
        "2026-03",
        &[part_with(
            &[
                row(day(2026, 3, 1), "1", Some(&tag)),
                row(day(2026, 3, 2), "2", Some(&tag)),
            ],
            true,
            &["line_item_new_column_from_aws"],
        )],
    )
    .await;
    assert_eq!(env.run(today()).await.unwrap(), Outcome::Processed(2));
    assert_eq!(balance(env.pool(), p).await, 10_000_000 - 3_000_000);
    // AWS drops day 2's rows entirely in a restatement: it is credited back.
    env.deliver("2026-03", &[part(&[row(day(2026, 3, 1), "1", Some(&tag))])])
        .await;
    assert_eq!(env.run(today()).await.unwrap(), Outcome::Processed(1));
    assert_eq!(balance(env.pool(), p).await, 10_000_000 - 1_000_000);
}

#[sqlx::test]
async fn a_dry_run_charges_and_records_nothing(pool: PgPool) {
    let mut env = env(pool, &[]).await;
    let p = purchase(env.pool(), 10).await;
    let tag = p.to_string();
    env.deliver("2026-03", &[part(&[row(day(2026, 3, 1), "1", Some(&tag))])])
        .await;
    let options = ImportOptions {
        dry_run: true,
        ..ImportOptions::new(Trigger::Cli)
    };
    let period: BillingPeriod = "2026-03".parse().unwrap();
    let report =
        cost_import::import_period(&env.state().pool, &env.state().config, period, &options)
            .await
            .unwrap();
    assert_eq!(report.run_id, None);
    assert_eq!(report.purchases.len(), 1);
    assert_eq!(report.purchases[0].purchase_id, p);
    assert_eq!(report.purchases[0].delta, UsdMicros(1_360_000));
    assert_eq!(report.total_charged, UsdMicros(1_360_000));
    assert_eq!(report.entries_posted, 0);
    assert!(cost_rows(env.pool(), p).await.is_empty());
    assert_eq!(balance(env.pool(), p).await, 10_000_000);
    assert!(runs(env.pool()).await.is_empty());

    // The real import by hand charges what the dry run showed; a second hand run while the lock is
    // held is refused.
    let options = ImportOptions::new(Trigger::Cli);
    let held = ImportLock::try_acquire(env.pool()).await.unwrap().unwrap();
    let busy =
        cost_import::import_period(&env.state().pool, &env.state().config, period, &options).await;
    assert!(matches!(busy, Err(cost_import::CostImportError::Busy)));
    held.release().await;
    let report =
        cost_import::import_period(&env.state().pool, &env.state().config, period, &options)
            .await
            .unwrap();
    assert_eq!(report.total_charged, UsdMicros(1_360_000));
    assert_eq!(balance(env.pool(), p).await, 10_000_000 - 1_360_000);
}

#[sqlx::test]
async fn no_manifest_is_no_data_and_a_missing_bucket_fails(pool: PgPool) {
    let first = env(pool, &[]).await;
    assert_eq!(first.run(today()).await.unwrap(), Outcome::Processed(0));
    let r = &runs(first.pool()).await[0];
    assert_eq!(r.0, "no_data");

    let other = env(
        first.pool().clone(),
        &[("BILLING_BUCKET_NAME", "no-such-billing-bucket")],
    )
    .await;
    let err = other.run(today()).await.unwrap_err();
    assert!(format!("{err:#}").contains("S3"), "{err:#}");
}

#[sqlx::test]
async fn the_cron_job_runs_the_import(pool: PgPool) {
    // Every second; the test waits (bounded) for the scheduler to fire once.
    let env = env(
        pool,
        &[("JOBS_ENABLED", "true"), ("BILLING_CRON", "* * * * * *")],
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let triggers: Vec<String> =
            sqlx::query_scalar("select trigger from cost_import_run where status <> 'running'")
                .fetch_all(env.pool())
                .await
                .unwrap();
        if !triggers.is_empty() {
            assert!(triggers.iter().all(|t| t == "schedule"), "{triggers:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the scheduled import never ran"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Issue 10 #8: changing `COST_MARKUP_PERCENT` mid-month never re-prices a day already charged:
/// each (purchase, day) keeps the markup it was first charged with, restatements included; new
/// days take the new markup.
#[sqlx::test]
async fn a_markup_change_never_reprices_charged_days(pool: PgPool) {
    let mut env = env(pool, &[("COST_MARKUP_PERCENT", "36")]).await;
    let p = purchase(env.pool(), 100).await;
    let tag = p.to_string();
    let (d5, d6) = (day(2026, 3, 5), day(2026, 3, 6));
    env.deliver("2026-03", &[part(&[row(d5, "1", Some(&tag))])])
        .await;
    assert_eq!(env.run(today()).await.unwrap(), Outcome::Processed(1));
    assert_eq!(balance(env.pool(), p).await, 100_000_000 - 1_360_000);

    // The vendor raises the markup to 50 % (a restart with the new setting).
    let mut config = (*env.state().config).clone();
    config.billing.cost_markup_bps = 5_000;
    let mut repriced = env.state().clone();
    repriced.config = std::sync::Arc::new(config);

    // Day 5 unchanged, day 6 new: only day 6 is charged, at 50 %.
    env.deliver(
        "2026-03",
        &[part(&[row(d5, "1", Some(&tag)), row(d6, "1", Some(&tag))])],
    )
    .await;
    assert_eq!(
        cost_import::run_once_on(&repriced.pool, &repriced.config, today())
            .await
            .unwrap(),
        Outcome::Processed(1)
    );
    assert_eq!(
        balance(env.pool(), p).await,
        100_000_000 - 1_360_000 - 1_500_000
    );
    // AWS restates day 5 to 2.00: the difference is charged at the day's own 36 %.
    env.deliver(
        "2026-03",
        &[part(&[row(d5, "2", Some(&tag)), row(d6, "1", Some(&tag))])],
    )
    .await;
    assert_eq!(
        cost_import::run_once_on(&repriced.pool, &repriced.config, today())
            .await
            .unwrap(),
        Outcome::Processed(1)
    );
    assert_eq!(
        balance(env.pool(), p).await,
        100_000_000 - 2_720_000 - 1_500_000
    );
    let rows = cost_rows(env.pool(), p).await;
    assert_eq!(
        rows.iter().map(|r| (r.0, r.1)).collect::<Vec<_>>(),
        vec![(-1_360_000, d5), (-1_500_000, d6), (-1_360_000, d5)]
    );
    // A repeated run under either markup changes nothing.
    assert_eq!(
        cost_import::run_once_on(&repriced.pool, &repriced.config, today())
            .await
            .unwrap(),
        Outcome::Processed(0)
    );
    assert_eq!(env.run(today()).await.unwrap(), Outcome::Processed(0));
    let markups: Vec<(NaiveDate, Option<i32>)> = sqlx::query_as(
        "select usage_date, markup_bps from cost_charge where purchase_id = $1 order by usage_date",
    )
    .bind(p.0)
    .fetch_all(env.pool())
    .await
    .unwrap();
    assert_eq!(markups, vec![(d5, Some(3_600)), (d6, Some(5_000))]);
}
