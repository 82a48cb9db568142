//! Purchase routes: the wrong-key matrix, `GET /v1/purchase/{id}`, validate-auth and historical
//! billing against hand-computed buckets.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use vendor_server::billing::ledger::{self, EntryKind, NewEntry};
use vendor_server::billing::tokens;
use vendor_server::domain::ids::PurchaseId;
use vendor_server::domain::money::UsdMicros;

use crate::fixtures::{Bought, buy};
use crate::helpers::{TestApp, assert_error, spawn_app};

const OFFER: &str = "gemini-api-gateway";

fn meter_body() -> Value {
    json!({"usage_amount": "1", "usage_unit": "tokens", "billed_amount": "0.01"})
}

async fn call(
    app: &TestApp,
    method: &str,
    path: &str,
    key: Option<&str>,
    query_key: Option<&str>,
) -> (StatusCode, Value) {
    let url = match query_key {
        Some(k) => format!("{}?auth={k}", app.url(path)),
        None => app.url(path),
    };
    let mut request = if method == "GET" {
        app.client.get(url)
    } else {
        app.client.post(url).json(&meter_body())
    };
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[sqlx::test]
async fn wrong_keys_are_all_the_same_401(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let a: Bought = buy(&pool, OFFER, 10_000_000, None).await;
    let b: Bought = buy(&pool, OFFER, 10_000_000, None).await;
    let (token, secret) = tokens::create(&pool, "ai").await.unwrap();
    let token_key = vendor_server::billing::keys::reveal(&secret).to_owned();
    let (revoked, revoked_secret) = tokens::create(&pool, "old").await.unwrap();
    let revoked_key = vendor_server::billing::keys::reveal(&revoked_secret).to_owned();
    tokens::revoke(&pool, revoked.id).await.unwrap();
    let unknown = PurchaseId::new();

    let get_a = format!("/v1/purchase/{}", a.id);
    let hist_a = format!("/v1/purchase/{}/historical-billing", a.id);
    let meter_a = format!("/v1/purchase/{}/meter-usage", a.id);
    let meter_b = format!("/v1/purchase/{}/meter-usage", b.id);
    let get_b = format!("/v1/purchase/{}", b.id);
    let get_unknown = format!("/v1/purchase/{unknown}");
    let meter_unknown = format!("/v1/purchase/{unknown}/meter-usage");

    let mut bodies = Vec::new();
    for (what, method, path, key) in [
        ("no key", "GET", &get_a, None),
        ("no key", "POST", &meter_a, None),
        ("no key", "POST", &hist_a, None),
        ("wrong key", "GET", &get_a, Some("vsc_wrong")),
        ("wrong key", "POST", &meter_a, Some("vsv_wrong")),
        (
            "A's customer key on B",
            "GET",
            &get_b,
            Some(a.customer_key.as_str()),
        ),
        (
            "customer key on vendor route",
            "POST",
            &meter_a,
            Some(a.customer_key.as_str()),
        ),
        (
            "billing token (fixture) on customer route",
            "GET",
            &get_a,
            Some(a.vendor_key.as_str()),
        ),
        (
            "billing token on history",
            "POST",
            &hist_a,
            Some(a.vendor_key.as_str()),
        ),
        (
            "billing token on customer route",
            "GET",
            &get_a,
            Some(token_key.as_str()),
        ),
        (
            "revoked billing token",
            "POST",
            &meter_a,
            Some(revoked_key.as_str()),
        ),
        (
            "unknown purchase",
            "GET",
            &get_unknown,
            Some(a.customer_key.as_str()),
        ),
        (
            "unknown purchase, token",
            "POST",
            &meter_unknown,
            Some(token_key.as_str()),
        ),
        (
            "malformed id",
            "GET",
            &"/v1/purchase/nope".to_owned(),
            Some(a.customer_key.as_str()),
        ),
    ] {
        let got = call(&app, method, path, key, None).await;
        assert_eq!(got.0, StatusCode::UNAUTHORIZED, "{what}: {}", got.1);
        assert_error(&got, StatusCode::UNAUTHORIZED, "unauthorized");
        if key.is_some() {
            bodies.push((what, got.1));
        }
    }
    // A wrong key and an unknown purchase are indistinguishable.
    for (what, body) in &bodies {
        assert_eq!(body, &bodies[0].1, "{what}");
    }
    // ?auth= works the same as the header on every keyed route.
    let wrong_query = call(&app, "GET", &get_a, None, Some("vsc_wrong")).await;
    assert_eq!(wrong_query.1, bodies[0].1);
    assert_eq!(
        call(&app, "GET", &get_a, None, Some(&a.customer_key))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "POST", &hist_a, None, Some(&a.customer_key))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "POST", &meter_a, None, Some(&a.vendor_key))
            .await
            .0,
        StatusCode::OK
    );
    // The right keys and a live billing token (on any purchase).
    assert_eq!(
        call(&app, "GET", &get_a, Some(&a.customer_key), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "POST", &meter_a, Some(&a.vendor_key), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        call(&app, "POST", &meter_b, Some(&token_key), None).await.0,
        StatusCode::OK
    );
    assert!(token.revoked_at.is_none());
}

#[sqlx::test]
async fn get_purchase_shows_balance_and_thresholds_but_no_secret(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let a = buy(&pool, OFFER, 100_000_000, Some("customer@example.com")).await;
    let (status, body) = app
        .get_auth(&format!("/v1/purchase/{}", a.id), &a.customer_key)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let p = &body["purchase"];
    assert_eq!(p["id"], a.id.to_string());
    assert_eq!(p["status"], "active");
    assert_eq!(p["officex_status"], "RUNNING");
    assert_eq!(p["balance_usd"], "100.000000");
    assert_eq!(p["balance_low_trigger"], "10.000000");
    assert_eq!(p["balance_critical_trigger"], "2.000000");
    assert_eq!(p["balance_termination_trigger"], "1.000000");
    assert_eq!(p["offer_id"], OFFER);
    assert_eq!(p["title"], "Test purchase");
    assert!(p["created_at"].as_i64().unwrap() > 1_700_000_000_000);
    assert!(p["updated_at"].as_i64().is_some());
    assert!(body.get("checkout_wallet").is_some());
    let text = body.to_string();
    for secret in [
        a.customer_key.as_str(),
        a.vendor_key.as_str(),
        "secret-tracer",
        "org.example",
        "customer@example.com",
        "hash",
        "tracer",
        "resource_state",
    ] {
        assert!(!text.contains(secret), "{secret} leaked: {text}");
    }
}

#[sqlx::test]
async fn validate_auth_always_answers_200(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let a = buy(&pool, OFFER, 1_000_000, None).await;
    let path = format!("/v1/purchase/{}/validate-auth", a.id);
    let (status, ok) = app.post(&path, &json!({"api_key": a.customer_key})).await;
    assert_eq!(
        (status, &ok),
        (
            StatusCode::OK,
            &json!({"valid": true, "message": "Authorized"})
        )
    );
    let (_, wrong) = app.post(&path, &json!({"api_key": "vsc_nope"})).await;
    assert_eq!(wrong["valid"], false);
    let (_, vendor) = app.post(&path, &json!({"api_key": a.vendor_key})).await;
    assert_eq!(vendor, wrong);
    let unknown = format!("/v1/purchase/{}/validate-auth", PurchaseId::new());
    let (status, body) = app
        .post(&unknown, &json!({"api_key": a.customer_key}))
        .await;
    assert_eq!((status, &body), (StatusCode::OK, &wrong));
    for raw in [&b"{"[..], b"", b"[1]", br#"{"api_key": 5}"#] {
        let (status, body) = app.post_raw(&path, "application/json", raw.to_vec()).await;
        assert_eq!((status, &body), (StatusCode::OK, &wrong), "{raw:?}");
    }
}

async fn meter(app: &TestApp, a: &Bought, at: &str, amount: &str, unit: &str, billed: &str) {
    let (status, body) = app
        .post_auth(
            &format!("/v1/purchase/{}/meter-usage", a.id),
            &a.vendor_key,
            &json!({"timestamp": at, "usage_amount": amount, "usage_unit": unit, "billed_amount": billed}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

async fn history(app: &TestApp, a: &Bought, body: Value) -> (StatusCode, Value) {
    app.post_auth(
        &format!("/v1/purchase/{}/historical-billing", a.id),
        &a.customer_key,
        &body,
    )
    .await
}

/// `[(time_bucket, total_usage_amount, total_billed_amount)]` of an answer.
fn triples(body: &Value) -> Vec<(String, String, String)> {
    body.as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["time_bucket"].as_str().unwrap().to_owned(),
                b["total_usage_amount"].as_str().unwrap().to_owned(),
                b["total_billed_amount"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn t(bucket: &str, usage: &str, billed: &str) -> (String, String, String) {
    (bucket.to_owned(), usage.to_owned(), billed.to_owned())
}

#[sqlx::test]
async fn historical_billing_matches_hand_computed_buckets(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let a = buy(&pool, OFFER, 100_000_000, None).await;
    let other = buy(&pool, OFFER, 100_000_000, None).await;
    meter(&app, &a, "2026-03-02T10:15:00Z", "1.5", "tokens", "0.10").await;
    meter(&app, &a, "2026-03-02T10:45:00Z", "2", "GB", "0.20").await;
    meter(&app, &a, "2026-03-02T11:05:00Z", "1", "tokens", "0.05").await;
    meter(&app, &a, "2026-03-04T23:59:59Z", "3", "tokens", "1").await;
    meter(&app, &a, "2026-03-09T00:00:00Z", "4", "tokens", "2").await;
    meter(&app, &a, "2026-04-01T12:00:00+02:00", "5", "tokens", "0.5").await;
    meter(&app, &other, "2026-03-02T10:15:00Z", "100", "tokens", "9").await;
    // A cost credit-back (refund) nets out; a later deposit never counts.
    let mut tx = pool.begin().await.unwrap();
    let mut refund = NewEntry::new(EntryKind::Cost, UsdMicros(50_000)).reference("cur:refund");
    refund.occurred_at = Some("2026-03-02T11:30:00Z".parse().unwrap());
    ledger::post(&mut tx, a.id, &refund).await.unwrap();
    let mut deposit = NewEntry::new(EntryKind::Deposit, UsdMicros(5_000_000)).reference("d2");
    deposit.occurred_at = Some("2026-03-02T10:30:00Z".parse().unwrap());
    ledger::post(&mut tx, a.id, &deposit).await.unwrap();
    tx.commit().await.unwrap();

    let (status, hourly) = history(&app, &a, json!({"interval": "hourly"})).await;
    assert_eq!(status, StatusCode::OK, "{hourly}");
    assert_eq!(
        triples(&hourly),
        vec![
            t("2026-03-02T10:00:00Z", "3.500000", "0.300000"),
            t("2026-03-02T11:00:00Z", "1.000000", "0.000000"),
            t("2026-03-04T23:00:00Z", "3.000000", "1.000000"),
            t("2026-03-09T00:00:00Z", "4.000000", "2.000000"),
            t("2026-04-01T10:00:00Z", "5.000000", "0.500000"),
        ]
    );
    assert_eq!(
        hourly[0]["usage_by_unit"],
        json!({"GB": "2.000000", "tokens": "1.500000"})
    );
    assert_eq!(hourly[0]["purchase_id"], a.id.to_string());

    // Daily is the default.
    let (_, daily) = history(&app, &a, json!({})).await;
    assert_eq!(
        triples(&daily),
        vec![
            t("2026-03-02T00:00:00Z", "4.500000", "0.300000"),
            t("2026-03-04T00:00:00Z", "3.000000", "1.000000"),
            t("2026-03-09T00:00:00Z", "4.000000", "2.000000"),
            t("2026-04-01T00:00:00Z", "5.000000", "0.500000"),
        ]
    );
    assert_eq!(
        daily[0]["usage_by_unit"],
        json!({"GB": "2.000000", "tokens": "2.500000"})
    );
    let (_, weekly) = history(&app, &a, json!({"interval": "weekly"})).await;
    assert_eq!(
        triples(&weekly),
        vec![
            t("2026-03-02T00:00:00Z", "7.500000", "1.300000"),
            t("2026-03-09T00:00:00Z", "4.000000", "2.000000"),
            t("2026-03-30T00:00:00Z", "5.000000", "0.500000"),
        ]
    );
    let (_, monthly) = history(&app, &a, json!({"interval": "monthly"})).await;
    assert_eq!(
        triples(&monthly),
        vec![
            t("2026-03-01T00:00:00Z", "11.500000", "3.300000"),
            t("2026-04-01T00:00:00Z", "5.000000", "0.500000"),
        ]
    );
    let (_, yearly) = history(&app, &a, json!({"interval": "yearly"})).await;
    assert_eq!(
        triples(&yearly),
        vec![t("2026-01-01T00:00:00Z", "16.500000", "3.800000")]
    );

    // Date filters: a date end_date includes its whole day; a datetime is inclusive.
    let (_, filtered) = history(
        &app,
        &a,
        json!({"interval": "daily", "start_date": "2026-03-03", "end_date": "2026-03-09"}),
    )
    .await;
    assert_eq!(
        triples(&filtered),
        vec![
            t("2026-03-04T00:00:00Z", "3.000000", "1.000000"),
            t("2026-03-09T00:00:00Z", "4.000000", "2.000000"),
        ]
    );
    let (_, until) = history(
        &app,
        &a,
        json!({"start_date": "2026-03-02T10:45:00Z", "end_date": "2026-03-04T23:59:59Z"}),
    )
    .await;
    assert_eq!(
        triples(&until),
        vec![
            t("2026-03-02T00:00:00Z", "3.000000", "0.200000"),
            t("2026-03-04T00:00:00Z", "3.000000", "1.000000"),
        ]
    );

    for (body, code) in [
        (json!({"interval": "fortnightly"}), "invalid_interval"),
        (json!({"start_date": "yesterday"}), "invalid_date"),
        (json!({"end_date": "2026-02-30"}), "invalid_date"),
        (
            json!({"start_date": "2026-03-05", "end_date": "2026-03-04"}),
            "invalid_date",
        ),
        (json!({"interval": 5}), "invalid_body"),
        // Issue 11 #5: dates PostgreSQL cannot hold, and NUL, are 400s, not 500s.
        (json!({"start_date": "-5000-01-01"}), "invalid_date"),
        (json!({"end_date": "-5000-01-01"}), "invalid_date"),
        (json!({"start_date": "1999-12-31"}), "invalid_date"),
        (json!({"end_date": "9999-12-31"}), "invalid_date"),
        (json!({"end_date": "262143-12-31"}), "invalid_date"),
        (
            json!({"start_date": "+275760-09-13T00:00:00Z"}),
            "invalid_date",
        ),
        (json!({"interval": "daily\u{0}"}), "invalid_text"),
        (json!({"start_date": "2026-03-01\u{0}"}), "invalid_text"),
    ] {
        let got = history(&app, &a, body.clone()).await;
        assert_error(&got, StatusCode::BAD_REQUEST, code);
    }
    // An empty body means the defaults.
    let response = app
        .client
        .post(app.url(&format!("/v1/purchase/{}/historical-billing", a.id)))
        .bearer_auth(&a.customer_key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap(), daily);
}

/// Issue 10 #19 (SPEC §9): no per-purchase "vendor key" exists any more. Vendor-wide billing
/// tokens are the one way to meter; the purchase row stores no such key and the API documents none.
#[sqlx::test]
async fn billing_tokens_are_the_one_way_to_meter(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let a = buy(&pool, OFFER, 10_000_000, None).await;
    let columns: Vec<String> = sqlx::query_scalar(
        "select column_name::text from information_schema.columns
         where table_name = 'purchase' and column_name like 'vendor_key%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert!(columns.is_empty(), "purchase still has {columns:?}");
    // A purchase-scoped vendor-style key is just a wrong key.
    let meter_a = format!("/v1/purchase/{}/meter-usage", a.id);
    let got = call(&app, "POST", &meter_a, Some("vsv_0123456789abcdef"), None).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthorized");
    // A billing token meters any purchase.
    let (_, secret) = tokens::create(&pool, "ai server").await.unwrap();
    let token = vendor_server::billing::keys::reveal(&secret).to_owned();
    assert_eq!(
        call(&app, "POST", &meter_a, Some(&token), None).await.0,
        StatusCode::OK
    );
    let (status, doc) = app.get("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let text = doc.to_string().to_lowercase();
    assert!(
        !text.contains("vendor key"),
        "the API still documents a vendor key"
    );
    let readme = std::fs::read_to_string(format!("{}/README.md", crate::helpers::ROOT)).unwrap();
    assert!(
        !readme
            .to_lowercase()
            .contains("vendor key or billing token"),
        "the README still documents a vendor key"
    );
}
