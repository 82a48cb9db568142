//! The admin API (`/v1/admin/…`, bearer `ADMIN_TOKEN`) and the customer's ledger route: auth,
//! each route's answers and errors, exact idempotent adjustments, status actions, tokens, retries,
//! the audit log and keyset pagination.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use vendor_server::billing::ledger::{self, EntryKind, NewEntry};
use vendor_server::billing::purchases::{self, NewPurchase};
use vendor_server::domain::ids::{PurchaseId, RefundId};
use vendor_server::domain::money::UsdMicros;

use crate::fixtures::{balance, buy, credit};
use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};

const TOKEN: &str = "admin-token-0123456789abcdef";

async fn admin_app(pool: PgPool) -> TestApp {
    spawn_app_with(pool, &[("ADMIN_TOKEN", TOKEN)]).await
}

/// Calls an admin route with the admin token; `key` goes in `Idempotency-Key`.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<&Value>,
    key: Option<&str>,
) -> (StatusCode, Value, bool) {
    let mut request = app
        .client
        .request(method.clone(), app.url(path))
        .bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(body);
    }
    // Every mutating admin call needs an idempotency key (SPEC §9): one per call unless the test
    // passes its own (in the header or the body).
    let in_body = body.is_some_and(|b| b.get("idempotency_key").is_some());
    match key {
        Some(key) => request = request.header("idempotency-key", key),
        None if method != Method::GET && !in_body => {
            request = request.header("idempotency-key", uuid::Uuid::new_v4().to_string());
        }
        None => {}
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        replayed,
    )
}

async fn get(app: &TestApp, path: &str) -> Value {
    let (status, body, _) = call(app, Method::GET, path, None, None).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

async fn post(app: &TestApp, path: &str, body: &Value) -> (StatusCode, Value) {
    let (status, body, _) = call(app, Method::POST, path, Some(body), None).await;
    (status, body)
}

/// Every item of a paginated list, following `next_cursor` (`sep` joins the query and `cursor`).
async fn walk(app: &TestApp, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let sep = if path.contains('?') { '&' } else { '?' };
    for _ in 0..1000 {
        let url = match &cursor {
            Some(c) => format!("{path}{sep}cursor={c}"),
            None => path.to_owned(),
        };
        let page = get(app, &url).await;
        items.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return items,
        }
    }
    panic!("pagination does not end");
}

async fn audit_actions(app: &TestApp, target: &str) -> Vec<String> {
    let page = get(
        app,
        &format!("/v1/admin/audit?target_id={target}&limit=500"),
    )
    .await;
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap().to_owned())
        .collect()
}

#[sqlx::test]
async fn the_admin_api_is_off_without_a_token_and_checks_it(pool: PgPool) {
    let off = spawn_app(pool.clone()).await;
    for (method, path) in [
        (Method::GET, "/v1/admin/overview"),
        (Method::GET, "/v1/admin/purchases"),
        (Method::POST, "/v1/admin/tokens"),
        (Method::DELETE, "/v1/admin/tokens/1"),
    ] {
        let response = off
            .client
            .request(method, off.url(path))
            .bearer_auth(TOKEN)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "not_found");
    }
    drop(off);

    let app = admin_app(pool).await;
    assert_error(
        &app.get("/v1/admin/overview").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &app.get_auth("/v1/admin/overview", "admin-token-0123456789abcdeX")
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &app.post_auth("/v1/admin/tokens", "wrong", &json!({"label": "x"}))
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let (status, body) = app.get_auth("/v1/admin/overview", TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // `?auth=` works as on every keyed route.
    let (status, _) = app.get(&format!("/v1/admin/gas?auth={TOKEN}")).await;
    assert_eq!(status, StatusCode::OK);
}

#[sqlx::test]
async fn adjustments_are_exact_idempotent_and_move_the_status(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    let p = buy(
        &pool,
        "gemini-api-gateway",
        10_000_000,
        Some("a@example.com"),
    )
    .await;
    let path = format!("/v1/admin/purchases/{}/adjustments", p.id);

    let body = json!({"amount_usd": "5.123457", "reason": "goodwill credit"});
    let (status, first, replayed) =
        call(&app, Method::POST, &path, Some(&body), Some("adj-1")).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert!(!replayed);
    assert_eq!(first["balance_usd"], "15.123457");
    assert_eq!(first["amount_usd"], "5.123457");
    assert_eq!(first["status"], "active");
    assert_eq!(balance(&pool, p.id).await, 15_123_457);

    // Same key, same body: the same answer, nothing posted again.
    let (status, again, replayed) =
        call(&app, Method::POST, &path, Some(&body), Some("adj-1")).await;
    assert_eq!((status, &again), (StatusCode::OK, &first));
    assert!(replayed);
    // The key in the body is the same key.
    let with_body_key =
        json!({"amount_usd": "5.123457", "reason": "goodwill credit", "idempotency_key": "adj-1"});
    let (status, again) = post(&app, &path, &with_body_key).await;
    assert_eq!((status, &again), (StatusCode::OK, &first));
    assert_eq!(balance(&pool, p.id).await, 15_123_457);
    // Same key, another body: 409.
    let (status, conflict, _) = call(
        &app,
        Method::POST,
        &path,
        Some(&json!({"amount_usd": "6", "reason": "goodwill credit"})),
        Some("adj-1"),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(conflict["code"], "idempotency_key_reused");
    // Header and body keys that differ: 400.
    let (status, mismatch, _) = call(
        &app,
        Method::POST,
        &path,
        Some(&with_body_key),
        Some("adj-2"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(mismatch["code"], "idempotency_key_mismatch");

    // A debit moves the status like any debit (triggers from the first 10 USD credit: low 2,
    // critical 1, termination 0.1).
    let (status, debit) = post(
        &app,
        &path,
        &json!({"amount_usd": "-14.623457", "reason": "refund of a duplicate charge"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{debit}");
    assert_eq!(debit["balance_usd"], "0.500000");
    assert_eq!(
        (debit["previous_status"].as_str(), debit["status"].as_str()),
        (Some("active"), Some("critical"))
    );
    assert_eq!(balance(&pool, p.id).await, 500_000);

    // The ledger entry is of its own kind, with the reason.
    let (_, ledger) = app
        .get_auth(&format!("/v1/purchase/{}/ledger", p.id), &p.customer_key)
        .await;
    let newest = &ledger["items"][0];
    assert_eq!(newest["kind"], "adjustment");
    assert_eq!(newest["amount_usd"], "-14.623457");
    assert_eq!(newest["balance_after_usd"], "0.500000");
    assert_eq!(newest["description"], "refund of a duplicate charge");

    // Errors.
    for (body, code) in [
        (json!({"amount_usd": "1"}), "missing_field"),
        (json!({"amount_usd": "1", "reason": "  "}), "missing_field"),
        (json!({"amount_usd": "0", "reason": "x"}), "invalid_amount"),
        (
            json!({"amount_usd": "1.0000001", "reason": "x"}),
            "invalid_body",
        ),
        (json!({"amount_usd": "abc", "reason": "x"}), "invalid_body"),
        (json!({"reason": "x"}), "invalid_body"),
    ] {
        let got = post(&app, &path, &body).await;
        assert_error(&(got.0, got.1), StatusCode::BAD_REQUEST, code);
    }
    let unknown = post(
        &app,
        &format!("/v1/admin/purchases/{}/adjustments", PurchaseId::new()),
        &json!({"amount_usd": "1", "reason": "x"}),
    )
    .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "purchase_not_found");
    let overflow = post(
        &app,
        &path,
        &json!({"amount_usd": "9223372036854.775807", "reason": "x"}),
    )
    .await;
    assert_error(&overflow, StatusCode::BAD_REQUEST, "amount_too_large");
    assert_eq!(balance(&pool, p.id).await, 500_000);

    // Audited with the reason and the client's address.
    let audit = get(&app, &format!("/v1/admin/audit?target_id={}", p.id)).await;
    let items = audit["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{audit}");
    assert_eq!(items[0]["action"], "purchase.adjust");
    assert_eq!(items[0]["reason"], "refund of a duplicate charge");
    assert_eq!(items[0]["client_ip"], "127.0.0.1");
    assert_eq!(items[1]["idempotency_key"], "adj-1");
    assert_eq!(items[1]["details"]["amount_usd"], "5.123457");
}

#[sqlx::test]
async fn concurrent_adjustments_with_one_key_post_once(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    let p = buy(&pool, "gemini-api-gateway", 10_000_000, None).await;
    let path = format!("/v1/admin/purchases/{}/adjustments", p.id);
    let body = json!({"amount_usd": "-0.333333", "reason": "concurrent"});
    let calls = (0..12).map(|_| call(&app, Method::POST, &path, Some(&body), Some("same-key")));
    let answers = futures::future::join_all(calls).await;
    let mut entries = HashSet::new();
    for (status, answer, _) in &answers {
        assert_eq!(*status, StatusCode::OK, "{answer}");
        assert_eq!(answer["balance_usd"], "9.666667");
        entries.insert(answer["entry_id"].as_i64().unwrap());
    }
    assert_eq!(entries.len(), 1, "one ledger entry for one key");
    assert_eq!(answers.iter().filter(|a| !a.2).count(), 1, "one original");
    assert_eq!(balance(&pool, p.id).await, 9_666_667);
    assert_eq!(audit_actions(&app, &p.id.to_string()).await.len(), 1);
}

#[sqlx::test]
async fn suspend_resume_and_delete_move_the_purchase(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    let p = buy(&pool, "gemini-api-gateway", 10_000_000, None).await;
    let base = format!("/v1/admin/purchases/{}", p.id);

    let (status, suspended) = post(
        &app,
        &format!("{base}/suspend"),
        &json!({"reason": "abuse report"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{suspended}");
    assert_eq!(suspended["previous_status"], "active");
    assert_eq!(suspended["status"], "suspended");
    assert_eq!(suspended["held"], true);
    // A credit does not lift an operator's suspension.
    credit(&pool, p.id, 5_000_000, "deposit:late").await;
    let detail = get(&app, &base).await;
    assert_eq!(detail["status"], "suspended");
    assert_eq!(detail["held"], true);
    assert_eq!(detail["balance_usd"], "15.000000");
    assert_error(
        &{
            let r = post(&app, &format!("{base}/suspend"), &json!({})).await;
            (r.0, r.1)
        },
        StatusCode::CONFLICT,
        "invalid_state",
    );
    // The customer sees it too.
    let (_, mine) = app
        .get_auth(&format!("/v1/purchase/{}", p.id), &p.customer_key)
        .await;
    assert_eq!(mine["purchase"]["status"], "suspended");

    // Resume (no body at all is fine).
    let (status, resumed, _) =
        call(&app, Method::POST, &format!("{base}/resume"), None, None).await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["status"], "active");
    assert_eq!(resumed["held"], false);
    let again = post(&app, &format!("{base}/resume"), &json!({})).await;
    assert_error(&again, StatusCode::CONFLICT, "invalid_state");

    // Delete needs the id typed again.
    for body in [json!({}), json!({"confirm": "yes"})] {
        let r = post(&app, &format!("{base}/delete"), &body).await;
        assert_error(&r, StatusCode::BAD_REQUEST, "confirmation_required");
    }
    assert_eq!(get(&app, &base).await["status"], "active");
    let (status, deleted) = post(
        &app,
        &format!("{base}/delete"),
        &json!({"confirm": p.id.to_string(), "reason": "customer asked"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted["status"], "deleted");
    let twice = post(
        &app,
        &format!("{base}/delete"),
        &json!({"confirm": p.id.to_string()}),
    )
    .await;
    assert_error(&twice, StatusCode::CONFLICT, "invalid_state");
    // Deleted purchases cannot be suspended.
    let r = post(&app, &format!("{base}/suspend"), &json!({})).await;
    assert_error(&r, StatusCode::CONFLICT, "invalid_state");
    let unknown = post(
        &app,
        &format!("/v1/admin/purchases/{}/suspend", PurchaseId::new()),
        &json!({}),
    )
    .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "purchase_not_found");

    // Each change was announced (webhook outbox rows) and audited, newest first.
    let changes: i64 = sqlx::query_scalar(
        "select count(*) from outbox where purchase_id = $1 and channel = 'webhook' and event_type = 'purchase.status_changed'",
    )
    .bind(p.id.0)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(changes, 4, "activation, suspend, resume, delete");
    assert_eq!(
        audit_actions(&app, &p.id.to_string()).await,
        vec!["purchase.delete", "purchase.resume", "purchase.suspend"]
    );
    let detail = get(&app, &base).await;
    assert_eq!(detail["audit"][0]["reason"], "customer asked");
    assert_eq!(detail["officex"]["expected_status"], "CANCELED");
}

#[sqlx::test]
async fn tokens_are_created_once_metered_with_and_revoked(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    let p = buy(&pool, "gemini-api-gateway", 10_000_000, None).await;
    let (status, created, _) = call(
        &app,
        Method::POST,
        "/v1/admin/tokens",
        Some(&json!({"label": "ai-server-2"})),
        Some("tok-1"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("vst_"));
    assert_eq!(created["status"], "active");
    let id = created["id"].as_i64().unwrap();
    // A replay does not show the secret again.
    let (status, replay, replayed) = call(
        &app,
        Method::POST,
        "/v1/admin/tokens",
        Some(&json!({"label": "ai-server-2"})),
        Some("tok-1"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(replayed);
    assert_eq!(replay["id"], id);
    assert!(replay["token"].is_null());

    let listed = get(&app, "/v1/admin/tokens").await;
    assert!(!listed.to_string().contains(&token));
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["id"] == id && t["label"] == "ai-server-2")
    );

    let meter = format!("/v1/purchase/{}/meter-usage", p.id);
    let usage = json!({"usage_amount": "1", "usage_unit": "tokens", "billed_amount": "0.25"});
    let (status, body) = app.post_auth(&meter, &token, &usage).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, revoked, _) = call(
        &app,
        Method::DELETE,
        &format!("/v1/admin/tokens/{id}"),
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    assert_error(
        &app.post_auth(&meter, &token, &usage).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let (status, missing, _) =
        call(&app, Method::DELETE, "/v1/admin/tokens/987654", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["code"], "token_not_found");
    let empty = post(&app, "/v1/admin/tokens", &json!({"label": " "})).await;
    assert_error(&empty, StatusCode::BAD_REQUEST, "invalid_label");
    let actions = audit_actions(&app, &id.to_string()).await;
    assert_eq!(actions, vec!["token.revoke", "token.create"]);
    let audit = get(&app, "/v1/admin/audit?target_type=token").await;
    assert!(
        !audit.to_string().contains(&token),
        "no secret in the audit log"
    );
}

/// A checkout (for its deposit address) and a failed sweep of it, as the sweeper leaves them.
async fn failed_sweep(pool: &PgPool, purchase: Option<PurchaseId>, index: i64) -> (i64, String) {
    let address = format!("0x{index:040x}");
    sqlx::query(
        "insert into checkout (checkout_session_id, checkout_wallet_id, checkout_flow_id, offer_id, chain_name,
             token_symbol, deposit_index, deposit_address, purchase_id, expires_at, watch_until)
         values ($1, $2, 'gemini-api-gateway:base:usdc', 'gemini-api-gateway', 'base', 'usdc', $3, $4, $5,
                 now() + interval '1 day', now() + interval '30 days')",
    )
    .bind(uuid::Uuid::new_v4())
    .bind(uuid::Uuid::new_v4())
    .bind(index)
    .bind(&address)
    .bind(purchase.map(|p| p.0))
    .execute(pool)
    .await
    .unwrap();
    let id: i64 = sqlx::query_scalar(
        "insert into sweep (chain_id, token_address, token_symbol, deposit_address, deposit_index, treasury_address,
             amount_units, method, step, status, attempts, last_error)
         values (84532, '0x036cbd53842c5426634e7929541ec2318f3dcf7e', 'usdc', $1, $2,
                 '0x00000000000000000000000000000000000000aa', 5000000, 'eip3009', 'sweep', 'failed', 8,
                 'execution reverted') returning sweep_id",
    )
    .bind(&address)
    .bind(index)
    .fetch_one(pool)
    .await
    .unwrap();
    (id, address)
}

#[sqlx::test]
async fn failed_sweeps_are_listed_and_retried(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    let p = buy(&pool, "gemini-api-gateway", 10_000_000, None).await;
    let (id, address) = failed_sweep(&pool, Some(p.id), 7).await;

    let failed = get(&app, "/v1/admin/sweeps?status=failed").await;
    let row = &failed["items"][0];
    assert_eq!(row["id"], id);
    assert_eq!(row["last_error"], "execution reverted");
    assert_eq!(row["retryable"], true);
    assert_eq!(row["deposit_address"], address);
    assert!(
        get(&app, "/v1/admin/sweeps?status=waiting").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let bad = app.get_auth("/v1/admin/sweeps?status=lost", TOKEN).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_status");
    // The purchase's page shows its sweeps.
    let detail = get(&app, &format!("/v1/admin/purchases/{}", p.id)).await;
    assert_eq!(detail["sweeps"][0]["id"], id);
    assert_eq!(detail["checkout"]["deposit_address"], address);

    let path = format!("/v1/admin/sweeps/{id}/retry");
    let (status, retried, _) = call(&app, Method::POST, &path, None, Some("retry-1")).await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["status"], "planned");
    let (status, replay, replayed) = call(&app, Method::POST, &path, None, Some("retry-1")).await;
    assert_eq!(
        (status, &replay, replayed),
        (StatusCode::OK, &retried, true)
    );
    let row: (String, i32, Option<String>) =
        sqlx::query_as("select status, attempts, last_error from sweep where sweep_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(row, ("planned".into(), 0, None));
    let waiting = get(&app, "/v1/admin/sweeps?status=waiting").await;
    assert_eq!(waiting["items"][0]["id"], id);
    // Only failed sweeps can be retried.
    let (status, again, _) = call(&app, Method::POST, &path, None, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(again["code"], "invalid_state");
    let (status, missing, _) = call(
        &app,
        Method::POST,
        "/v1/admin/sweeps/999999/retry",
        None,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(missing["code"], "sweep_not_found");
    assert_eq!(
        audit_actions(&app, &id.to_string()).await,
        vec!["sweep.retry"]
    );
    let overview = get(&app, "/v1/admin/overview").await;
    assert_eq!(overview["sweeps_waiting"], 1);
}

#[sqlx::test]
async fn failed_notifications_show_their_payload_and_are_retried(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    let p = buy(&pool, "gemini-api-gateway", 10_000_000, None).await;
    let id: i64 = sqlx::query_scalar(
        "insert into outbox (channel, event_id, event_type, purchase_id, payload, status, attempt_count, last_error)
         values ('webhook', $1, 'deposit.credited', $2, '{\"amount_usd\": \"5.000000\"}', 'failed', 10,
                 'HTTP 500 from the webhook') returning outbox_id",
    )
    .bind(uuid::Uuid::new_v4())
    .bind(p.id.0)
    .fetch_one(&pool)
    .await
    .unwrap();
    let failed = get(
        &app,
        "/v1/admin/notifications?status=failed&channel=webhook",
    )
    .await;
    let items = failed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{failed}");
    assert_eq!(items[0]["id"], id);
    assert_eq!(items[0]["payload"]["amount_usd"], "5.000000");
    assert_eq!(items[0]["last_error"], "HTTP 500 from the webhook");
    assert!(items[0]["event_id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(
        get(&app, "/v1/admin/overview").await["notifications_failed"],
        1
    );
    let bad = app
        .get_auth("/v1/admin/notifications?channel=pigeon", TOKEN)
        .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_channel");

    let path = format!("/v1/admin/notifications/{id}/retry");
    let (status, retried) = post(&app, &path, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{retried}");
    assert_eq!(retried["previous_status"], "failed");
    assert_eq!(retried["status"], "pending");
    let row: (String, i32) =
        sqlx::query_as("select status, attempt_count from outbox where outbox_id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(row, ("pending".into(), 0));
    sqlx::query("update outbox set status = 'delivered' where outbox_id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    let delivered = post(&app, &path, &json!({})).await;
    assert_error(&delivered, StatusCode::CONFLICT, "invalid_state");
    let missing = post(&app, "/v1/admin/notifications/999999/retry", &json!({})).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "notification_not_found");
    assert_eq!(
        audit_actions(&app, &id.to_string()).await,
        vec!["notification.retry"]
    );
}

#[sqlx::test]
async fn cost_import_runs_show_charged_restated_and_skipped_rows(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    let p = buy(&pool, "gemini-api-gateway", 10_000_000, None).await;
    let run: i64 = sqlx::query_scalar(
        "insert into cost_import_run (source, billing_period, trigger, status, files, rows_read, rows_matched,
             unknown_tag_rows, untagged_rows, error_rows, purchases_charged, entries_posted, total_charged_micros,
             finished_at, duration_ms)
         values ('cur', '2026-11-01', 'schedule', 'succeeded', 1, 100, 90, 4, 5, 1, 1, 2, 1234567, now(), 42)
         returning run_id",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let mut tx = pool.begin().await.unwrap();
    for (day, before, amount) in [
        ("2026-11-01", "0", -1_000_000),
        ("2026-10-31", "1.5", -234_567),
    ] {
        let mut entry = NewEntry::new(EntryKind::Cost, UsdMicros(amount))
            .reference(format!("cost:2026-11:{day}:1"));
        entry.metadata = json!({"run_id": run, "aws_cost_before": before, "usage_date": day});
        ledger::post(&mut tx, p.id, &entry).await.unwrap();
    }
    tx.commit().await.unwrap();

    let runs = get(&app, "/v1/admin/cost-imports").await;
    let r = &runs["items"][0];
    assert_eq!(r["id"], run);
    assert_eq!(r["status"], "succeeded");
    assert_eq!(r["billing_period"], "2026-11");
    assert_eq!(r["charged_usd"], "1.234567");
    assert_eq!(r["rows_skipped"], 10);
    assert_eq!(r["restated_entries"], 1);
    assert!(r["day"].as_str().is_some());
    let overview = get(&app, "/v1/admin/overview").await;
    assert_eq!(overview["last_cost_import"]["id"], run);
    assert_eq!(overview["money"]["today"]["usage_billed_usd"], "1.234567");
}

#[sqlx::test]
async fn the_overview_sums_money_and_counts_purchases(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    let a = buy(&pool, "gemini-api-gateway", 10_000_000, None).await;
    let _b = buy(&pool, "gemini-api-gateway", 2_500_001, None).await;
    let meter = format!("/v1/purchase/{}/meter-usage", a.id);
    let usage = json!({"usage_amount": "3", "usage_unit": "tokens", "billed_amount": "0.000003"});
    let (status, body) = app.post_auth(&meter, &a.vendor_key, &usage).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    post(
        &app,
        &format!("/v1/admin/purchases/{}/adjustments", a.id),
        &json!({"amount_usd": "-1", "reason": "x"}),
    )
    .await;
    let o = get(&app, "/v1/admin/overview").await;
    for window in ["today", "last_7_days", "last_30_days"] {
        assert_eq!(o["money"][window]["credited_usd"], "12.500001", "{o}");
        assert_eq!(o["money"][window]["usage_billed_usd"], "0.000003");
        assert_eq!(o["money"][window]["adjustments_usd"], "-1.000000");
    }
    assert_eq!(o["purchases_by_status"]["active"], 2);
    assert_eq!(o["purchases_by_status"]["deleted"], 0);
    assert_eq!(o["purchases_total"], 2);
    assert!(o["last_cost_import"].is_null());
    assert_eq!(o["gas"], json!([]), "no gas wallet configured");
    assert_eq!(get(&app, "/v1/admin/gas").await["items"], json!([]));
}

#[sqlx::test]
async fn purchase_lists_search_filter_sort_and_walk_every_row_once(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    vendor_server::catalog::CatalogFile::parse(
        &std::fs::read_to_string(format!("{}/config/offers.toml", crate::helpers::ROOT)).unwrap(),
    )
    .unwrap()
    .sync(&pool)
    .await
    .unwrap();
    let mut ids = Vec::new();
    for i in 0..23_i64 {
        let mut tx = pool.begin().await.unwrap();
        let created = purchases::create(
            &mut tx,
            &NewPurchase {
                offer_id: "gemini-api-gateway".into(),
                title: format!("p{i}"),
                customer_email: Some(format!("User{i}@Example.com")),
                officex_purchase_id: Some(format!("PurchaseID_{i:04}")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        // Equal balances in pairs: ties are broken by id.
        let amount = 1_000_000 * (i / 2 + 1);
        ledger::post(
            &mut tx,
            created.id,
            &NewEntry::new(EntryKind::Deposit, UsdMicros(amount)).reference("d"),
        )
        .await
        .unwrap();
        ledger::activate(&mut tx, created.id).await.unwrap();
        tx.commit().await.unwrap();
        ids.push(created.id.to_string());
    }
    let all: HashSet<String> = ids.iter().cloned().collect();
    for query in [
        "/v1/admin/purchases?limit=4",
        "/v1/admin/purchases?limit=5&sort=balance",
        "/v1/admin/purchases?limit=3&sort=balance&order=asc",
        "/v1/admin/purchases?limit=6&sort=activity",
        "/v1/admin/purchases?limit=7&sort=created&order=asc",
        "/v1/admin/purchases?limit=500",
    ] {
        let items = walk(&app, query).await;
        let seen: Vec<String> = items
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(seen.len(), 23, "{query}");
        assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), all, "{query}");
        if query.contains("sort=balance") {
            let balances: Vec<f64> = items
                .iter()
                .map(|i| i["balance_usd"].as_str().unwrap().parse().unwrap())
                .collect();
            let mut sorted = balances.clone();
            sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
            if !query.contains("asc") {
                sorted.reverse();
            }
            assert_eq!(balances, sorted, "{query}");
        }
    }
    // Newest first by default.
    let first = get(&app, "/v1/admin/purchases?limit=1").await;
    assert_eq!(first["items"][0]["id"], ids[22].as_str());

    // Search: id, bare uuid, OfficeX purchase id, email prefix (any case).
    let target = &ids[5];
    let by_id = get(&app, &format!("/v1/admin/purchases?q={target}")).await;
    assert_eq!(by_id["items"].as_array().unwrap().len(), 1);
    let uuid = target.trim_start_matches("CustomerPurchaseID_");
    let by_uuid = get(&app, &format!("/v1/admin/purchases?q={uuid}")).await;
    assert_eq!(by_uuid["items"][0]["id"], target.as_str());
    let by_officex = get(&app, "/v1/admin/purchases?q=PurchaseID_0005").await;
    assert_eq!(by_officex["items"][0]["id"], target.as_str());
    let by_email = get(&app, "/v1/admin/purchases?q=user1").await;
    assert_eq!(
        by_email["items"].as_array().unwrap().len(),
        11,
        "user1, user10..user19"
    );
    let exact = get(&app, "/v1/admin/purchases?q=USER5@example.COM").await;
    assert_eq!(exact["items"][0]["id"], target.as_str());
    let wildcard = get(&app, "/v1/admin/purchases?q=%25").await;
    assert!(
        wildcard["items"].as_array().unwrap().is_empty(),
        "% is literal"
    );

    // Filters.
    let active = walk(
        &app,
        "/v1/admin/purchases?status=active&offer_id=gemini-api-gateway&limit=10",
    )
    .await;
    assert_eq!(active.len(), 23);
    let none = get(&app, "/v1/admin/purchases?status=deleted").await;
    assert!(none["items"].as_array().unwrap().is_empty());
    assert!(none["next_cursor"].is_null());
    for (query, code) in [
        ("status=gone", "invalid_status"),
        ("sort=name", "invalid_sort"),
        ("order=up", "invalid_order"),
        ("limit=0", "invalid_limit"),
        ("limit=501", "invalid_limit"),
        ("cursor=nope", "invalid_cursor"),
        ("limit=x", "invalid_query"),
    ] {
        let got = app
            .get_auth(&format!("/v1/admin/purchases?{query}"), TOKEN)
            .await;
        assert_error(&got, StatusCode::BAD_REQUEST, code);
    }
    let missing = app
        .get_auth(&format!("/v1/admin/purchases/{}", PurchaseId::new()), TOKEN)
        .await;
    assert_error(&missing, StatusCode::NOT_FOUND, "purchase_not_found");
    let malformed = app.get_auth("/v1/admin/purchases/nope", TOKEN).await;
    assert_error(&malformed, StatusCode::NOT_FOUND, "purchase_not_found");
}

#[sqlx::test]
async fn a_purchase_page_shows_everything_but_secrets(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    let p = buy(
        &pool,
        "gemini-api-gateway",
        10_000_000,
        Some("c@example.com"),
    )
    .await;
    let detail = get(&app, &format!("/v1/admin/purchases/{}", p.id)).await;
    assert_eq!(detail["id"], p.id.to_string());
    assert_eq!(detail["balance_usd"], "10.000000");
    assert_eq!(detail["balance_low_trigger"], "2.000000");
    assert_eq!(detail["balance_critical_trigger"], "1.000000");
    assert_eq!(detail["balance_termination_trigger"], "0.100000");
    assert_eq!(detail["customer_email"], "c@example.com");
    assert_eq!(detail["ledger"]["items"][0]["kind"], "deposit");
    assert_eq!(detail["officex"]["expected_status"], "RUNNING");
    assert_eq!(detail["resource"]["provider"], "gemini");
    assert!(detail["checkout"].is_null());
    assert!(detail["deposits"].as_array().unwrap().is_empty());
    let text = detail.to_string();
    assert!(!text.contains(&p.customer_key), "no customer key");
    assert!(!text.contains("secret-tracer"), "no tracer");
    let ledger = get(
        &app,
        &format!("/v1/admin/purchases/{}/ledger?limit=1", p.id),
    )
    .await;
    assert_eq!(ledger["items"].as_array().unwrap().len(), 1);
}

#[sqlx::test]
async fn the_customer_ledger_pages_with_transaction_links(pool: PgPool) {
    let app = spawn_app_with(
        pool.clone(),
        &[
            ("RPC_ENDPOINT", "http://127.0.0.1:1"),
            ("CHAIN_ID_DEC", "84532"),
            ("CHAIN_NAME", "base-sepolia"),
            ("USDC_ADDRESS", "0x036CbD53842c5426634e7929541eC2318f3dCF7e"),
        ],
    )
    .await;
    let p = buy(&pool, "gemini-api-gateway", 10_000_000, None).await;
    // A deposit credited from chain 84532: the ledger row carries its transaction.
    let (_, address) = failed_sweep(&pool, Some(p.id), 11).await;
    let tx_hash = format!("0x{}", "ab".repeat(32));
    let session: uuid::Uuid =
        sqlx::query_scalar("select checkout_session_id from checkout where deposit_address = $1")
            .bind(&address)
            .fetch_one(&pool)
            .await
            .unwrap();
    let reference = format!("deposit:84532:{tx_hash}:0");
    sqlx::query(
        "insert into deposit (chain_id, tx_hash, log_index, block_number, block_hash, token_address, token_symbol,
             from_address, deposit_address, checkout_session_id, amount_units, amount_micros, status, reference,
             purchase_id)
         values (84532, $1, 0, 10, '0x00', '0x036cbd53842c5426634e7929541ec2318f3dcf7e', 'usdc', '0x01', $2, $3,
                 2000000, 2000000, 'credited', $4, $5)",
    )
    .bind(&tx_hash)
    .bind(&address)
    .bind(session)
    .bind(&reference)
    .bind(p.id.0)
    .execute(&pool)
    .await
    .unwrap();
    credit(&pool, p.id, 2_000_000, &reference).await;
    for i in 0..4 {
        let mut tx = pool.begin().await.unwrap();
        ledger::post(
            &mut tx,
            p.id,
            &NewEntry::new(EntryKind::Usage, UsdMicros(-100_000 - i))
                .description(format!("use {i}")),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }

    let path = format!("/v1/purchase/{}/ledger", p.id);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let url = match &cursor {
            Some(c) => format!("{path}?limit=2&cursor={c}"),
            None => format!("{path}?limit=2"),
        };
        let (status, page) = app.get_auth(&url, &p.customer_key).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6, "deposit, on-chain deposit, 4 usages");
    let ids: Vec<i64> = seen.iter().map(|i| i["id"].as_i64().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(ids, sorted, "newest first, each once");
    assert_eq!(seen[0]["kind"], "usage");
    assert_eq!(seen[0]["amount_usd"], "-0.100003");
    assert_eq!(seen[0]["balance_after_usd"], "11.599994");
    assert_eq!(seen[0]["description"], "use 3");
    assert!(seen[0].get("tx_hash").is_none());
    let onchain = &seen[4];
    assert_eq!(onchain["kind"], "deposit");
    assert_eq!(onchain["tx_hash"], tx_hash.as_str());
    assert_eq!(
        onchain["explorer_url"],
        format!("https://sepolia.basescan.org/tx/{tx_hash}").as_str()
    );
    assert!(seen[5].get("tx_hash").is_none(), "no deposit row behind it");
    // The sum of the amounts is the balance.
    let sum: i64 = seen
        .iter()
        .map(|i| {
            UsdMicros::parse_decimal(i["amount_usd"].as_str().unwrap())
                .unwrap()
                .0
        })
        .sum();
    assert_eq!(sum, balance(&pool, p.id).await);

    // Auth as every keyed route; bad paging input.
    assert_error(
        &app.get(&path).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &app.get_auth(&path, "wrong").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let other = buy(&pool, "gemini-api-gateway", 1_000_000, None).await;
    assert_error(
        &app.get_auth(&path, &other.customer_key).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &app.get_auth(&format!("{path}?cursor=x"), &p.customer_key)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_cursor",
    );
    assert_error(
        &app.get_auth(&format!("{path}?limit=0"), &p.customer_key)
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_limit",
    );
}

#[sqlx::test]
async fn the_audit_log_pages_newest_first(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    let p = buy(&pool, "gemini-api-gateway", 10_000_000, None).await;
    for i in 0..7 {
        let (status, _) = post(
            &app,
            &format!("/v1/admin/purchases/{}/adjustments", p.id),
            &json!({"amount_usd": "0.01", "reason": format!("r{i}")}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let items = walk(&app, "/v1/admin/audit?limit=3&action=purchase.adjust").await;
    let reasons: Vec<&str> = items
        .iter()
        .map(|i| i["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, vec!["r6", "r5", "r4", "r3", "r2", "r1", "r0"]);
    assert!(
        get(&app, "/v1/admin/audit?action=token.create").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[sqlx::test]
async fn on_anvil_the_console_sees_deposits_sweeps_and_the_gas_wallet(pool: PgPool) {
    use crate::checkout::{GEMINI_USDC, setup_with};
    use alloy::primitives::U256;
    // The gas wallet starts empty: the sweep waits and the wallet is flagged low.
    let p = setup_with(pool, &[("ADMIN_TOKEN", TOKEN)], 0, true).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    let mint_tx = p.anvil.mint(p.anvil.usdc, address, 3_000_000).await;
    p.anvil.mine(2).await;
    let f = p.finalized(GEMINI_USDC, &session).await;
    let id = f["receipt"]["vendor_purchase_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = f["receipt"]["customer_billing_api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..2 {
        vendor_server::chain::sweeper::run_once(&p.app.state.pool, &p.app.state.chains)
            .await
            .unwrap();
    }
    let gas = get(&p.app, "/v1/admin/gas").await;
    let wallet = &gas["items"][0];
    assert_eq!(wallet["chain_id"], 31337);
    assert_eq!(wallet["balance_wei"], "0");
    assert_eq!(wallet["low"], true, "{gas}");
    assert_eq!(wallet["sweeps_waiting"], 1);
    assert!(wallet["sweeps_covered"].is_null(), "no confirmed sweep yet");

    // The customer's ledger links the deposit's transaction on the chain's explorer.
    let (status, ledger) = p
        .app
        .get_auth(&format!("/v1/purchase/{id}/ledger"), &key)
        .await;
    assert_eq!(status, StatusCode::OK, "{ledger}");
    let credit = &ledger["items"][0];
    assert_eq!(credit["kind"], "deposit");
    assert_eq!(credit["amount_usd"], "3.000000");
    let tx_hash = credit["tx_hash"].as_str().unwrap();
    assert_eq!(tx_hash.to_lowercase(), mint_tx.to_lowercase());
    assert_eq!(
        credit["explorer_url"],
        format!("https://explorer.test/tx/{tx_hash}").as_str()
    );

    // Funded, the sweep goes through; the wallet is no longer low and its coverage is known.
    p.anvil
        .set_eth(
            p.wallets.gas.address(),
            U256::from(10u64).pow(U256::from(18u64)),
        )
        .await;
    p.sweep_all().await;
    let gas = get(&p.app, "/v1/admin/gas").await;
    let wallet = &gas["items"][0];
    assert_eq!(wallet["low"], false, "{gas}");
    assert_eq!(wallet["sweeps_waiting"], 0);
    let balance: U256 = wallet["balance_wei"].as_str().unwrap().parse().unwrap();
    let cost: U256 = wallet["sweep_cost_wei"].as_str().unwrap().parse().unwrap();
    assert!(cost > U256::ZERO);
    assert_eq!(
        wallet["sweeps_covered"],
        (balance / cost).to_string().as_str()
    );
    let overview = get(&p.app, "/v1/admin/overview").await;
    assert_eq!(overview["gas"][0]["chain_id"], 31337);
    assert_eq!(overview["money"]["today"]["credited_usd"], "3.000000");
    // The chain's RPC endpoint is up and has been used; its URL is never shown, only host:port.
    let rpc = overview["rpc"].as_object().unwrap();
    assert_eq!(rpc.len(), 1, "{overview}");
    let (_, chain) = rpc.iter().next().unwrap();
    assert_eq!(chain["status"], "ok");
    let endpoint = &chain["endpoints"][0];
    assert_eq!(endpoint["state"], "up", "{chain}");
    assert!(endpoint["requests"].as_u64().unwrap() > 0);
    assert!(
        endpoint["endpoint"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    assert!(
        !overview.to_string().contains("http://127.0.0.1"),
        "{overview}"
    );

    // The purchase's page shows the deposit and its sweep.
    let detail = get(&p.app, &format!("/v1/admin/purchases/{id}")).await;
    assert_eq!(detail["deposits"][0]["status"], "credited", "{detail}");
    assert_eq!(detail["deposits"][0]["amount_usd"], "3.000000");
    assert_eq!(detail["sweeps"][0]["status"], "confirmed");
    assert!(
        detail["sweeps"][0]["explorer_url"]
            .as_str()
            .unwrap()
            .starts_with("https://explorer.test/tx/0x")
    );
    assert_eq!(
        detail["checkout"]["deposit_address"]
            .as_str()
            .unwrap()
            .to_lowercase(),
        address.to_string().to_lowercase()
    );
}

#[sqlx::test]
async fn the_audit_log_records_the_client_behind_a_trusted_proxy(pool: PgPool) {
    let app = spawn_app_with(
        pool.clone(),
        &[("ADMIN_TOKEN", TOKEN), ("TRUSTED_PROXIES", "127.0.0.1/32")],
    )
    .await;
    let response = app
        .client
        .post(app.url("/v1/admin/tokens"))
        .bearer_auth(TOKEN)
        .header("x-forwarded-for", "198.51.100.1, 203.0.113.7")
        .header("idempotency-key", "behind-caddy-1")
        .json(&json!({"label": "behind caddy"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let audit = get(&app, "/v1/admin/audit").await;
    assert_eq!(audit["items"][0]["client_ip"], "203.0.113.7", "{audit}");
    assert_eq!(audit["items"][0]["action"], "token.create");
    assert_eq!(audit["items"][0]["actor"], "admin");
}

/// SPEC §9: every mutating admin route requires an idempotency key (an adjustment without one
/// could post twice); without one it is 400 `idempotency_key_required` and nothing changes.
#[sqlx::test]
async fn every_mutating_admin_route_requires_an_idempotency_key(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    let p = buy(&pool, "gemini-api-gateway", 10_000_000, None).await;
    let base = format!("/v1/admin/purchases/{}", p.id);
    let refund = format!("/v1/admin/refunds/{}", RefundId(uuid::Uuid::new_v4()));
    for (method, path, body) in [
        (
            Method::POST,
            format!("{base}/adjustments"),
            json!({"amount_usd": "5", "reason": "goodwill"}),
        ),
        (Method::POST, format!("{base}/suspend"), json!({})),
        (Method::POST, format!("{base}/resume"), json!({})),
        (
            Method::POST,
            format!("{base}/delete"),
            json!({"confirm": p.id.to_string()}),
        ),
        (Method::POST, format!("{base}/reprovision"), json!({})),
        (Method::POST, "/v1/admin/sweeps/1/retry".into(), json!({})),
        (
            Method::POST,
            "/v1/admin/notifications/1/retry".into(),
            json!({}),
        ),
        (
            Method::POST,
            "/v1/admin/tokens".into(),
            json!({"label": "x"}),
        ),
        (Method::DELETE, "/v1/admin/tokens/1".into(), json!({})),
        (Method::POST, format!("{refund}/approve"), json!({})),
        (
            Method::POST,
            format!("{refund}/reject"),
            json!({"reason": "no"}),
        ),
        (
            Method::POST,
            format!("{refund}/mark-paid"),
            json!({"tx_hash": format!("0x{}", "ab".repeat(32))}),
        ),
        (Method::POST, format!("{refund}/retry"), json!({})),
        (Method::POST, format!("{refund}/bump"), json!({})),
        (Method::POST, format!("{refund}/cancel-payout"), json!({})),
    ] {
        let response = app
            .client
            .request(method.clone(), app.url(&path))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        assert_error(
            &(status, answer),
            StatusCode::BAD_REQUEST,
            "idempotency_key_required",
        );
    }
    assert_eq!(balance(&pool, p.id).await, 10_000_000);
    assert!(audit_actions(&app, &p.id.to_string()).await.is_empty());
    // The key may also come in the body.
    let (status, body, _) = call(
        &app,
        Method::POST,
        &format!("{base}/adjustments"),
        Some(&json!({"amount_usd": "5", "reason": "goodwill", "idempotency_key": "in-body"})),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(balance(&pool, p.id).await, 15_000_000);
}
