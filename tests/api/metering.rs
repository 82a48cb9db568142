//! meter-usage: malformed bodies, idempotent retries and 500 concurrent debits on one purchase.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::fixtures::{Bought, balance, buy, outbox_rows};
use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};

const OFFER: &str = "gemini-api-gateway";

fn path(a: &Bought) -> String {
    format!("/v1/purchase/{}/meter-usage", a.id)
}

async fn meter(
    app: &TestApp,
    a: &Bought,
    key: Option<&str>,
    body: &Value,
) -> (StatusCode, Value, bool) {
    let mut request = app
        .client
        .post(app.url(&path(a)))
        .bearer_auth(&a.vendor_key)
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        replayed,
    )
}

async fn usage_rows(pool: &PgPool, a: &Bought) -> i64 {
    sqlx::query_scalar::<_, i64>(
        "select count(*) from ledger_entry where purchase_id = $1 and kind = 'usage'",
    )
    .bind(a.id.0)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test]
async fn records_usage_and_answers_the_reference_shape(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let a = buy(&pool, OFFER, 10_000_000, None).await;
    let body = json!({
        "purchase_id": a.id.to_string(),
        "timestamp": "2026-03-02T10:15:00Z",
        "usage_amount": 1500,
        "usage_unit": "tokens",
        "billed_amount": "0.123456",
        "description": "gemini-2.5-flash",
        "metadata": {"model": "gemini-2.5-flash"}
    });
    let (status, answer, replayed) = meter(&app, &a, None, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(!replayed);
    assert_eq!(answer["message"], "Usage recorded and balance updated");
    assert_eq!(answer["balance_usd"], "9.876544");
    assert_eq!(answer["status"], "active");
    let record = &answer["record"];
    assert!(record["id"].as_i64().is_some());
    assert_eq!(record["purchase_id"], a.id.to_string());
    assert_eq!(record["timestamp"], "2026-03-02T10:15:00.000000Z");
    assert_eq!(record["usage_amount"], "1500.000000");
    assert_eq!(record["usage_unit"], "tokens");
    assert_eq!(record["billed_amount"], "0.123456");
    assert_eq!(record["description"], "gemini-2.5-flash");
    assert_eq!(record["metadata"], json!({"model": "gemini-2.5-flash"}));
    // No timestamp: now. The balance may go negative: usage always records.
    let (status, answer, _) = meter(
        &app,
        &a,
        None,
        &json!({"usage_amount": "1", "usage_unit": "GB", "billed_amount": 20}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["balance_usd"], "-10.123456");
    assert_eq!(answer["status"], "suspended");
    let stamped =
        chrono::DateTime::parse_from_rfc3339(answer["record"]["timestamp"].as_str().unwrap())
            .unwrap();
    assert!((chrono::Utc::now() - stamped.to_utc()).num_seconds().abs() < 60);
    assert_eq!(balance(&pool, a.id).await, -10_123_456);
}

#[sqlx::test]
async fn malformed_bodies_are_400_and_debit_nothing(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let a = buy(&pool, OFFER, 10_000_000, None).await;
    let other = buy(&pool, OFFER, 10_000_000, None).await;
    let ok = json!({"usage_amount": "1", "usage_unit": "tokens", "billed_amount": "0.5"});
    for (field, value, code) in [
        ("billed_amount", json!("-0.5"), "invalid_amount"),
        ("billed_amount", json!(-1), "invalid_amount"),
        ("billed_amount", json!("NaN"), "invalid_amount"),
        ("billed_amount", json!("Infinity"), "invalid_amount"),
        ("billed_amount", json!("0.0000001"), "invalid_amount"),
        ("billed_amount", json!(0.1234567), "invalid_amount"),
        ("billed_amount", json!("1e9999"), "invalid_amount"),
        (
            "billed_amount",
            json!("123456789012345678901234567890"),
            "invalid_amount",
        ),
        (
            "billed_amount",
            json!(12345678901234567890_u64),
            "invalid_amount",
        ),
        ("billed_amount", json!("5000000000"), "invalid_amount"),
        ("billed_amount", json!({"amount": 1}), "invalid_amount"),
        ("usage_amount", json!("-3"), "invalid_amount"),
        ("usage_amount", json!("1.2.3"), "invalid_amount"),
        ("usage_unit", json!(""), "missing_field"),
        ("usage_unit", json!(7), "invalid_body"),
        (
            "purchase_id",
            json!(other.id.to_string()),
            "purchase_mismatch",
        ),
        ("timestamp", json!("last tuesday"), "invalid_timestamp"),
        ("metadata", json!("text"), "invalid_body"),
    ] {
        let mut body = ok.clone();
        body[field] = value.clone();
        let (status, answer, _) = meter(&app, &a, None, &body).await;
        assert_error(&(status, answer), StatusCode::BAD_REQUEST, code);
    }
    for missing in ["usage_amount", "usage_unit", "billed_amount"] {
        let mut body = ok.clone();
        body.as_object_mut().unwrap().remove(missing);
        let (status, answer, _) = meter(&app, &a, None, &body).await;
        assert_error(&(status, answer), StatusCode::BAD_REQUEST, "missing_field");
    }
    let got = app
        .post_raw(
            &path(&a),
            "application/json",
            b"{\"billed_amount\": NaN}".to_vec(),
        )
        .await;
    assert_eq!(got.0, StatusCode::UNAUTHORIZED, "no key first");
    let response = app
        .client
        .post(app.url(&path(&a)))
        .bearer_auth(&a.vendor_key)
        .header("content-type", "application/json")
        .body("{\"billed_amount\": NaN}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        response.json::<Value>().await.unwrap()["code"],
        "malformed_json"
    );
    assert_eq!(usage_rows(&pool, &a).await, 0);
    assert_eq!(balance(&pool, a.id).await, 10_000_000);
}

#[sqlx::test]
async fn idempotent_retries_debit_once(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let a = buy(&pool, OFFER, 10_000_000, None).await;
    let b = buy(&pool, OFFER, 10_000_000, None).await;
    let body = json!({"usage_amount": "2", "usage_unit": "tokens", "billed_amount": "1.25"});
    let first = meter(&app, &a, Some("req-1"), &body).await;
    assert_eq!(first.0, StatusCode::OK);
    assert!(!first.2);
    // Another debit in between: the retry still answers the first answer.
    meter(&app, &a, Some("req-2"), &body).await;
    let retry = meter(&app, &a, Some("req-1"), &body).await;
    assert_eq!(retry.0, StatusCode::OK);
    assert!(retry.2, "replay header");
    assert_eq!(retry.1, first.1);
    // Amounts are compared as numbers: 1.25 and "1.250000" are the same request.
    let same = json!({"usage_amount": 2, "usage_unit": "tokens", "billed_amount": 1.25});
    assert_eq!(meter(&app, &a, Some("req-1"), &same).await.1, first.1);
    // The body field is the same key as the header.
    let mut with_field = body.clone();
    with_field["idempotency_key"] = json!("req-1");
    assert_eq!(meter(&app, &a, None, &with_field).await.1, first.1);
    assert_eq!(usage_rows(&pool, &a).await, 2);
    assert_eq!(balance(&pool, a.id).await, 10_000_000 - 2 * 1_250_000);

    // Same key, different body: 409, nothing debited.
    let changed = json!({"usage_amount": "2", "usage_unit": "tokens", "billed_amount": "1.26"});
    let conflict = meter(&app, &a, Some("req-1"), &changed).await;
    assert_error(
        &(conflict.0, conflict.1),
        StatusCode::CONFLICT,
        "idempotency_key_reused",
    );
    // Header and body keys that differ: 400.
    let mut mismatched = body.clone();
    mismatched["idempotency_key"] = json!("other");
    let got = meter(&app, &a, Some("req-9"), &mismatched).await;
    assert_error(
        &(got.0, got.1),
        StatusCode::BAD_REQUEST,
        "idempotency_key_mismatch",
    );
    let got = meter(&app, &a, Some(&"k".repeat(300)), &body).await;
    assert_error(
        &(got.0, got.1),
        StatusCode::BAD_REQUEST,
        "invalid_idempotency_key",
    );
    // Keys are scoped to the purchase.
    let on_b = meter(&app, &b, Some("req-1"), &body).await;
    assert_eq!(on_b.0, StatusCode::OK);
    assert!(!on_b.2);
    assert_eq!(usage_rows(&pool, &a).await, 2);
    assert_eq!(balance(&pool, b.id).await, 10_000_000 - 1_250_000);
    // Kept 30 days, then the key may be used again.
    sqlx::query(
        "update meter_idempotency set created_at = now() - interval '31 days' where key = 'req-2'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let again = meter(&app, &a, Some("req-2"), &changed).await;
    assert_eq!(again.0, StatusCode::OK);
    assert!(!again.2);
    assert_eq!(usage_rows(&pool, &a).await, 3);
}

/// 500 parallel calls (plus 100 concurrent retries of some of them) on one purchase, crossing
/// low → critical → suspended: exact balance, ledger = balance, each crossing announced once per
/// channel.
#[sqlx::test]
async fn concurrent_debits_are_exact_and_each_crossing_notified_once(pool: PgPool) {
    // 600 callers from one address: above the per-address connection cap's default (64), which an
    // AI server this busy raises (or lists its proxy in TRUSTED_PROXIES).
    let app = spawn_app_with(pool.clone(), &[("MAX_CONNECTIONS_PER_IP", "1024")]).await;
    // 10 USD: low 2, critical 1, termination 0.10.
    let a = buy(&pool, OFFER, 10_000_000, Some("customer@example.com")).await;
    let body = json!({"usage_amount": "1", "usage_unit": "tokens", "billed_amount": "0.02"});
    let keys: Vec<String> = (0..500)
        .map(|i| format!("k-{i}"))
        .chain((0..100).map(|i| format!("k-{}", i * 5)))
        .collect();
    let tasks: Vec<_> = keys
        .into_iter()
        .map(|key| {
            let client = app.client.clone();
            let url = app.url(&path(&a));
            let vendor_key = a.vendor_key.clone();
            let body = body.clone();
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .bearer_auth(vendor_key)
                    .header("Idempotency-Key", &key)
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let answer: Value = response.json().await.unwrap();
                (key, status, answer)
            })
        })
        .collect();
    let mut ids_by_key = std::collections::HashMap::new();
    let mut record_ids = HashSet::new();
    for task in tasks {
        let (key, status, answer) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{answer}");
        let id = answer["record"]["id"].as_i64().unwrap();
        if let Some(previous) = ids_by_key.insert(key, id) {
            assert_eq!(previous, id, "a retry answers the first record");
        }
        record_ids.insert(id);
    }
    assert_eq!(record_ids.len(), 500);
    assert_eq!(usage_rows(&pool, &a).await, 500);
    assert_eq!(balance(&pool, a.id).await, 0);
    let status: String = sqlx::query_scalar("select status from purchase where purchase_id = $1")
        .bind(a.id.0)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(status, "suspended");
    // Balances in the ledger are a strictly decreasing 10.00 → 0.00 sequence (serial order).
    let afters: Vec<i64> = sqlx::query_scalar(
        "select balance_after_micros from ledger_entry where purchase_id = $1 and kind = 'usage' order by entry_id",
    )
    .bind(a.id.0)
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected: Vec<i64> = (1..=500).map(|i| 10_000_000 - i * 20_000).collect();
    assert_eq!(afters, expected);

    let webhooks = outbox_rows(&pool, a.id, "webhook", "purchase.status_changed").await;
    let crossings: Vec<(String, String)> = webhooks
        .iter()
        .map(|d| {
            (
                d["previous_status"].as_str().unwrap().to_owned(),
                d["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        crossings,
        vec![
            ("provisioning".into(), "active".into()),
            ("active".into(), "low".into()),
            ("low".into(), "critical".into()),
            ("critical".into(), "suspended".into()),
        ]
    );
    assert_eq!(webhooks[1]["balance_usd"], "2.000000");
    assert_eq!(webhooks[2]["balance_usd"], "1.000000");
    assert_eq!(webhooks[3]["balance_usd"], "0.100000");
    assert_eq!(
        outbox_rows(&pool, a.id, "email", "purchase.status_changed")
            .await
            .len(),
        4
    );
    let officex = outbox_rows(&pool, a.id, "officex", "purchase.status_changed").await;
    assert_eq!(officex.len(), 4);
    assert!(officex.iter().all(|p| *p == json!({})));
}

/// Issue 11 #5 / issue 10 #15: NUL characters and out-of-range timestamps are 400s, never 500s,
/// and debit nothing.
#[sqlx::test]
async fn nul_and_out_of_range_timestamps_are_400(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let a = buy(&pool, OFFER, 10_000_000, None).await;
    let ok = json!({"usage_amount": "1", "usage_unit": "tokens", "billed_amount": "0.5"});
    for (field, value, code) in [
        ("description", json!("gemini\u{0}flash"), "invalid_text"),
        ("usage_unit", json!("tok\u{0}ens"), "invalid_text"),
        ("metadata", json!({"model": "a\u{0}"}), "invalid_text"),
        ("metadata", json!({"k\u{0}": 1}), "invalid_text"),
        (
            "metadata",
            json!({"deep": [{"x": ["\u{0}"]}]}),
            "invalid_text",
        ),
        ("idempotency_key", json!("k\u{0}"), "invalid_text"),
        (
            "timestamp",
            json!(-210_866_803_200_001_i64),
            "invalid_timestamp",
        ),
        ("timestamp", json!(-1), "invalid_timestamp"),
        ("timestamp", json!(946_684_799_999_i64), "invalid_timestamp"),
        (
            "timestamp",
            json!(8_210_266_876_799_999_i64),
            "invalid_timestamp",
        ),
        (
            "timestamp",
            json!("1999-12-31T23:59:59Z"),
            "invalid_timestamp",
        ),
        (
            "timestamp",
            json!("2999-01-01T00:00:00Z"),
            "invalid_timestamp",
        ),
        (
            "timestamp",
            json!("-4713-11-24T00:00:00Z"),
            "invalid_timestamp",
        ),
    ] {
        let mut body = ok.clone();
        body[field] = value.clone();
        let (status, answer, _) = meter(&app, &a, None, &body).await;
        assert_error(&(status, answer), StatusCode::BAD_REQUEST, code);
    }
    // The edges of the window are accepted.
    for at in [
        json!("2000-01-01T00:00:00Z"),
        json!(chrono::Utc::now().timestamp_millis() + 3_600_000),
    ] {
        let mut body = ok.clone();
        body["timestamp"] = at.clone();
        let (status, answer, _) = meter(&app, &a, None, &body).await;
        assert_eq!(status, StatusCode::OK, "{at}: {answer}");
    }
    assert_eq!(usage_rows(&pool, &a).await, 2);
    assert_eq!(balance(&pool, a.id).await, 9_000_000);
}

/// A bad record is refused before it joins a group-commit batch: it gets its own 4xx at once
/// and the records batched around it commit together (no one-by-one retry of the batch).
#[sqlx::test]
async fn a_bad_record_never_reaches_a_batch(pool: PgPool) {
    use vendor_server::billing::BillingError;
    use vendor_server::billing::meter::UsageRecord;
    use vendor_server::domain::money::UsdMicros;

    let app = spawn_app(pool.clone()).await;
    let a = buy(&pool, OFFER, 10_000_000, None).await;
    let good = UsageRecord {
        purchase_id: a.id,
        timestamp: None,
        usage_amount: UsdMicros(1_000_000),
        usage_unit: "tokens".into(),
        billed_amount: UsdMicros(1_000),
        description: None,
        metadata: json!({}),
    };
    let bad = [
        UsageRecord {
            description: Some("nul\u{0}".into()),
            ..good.clone()
        },
        UsageRecord {
            usage_unit: "\u{0}".into(),
            ..good.clone()
        },
        UsageRecord {
            metadata: json!({"a": "\u{0}"}),
            ..good.clone()
        },
        UsageRecord {
            timestamp: chrono::DateTime::from_timestamp_millis(-210_866_803_200_000),
            ..good.clone()
        },
    ];
    let meter = app.state.meter.clone();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let meter = meter.clone();
        let token = a.vendor_key.clone();
        let record = if i % 10 == 5 {
            bad[i / 10].clone()
        } else {
            good.clone()
        };
        tasks.push(tokio::spawn(async move {
            (i % 10 == 5, meter.record(record, None, token).await)
        }));
    }
    for task in tasks {
        match task.await.unwrap() {
            (true, Err(BillingError::Invalid(_))) | (false, Ok(_)) => {}
            (bad, other) => panic!("bad={bad}: {:?}", other.map(|m| m.body)),
        }
    }
    assert_eq!(usage_rows(&pool, &a).await, 36);
    assert_eq!(balance(&pool, a.id).await, 10_000_000 - 36 * 1_000);
}

/// SPEC §9: meter-usage on a deleted purchase is 409 `purchase_deleted` and moves nothing; a retry
/// of a record made before the deletion still replays its first answer.
#[sqlx::test]
async fn metering_a_deleted_purchase_is_409_and_moves_nothing(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let a = buy(&pool, OFFER, 10_000_000, None).await;
    let body = json!({"usage_amount": "1", "usage_unit": "tokens", "billed_amount": "1"});
    let first = meter(&app, &a, Some("before"), &body).await;
    assert_eq!(first.0, StatusCode::OK, "{}", first.1);
    sqlx::query("update purchase set status = 'deleted' where purchase_id = $1")
        .bind(a.id.0)
        .execute(&pool)
        .await
        .unwrap();
    let before = balance(&pool, a.id).await;
    let got = meter(&app, &a, Some("after"), &body).await;
    assert_error(&(got.0, got.1), StatusCode::CONFLICT, "purchase_deleted");
    let got = meter(&app, &a, None, &body).await;
    assert_error(&(got.0, got.1), StatusCode::CONFLICT, "purchase_deleted");
    assert_eq!(balance(&pool, a.id).await, before);
    assert_eq!(usage_rows(&pool, &a).await, 1);
    let retry = meter(&app, &a, Some("before"), &body).await;
    assert_eq!((retry.0, retry.2), (StatusCode::OK, true), "{}", retry.1);
}

/// The billing token is checked in the meter's batch transaction (one query per batch, not two per
/// request): in one batch, records under a revoked or unknown token and records for an unknown
/// purchase are refused alike and move nothing, while the live token's records of the same batch
/// are posted.
#[sqlx::test]
async fn dead_tokens_and_unknown_purchases_in_a_batch_are_refused_alike_and_move_nothing(
    pool: PgPool,
) {
    use vendor_server::billing::BillingError;
    use vendor_server::billing::meter::UsageRecord;
    use vendor_server::billing::tokens;
    use vendor_server::domain::ids::PurchaseId;
    use vendor_server::domain::money::UsdMicros;
    let app = spawn_app(pool.clone()).await;
    let a = buy(&pool, OFFER, 10_000_000, None).await;
    let (revoked, secret) = tokens::create(&pool, "old").await.unwrap();
    let revoked_key = vendor_server::billing::keys::reveal(&secret).to_owned();
    tokens::revoke(&pool, revoked.id).await.unwrap();
    let record = |purchase: PurchaseId| UsageRecord {
        purchase_id: purchase,
        timestamp: None,
        usage_amount: UsdMicros(1_000_000),
        usage_unit: "tokens".into(),
        billed_amount: UsdMicros(1_000),
        description: None,
        metadata: json!({}),
    };
    let meter = app.state.meter.clone();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let meter = meter.clone();
        let (purchase, token, ok) = match i % 4 {
            0 => (a.id, revoked_key.clone(), false),
            1 => (a.id, "vst_not-a-token".to_owned(), false),
            2 => (PurchaseId::new(), a.vendor_key.clone(), false),
            _ => (a.id, a.vendor_key.clone(), true),
        };
        let record = record(purchase);
        tasks.push(tokio::spawn(async move {
            (ok, meter.record(record, Some(format!("k{i}")), token).await)
        }));
    }
    for task in tasks {
        match task.await.unwrap() {
            (true, Ok(_)) | (false, Err(BillingError::Unauthorized)) => {}
            (ok, other) => panic!("ok={ok}: {:?}", other.map(|m| m.body)),
        }
    }
    assert_eq!(usage_rows(&pool, &a).await, 10);
    assert_eq!(balance(&pool, a.id).await, 10_000_000 - 10 * 1_000);
    let keys: i64 = sqlx::query_scalar("select count(*) from meter_idempotency")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(keys, 10, "no answer kept for a refused record");
}

fn usage(
    purchase: vendor_server::domain::ids::PurchaseId,
    billed: i64,
) -> vendor_server::billing::meter::UsageRecord {
    vendor_server::billing::meter::UsageRecord {
        purchase_id: purchase,
        timestamp: None,
        usage_amount: vendor_server::domain::money::UsdMicros(1_000_000),
        usage_unit: "tokens".into(),
        billed_amount: vendor_server::domain::money::UsdMicros(billed),
        description: None,
        metadata: json!({}),
    }
}

/// Waits until a connection of this test's database waits for a lock (the meter's batch on a held
/// purchase row).
async fn wait_for_a_lock_wait(pool: &PgPool) {
    for _ in 0..1_000 {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity
             where datname = current_database() and wait_event_type = 'Lock'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the meter never waited for the purchase lock");
}

/// A key answered by another server while the batch waited for the purchase lock: the batch reads
/// the keys already answered after the lock is granted (a lookup folded into the locking statement
/// would run on a snapshot taken before that commit and debit twice), so the record is replayed,
/// never debited twice.
#[sqlx::test]
async fn a_key_committed_by_another_server_while_the_batch_waits_is_replayed(pool: PgPool) {
    use vendor_server::billing::ledger::{self, EntryKind, NewEntry};
    use vendor_server::domain::money::UsdMicros;
    let app = spawn_app(pool.clone()).await;
    let a = buy(&pool, OFFER, 10_000_000, None).await;
    let record = usage(a.id, 1_000);
    // The other server holds the purchase, debits the record and keeps its answer under "k".
    let mut other = pool.begin().await.unwrap();
    let posted = ledger::post(
        &mut other,
        a.id,
        &NewEntry::new(EntryKind::Usage, UsdMicros(-1_000)),
    )
    .await
    .unwrap();
    let first = json!({"record": {"id": posted.entry_id}, "answered_by": "the other server"});
    sqlx::query(
        "insert into meter_idempotency (purchase_id, key, request_hash, response) values ($1, 'k', $2, $3)",
    )
    .bind(a.id.0)
    .bind(record.request_hash())
    .bind(&first)
    .execute(&mut *other)
    .await
    .unwrap();
    let meter = app.state.meter.clone();
    let token = a.vendor_key.clone();
    let call = tokio::spawn(async move { meter.record(record, Some("k".into()), token).await });
    wait_for_a_lock_wait(&pool).await;
    other.commit().await.unwrap();
    let answer = call.await.unwrap().unwrap();
    assert!(answer.replayed, "{}", answer.body);
    assert_eq!(answer.body, first);
    assert_eq!(usage_rows(&pool, &a).await, 1);
    assert_eq!(balance(&pool, a.id).await, 10_000_000 - 1_000);
}

/// One batch (the worker waits on a held purchase while the records queue, then takes them all
/// in one transaction): two purchases, a key sent twice with the same body (one debit, the second
/// replayed), the same key with another body (409), the same key on the other purchase (its own
/// debit) and a crossing (announced once).
#[sqlx::test]
async fn one_batch_mixing_purchases_duplicate_keys_and_a_crossing(pool: PgPool) {
    use vendor_server::billing::BillingError;
    use vendor_server::billing::meter::WORKERS;
    let app = spawn_app(pool.clone()).await;
    // 10 USD each: low at 2, critical at 1. Two purchases of the same worker.
    let a = buy(&pool, OFFER, 10_000_000, None).await;
    let shard = |p: &Bought| p.id.0.as_u128() % WORKERS as u128;
    let mut b = buy(&pool, OFFER, 10_000_000, None).await;
    while shard(&b) != shard(&a) {
        b = buy(&pool, OFFER, 10_000_000, None).await;
    }
    let meter = app.state.meter.clone();
    let call = |id, key: &str, billed| {
        let (meter, token, key) = (meter.clone(), a.vendor_key.clone(), key.to_owned());
        tokio::spawn(async move { meter.record(usage(id, billed), Some(key), token).await })
    };
    let mut hold = pool.begin().await.unwrap();
    sqlx::query("select 1 from purchase where purchase_id = $1 for update")
        .bind(a.id.0)
        .execute(&mut *hold)
        .await
        .unwrap();
    let blocked = call(a.id, "k0", 1_000_000);
    wait_for_a_lock_wait(&pool).await;
    let mut queued = Vec::new();
    for (id, key, billed) in [
        (a.id, "k1", 6_000_000),
        (a.id, "k2", 1_500_000),
        (a.id, "k2", 1_500_000),
        (a.id, "k2", 1_600_000),
        (b.id, "k1", 1_000_000),
        (a.id, "k3", 100_000),
        (b.id, "kb", 1_000_000),
    ] {
        queued.push(call(id, key, billed));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    hold.commit().await.unwrap();
    let first = blocked.await.unwrap().unwrap();
    assert_eq!(first.body["balance_usd"], "9.000000");
    let mut answers = Vec::new();
    for task in queued {
        answers.push(task.await.unwrap());
    }
    let ok = |i: usize| answers[i].as_ref().unwrap();
    let expected = [
        (0, "3.000000", "active"),
        (1, "1.500000", "low"),
        (4, "9.000000", "active"),
        (5, "1.400000", "low"),
        (6, "8.000000", "active"),
    ];
    for (i, balance_usd, status) in expected {
        assert!(!ok(i).replayed, "{i}");
        assert_eq!(
            ok(i).body["balance_usd"],
            balance_usd,
            "{i}: {}",
            ok(i).body
        );
        assert_eq!(ok(i).body["status"], status, "{i}");
    }
    assert!(ok(2).replayed);
    assert_eq!(ok(2).body, ok(1).body);
    assert!(matches!(
        answers[3],
        Err(BillingError::IdempotencyConflict(_))
    ));

    // One transaction: the five debits after the first share their commit's time.
    let (rows, times): (i64, i64) = sqlx::query_as(
        "select count(*), count(distinct created_at) from ledger_entry
         where kind = 'usage' and entry_id > $1",
    )
    .bind(first.body["record"]["id"].as_i64().unwrap())
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((rows, times), (5, 1));
    assert_eq!(usage_rows(&pool, &a).await, 4);
    assert_eq!(usage_rows(&pool, &b).await, 2);
    assert_eq!(balance(&pool, a.id).await, 1_400_000);
    assert_eq!(balance(&pool, b.id).await, 8_000_000);
    let statuses = |p: Vec<Value>| -> Vec<String> {
        p.iter()
            .map(|d| d["status"].as_str().unwrap().to_owned())
            .collect()
    };
    let a_changes = outbox_rows(&pool, a.id, "webhook", "purchase.status_changed").await;
    assert_eq!(statuses(a_changes), ["active", "low"]);
    let b_changes = outbox_rows(&pool, b.id, "webhook", "purchase.status_changed").await;
    assert_eq!(statuses(b_changes), ["active"]);
    assert_eq!(
        outbox_rows(&pool, a.id, "officex", "purchase.status_changed")
            .await
            .len(),
        2
    );
    let keys: i64 = sqlx::query_scalar("select count(*) from meter_idempotency")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(keys, 6);
}

/// The meter's worker keeps its connection between batches (one round trip less per batch). A
/// connection killed while it waited (a database restart, an idle-session timeout) is noticed
/// before the next batch uses it: that debit is recorded, never a 503, and nothing moves twice.
#[sqlx::test]
async fn a_meter_connection_killed_between_batches_costs_no_call(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let a = buy(&pool, OFFER, 10_000_000, None).await;
    let body = json!({"usage_amount": "1", "usage_unit": "tokens", "billed_amount": "0.001"});
    let (status, answer, _) = meter(&app, &a, Some("before"), &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Every other connection of this database, the worker's among them.
    let killed: i64 = sqlx::query_scalar(
        "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity
                               where datname = current_database() and pid <> pg_backend_pid()) k",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(killed >= 1, "the worker's connection was not found");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let (status, answer, _) = meter(&app, &a, Some("after"), &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(usage_rows(&pool, &a).await, 2);
    assert_eq!(balance(&pool, a.id).await, 10_000_000 - 2_000);
}
