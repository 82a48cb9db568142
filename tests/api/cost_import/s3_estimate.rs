//! The hourly S3 usage estimate against moto: access-log objects written in AWS's exact format into
//! the log bucket (several per hour, a malformed line, a log of an unknown bucket), BucketSizeBytes
//! published into moto's CloudWatch with AWS's dimensions, then estimates, limits, and the daily
//! import posting only the difference.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use sqlx::PgPool;
use vendor_server::billing::s3_usage::{Metering, MeteringReport};
use vendor_server::domain::ids::PurchaseId;

use super::{Env, balance, cost_rows, day, env, part, purchase, row};
use crate::moto::put_bucket_size;

const LOGS: &str = "vendor-access-logs";
const BUCKET: &str = "officex-customerpurchaseid-estimate-test";
const OWNER: &str = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be";
const GIB: u64 = 1 << 30;

/// One access log line exactly as AWS writes it (every field of the current format).
#[allow(clippy::too_many_arguments)]
fn log_line(
    bucket: &str,
    at: DateTime<Utc>,
    operation: &str,
    key: &str,
    request: &str,
    status: u16,
    bytes_sent: Option<u64>,
    object_size: Option<u64>,
) -> String {
    let dash = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    let error = if status == 403 { "AccessDenied" } else { "-" };
    format!(
        "{OWNER} {bucket} [{}] 192.0.2.3 {OWNER} 3E57427F3EXAMPLE {operation} {key} \"{request}\" {status} {error} {} {} 70 10 \"-\" \"aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64 prompt/off command/s3.cp\" - s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234= SigV4 TLS_AES_128_GCM_SHA256 AuthHeader {bucket}.s3.us-east-1.amazonaws.com TLSv1.3 - -\n",
        at.format("%d/%b/%Y:%H:%M:%S +0000"),
        dash(bytes_sent),
        dash(object_size),
    )
}

fn at(day: NaiveDate, hour: u32, minute: u32) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_hms_opt(hour, minute, 7).unwrap())
}

/// `access-logs/<bucket>/YYYY-mm-DD-HH-MM-SS-<unique>` as AWS names delivered log objects.
fn log_key(bucket: &str, delivered: DateTime<Utc>, unique: &str) -> String {
    format!(
        "access-logs/{bucket}/{}-{unique}",
        delivered.format("%Y-%m-%d-%H-%M-%S")
    )
}

async fn put_log(env: &Env, key: &str, lines: &[String]) {
    env.s3
        .put_object()
        .bucket(LOGS)
        .key(key)
        .body(lines.concat().into_bytes().into())
        .send()
        .await
        .unwrap();
}

/// The purchase owns `bucket` (as provisioning records it).
async fn own_bucket(pool: &PgPool, id: PurchaseId, bucket: &str) {
    sqlx::query(
        "update purchase set resource_state = jsonb_build_object('bucket', $2::text, 'region', 'us-east-1',
                 'iam_user', $2::text, 'access_key_id', 'AKIAEXAMPLE', 'policy_name', $2::text),
             resource_status = 'ready' where purchase_id = $1",
    )
    .bind(id.0)
    .bind(bucket)
    .execute(pool)
    .await
    .unwrap();
}

async fn metering(env: &Env) -> Metering {
    Metering::from_config(&env.state().config).await.unwrap()
}

async fn estimates(pool: &PgPool, id: PurchaseId) -> Vec<(i64, String)> {
    sqlx::query_as(
        "select amount_micros, reference from ledger_entry
         where purchase_id = $1 and kind = 'usage_estimate' order by entry_id",
    )
    .bind(id.0)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn status(pool: &PgPool, id: PurchaseId) -> (String, Option<String>) {
    sqlx::query_as("select status, limit_hold_reason from purchase where purchase_id = $1")
        .bind(id.0)
        .fetch_one(pool)
        .await
        .unwrap()
}

const TODAY: (i32, u32, u32) = (2026, 3, 20);

/// The day's logs: hour 09 in one object (with a malformed line), hour 10 in two objects, and an
/// object for a bucket that is no purchase's.
async fn deliver_logs(env: &Env) {
    let d = day(TODAY.0, TODAY.1, TODAY.2);
    let get = |minute, bytes| {
        log_line(
            BUCKET,
            at(d, 9, minute),
            "REST.GET.OBJECT",
            "photos/big.bin",
            "GET /photos/big.bin HTTP/1.1",
            200,
            Some(bytes),
            Some(bytes),
        )
    };
    put_log(
        env,
        &log_key(BUCKET, at(d, 10, 5), "0A1B2C3D4E5F6A7B"),
        &[
            get(1, GIB),
            get(2, GIB),
            log_line(
                BUCKET,
                at(d, 9, 3),
                "REST.PUT.OBJECT",
                "photos/big.bin",
                "PUT /photos/big.bin HTTP/1.1",
                200,
                None,
                Some(GIB),
            ),
            log_line(
                BUCKET,
                at(d, 9, 4),
                "REST.HEAD.OBJECT",
                "photos/big.bin",
                "HEAD /photos/big.bin HTTP/1.1",
                200,
                None,
                Some(GIB),
            ),
            log_line(
                BUCKET,
                at(d, 9, 5),
                "REST.DELETE.OBJECT",
                "photos/old.bin",
                "DELETE /photos/old.bin HTTP/1.1",
                204,
                None,
                None,
            ),
            "this is not an access log line\n".to_owned(),
        ],
    )
    .await;
    put_log(
        env,
        &log_key(BUCKET, at(d, 11, 2), "1B2C3D4E5F6A7B8C"),
        &[log_line(
            BUCKET,
            at(d, 10, 12),
            "REST.GET.OBJECT",
            "video/half.bin",
            "GET /video/half.bin HTTP/1.1",
            200,
            Some(GIB / 2),
            Some(GIB / 2),
        )],
    )
    .await;
    put_log(
        env,
        &log_key(BUCKET, at(d, 11, 9), "2C3D4E5F6A7B8C9D"),
        &[
            log_line(
                BUCKET,
                at(d, 10, 40),
                "REST.GET.BUCKET",
                "-",
                "GET /?list-type=2&prefix=photos%2F HTTP/1.1",
                200,
                Some(2000),
                None,
            ),
            log_line(
                BUCKET,
                at(d, 10, 41),
                "REST.GET.OBJECT",
                "secret.bin",
                "GET /secret.bin HTTP/1.1",
                403,
                Some(243),
                None,
            ),
        ],
    )
    .await;
    put_log(
        env,
        &log_key("some-other-bucket", at(d, 11, 0), "3D4E5F6A7B8C9D0E"),
        &[log_line(
            "some-other-bucket",
            at(d, 10, 0),
            "REST.GET.OBJECT",
            "x",
            "GET /x HTTP/1.1",
            200,
            Some(10 * GIB),
            Some(10 * GIB),
        )],
    )
    .await;
}

/// The hand computation of the day (AWS us-east-1 prices, March has 31 days, 36 % markup):
/// egress 2.5 GiB + 2000 B (the LIST's response) at $0.09/GB:
///   0.225 + 2000 × 0.09 / 2³⁰ = 0.225 + 0.000000167638063430 (10⁻¹⁸ remainder dropped)
/// GET-class 4 (2 GETs, HEAD, GET) × $0.0004/1000 = 0.0000016
/// PUT-class 2 (PUT, LIST) × $0.005/1000 = 0.00001 (DELETE free, 403 free, unknown bucket not ours)
/// storage 31 GiB × $0.023 / 31 days = 0.023
/// total 0.248011767638063430 × 1.36 = 0.337296003987766264… → 337 296 micro-USD (half up).
const DAY_ESTIMATE: i64 = 337_296;

async fn setup(pool: PgPool, extra: &[(&str, &str)]) -> (Env, PurchaseId) {
    let mut vars = vec![("S3_ACCESS_LOG_BUCKET", LOGS)];
    vars.extend_from_slice(extra);
    let env = env(pool, &vars).await;
    env.s3.create_bucket().bucket(LOGS).send().await.unwrap();
    let p = purchase(env.pool(), 100).await;
    own_bucket(env.pool(), p, BUCKET).await;
    deliver_logs(&env).await;
    let cloudwatch = env.moto.cloudwatch("us-east-1", "testing", "testing");
    let d = day(TODAY.0, TODAY.1, TODAY.2);
    put_bucket_size(&cloudwatch, BUCKET, "StandardStorage", d, 30 * GIB).await;
    put_bucket_size(&cloudwatch, BUCKET, "StandardIAStorage", d, GIB).await;
    put_bucket_size(
        &cloudwatch,
        "some-other-bucket",
        "StandardStorage",
        d,
        500 * GIB,
    )
    .await;
    (env, p)
}

fn now() -> DateTime<Utc> {
    at(day(TODAY.0, TODAY.1, TODAY.2), 15, 0)
}

#[sqlx::test]
async fn estimates_match_a_hand_computation_and_running_twice_charges_nothing_more(pool: PgPool) {
    let (env, p) = setup(pool, &[]).await;
    let m = metering(&env).await;
    let r = m.run_once(env.pool(), now()).await.unwrap();
    assert_eq!(
        (
            r.log_objects,
            r.lines,
            r.malformed_lines,
            r.unknown_bucket_lines
        ),
        (4, 10, 1, 1),
        "{r:?}"
    );
    assert_eq!(
        r.storage_points, 1,
        "two storage types summed into one day: {r:?}"
    );
    assert_eq!((r.entries_posted, r.charged.0), (1, DAY_ESTIMATE), "{r:?}");
    assert_eq!(
        estimates(env.pool(), p).await,
        vec![(-DAY_ESTIMATE, "s3est:2026-03-20:1".to_owned())]
    );
    assert_eq!(balance(env.pool(), p).await, 100_000_000 - DAY_ESTIMATE);
    let hours: Vec<(DateTime<Utc>, i64, i64, i64)> = sqlx::query_as(
        "select hour, egress_bytes, get_requests, put_requests from s3_usage_hour
         where purchase_id = $1 order by hour",
    )
    .bind(p.0)
    .fetch_all(env.pool())
    .await
    .unwrap();
    let d = day(TODAY.0, TODAY.1, TODAY.2);
    assert_eq!(
        hours,
        vec![
            (
                at(d, 9, 0) - chrono::Duration::seconds(7),
                2 * GIB as i64,
                3,
                1
            ),
            (
                at(d, 10, 0) - chrono::Duration::seconds(7),
                (GIB / 2) as i64 + 2000,
                1,
                1
            ),
        ]
    );

    // Again: every object was read once, nothing more is charged.
    let again = m.run_once(env.pool(), now()).await.unwrap();
    assert_eq!(
        again,
        MeteringReport::default(),
        "a second pass finds nothing new"
    );
    assert_eq!(estimates(env.pool(), p).await.len(), 1);
    assert_eq!(balance(env.pool(), p).await, 100_000_000 - DAY_ESTIMATE);

    // A late object for hour 10 adds only its own share: one more GET of 1 GiB = 0.09 × 1.36.
    put_log(
        &env,
        &log_key(BUCKET, at(d, 12, 30), "4E5F6A7B8C9D0E1F"),
        &[log_line(
            BUCKET,
            at(d, 10, 59),
            "REST.GET.OBJECT",
            "photos/big.bin",
            "GET /photos/big.bin HTTP/1.1",
            200,
            Some(GIB),
            Some(GIB),
        )],
    )
    .await;
    let late = m.run_once(env.pool(), now()).await.unwrap();
    // 0.09 + 0.0000004 (one GET) = 0.0900004 × 1.36 = 0.122400544; the day's total rounds once:
    // (0.248011767638063430 + 0.0900004) × 1.36 = 0.459696547987766… → 459 697.
    assert_eq!(late.charged.0, 459_697 - DAY_ESTIMATE, "{late:?}");
    assert_eq!(
        estimates(env.pool(), p).await[1],
        (-(459_697 - DAY_ESTIMATE), "s3est:2026-03-20:2".to_owned())
    );
}

#[sqlx::test]
async fn an_egress_limit_suspends_and_lifts_the_next_day(pool: PgPool) {
    let (env, p) = setup(pool, &[]).await;
    sqlx::query(
        "update offer set settings = settings || '{\"max_egress_gb_per_day\": \"2\"}'::jsonb
         where offer_id = 'aws-s3-storage-giftcard'",
    )
    .execute(env.pool())
    .await
    .unwrap();
    let m = metering(&env).await;
    let r = m.run_once(env.pool(), now()).await.unwrap();
    assert_eq!(r.limit_suspended, 1, "{r:?}");
    assert_eq!(
        status(env.pool(), p).await,
        ("suspended".to_owned(), Some("egress".to_owned()))
    );
    // A deposit does not lift a limit hold.
    let mut tx = env.pool().begin().await.unwrap();
    vendor_server::billing::ledger::post(
        &mut tx,
        p,
        &vendor_server::billing::ledger::NewEntry::new(
            vendor_server::billing::ledger::EntryKind::Deposit,
            vendor_server::domain::money::UsdMicros(5_000_000),
        )
        .reference("deposit:limit-test"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(status(env.pool(), p).await.0, "suspended");
    let event: String = sqlx::query_scalar(
        "select payload::text from outbox where payload ->> 'cause' = 'limit' limit 1",
    )
    .fetch_one(env.pool())
    .await
    .unwrap();
    assert!(event.contains("suspended"), "{event}");

    // The customer is told why and what to do.
    let s = vendor_server::billing::s3_usage::usage_view(
        env.pool(),
        p,
        day(TODAY.0, TODAY.1, TODAY.2),
        7,
    )
    .await
    .unwrap();
    assert_eq!(s.limit.as_deref(), Some("egress"));
    assert!(s.limit_message.unwrap().contains("tomorrow"));
    assert_eq!(s.today_estimated_usd.0, DAY_ESTIMATE);

    // Still over later the same day; lifted the next day.
    let r = m
        .run_once(env.pool(), now() + chrono::Duration::hours(2))
        .await
        .unwrap();
    assert_eq!((r.limit_suspended, r.limit_lifted), (0, 0), "{r:?}");
    let next_day = at(day(TODAY.0, TODAY.1, TODAY.2 + 1), 0, 30);
    let r = m.run_once(env.pool(), next_day).await.unwrap();
    assert_eq!(r.limit_lifted, 1, "{r:?}");
    assert_eq!(status(env.pool(), p).await, ("active".to_owned(), None));
}

#[sqlx::test]
async fn the_daily_import_posts_only_the_difference_from_the_estimates(pool: PgPool) {
    let (mut env, p) = setup(pool, &[]).await;
    let m = metering(&env).await;
    m.run_once(env.pool(), now()).await.unwrap();
    assert_eq!(balance(env.pool(), p).await, 100_000_000 - DAY_ESTIMATE);
    let tag = p.to_string();
    let d = day(TODAY.0, TODAY.1, TODAY.2);

    // AWS's figure is higher: 0.5 × 1.36 = 0.68; the import posts 0.68 − 0.337296.
    env.deliver("2026-03", &[part(&[row(d, "0.5", Some(&tag))])])
        .await;
    env.run(day(2026, 3, 21)).await.unwrap();
    assert_eq!(
        cost_rows(env.pool(), p)
            .await
            .iter()
            .map(|r| r.0)
            .collect::<Vec<_>>(),
        vec![-(680_000 - DAY_ESTIMATE)]
    );
    assert_eq!(balance(env.pool(), p).await, 100_000_000 - 680_000);
    // Running the import again changes nothing; nor does the estimate (the AWS figure replaced it).
    env.run(day(2026, 3, 21)).await.unwrap();
    let r = m.run_once(env.pool(), now()).await.unwrap();
    assert_eq!(r.entries_posted, 0, "{r:?}");
    assert_eq!(balance(env.pool(), p).await, 100_000_000 - 680_000);

    // Restated lower: 0.2 × 1.36 = 0.272: a credit of 0.408.
    env.deliver("2026-03", &[part(&[row(d, "0.2", Some(&tag))])])
        .await;
    env.run(day(2026, 3, 22)).await.unwrap();
    assert_eq!(
        cost_rows(env.pool(), p)
            .await
            .iter()
            .map(|r| r.0)
            .collect::<Vec<_>>(),
        vec![-(680_000 - DAY_ESTIMATE), 408_000]
    );
    assert_eq!(balance(env.pool(), p).await, 100_000_000 - 272_000);

    // The console sees the estimate beside the imported figure.
    let s = vendor_server::billing::s3_usage::usage_view(env.pool(), p, d, 7)
        .await
        .unwrap();
    let day20 = &s.days[0];
    assert_eq!(day20.day, "2026-03-20");
    assert_eq!(day20.estimated_usd.0, DAY_ESTIMATE);
    assert_eq!(day20.imported_usd.map(|u| u.0), Some(272_000));
}

#[sqlx::test]
async fn a_deleted_purchases_log_prefix_is_removed_after_its_final_charge(pool: PgPool) {
    let (env, p) = setup(pool, &[]).await;
    sqlx::query(
        "update purchase set status = 'deleted', resource_status = 'deleted',
             status_changed_at = $2 where purchase_id = $1",
    )
    .bind(p.0)
    .bind(now() - chrono::Duration::hours(49))
    .execute(env.pool())
    .await
    .unwrap();
    let m = metering(&env).await;
    let r = m.run_once(env.pool(), now()).await.unwrap();
    // The remaining logs were charged first, then the prefix removed.
    assert_eq!(r.log_objects, 4, "{r:?}");
    assert_eq!(r.log_prefixes_purged, 1, "{r:?}");
    let left = env
        .s3
        .list_objects_v2()
        .bucket(LOGS)
        .prefix(format!("access-logs/{BUCKET}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(left.key_count(), Some(0));
    let other = env
        .s3
        .list_objects_v2()
        .bucket(LOGS)
        .prefix("access-logs/some-other-bucket/")
        .send()
        .await
        .unwrap();
    assert_eq!(other.key_count(), Some(1), "other prefixes stay");
    let again = m.run_once(env.pool(), now()).await.unwrap();
    assert_eq!(again.log_prefixes_purged, 0);
}

#[sqlx::test]
async fn buckets_made_before_are_hardened_at_the_next_start(pool: PgPool) {
    use vendor_server::jobs::Outcome;
    use vendor_server::providers::upgrade;
    let env = env(pool, &[("S3_ACCESS_LOG_BUCKET", LOGS)]).await;
    crate::s3::create_log_bucket(&env.s3, LOGS).await;
    env.s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    let p = purchase(env.pool(), 10).await;
    own_bucket(env.pool(), p, BUCKET).await;
    let providers = &env.state().providers;
    let out = upgrade::run_once(env.pool(), providers, Some(LOGS))
        .await
        .unwrap();
    assert!(matches!(out, Outcome::Processed(1)), "{out:?}");
    crate::s3::assert_hardened(&env.s3, BUCKET, Some(LOGS)).await;
    let out = upgrade::run_once(env.pool(), providers, Some(LOGS))
        .await
        .unwrap();
    assert!(matches!(out, Outcome::Idle), "done once: {out:?}");
}
