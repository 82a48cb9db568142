//! The Gemini gateway against a local stand-in for Google's Gemini API that speaks its wire format
//! (JSON and SSE responses, `usageMetadata`, Google error bodies) and checks it only ever sees the
//! vendor's key. Customers call the gateway exactly as a Gemini client configured with this
//! server's base URL and their key would.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Notify;
use vendor_server::billing::ledger::{self, EntryKind, NewEntry};
use vendor_server::billing::purchases::{self, NewPurchase};
use vendor_server::catalog;
use vendor_server::domain::ids::PurchaseId;
use vendor_server::domain::money::UsdMicros;
use vendor_server::providers::ProvisionRequest;
use vendor_server::providers::gemini::{Estimate, GatewaySettings, ModelPrices, Reservation};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

pub(crate) const VENDOR_KEYS: [&str; 2] = ["vendor-upstream-key-1", "vendor-upstream-key-2"];

/// What the stand-in received.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) key: Option<String>,
    pub(crate) body: Value,
}

#[derive(Clone, Default)]
pub(crate) struct StandIn {
    pub(crate) seen: Arc<Mutex<Vec<Seen>>>,
    pub(crate) counter: Arc<AtomicUsize>,
    /// SSE streams send their first chunk, then wait for this (unless `free_streams`).
    release: Arc<Notify>,
    /// SSE streams send every chunk at once (the SDK tests).
    pub(crate) free_streams: Arc<std::sync::atomic::AtomicBool>,
    /// Calls being answered now, and the most at once.
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
}

impl StandIn {
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

pub(crate) fn google_error(code: u16, status: &str, message: &str) -> Response {
    (
        StatusCode::from_u16(code).unwrap(),
        axum::Json(json!({"error": {"code": code, "message": message, "status": status}})),
    )
        .into_response()
}

pub(crate) fn usage(prompt: u64, cached: u64, candidates: u64, thoughts: u64) -> Value {
    let mut u = json!({
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]
    });
    if cached > 0 {
        u["cachedContentTokenCount"] = json!(cached);
    }
    if thoughts > 0 {
        u["thoughtsTokenCount"] = json!(thoughts);
    }
    u
}

fn response(n: usize, model: &str, text: &str, usage: Value, finished: bool) -> Value {
    let mut candidate =
        json!({"content": {"parts": [{"text": text}], "role": "model"}, "index": 0});
    if finished {
        candidate["finishReason"] = json!("STOP");
    }
    json!({
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": format!("resp-{n}")
    })
}

/// The usage the stand-in reports per model (flash: 960 µUSD; pro: 7212.5 → 7213 µUSD).
pub(crate) fn usage_for(model: &str) -> Value {
    if model == "gemini-2.5-pro" {
        usage(1234, 0, 567, 0)
    } else {
        usage(1000, 400, 200, 100)
    }
}

/// What the stand-in reports for a request: what Google would count for a long video by URI
/// (`fileData`) or a 3 MB tool answer (`functionResponse`); OVERHOLD stands for a prompt the
/// gateway could not foresee (more tokens than the request's bytes).
fn reported_usage(model: &str, request: &str) -> Value {
    if request.contains("fileData") {
        usage(1_000_000, 0, 567, 0)
    } else if request.contains("functionResponse") {
        usage(750_000, 0, 567, 0)
    } else if request.contains("OVERHOLD") {
        usage(50_000, 0, 10, 0)
    } else {
        usage_for(model)
    }
}

fn stream_chunks(n: usize, model: &str, request: &str) -> Vec<Value> {
    vec![
        response(n, model, "Hel", usage(1000, 0, 1, 0), false),
        response(n, model, "lo", usage(1000, 0, 40, 0), false),
        response(n, model, "!", reported_usage(model, request), true),
    ]
}

fn sse(chunks: &[Value]) -> Vec<String> {
    chunks
        .iter()
        .map(|c| format!("data: {c}\r\n\r\n"))
        .collect()
}

async fn standin_call(
    State(s): State<StandIn>,
    Path(model_action): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let query = uri.query().unwrap_or_default().to_owned();
    s.seen.lock().unwrap().push(Seen {
        method: "POST".into(),
        path: uri.path().to_owned(),
        query: query.clone(),
        key: key.clone(),
        body: body.clone(),
    });
    if !key.as_deref().is_some_and(|k| VENDOR_KEYS.contains(&k)) {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
        );
    }
    let text = body.to_string();
    if text.contains("QUOTA_ALL")
        || text.contains("QUOTA_KEY1") && key.as_deref() == Some(VENDOR_KEYS[0])
    {
        return google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
        );
    }
    if text.contains("FAIL500") {
        return google_error(
            500,
            "INTERNAL",
            "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        );
    }
    if text.contains("FAIL400") {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.\n",
        );
    }
    let (model, action) = model_action.split_once(':').unwrap();
    let n = s.counter.fetch_add(1, Ordering::SeqCst);
    // Google's response filter (`fields`) drops usageMetadata unless asked for; NOUSAGE stands
    // for any answer without it.
    let no_usage = query.contains("fields") || text.contains("NOUSAGE");
    let strip = |mut v: Value| {
        if no_usage {
            v.as_object_mut().unwrap().remove("usageMetadata");
        }
        v
    };
    if text.contains("LONG") || text.contains("SLOW") {
        let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        s.max_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(300)).await;
        s.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
    match action {
        // A long answer: 60,000 output tokens (gemini-2.5-pro: 1000 × 1.25 + 60000 × 10 µUSD).
        "generateContent" if text.contains("LONG") => axum::Json(response(
            n,
            model,
            "Once upon a time…",
            usage(1000, 0, 60_000, 0),
            true,
        ))
        .into_response(),
        "generateContent" => {
            if text.contains("WAIT1S") {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            let answer = response(n, model, "Hello!", reported_usage(model, &text), true);
            axum::Json(strip(answer)).into_response()
        }
        "countTokens" => axum::Json(json!({"totalTokens": 42})).into_response(),
        // Google's answers: `embedContent` without usage (the gateway asks countTokens);
        // `batchEmbedContents` with `usageMetadata` (prompt tokens only), 7,000 tokens a text.
        "embedContent" => {
            axum::Json(json!({"embedding": {"values": [0.25, -0.5, 1.0]}})).into_response()
        }
        "batchEmbedContents" => {
            let n = body["requests"].as_array().map_or(0, Vec::len);
            let embeddings: Vec<Value> = (0..n)
                .map(|i| json!({"values": [i as f64, 0.5, -1.0]}))
                .collect();
            axum::Json(json!({
                "embeddings": embeddings,
                "usageMetadata": {
                    "promptTokenCount": 7_000 * n,
                    "promptTokenDetails": [{"modality": "TEXT", "tokenCount": 7_000 * n}]
                }
            }))
            .into_response()
        }
        // Headers at once, every chunk a second later.
        "streamGenerateContent" if query.contains("alt=sse") && text.contains("WAIT1S") => {
            let events = sse(&stream_chunks(n, model, &text)).concat();
            let stream = futures::stream::once(async move {
                tokio::time::sleep(Duration::from_secs(1)).await;
                Ok::<_, std::io::Error>(Bytes::from(events))
            });
            (
                [("content-type", "text/event-stream")],
                Body::from_stream(stream),
            )
                .into_response()
        }
        "streamGenerateContent" if query.contains("alt=sse") => {
            let events = sse(&stream_chunks(n, model, &text)
                .into_iter()
                .map(strip)
                .collect::<Vec<_>>());
            let release = s.release;
            let free = s.free_streams.load(Ordering::SeqCst);
            let breaks = text.contains("BREAK");
            let first = events[0].clone();
            let rest = events[1..].concat();
            let stream =
                futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(first)) })
                    .chain(futures::stream::once(async move {
                        if !free {
                            release.notified().await;
                        }
                        if breaks {
                            return Err(std::io::Error::other("upstream connection reset"));
                        }
                        Ok(Bytes::from(rest))
                    }));
            (
                [("content-type", "text/event-stream")],
                Body::from_stream(stream),
            )
                .into_response()
        }
        "streamGenerateContent" => {
            let chunks: Vec<String> = stream_chunks(n, model, &text)
                .into_iter()
                .map(|c| strip(c).to_string())
                .collect();
            let array = format!("[{}]", chunks.join("\n,\r\n"));
            ([("content-type", "application/json")], array).into_response()
        }
        other => google_error(404, "NOT_FOUND", &format!("unknown method {other}")),
    }
}

async fn standin_models(State(s): State<StandIn>, uri: Uri, headers: HeaderMap) -> Response {
    let key = headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    s.seen.lock().unwrap().push(Seen {
        method: "GET".into(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        key,
        body: Value::Null,
    });
    let models: Vec<Value> = [
        "gemini-2.5-flash",
        "gemini-2.5-pro",
        "gemini-2.0-flash",
        "gemini-embedding-001",
        "gemini-1.0-ultra",
    ]
    .iter()
    .map(|m| json!({"name": format!("models/{m}"), "displayName": m, "inputTokenLimit": 1_048_576, "supportedGenerationMethods": ["generateContent", "countTokens"]}))
    .collect();
    axum::Json(json!({"models": models, "nextPageToken": "page-2"})).into_response()
}

async fn standin_model(Path(model): Path<String>) -> Response {
    axum::Json(json!({"name": format!("models/{model}"), "inputTokenLimit": 1_048_576}))
        .into_response()
}

pub(crate) async fn start_standin() -> (StandIn, String) {
    let s = StandIn::default();
    let mut app = Router::new();
    // Google serves the model routes under both versions.
    for version in ["v1beta", "v1"] {
        app = app
            .route(&format!("/{version}/models"), get(standin_models))
            .route(
                &format!("/{version}/models/{{model_action}}"),
                get(standin_model).post(standin_call),
            );
    }
    let app = app
        .merge(crate::gemini_clients::openai_standin())
        // Google takes requests up to 20 MB.
        .layer(axum::extract::DefaultBodyLimit::max(20 * 1024 * 1024))
        .with_state(s.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (s, url)
}

pub(crate) async fn gateway_app(pool: PgPool) -> (TestApp, StandIn) {
    let (standin, url) = start_standin().await;
    let app = spawn_app_with(
        pool,
        &[
            ("GEMINI_API_KEY", &VENDOR_KEYS.join(",")),
            ("GEMINI_UPSTREAM_URL", &url),
        ],
    )
    .await;
    (app, standin)
}

/// A Gemini purchase as finalize leaves it: created, provisioned (gateway key), credited, active.
pub(crate) struct Bought {
    pub(crate) id: PurchaseId,
    pub(crate) key: String,
    pub(crate) customer_key: String,
    pub(crate) state: Value,
}

pub(crate) async fn buy(app: &TestApp, deposit: i64) -> Bought {
    let pool = &app.state.pool;
    let mut conn = pool.acquire().await.unwrap();
    let created = purchases::create(
        &mut conn,
        &NewPurchase {
            offer_id: "gemini-api-gateway".into(),
            title: "Gemini API Key".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    drop(conn);
    let offer = catalog::find_offer(pool, "gemini-api-gateway")
        .await
        .unwrap()
        .unwrap();
    // The checkout it was finalized from, with the offer's terms as initiate stores them.
    sqlx::query(
        "insert into checkout (checkout_session_id, checkout_wallet_id, checkout_flow_id, offer_id,
             chain_name, token_symbol, deposit_index, deposit_address, purchase_id, expires_at,
             watch_until, offer_terms)
         values (gen_random_uuid(), gen_random_uuid(), 'gemini-api-gateway:base:usdc',
             'gemini-api-gateway', 'base', 'usdc', nextval('deposit_index_seq'),
             '0x' || replace(gen_random_uuid()::text, '-', '') || '00000000', $1,
             now() + interval '1 day', now() + interval '30 days', $2)",
    )
    .bind(created.id.0)
    .bind(serde_json::to_value(&offer).unwrap())
    .execute(pool)
    .await
    .unwrap();
    let provider = app.state.providers.get("gemini").unwrap();
    let delivered = provider
        .provision(&ProvisionRequest {
            purchase_id: created.id,
            offer,
            customer_email: None,
            customer_url: app.url("/v1/dashboard/purchase"),
        })
        .await
        .unwrap();
    assert!(delivered.description.contains(&app.base_url));
    let mut tx = pool.begin().await.unwrap();
    ledger::post(
        &mut tx,
        created.id,
        &NewEntry::new(EntryKind::Deposit, UsdMicros(deposit)).reference("deposit:test"),
    )
    .await
    .unwrap();
    ledger::activate(&mut tx, created.id).await.unwrap();
    tx.commit().await.unwrap();
    Bought {
        id: created.id,
        key: delivered.redeem_code.unwrap().expose_secret().to_owned(),
        customer_key: created.customer_key.expose_secret().to_owned(),
        state: delivered.state,
    }
}

pub(crate) async fn balance(pool: &PgPool, id: PurchaseId) -> i64 {
    sqlx::query_scalar("select balance_micros from purchase where purchase_id = $1")
        .bind(id.0)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// (amount, usage_amount, unit, reference) of the purchase's usage entries, oldest first.
pub(crate) async fn usage_entries(
    pool: &PgPool,
    id: PurchaseId,
) -> Vec<(i64, Option<String>, Option<String>, Option<String>)> {
    sqlx::query_as(
        "select amount_micros, usage_amount::text, usage_unit, reference from ledger_entry
         where purchase_id = $1 and kind = 'usage' order by entry_id",
    )
    .bind(id.0)
    .fetch_all(pool)
    .await
    .unwrap()
}

pub(crate) fn prompt(text: &str) -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": text}]}]})
}

/// How a Gemini client sends its key.
#[derive(Clone, Copy)]
pub(crate) enum KeyIn {
    Header,
    Query,
}

pub(crate) async fn call(
    app: &TestApp,
    key: &str,
    key_in: KeyIn,
    model_action: &str,
    body: &Value,
) -> reqwest::Response {
    let url = app.url(&format!("/v1beta/models/{model_action}"));
    let request = match key_in {
        KeyIn::Header => app.client.post(url).header("x-goog-api-key", key),
        KeyIn::Query => {
            let sep = if url.contains('?') { '&' } else { '?' };
            app.client.post(format!("{url}{sep}key={key}"))
        }
    };
    request.json(body).send().await.unwrap()
}

pub(crate) async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.bytes().await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Google's error shape with this status.
#[track_caller]
pub(crate) fn assert_google_error(got: &(StatusCode, Value), code: u16, status: &str) {
    assert_eq!(got.0.as_u16(), code, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    assert_eq!(got.1["error"]["status"], status, "{}", got.1);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        got.1
    );
}

#[sqlx::test]
async fn a_standard_gemini_client_gets_answers_and_is_debited_exactly(pool: PgPool) {
    let (app, standin) = gateway_app(pool).await;
    let bought = buy(&app, 10_000_000).await;
    let pool = &app.state.pool;

    let body = prompt("Say hello");
    let got = json_of(
        call(
            &app,
            &bought.key,
            KeyIn::Header,
            "gemini-2.5-flash:generateContent",
            &body,
        )
        .await,
    )
    .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(
        got.1,
        response(
            0,
            "gemini-2.5-flash",
            "Hello!",
            usage_for("gemini-2.5-flash"),
            true
        )
    );
    let got = json_of(
        call(
            &app,
            &bought.key,
            KeyIn::Query,
            "gemini-2.5-pro:generateContent",
            &body,
        )
        .await,
    )
    .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["responseId"], "resp-1");

    // 600 × 0.30 + 400 × 0.075 + 300 × 2.50 = 960 µUSD; 1234 × 1.25 + 567 × 10 = 7212.5 → 7213.
    assert_eq!(
        usage_entries(pool, bought.id).await,
        [
            (
                -960,
                Some("1300".into()),
                Some("tokens".into()),
                Some("gemini:resp-0".into())
            ),
            (
                -7213,
                Some("1801".into()),
                Some("tokens".into()),
                Some("gemini:resp-1".into())
            ),
        ]
    );
    assert_eq!(balance(pool, bought.id).await, 10_000_000 - 960 - 7213);

    // Upstream saw the vendor's keys in turn, never the customer's, and the body unchanged.
    let seen = standin.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].path,
        "/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert_eq!(
        seen[1].path,
        "/v1beta/models/gemini-2.5-pro:generateContent"
    );
    let keys: HashSet<_> = seen.iter().filter_map(|s| s.key.clone()).collect();
    assert_eq!(keys, VENDOR_KEYS.iter().map(|k| (*k).to_owned()).collect());
    for s in &seen {
        assert!(!s.query.contains("key="), "{s:?}");
        assert_eq!(s.body, body);
    }

    // Concurrent calls (as many as the offer allows at once): every debit lands, none twice.
    let before = balance(pool, bought.id).await;
    let calls: Vec<_> = (0..4)
        .map(|_| {
            call(
                &app,
                &bought.key,
                KeyIn::Header,
                "gemini-2.5-flash:generateContent",
                &body,
            )
        })
        .collect();
    for response in futures::future::join_all(calls).await {
        assert_eq!(response.status(), StatusCode::OK);
    }
    assert_eq!(balance(pool, bought.id).await, before - 4 * 960);
    let mut conn = pool.acquire().await.unwrap();
    let (b, sum) = ledger::balance_and_ledger_sum(&mut conn, bought.id)
        .await
        .unwrap();
    assert_eq!(b, sum);
    assert_eq!(usage_entries(pool, bought.id).await.len(), 6);
}

#[sqlx::test]
async fn bad_keys_models_and_bodies_get_googles_errors_without_reaching_upstream(pool: PgPool) {
    let (app, standin) = gateway_app(pool).await;
    let bought = buy(&app, 10_000_000).await;
    let body = prompt("hi");
    let flash = "gemini-2.5-flash:generateContent";

    let missing = app
        .client
        .post(app.url(&format!("/v1beta/models/{flash}")))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_google_error(&json_of(missing).await, 401, "UNAUTHENTICATED");
    for wrong in [
        "vsg_not-a-real-key",
        "AIzaSyWhatever",
        bought.customer_key.as_str(),
    ] {
        let got = json_of(call(&app, wrong, KeyIn::Header, flash, &body).await).await;
        assert_google_error(&got, 403, "PERMISSION_DENIED");
    }
    let got = json_of(
        call(
            &app,
            &bought.key,
            KeyIn::Header,
            "gemini-1.0-ultra:generateContent",
            &body,
        )
        .await,
    )
    .await;
    assert_google_error(&got, 404, "NOT_FOUND");
    let got = json_of(
        call(
            &app,
            &bought.key,
            KeyIn::Header,
            "gemini-2.5-flash:batchGenerateContent",
            &body,
        )
        .await,
    )
    .await;
    assert_google_error(&got, 404, "NOT_FOUND");
    let got = json_of(
        app.client
            .post(app.url(&format!("/v1beta/models/{flash}")))
            .header("x-goog-api-key", &bought.key)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_google_error(&got, 400, "INVALID_ARGUMENT");
    let got = json_of(
        app.client
            .get(app.url("/v1beta/models/gemini-1.0-ultra"))
            .header("x-goog-api-key", &bought.key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_google_error(&got, 404, "NOT_FOUND");
    let got = json_of(
        app.client
            .put(app.url("/v1beta/models"))
            .header("x-goog-api-key", &bought.key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_google_error(&got, 405, "UNIMPLEMENTED");
    assert!(standin.seen().is_empty(), "{:?}", standin.seen());
    assert!(usage_entries(&app.state.pool, bought.id).await.is_empty());
}

#[sqlx::test]
async fn suspended_or_empty_purchases_get_402_and_deleted_keys_403(pool: PgPool) {
    let (app, standin) = gateway_app(pool).await;
    let bought = buy(&app, 1_000_000).await;
    let pool = &app.state.pool;
    let provider = app.state.providers.get("gemini").unwrap();
    let flash = "gemini-2.5-flash:generateContent";
    let body = prompt("hi");
    let key_status = || async {
        sqlx::query_scalar::<_, String>("select status from gateway_key where purchase_id = $1")
            .bind(bought.id.0)
            .fetch_one(pool)
            .await
            .unwrap()
    };

    // Provider suspension disables the key.
    provider.suspend(bought.id, &bought.state).await.unwrap();
    assert_eq!(key_status().await, "disabled");
    let got = json_of(call(&app, &bought.key, KeyIn::Header, flash, &body).await).await;
    assert_google_error(&got, 402, "FAILED_PRECONDITION");
    provider.resume(bought.id, &bought.state).await.unwrap();
    assert_eq!(key_status().await, "active");
    let got = json_of(call(&app, &bought.key, KeyIn::Header, flash, &body).await).await;
    assert_eq!(got.0, StatusCode::OK);

    // A request the balance cannot cover (a whole context at long-context prices) is refused
    // before it costs anything.
    let big = video_request();
    let calls = standin.seen().len();
    let got = json_of(
        call(
            &app,
            &bought.key,
            KeyIn::Header,
            "gemini-2.5-pro:generateContent",
            &big,
        )
        .await,
    )
    .await;
    assert_google_error(&got, 402, "FAILED_PRECONDITION");
    assert_eq!(standin.seen().len(), calls);

    // The balance used up: the purchase is suspended by its triggers.
    let left = balance(pool, bought.id).await;
    let mut tx = pool.begin().await.unwrap();
    let posted = ledger::post(
        &mut tx,
        bought.id,
        &NewEntry::new(EntryKind::Usage, UsdMicros(-left)),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(posted.status_after.as_str(), "suspended");
    let got = json_of(call(&app, &bought.key, KeyIn::Query, flash, &body).await).await;
    assert_google_error(&got, 402, "FAILED_PRECONDITION");

    // A topup restores access.
    let mut tx = pool.begin().await.unwrap();
    ledger::post(
        &mut tx,
        bought.id,
        &NewEntry::new(EntryKind::Deposit, UsdMicros(5_000_000)).reference("deposit:topup"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let got = json_of(call(&app, &bought.key, KeyIn::Header, flash, &body).await).await;
    assert_eq!(got.0, StatusCode::OK);

    // Deletion revokes the key for good.
    provider.delete(bought.id, &bought.state).await.unwrap();
    provider.delete(bought.id, &bought.state).await.unwrap();
    assert_eq!(key_status().await, "revoked");
    let got = json_of(call(&app, &bought.key, KeyIn::Header, flash, &body).await).await;
    assert_google_error(&got, 403, "PERMISSION_DENIED");
    assert!(provider.resume(bought.id, &bought.state).await.is_err());
}

#[sqlx::test]
async fn upstream_errors_pass_through_and_are_not_charged(pool: PgPool) {
    let (app, standin) = gateway_app(pool).await;
    let bought = buy(&app, 10_000_000).await;
    for (trigger, status) in [("FAIL500", 500u16), ("FAIL400", 400)] {
        let response = call(
            &app,
            &bought.key,
            KeyIn::Header,
            "gemini-2.5-flash:generateContent",
            &prompt(trigger),
        )
        .await;
        assert_eq!(response.status().as_u16(), status);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], status);
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(if status == 500 {
                    "internal error has occurred"
                } else {
                    "contents.parts must not be empty"
                }),
            "{body}"
        );
    }
    assert_eq!(standin.seen().len(), 2);
    assert!(usage_entries(&app.state.pool, bought.id).await.is_empty());
    assert_eq!(balance(&app.state.pool, bought.id).await, 10_000_000);

    // Every vendor key over its quota: Google's 429 passes through, free.
    let got = json_of(
        call(
            &app,
            &bought.key,
            KeyIn::Header,
            "gemini-2.5-flash:generateContent",
            &prompt("QUOTA_ALL"),
        )
        .await,
    )
    .await;
    assert_google_error(&got, 429, "RESOURCE_EXHAUSTED");
    assert!(usage_entries(&app.state.pool, bought.id).await.is_empty());

    // One vendor key over its quota: the call moves on to the next key and succeeds.
    for _ in 0..2 {
        let response = call(
            &app,
            &bought.key,
            KeyIn::Header,
            "gemini-2.5-flash:generateContent",
            &prompt("QUOTA_KEY1"),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let retried = standin
        .seen()
        .iter()
        .filter(|s| s.body == prompt("QUOTA_KEY1") && s.key.as_deref() == Some(VENDOR_KEYS[0]))
        .count();
    assert!(retried >= 1, "key 1 was never tried");
    assert_eq!(usage_entries(&app.state.pool, bought.id).await.len(), 2);
}

#[sqlx::test]
async fn streams_pass_through_as_they_arrive_and_are_metered_once(pool: PgPool) {
    let (app, standin) = gateway_app(pool).await;
    let bought = buy(&app, 10_000_000).await;
    let pool = &app.state.pool;

    let mut response = call(
        &app,
        &bought.key,
        KeyIn::Header,
        "gemini-2.5-flash:streamGenerateContent?alt=sse",
        &prompt("stream please"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    // The first event arrives while upstream still holds the rest back.
    let first = tokio::time::timeout(Duration::from_secs(10), response.chunk())
        .await
        .expect("the first chunk was not passed through before the stream ended")
        .unwrap()
        .unwrap();
    let mut received = first.to_vec();
    assert!(String::from_utf8_lossy(&first).starts_with("data: "));
    assert!(usage_entries(pool, bought.id).await.is_empty());
    standin.release.notify_one();
    while let Some(chunk) = response.chunk().await.unwrap() {
        received.extend_from_slice(&chunk);
    }
    assert_eq!(
        String::from_utf8(received).unwrap(),
        sse(&stream_chunks(0, "gemini-2.5-flash", "")).concat()
    );
    assert_eq!(
        usage_entries(pool, bought.id).await,
        [(
            -960,
            Some("1300".into()),
            Some("tokens".into()),
            Some("gemini:resp-0".into())
        )]
    );
    let seen = standin.seen();
    assert_eq!(seen[0].query, "alt=sse");
    assert!(VENDOR_KEYS.contains(&seen[0].key.as_deref().unwrap()));

    // Without alt=sse Google streams a JSON array; metered once as well. The key may come in ?key=.
    let response = call(
        &app,
        &bought.key,
        KeyIn::Query,
        "gemini-2.5-pro:streamGenerateContent",
        &prompt("stream please"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let array: Value = response.json().await.unwrap();
    assert_eq!(array.as_array().unwrap().len(), 3);
    let entries = usage_entries(pool, bought.id).await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].0, -7213);
    assert_eq!(balance(pool, bought.id).await, 10_000_000 - 960 - 7213);
}

#[sqlx::test]
async fn an_interrupted_stream_is_metered_from_what_was_seen(pool: PgPool) {
    let (app, standin) = gateway_app(pool).await;
    let bought = buy(&app, 10_000_000).await;
    let pool = &app.state.pool;

    // Upstream breaks off after its first event (1000 prompt + 1 output token: 302.5 → 303 µUSD).
    let mut response = call(
        &app,
        &bought.key,
        KeyIn::Header,
        "gemini-2.5-flash:streamGenerateContent?alt=sse",
        &prompt("BREAK"),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let first = tokio::time::timeout(Duration::from_secs(10), response.chunk())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&first).contains("Hel"));
    standin.release.notify_one();
    let mut failed = false;
    loop {
        match response.chunk().await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the customer sees the stream break");
    assert_eq!(wait_for_usage(pool, bought.id, 1).await[0].0, -303);
}

/// Background posts: polls (bounded) until the purchase has `n` usage entries.
async fn wait_for_usage(
    pool: &PgPool,
    id: PurchaseId,
    n: usize,
) -> Vec<(i64, Option<String>, Option<String>, Option<String>)> {
    for _ in 0..250 {
        let entries = usage_entries(pool, id).await;
        if entries.len() >= n {
            assert_eq!(entries.len(), n);
            return entries;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("usage was not posted within 5 s");
}

#[sqlx::test]
async fn count_tokens_is_free_and_the_model_list_is_the_offers(pool: PgPool) {
    let (app, standin) = gateway_app(pool).await;
    let bought = buy(&app, 10_000_000).await;
    let got = json_of(
        call(
            &app,
            &bought.key,
            KeyIn::Header,
            "gemini-2.5-flash:countTokens",
            &prompt("count me"),
        )
        .await,
    )
    .await;
    assert_eq!(got, (StatusCode::OK, json!({"totalTokens": 42})));
    assert!(usage_entries(&app.state.pool, bought.id).await.is_empty());

    let listed = json_of(
        app.client
            .get(app.url(&format!("/v1beta/models?key={}", bought.key)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(listed.0, StatusCode::OK);
    let names: Vec<&str> = listed.1["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "models/gemini-2.5-flash",
            "models/gemini-2.5-pro",
            "models/gemini-2.0-flash",
            "models/gemini-embedding-001"
        ]
    );
    assert!(listed.1.get("nextPageToken").is_none());
    let one = json_of(
        app.client
            .get(app.url("/v1beta/models/gemini-2.5-pro"))
            .header("x-goog-api-key", &bought.key)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(one.0, StatusCode::OK);
    assert_eq!(one.1["name"], "models/gemini-2.5-pro");
    assert!(
        standin
            .seen()
            .iter()
            .all(|s| VENDOR_KEYS.contains(&s.key.as_deref().unwrap_or_default()))
    );
    assert_eq!(standin.seen()[1].method, "GET");
}

#[sqlx::test]
async fn per_purchase_limits_answer_429_with_retry_after(pool: PgPool) {
    let (app, _standin) = gateway_app(pool).await;
    let pool = &app.state.pool;
    sqlx::query(
        r#"update offer set settings = settings || '{"requests_per_minute": 2, "tokens_per_minute": 100000}'::jsonb
           where offer_id = 'gemini-api-gateway'"#,
    )
    .execute(pool)
    .await
    .unwrap();
    let a = buy(&app, 10_000_000).await;
    let b = buy(&app, 10_000_000).await;
    let flash = "gemini-2.5-flash:generateContent";
    let body = prompt("hi");
    for _ in 0..2 {
        let response = call(&app, &a.key, KeyIn::Header, flash, &body).await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = call(&app, &a.key, KeyIn::Header, flash, &body).await;
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert_google_error(&json_of(response).await, 429, "RESOURCE_EXHAUSTED");
    // Another purchase has its own budget.
    let response = call(&app, &b.key, KeyIn::Header, flash, &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(usage_entries(pool, a.id).await.len(), 2);

    // Tokens per minute: one call of 1300 tokens uses up a budget of 1000.
    sqlx::query(
        r#"update offer set settings = settings || '{"requests_per_minute": 100, "tokens_per_minute": 1000}'::jsonb
           where offer_id = 'gemini-api-gateway'"#,
    )
    .execute(pool)
    .await
    .unwrap();
    let c = buy(&app, 10_000_000).await;
    let response = call(&app, &c.key, KeyIn::Header, flash, &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let got = json_of(call(&app, &c.key, KeyIn::Header, flash, &body).await).await;
    assert_google_error(&got, 429, "RESOURCE_EXHAUSTED");
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tokens")
    );
}

#[sqlx::test]
async fn providers_and_the_gateway_follow_the_configuration(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    assert!(!app.state.providers.has("gemini") && !app.state.providers.has("s3"));
    assert!(app.state.gemini.is_none());
    let got = json_of(
        call(
            &app,
            "vsg_x",
            KeyIn::Header,
            "gemini-2.5-flash:generateContent",
            &prompt("hi"),
        )
        .await,
    )
    .await;
    // Not configured is not a passing outage: 404, as Google answers what it does not serve.
    assert_google_error(&got, 404, "NOT_FOUND");
    drop(app);

    let app = spawn_app_with(
        pool,
        &[
            ("GEMINI_API_KEY", "k1"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ],
    )
    .await;
    assert!(app.state.providers.has("gemini") && app.state.providers.has("s3"));
    // The gateway is documented.
    let (status, doc) = app.get("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["paths"]["/v1beta/models/{model_action}"]["post"].is_object());
}

/// Issue 13: a server without Gemini keys does not serve the gateway at all: every gateway route
/// answers 404 in Google's error shape (not a 503, which clients retry as a passing outage).
#[sqlx::test]
async fn an_unconfigured_gateway_answers_404_in_googles_shape(pool: PgPool) {
    let app = spawn_app(pool).await;
    assert!(app.state.gemini.is_none());
    for (method, path, key) in [
        ("GET", "/v1beta/models", None),
        ("GET", "/v1beta/models", Some("vsg_x")),
        ("GET", "/v1beta/models/gemini-2.5-flash", Some("vsg_x")),
        (
            "POST",
            "/v1beta/models/gemini-2.5-flash:generateContent",
            None,
        ),
        (
            "POST",
            "/v1beta/models/gemini-2.5-flash:countTokens?key=vsg_x",
            None,
        ),
    ] {
        let mut request = match method {
            "GET" => app.client.get(app.url(path)),
            _ => app.client.post(app.url(path)).json(&prompt("hi")),
        };
        if let Some(key) = key {
            request = request.header("x-goog-api-key", key);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.headers().get("retry-after").is_none(),
            "{method} {path}: nothing to retry"
        );
        let got = json_of(response).await;
        assert_google_error(&got, 404, "NOT_FOUND");
        assert!(
            got.1["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not configured"),
            "{method} {path}: {}",
            got.1
        );
    }
}

/// The estimate of a body as a client sends it (compact JSON, as `call` sends it).
fn estimate(body: &Value) -> Estimate {
    Estimate::of_request(body, serde_json::to_vec(body).unwrap().len() as u64)
}

/// The offer's prices of `model`, as the gateway reads them.
async fn offer_prices(pool: &PgPool, model: &str) -> ModelPrices {
    let offer = catalog::find_offer(pool, "gemini-api-gateway")
        .await
        .unwrap()
        .unwrap();
    GatewaySettings::from_offer_settings(&offer.settings)
        .unwrap()
        .models[model]
}

async fn reservations(pool: &PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from gateway_reservation")
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Issue 10 #2: 60 parallel `gemini-2.5-pro` calls without `maxOutputTokens` on a $1 balance.
/// Each holds its worst case (the model's output limit) while it runs and is admitted only if
/// that fits the balance less the running holds, so together they never take the balance below
/// zero (issue 20); and no more than the offer's `max_concurrent_requests` run at once.
#[sqlx::test]
async fn parallel_calls_never_take_the_balance_below_zero(pool: PgPool) {
    let (app, standin) = gateway_app(pool).await;
    let pool = &app.state.pool;
    let bought = buy(&app, 1_000_000).await;
    let body = prompt("LONG story please");
    let pro = offer_prices(pool, "gemini-2.5-pro").await;
    let worst = pro.hold(&estimate(&body)).0;
    // 69 bytes + 65536 output tokens at 1.25 / 10 $/M = 655,446.25, rounded up.
    assert_eq!(worst, 655_447);

    let calls: Vec<_> = (0..60)
        .map(|_| {
            call(
                &app,
                &bought.key,
                KeyIn::Header,
                "gemini-2.5-pro:generateContent",
                &body,
            )
        })
        .collect();
    let mut answered = 0;
    for response in futures::future::join_all(calls).await {
        let got = json_of(response).await;
        match got.0.as_u16() {
            200 => answered += 1,
            402 => assert_google_error(&got, 402, "FAILED_PRECONDITION"),
            429 => assert_google_error(&got, 429, "RESOURCE_EXHAUSTED"),
            other => panic!("unexpected {other}: {}", got.1),
        }
    }
    let charged: i64 = usage_entries(pool, bought.id)
        .await
        .iter()
        .map(|e| -e.0)
        .sum();
    assert!(answered >= 1);
    assert!(
        charged <= 1_000_000,
        "{answered} calls charged {charged} µUSD on a 1,000,000 µUSD balance"
    );
    // Refused calls never reached Google; every answer was charged (1000 × 1.25 + 60000 × 10).
    assert_eq!(standin.seen().len(), answered);
    assert_eq!(charged, answered as i64 * 601_250);
    let mut conn = pool.acquire().await.unwrap();
    let (b, sum) = ledger::balance_and_ledger_sum(&mut conn, bought.id)
        .await
        .unwrap();
    assert_eq!((b.0, sum.0), (1_000_000 - charged, 1_000_000 - charged));
    drop(conn);
    assert_eq!(reservations(pool).await, 0, "every reservation was settled");

    // A large balance: at most 4 calls of one purchase run at once; the others get 429.
    let rich = buy(&app, 100_000_000).await;
    let small = json!({
        "contents": [{"role": "user", "parts": [{"text": "SLOW hi"}]}],
        "generationConfig": {"maxOutputTokens": 100}
    });
    let calls: Vec<_> = (0..20)
        .map(|_| {
            call(
                &app,
                &rich.key,
                KeyIn::Header,
                "gemini-2.5-flash:generateContent",
                &small,
            )
        })
        .collect();
    let mut statuses = Vec::new();
    for response in futures::future::join_all(calls).await {
        let got = json_of(response).await;
        if got.0 == StatusCode::TOO_MANY_REQUESTS {
            assert_google_error(&got, 429, "RESOURCE_EXHAUSTED");
        }
        statuses.push(got.0.as_u16());
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(ok + statuses.iter().filter(|s| **s == 429).count(), 20);
    assert!((1..20).contains(&ok), "{statuses:?}");
    let most = standin.max_in_flight.load(Ordering::SeqCst);
    assert!(most <= 4, "{most} calls of one purchase ran at once");
    assert_eq!(usage_entries(pool, rich.id).await.len(), ok);
    assert_eq!(reservations(pool).await, 0);
}

/// A reservation left by a crashed request holds the balance only until it lapses.
#[sqlx::test]
async fn a_crashed_calls_reservation_holds_the_balance_until_it_lapses(pool: PgPool) {
    let (app, _standin) = gateway_app(pool).await;
    let pool = &app.state.pool;
    let bought = buy(&app, 1_000_000).await;
    let body = json!({
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"maxOutputTokens": 100}
    });
    let hold = |expires_in: &'static str| {
        sqlx::query(
            "insert into gateway_reservation (reservation_id, purchase_id, amount_micros, model, expires_at)
             values (gen_random_uuid(), $1, 999900, 'gemini-2.5-flash', now() + $2::interval)",
        )
        .bind(bought.id.0)
        .bind(expires_in)
        .execute(pool)
    };
    hold("10 minutes").await.unwrap();
    let got = json_of(
        call(
            &app,
            &bought.key,
            KeyIn::Header,
            "gemini-2.5-flash:generateContent",
            &body,
        )
        .await,
    )
    .await;
    assert_google_error(&got, 402, "FAILED_PRECONDITION");
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("held by calls in progress"),
        "{}",
        got.1
    );
    sqlx::query("delete from gateway_reservation")
        .execute(pool)
        .await
        .unwrap();
    hold("-1 second").await.unwrap();
    let response = call(
        &app,
        &bought.key,
        KeyIn::Header,
        "gemini-2.5-flash:generateContent",
        &body,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(reservations(pool).await, 0, "the lapsed one is gone too");

    // A running call pushes its lapse back; a guard dropped unsettled frees its hold.
    let held = Reservation::take(pool, bought.id, "gemini-2.5-flash", UsdMicros(1000), 4)
        .await
        .unwrap();
    sqlx::query("update gateway_reservation set expires_at = now() + interval '1 second'")
        .execute(pool)
        .await
        .unwrap();
    held.extend().await.unwrap();
    let left: f64 = sqlx::query_scalar(
        "select extract(epoch from expires_at - now())::float8 from gateway_reservation",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(left > 800.0, "{left}");
    drop(held);
    for _ in 0..250 {
        if reservations(pool).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("a dropped reservation was not released");
}

/// Issue 11 #1: response filters and other wire formats never reach Google (its filter would drop
/// `usageMetadata` and make the call free); an answer without `usageMetadata` is charged the
/// call's reserved worst case.
#[sqlx::test]
async fn response_filters_are_refused_and_unreported_usage_is_charged_the_worst_case(pool: PgPool) {
    let (app, standin) = gateway_app(pool).await;
    let pool = &app.state.pool;
    let bought = buy(&app, 10_000_000).await;
    let body = prompt("hi");
    for action in [
        "gemini-2.5-flash:generateContent?fields=candidates",
        "gemini-2.5-flash:generateContent?%24fields=candidates",
        "gemini-2.5-flash:generateContent?fields=candidates.content&alt=json",
        "gemini-2.5-flash:streamGenerateContent?alt=sse&fields=candidates",
        "gemini-2.5-flash:streamGenerateContent?fields=candidates",
        "gemini-2.5-flash:generateContent?alt=proto",
        "gemini-2.5-flash:generateContent?%24alt=proto",
        "gemini-2.5-flash:streamGenerateContent?alt=proto",
    ] {
        for key_in in [KeyIn::Header, KeyIn::Query] {
            let got = json_of(call(&app, &bought.key, key_in, action, &body).await).await;
            assert_google_error(&got, 400, "INVALID_ARGUMENT");
        }
    }
    assert!(standin.seen().is_empty(), "{:?}", standin.seen());

    // Harmless parameters are dropped, not forwarded.
    let response = call(
        &app,
        &bought.key,
        KeyIn::Query,
        "gemini-2.5-flash:generateContent?prettyPrint=false&alt=json&quotaUser=x",
        &body,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(standin.seen()[0].query, "");
    assert_eq!(usage_entries(pool, bought.id).await.len(), 1);

    // An answer without usageMetadata: delivered, and charged the reserved worst case.
    let flash = offer_prices(pool, "gemini-2.5-flash").await;
    let unreported = json!({
        "contents": [{"role": "user", "parts": [{"text": "NOUSAGE"}]}],
        "generationConfig": {"maxOutputTokens": 1000}
    });
    let worst = flash.charge(&estimate(&unreported).worst_case(&flash)).0;
    // 103 bytes × 0.30 + 1000 × 2.50 µUSD = 2530.9, rounded half up.
    assert_eq!(worst, 2531);
    let got = json_of(
        call(
            &app,
            &bought.key,
            KeyIn::Header,
            "gemini-2.5-flash:generateContent",
            &unreported,
        )
        .await,
    )
    .await;
    assert_eq!(got.0, StatusCode::OK);
    assert!(got.1.get("usageMetadata").is_none());
    let entries = usage_entries(pool, bought.id).await;
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].0, -worst);

    // The same for a stream (a JSON array here) that never shows usageMetadata.
    let response = call(
        &app,
        &bought.key,
        KeyIn::Header,
        "gemini-2.5-flash:streamGenerateContent",
        &unreported,
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);
    let array: Value = response.json().await.unwrap();
    assert_eq!(array.as_array().unwrap().len(), 3);
    let entries = wait_for_usage(pool, bought.id, 3).await;
    assert_eq!(entries[2].0, -worst);
    assert_eq!(reservations(pool).await, 0);
}

/// Sends a raw request head (and part of a body), then reads what the server answers within
/// `within`, without sending the rest.
async fn raw_exchange(app: &TestApp, head: &str, body: &[u8], within: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (and close) before it takes everything.
    let _ = stream.write_all(body).await;
    let mut buf = vec![0u8; 8192];
    let n = tokio::time::timeout(within, stream.read(&mut buf))
        .await
        .unwrap_or_else(|_| panic!("no answer within {within:?} to {head}"))
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn head(model_action: &str, key: Option<&str>, length: u64) -> String {
    let key = key.map_or_else(String::new, |k| format!("x-goog-api-key: {k}\r\n"));
    format!(
        "POST /v1beta/models/{model_action} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n{key}content-length: {length}\r\n\r\n"
    )
}

/// Issue 11 #2: the key, the gateway and the model are checked before any of the body is read; an
/// announced body over the limit is refused at once, and a stalled body is cut off, its connection
/// closed (`Connection: close`) on every gateway route.
#[sqlx::test]
async fn the_key_is_checked_before_the_body_and_a_stalled_body_is_cut_off(pool: PgPool) {
    let off = spawn_app(pool.clone()).await;
    let (standin, url) = start_standin().await;
    let app = spawn_app_with(
        pool,
        &[
            ("GEMINI_API_KEY", &VENDOR_KEYS.join(",")),
            ("GEMINI_UPSTREAM_URL", &url),
            ("GEMINI_BODY_READ_TIMEOUT_SECS", "1"),
            ("GEMINI_MAX_BODY_BYTES", "1000000"),
        ],
    )
    .await;
    let bought = buy(&app, 10_000_000).await;
    let flash = "gemini-2.5-flash:generateContent";
    let start = [b'{'; 1000];
    let quick = Duration::from_secs(3);

    // 20 MB announced, 1 KB sent: answered without waiting for the rest.
    for (target, key, expected) in [
        (&off, None, "404"),
        (&off, Some("vsg_whatever"), "404"),
        (&app, None, "401"),
        (&app, Some("vsg_not-a-real-key"), "403"),
        (&app, Some(bought.key.as_str()), "413"),
    ] {
        let answer = raw_exchange(target, &head(flash, key, 20_000_000), &start, quick).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {expected} ")),
            "{key:?}: {answer}"
        );
        assert!(answer.contains("\"error\""), "{answer}");
    }
    let answer = raw_exchange(
        &app,
        &head(
            "gemini-1.0-ultra:generateContent",
            Some(&bought.key),
            500_000,
        ),
        &start,
        quick,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");

    // A body within the limit that stalls: cut off after the body-read timeout (1 s here).
    let started = std::time::Instant::now();
    let answer = raw_exchange(&app, &head(flash, Some(&bought.key), 5_000), &start, quick).await;
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.contains("DEADLINE_EXCEEDED"), "{answer}");
    assert!(started.elapsed() >= Duration::from_millis(900));
    assert!(standin.seen().is_empty());
    assert!(usage_entries(&app.state.pool, bought.id).await.is_empty());
    assert_eq!(reservations(&app.state.pool).await, 0);

    // A chunked body that grows past the limit is refused as it arrives.
    let chunk = format!("{:x}\r\n{}\r\n", 600_000, "a".repeat(600_000));
    let chunked = format!(
        "POST /v1beta/models/{flash} HTTP/1.1\r\nhost: localhost\r\nx-goog-api-key: {}\r\ntransfer-encoding: chunked\r\n\r\n",
        bought.key
    );
    let answer = raw_exchange(&app, &chunked, format!("{chunk}{chunk}").as_bytes(), quick).await;
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");

    // A body left unread (over the limit, or stalled) ends its connection: the rest is never
    // drained. The same on Google's route and on the OpenAI-compatible ones.
    for path in [
        "/v1beta/models/gemini-2.5-flash:generateContent",
        "/v1beta/openai/chat/completions",
        "/v1beta/openai/embeddings",
    ] {
        for (length, expected) in [(20_000_000, "413"), (5_000, "408")] {
            let head = format!(
                "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\nx-goog-api-key: {}\r\ncontent-length: {length}\r\n\r\n",
                bought.key
            );
            let answer = raw_exchange(&app, &head, &start, quick).await;
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {expected} ")),
                "{path}: {answer}"
            );
            assert!(
                answer
                    .to_ascii_lowercase()
                    .contains("\r\nconnection: close\r\n"),
                "{path} {expected} keeps the connection: {answer}"
            );
        }
    }
}

/// Sends a whole request on a raw connection, then closes it after `after` without reading.
async fn hang_up_after(app: &TestApp, path: &str, key: &str, body: &Value, after: Duration) {
    use tokio::io::AsyncWriteExt;
    let body = serde_json::to_vec(body).unwrap();
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\nx-goog-api-key: {key}\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    tokio::time::sleep(after).await;
    drop(stream);
}

/// Issue 20 #1: a call that reached the upstream is charged whatever the client does. The
/// upstream takes 1 s; clients hang up at 0.3 s (before the answer), or close a stream after its
/// headers, before its first chunk: each is charged what a call read to the end is.
#[sqlx::test]
async fn hanging_up_never_makes_a_call_free(pool: PgPool) {
    let (app, standin) = gateway_app(pool).await;
    let pool = &app.state.pool;
    let body = prompt("WAIT1S tell me a story");
    let generate = "gemini-2.5-flash:generateContent";
    let stream = "gemini-2.5-flash:streamGenerateContent?alt=sse";

    // Read to the end: 1000 prompt (400 cached) + 200 + 100 thought tokens = 960 µUSD.
    let reader = buy(&app, 10_000_000).await;
    let got = json_of(call(&app, &reader.key, KeyIn::Header, generate, &body).await).await;
    assert_eq!(got.0, StatusCode::OK);
    let streamed = call(&app, &reader.key, KeyIn::Header, stream, &body).await;
    assert_eq!(streamed.status(), StatusCode::OK);
    assert!(
        streamed
            .text()
            .await
            .unwrap()
            .contains("\"finishReason\":\"STOP\"")
    );
    let read: Vec<i64> = usage_entries(pool, reader.id)
        .await
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(read, [-960, -960]);

    // Hung up before the answer (at 0.3 s of the upstream's 1 s).
    let early = buy(&app, 10_000_000).await;
    hang_up_after(
        &app,
        &format!("/v1beta/models/{generate}"),
        &early.key,
        &body,
        Duration::from_millis(300),
    )
    .await;
    // Hung up on a stream before its headers.
    let early_stream = buy(&app, 10_000_000).await;
    hang_up_after(
        &app,
        &format!("/v1beta/models/{stream}"),
        &early_stream.key,
        &body,
        Duration::from_millis(300),
    )
    .await;
    // A stream closed after its headers, before its first chunk.
    let after_headers = buy(&app, 10_000_000).await;
    let response = call(&app, &after_headers.key, KeyIn::Header, stream, &body).await;
    assert_eq!(response.status(), StatusCode::OK);
    drop(response);

    for leaver in [&early, &early_stream, &after_headers] {
        let entries = wait_for_usage(pool, leaver.id, 1).await;
        assert_eq!(entries[0].0, -960);
        assert_eq!(balance(pool, leaver.id).await, 10_000_000 - 960);
    }
    assert_eq!(standin.seen().len(), 5, "every call reached the upstream");
    for _ in 0..100 {
        if reservations(pool).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("a reservation was left behind");
}

/// A `gemini-2.5-pro` call on a long video by URI (its size is not in the request).
fn video_request() -> Value {
    json!({"contents": [{"role": "user", "parts": [
        {"fileData": {"fileUri": "https://www.youtube.com/watch?v=9hE5-98ZeCg"}},
        {"text": "Summarize this video."}
    ]}]})
}

/// A call whose client hands back a 3 MB tool answer (not under any `text` key).
fn tool_answer_request() -> Value {
    json!({
        "contents": [
            {"role": "user", "parts": [{"text": "Look it up."}]},
            {"role": "model", "parts": [{"functionCall": {"name": "lookup", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {
                "name": "lookup", "response": {"result": "x".repeat(3_000_000)}
            }}]}
        ],
        "generationConfig": {"maxOutputTokens": 100}
    })
}

/// Issue 20 #2: the hold is a true upper bound. Six concurrent `fileData` / 3 MB
/// `functionResponse` calls on `gemini-2.5-pro` with $0.50 are all refused up front (402): none
/// reaches Google and the balance never goes below zero.
#[sqlx::test]
async fn calls_whose_worst_case_exceeds_the_balance_are_refused_up_front(pool: PgPool) {
    let (app, standin) = gateway_app(pool).await;
    let pool = &app.state.pool;
    // All six run at once (not refused 429 by the concurrency cap): each must be refused for
    // its hold.
    sqlx::query(
        r#"update offer set settings = settings || '{"max_concurrent_requests": 8}'::jsonb
           where offer_id = 'gemini-api-gateway'"#,
    )
    .execute(pool)
    .await
    .unwrap();
    let bought = buy(&app, 500_000).await;
    let (video, tool_answer) = (video_request(), tool_answer_request());
    let calls: Vec<_> = (0..6)
        .map(|i| {
            let body = if i % 2 == 0 { &video } else { &tool_answer };
            call(
                &app,
                &bought.key,
                KeyIn::Header,
                "gemini-2.5-pro:generateContent",
                body,
            )
        })
        .collect();
    for response in futures::future::join_all(calls).await {
        let got = json_of(response).await;
        assert_google_error(&got, 402, "FAILED_PRECONDITION");
    }
    assert!(standin.seen().is_empty(), "nothing reached the upstream");
    assert_eq!(balance(pool, bought.id).await, 500_000);
    assert!(usage_entries(pool, bought.id).await.is_empty());
    assert_eq!(reservations(pool).await, 0);
}

/// (charge, hold) in micro-USD of the purchase's last usage entry.
async fn last_charge_and_hold(pool: &PgPool, id: PurchaseId) -> (i64, i64) {
    let metadata: Value = sqlx::query_scalar(
        "select metadata from ledger_entry where purchase_id = $1 and kind = 'usage'
         order by entry_id desc limit 1",
    )
    .bind(id.0)
    .fetch_one(pool)
    .await
    .unwrap();
    let micros = |field: &str| {
        UsdMicros::parse_decimal(
            metadata[field]
                .as_str()
                .unwrap_or_else(|| panic!("{metadata}")),
        )
        .unwrap()
        .0
    };
    (micros("charge_usd"), micros("hold_usd"))
}

/// Issue 20 #2: text, media (by URI) and tool-answer calls are each charged within what they held
/// (the long ones at the long-context tier); a charge above its hold is still posted and raises a
/// `gateway.hold_exceeded` alert.
#[sqlx::test]
async fn every_charge_is_within_its_hold_and_one_above_it_is_posted_and_alerted(pool: PgPool) {
    let (app, _standin) = gateway_app(pool).await;
    let pool = &app.state.pool;
    let pro = "gemini-2.5-pro:generateContent";
    for (what, body, charge) in [
        // 1234 × 1.25 + 567 × 10 = 7212.5 → 7213.
        ("text", prompt("Hello there"), 7213),
        // Over 200k prompt tokens: 1,000,000 × 2.50 + 567 × 15 = 2,508,505.
        ("fileData", video_request(), 2_508_505),
        // 750,000 × 2.50 + 567 × 15.
        ("functionResponse", tool_answer_request(), 1_883_505),
    ] {
        // One purchase each (a million tokens is its tokens-per-minute budget).
        let rich = buy(&app, 10_000_000).await;
        let got = json_of(call(&app, &rich.key, KeyIn::Header, pro, &body).await).await;
        assert_eq!(got.0, StatusCode::OK, "{what}: {}", got.1);
        let (charged, hold) = last_charge_and_hold(pool, rich.id).await;
        eprintln!("gemini-2.5-pro {what}: hold {hold} µUSD, charge {charged} µUSD");
        assert_eq!(charged, charge, "{what}");
        assert!(charged <= hold, "{what}: charged {charged} > hold {hold}");
    }

    // A prompt of more tokens than its bytes (a stand-in for what the bound cannot see).
    let small = buy(&app, 10_000_000).await;
    let body = json!({
        "contents": [{"role": "user", "parts": [{"text": "OVERHOLD"}]}],
        "generationConfig": {"maxOutputTokens": 10}
    });
    let got = json_of(
        call(
            &app,
            &small.key,
            KeyIn::Header,
            "gemini-2.5-flash:generateContent",
            &body,
        )
        .await,
    )
    .await;
    assert_eq!(got.0, StatusCode::OK);
    // 50,000 × 0.30 + 10 × 2.50 = 15,025 µUSD, above a hold of about a hundred.
    let (charged, hold) = last_charge_and_hold(pool, small.id).await;
    assert_eq!(charged, 15_025);
    assert!(hold < charged, "{hold}");
    assert_eq!(balance(pool, small.id).await, 10_000_000 - 15_025);
    let alerts: Vec<(String, Value)> = sqlx::query_as(
        "select channel, payload from outbox where event_type = 'gateway.hold_exceeded' and purchase_id = $1",
    )
    .bind(small.id.0)
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].0, "alert");
    assert!(alerts[0].1["text"].as_str().unwrap().contains("$0.015025"));
}

/// Issue 20 #3: a purchase keeps the prices and models it was bought on. The vendor restarts with
/// flash at 10× and gemini-2.0-flash removed: the existing purchase's identical call costs what it
/// did and gemini-2.0-flash still works for it; a new purchase pays the new prices.
#[sqlx::test]
async fn purchases_keep_the_prices_and_models_they_were_bought_on(pool: PgPool) {
    let (standin, url) = start_standin().await;
    let keys = VENDOR_KEYS.join(",");
    let gemini = [
        ("GEMINI_API_KEY", keys.as_str()),
        ("GEMINI_UPSTREAM_URL", url.as_str()),
    ];
    let app = spawn_app_with(pool.clone(), &gemini).await;
    let old = buy(&app, 10_000_000).await;
    let flash = "gemini-2.5-flash:generateContent";
    let body = prompt("hi");
    assert_eq!(
        call(&app, &old.key, KeyIn::Header, flash, &body)
            .await
            .status(),
        StatusCode::OK
    );
    drop(app);

    let offers =
        std::fs::read_to_string(format!("{}/config/offers.toml", crate::helpers::ROOT)).unwrap();
    let removed = offers
        .split_once("[offers.settings.models.\"gemini-2.0-flash\"]")
        .map(|(before, after)| format!("{before}{}", &after[after.find("\n\n").unwrap()..]))
        .unwrap();
    let raised = removed
        .replace("input = \"0.30\"", "input = \"3.00\"")
        .replace("output = \"2.50\"", "output = \"25.00\"")
        .replace("cached_input = \"0.075\"", "cached_input = \"0.75\"")
        .replace("\"gemini-2.0-flash\"]", "]")
        .replace(", ]", "]");
    assert_ne!(raised, offers);
    let file = std::env::temp_dir().join(format!("offers-{}.toml", uuid::Uuid::new_v4()));
    std::fs::write(&file, raised).unwrap();
    let mut vars = gemini.to_vec();
    vars.push(("OFFERS_FILE", file.to_str().unwrap()));
    let app = spawn_app_with(pool, &vars).await;
    std::fs::remove_file(&file).unwrap();
    let pool = &app.state.pool;

    let got = json_of(call(&app, &old.key, KeyIn::Header, flash, &body).await).await;
    assert_eq!(got.0, StatusCode::OK);
    let legacy = "gemini-2.0-flash:generateContent";
    let got = json_of(call(&app, &old.key, KeyIn::Header, legacy, &body).await).await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    let charges: Vec<i64> = usage_entries(pool, old.id)
        .await
        .iter()
        .map(|e| e.0)
        .collect();
    // 600 × 0.10 + 400 × 0.025 + 300 × 0.40 = 190 µUSD for gemini-2.0-flash.
    assert_eq!(charges, [-960, -960, -190]);

    let new = buy(&app, 10_000_000).await;
    let got = json_of(call(&app, &new.key, KeyIn::Header, flash, &body).await).await;
    assert_eq!(got.0, StatusCode::OK);
    assert_eq!(usage_entries(pool, new.id).await[0].0, -9600);
    let got = json_of(call(&app, &new.key, KeyIn::Header, legacy, &body).await).await;
    assert_google_error(&got, 404, "NOT_FOUND");
    assert_eq!(standin.seen().len(), 4);
}

/// Issue 20 #4: built-in tools Google bills per request are refused (400 `tool_not_sold`, in
/// Google's shape, before reaching Google) unless the offer prices them; a priced one is charged
/// per request on top of the tokens. Function declarations are the client's own.
#[sqlx::test]
async fn tools_the_offer_does_not_price_are_refused(pool: PgPool) {
    let (app, standin) = gateway_app(pool).await;
    let pool = &app.state.pool;
    let bought = buy(&app, 10_000_000).await;
    let with_tool = |tool: Value| json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "tools": [tool]});
    for (tool, name) in [
        (json!({"googleSearch": {}}), "googleSearch"),
        (
            json!({"google_search_retrieval": {"dynamic_retrieval_config": {"mode": "MODE_DYNAMIC"}}}),
            "googleSearchRetrieval",
        ),
        (json!({"urlContext": {}}), "urlContext"),
        (json!({"code_execution": {}}), "codeExecution"),
    ] {
        for action in [
            "gemini-2.5-flash:generateContent",
            "gemini-2.5-flash:streamGenerateContent?alt=sse",
        ] {
            let got = json_of(
                call(
                    &app,
                    &bought.key,
                    KeyIn::Header,
                    action,
                    &with_tool(tool.clone()),
                )
                .await,
            )
            .await;
            assert_google_error(&got, 400, "INVALID_ARGUMENT");
            assert_eq!(
                got.1["error"]["details"][0]["reason"], "tool_not_sold",
                "{}",
                got.1
            );
            let message = got.1["error"]["message"].as_str().unwrap();
            assert!(message.contains(name), "{message}");
        }
    }
    assert!(standin.seen().is_empty());

    let functions = with_tool(json!({"functionDeclarations": [{"name": "lookup"}]}));
    let got = json_of(
        call(
            &app,
            &bought.key,
            KeyIn::Header,
            "gemini-2.5-flash:generateContent",
            &functions,
        )
        .await,
    )
    .await;
    assert_eq!(got.0, StatusCode::OK);
    assert_eq!(usage_entries(pool, bought.id).await[0].0, -960);

    // An offer that prices Google Search: its purchases are charged per request.
    sqlx::query(
        r#"update offer set settings = settings || '{"tools": {"googleSearch": {"per_request_usd": "0.035"}}}'::jsonb
           where offer_id = 'gemini-api-gateway'"#,
    )
    .execute(pool)
    .await
    .unwrap();
    let priced = buy(&app, 10_000_000).await;
    let search = with_tool(json!({"google_search": {}}));
    let got = json_of(
        call(
            &app,
            &priced.key,
            KeyIn::Header,
            "gemini-2.5-flash:generateContent",
            &search,
        )
        .await,
    )
    .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(usage_entries(pool, priced.id).await[0].0, -(960 + 35_000));
    // The earlier purchase's terms do not sell it.
    let got = json_of(
        call(
            &app,
            &bought.key,
            KeyIn::Header,
            "gemini-2.5-flash:generateContent",
            &search,
        )
        .await,
    )
    .await;
    assert_google_error(&got, 400, "INVALID_ARGUMENT");
}
