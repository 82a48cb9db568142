//! Every real Gemini client, unchanged: Google's own SDKs (`google-genai` for Python, sync and
//! async; `@google/genai` for JavaScript) configured with only the gateway's base URL and key, run
//! as real programs (tests/sdk/) against a started server and the upstream stand-in of
//! `gemini.rs`, which speaks the wire shapes those SDKs send and expect. The SDKs are installed by
//! `scripts/install-tools.sh`; a test whose SDK is absent says so and skips.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::process::Command;

use crate::gemini::{
    Seen, StandIn, VENDOR_KEYS, assert_google_error, balance, buy, gateway_app, google_error,
    json_of, usage_entries,
};
use crate::helpers::TestApp;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn tools_dir() -> PathBuf {
    std::env::var_os("TOOLS_DIR").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/vendor-server-tools")
        },
        PathBuf::from,
    )
}

/// The tools venv's python when it can import `module`, else why not.
async fn python_with(module: &str) -> Result<PathBuf, String> {
    let python = tools_dir().join("venv/bin/python");
    if !python.is_file() {
        return Err(format!("{} not found", python.display()));
    }
    let ok = Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    if ok {
        Ok(python)
    } else {
        Err(format!("{} cannot import {module}", python.display()))
    }
}

/// `node` and the npm prefix holding `@google/genai` (the newest installed), else why not.
async fn node_with_genai() -> Result<PathBuf, String> {
    let node_ok = Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    if !node_ok {
        return Err("node not found on PATH".to_owned());
    }
    let npm = tools_dir().join("npm");
    let mut prefixes: Vec<PathBuf> = std::fs::read_dir(&npm)
        .map_err(|e| format!("{}: {e}", npm.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("google-genai-"))
                && p.join("node_modules/@google/genai/package.json").is_file()
        })
        .collect();
    prefixes.sort();
    prefixes
        .pop()
        .ok_or_else(|| format!("@google/genai not installed under {}", npm.display()))
}

/// Says why a test skips (the tool it needs is absent).
fn skip(test: &str, why: &str) {
    eprintln!(
        "SKIPPED {test}: {why}; run scripts/install-tools.sh (TOOLS_DIR={})",
        tools_dir().display()
    );
}

/// Runs one SDK script against the app with the purchase's key; its stdout is one JSON object.
async fn run_script(
    program: &Path,
    script: &str,
    envs: &[(&str, &Path)],
    app: &TestApp,
    key: &str,
    ops: &[&str],
) -> Value {
    let mut command = Command::new(program);
    command
        .arg(format!("{ROOT}/tests/sdk/{script}"))
        .args([app.base_url.as_str(), key, &ops.join(",")])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        // The SDKs must find nothing else: no Google credentials or endpoints from the environment.
        .env_remove("GOOGLE_API_KEY")
        .env_remove("GEMINI_API_KEY")
        .env_remove("GOOGLE_GENAI_API_VERSION")
        .env_remove("GOOGLE_GEMINI_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("OPENAI_BASE_URL");
    for (name, value) in envs {
        command.env(name, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .unwrap_or_else(|_| panic!("{script} did not finish within 120 s"))
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}):\n{stdout}\n{stderr}"))
}

/// The stand-in's answer text and the flash usage (`usage_for`): 960 µUSD a call.
const FLASH_CALL_MICROS: i64 = 960;

#[sqlx::test]
async fn google_genai_python_works_with_only_a_base_url_and_the_key(pool: PgPool) {
    let Ok(python) = python_with("google.genai").await.map_err(|why| {
        skip(
            "google_genai_python_works_with_only_a_base_url_and_the_key",
            &why,
        );
    }) else {
        return;
    };
    let (app, standin) = gateway_app(pool).await;
    standin.free_streams.store(true, Ordering::SeqCst);
    let bought = buy(&app, 10_000_000).await;
    let got = run_script(
        &python,
        "google_genai_client.py",
        &[],
        &app,
        &bought.key,
        &[
            "generate",
            "stream",
            "async_generate",
            "async_stream",
            "count_tokens",
            "list_models",
            "get_model",
            "embed",
            "embed_many",
        ],
    )
    .await;
    assert_eq!(got["generate"]["text"], "Hello!", "{got}");
    assert_eq!(
        got["generate"]["usage"]["prompt_token_count"], 1000,
        "{got}"
    );
    assert_eq!(got["generate"]["usage"]["cached_content_token_count"], 400);
    assert_eq!(got["stream"]["texts"], json!(["Hel", "lo", "!"]), "{got}");
    assert_eq!(got["stream"]["usage"]["candidates_token_count"], 200);
    assert_eq!(got["async_generate"]["text"], "Hello!", "{got}");
    assert_eq!(
        got["async_stream"]["texts"],
        json!(["Hel", "lo", "!"]),
        "{got}"
    );
    assert_eq!(got["count_tokens"], 42, "{got}");
    let listed = got["list_models"].as_array().unwrap();
    assert!(listed.contains(&json!("models/gemini-2.5-flash")), "{got}");
    assert!(!listed.contains(&json!("models/gemini-1.0-ultra")), "{got}");
    assert_eq!(got["get_model"], "models/gemini-2.5-flash", "{got}");
    let embedded: Vec<Vec<f64>> = serde_json::from_value(got["embed"].clone()).unwrap();
    assert_eq!(embedded, [[0.0, 0.5, -1.0]], "{got}");
    assert_eq!(got["embed_many"].as_array().unwrap().len(), 2, "{got}");

    // Four generations charged exactly, and the embeddings their input tokens (batchEmbedContents
    // reports 7,000 a text: 1050 µUSD each at $0.15 per million); counting tokens and listing
    // models are free.
    let pool = &app.state.pool;
    let charges: Vec<i64> = usage_entries(pool, bought.id)
        .await
        .iter()
        .map(|e| -e.0)
        .collect();
    assert_eq!(charges, [960, 960, 960, 960, 1050, 2100], "{charges:?}");
    assert_eq!(
        balance(pool, bought.id).await,
        10_000_000 - 4 * FLASH_CALL_MICROS - 3150
    );
    // google-genai 3.x calls Google's stable version, and the gateway asks the same upstream.
    let seen = standin.seen();
    assert!(
        seen.iter().all(|s| s.path.starts_with("/v1/models")),
        "{seen:?}"
    );
    assert!(seen.iter().any(
        |s| s.path == "/v1/models/gemini-2.5-flash:streamGenerateContent" && s.query == "alt=sse"
    ));
}

#[sqlx::test]
async fn google_genai_javascript_works_with_only_a_base_url_and_the_key(pool: PgPool) {
    let prefix = match node_with_genai().await {
        Ok(prefix) => prefix,
        Err(why) => {
            skip(
                "google_genai_javascript_works_with_only_a_base_url_and_the_key",
                &why,
            );
            return;
        }
    };
    let (app, standin) = gateway_app(pool).await;
    standin.free_streams.store(true, Ordering::SeqCst);
    let bought = buy(&app, 10_000_000).await;
    let got = run_script(
        Path::new("node"),
        "google_genai_client.mjs",
        &[("GOOGLE_GENAI_PREFIX", &prefix)],
        &app,
        &bought.key,
        &["generate", "stream", "count_tokens", "embed"],
    )
    .await;
    assert_eq!(got["generate"]["text"], "Hello!", "{got}");
    assert_eq!(got["generate"]["usage"]["promptTokenCount"], 1000, "{got}");
    assert_eq!(got["stream"]["texts"], json!(["Hel", "lo", "!"]), "{got}");
    assert_eq!(got["stream"]["usage"]["candidatesTokenCount"], 200, "{got}");
    assert_eq!(got["count_tokens"], 42, "{got}");
    let embedded: Vec<Vec<f64>> = serde_json::from_value(got["embed"].clone()).unwrap();
    assert_eq!(embedded, [[0.0, 0.5, -1.0]], "{got}");
    let pool = &app.state.pool;
    assert_eq!(usage_entries(pool, bought.id).await.len(), 3);
    assert_eq!(
        balance(pool, bought.id).await,
        10_000_000 - 2 * FLASH_CALL_MICROS - 1050
    );
}

/// Google's resources the gateway does not sell answer 404 in Google's shape, naming what is
/// served, under both versions and for uploads; the rest of `/v1/` stays this server's API.
#[sqlx::test]
async fn routes_not_sold_answer_googles_404_naming_what_is_served(pool: PgPool) {
    let (app, standin) = gateway_app(pool).await;
    let bought = buy(&app, 10_000_000).await;
    for (method, path) in [
        ("GET", "/v1beta/files"),
        ("POST", "/upload/v1beta/files"),
        ("GET", "/v1/files/abc"),
        ("POST", "/v1beta/cachedContents"),
        ("GET", "/v1/cachedContents"),
        ("GET", "/v1beta/batches/b1"),
        ("POST", "/v1beta/tunedModels"),
        ("GET", "/v1/tunedModels/t1"),
        ("GET", "/v1beta/corpora"),
        (
            "POST",
            "/v1beta/models/gemini-2.5-flash:batchGenerateContent",
        ),
        ("POST", "/v1/models/gemini-2.5-flash:predictLongRunning"),
        ("GET", "/v1beta/models/gemini-2.5-flash/operations/x"),
    ] {
        let request = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .header("x-goog-api-key", &bought.key);
        let request = if method == "POST" {
            request.json(&json!({}))
        } else {
            request
        };
        let got = json_of(request.send().await.unwrap()).await;
        assert_google_error(&got, 404, "NOT_FOUND");
        let message = got.1["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("generateContent") && message.contains("/v1beta/models"),
            "{method} {path}: {message}"
        );
    }
    assert!(standin.seen().is_empty(), "{:?}", standin.seen());
    // Not Google's: the server's own JSON 404.
    let got = app.get("/v1/no-such-route").await;
    assert_eq!(got.0, StatusCode::NOT_FOUND);
    assert_eq!(got.1["code"], "not_found", "{}", got.1);

    // As the SDK shows it.
    if let Ok(python) = python_with("google.genai").await {
        let got = run_script(
            &python,
            "google_genai_client.py",
            &[],
            &app,
            &bought.key,
            &["unsold"],
        )
        .await;
        assert_eq!(got["unsold"]["error"]["code"], 404, "{got}");
        assert_eq!(got["unsold"]["error"]["status"], "NOT_FOUND", "{got}");
    }
}

/// The stand-in's Gemini OpenAI-compatible surface (`/v1beta/openai/…`): Google's shapes, the
/// vendor's key as a bearer token. Chat usage is the flash usage of the native surface
/// (`usage_for`: 1000 prompt tokens of which 400 cached, 200 candidates and 100 thinking tokens,
/// which Google's compatible surface counts only in `total_tokens`).
pub(crate) fn openai_standin() -> Router<StandIn> {
    Router::new()
        .route("/v1beta/openai/chat/completions", post(standin_chat))
        .route("/v1beta/openai/embeddings", post(standin_embeddings))
        .route("/v1beta/openai/models", get(standin_openai_models))
}

fn standin_seen(
    s: &StandIn,
    method: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Value,
) -> Option<String> {
    let key = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    s.seen.lock().unwrap().push(Seen {
        method: method.into(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        key: key.clone(),
        body: body.clone(),
    });
    key.filter(|k| VENDOR_KEYS.contains(&k.as_str()))
}

fn openai_chat_usage() -> Value {
    json!({
        "prompt_tokens": 1000,
        "completion_tokens": 200,
        "total_tokens": 1300,
        "prompt_tokens_details": {"cached_tokens": 400}
    })
}

async fn standin_chat(
    State(s): State<StandIn>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if standin_seen(&s, "POST", &uri, &headers, &body).is_none() {
        return google_error(401, "UNAUTHENTICATED", "API key not valid.");
    }
    let n = s.counter.fetch_add(1, Ordering::SeqCst);
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let id = format!("chatcmpl-{n}");
    if body["stream"] != json!(true) {
        return axum::Json(json!({
            "choices": [{"finish_reason": "stop", "index": 0,
                         "message": {"content": "Hello!", "role": "assistant"}}],
            "created": 1_765_000_000,
            "id": id,
            "model": model,
            "object": "chat.completion",
            "usage": openai_chat_usage()
        }))
        .into_response();
    }
    let chunk = |delta: Value, finish: Option<&str>| {
        json!({
            "choices": [{"delta": delta, "finish_reason": finish, "index": 0}],
            "created": 1_765_000_000, "id": id, "model": model, "object": "chat.completion.chunk"
        })
    };
    let mut events = vec![
        chunk(json!({"content": "Hel", "role": "assistant"}), None),
        chunk(json!({"content": "lo"}), None),
        chunk(json!({"content": "!"}), Some("stop")),
    ];
    if body["stream_options"]["include_usage"] == json!(true) {
        events.push(json!({
            "choices": [], "created": 1_765_000_000, "id": id, "model": model,
            "object": "chat.completion.chunk", "usage": openai_chat_usage()
        }));
    }
    let mut text: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    text.push_str("data: [DONE]\n\n");
    // Event by event, as Google sends them.
    let parts: Vec<Result<Bytes, std::io::Error>> = text
        .split_inclusive("\n\n")
        .map(|p| Ok(Bytes::from(p.to_owned())))
        .collect();
    (
        [("content-type", "text/event-stream")],
        Body::from_stream(futures::stream::iter(parts)),
    )
        .into_response()
}

async fn standin_embeddings(
    State(s): State<StandIn>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if standin_seen(&s, "POST", &uri, &headers, &body).is_none() {
        return google_error(401, "UNAUTHENTICATED", "API key not valid.");
    }
    let inputs: Vec<Value> = match &body["input"] {
        Value::Array(items) => items.clone(),
        other => vec![other.clone()],
    };
    let base64 = body["encoding_format"] == json!("base64");
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let values = [i as f32, 0.5, -1.0];
            let embedding = if base64 {
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(values)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let mut answer = json!({"object": "list", "data": data, "model": body["model"]});
    if !body.to_string().contains("NOUSAGE") {
        let tokens = 7_000 * inputs.len();
        answer["usage"] = json!({"prompt_tokens": tokens, "total_tokens": tokens});
    }
    axum::Json(answer).into_response()
}

async fn standin_openai_models(State(s): State<StandIn>, uri: Uri, headers: HeaderMap) -> Response {
    if standin_seen(&s, "GET", &uri, &headers, &Value::Null).is_none() {
        return google_error(401, "UNAUTHENTICATED", "API key not valid.");
    }
    let data: Vec<Value> = [
        "gemini-2.5-flash",
        "gemini-2.5-pro",
        "gemini-2.0-flash",
        "gemini-embedding-001",
        "gemini-1.0-ultra",
    ]
    .iter()
    .map(|m| json!({"id": format!("models/{m}"), "object": "model", "created": 0, "owned_by": "google"}))
    .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

/// Embeddings on Google's surface: charged input tokens × the model's input price ($0.15 per
/// million for gemini-embedding-001), from the answer's usage, else from a free upstream
/// countTokens of the same content.
#[sqlx::test]
async fn embeddings_are_charged_their_input_tokens(pool: PgPool) {
    let (app, standin) = gateway_app(pool).await;
    let bought = buy(&app, 10_000_000).await;
    let pool = &app.state.pool;
    let batch = json!({"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "Say hello"}]}},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "and goodbye"}]}}
    ]});
    let got = json_of(
        app.client
            .post(app.url("/v1beta/models/gemini-embedding-001:batchEmbedContents"))
            .header("x-goog-api-key", &bought.key)
            .json(&batch)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["embeddings"].as_array().unwrap().len(), 2);
    // 14,000 tokens × $0.15 / M = 2100 µUSD.
    assert_eq!(usage_entries(pool, bought.id).await[0].0, -2100);

    // embedContent answers without usage: the same content is counted upstream (42 tokens:
    // 6.3 → 6 µUSD), free.
    let one = json!({"content": {"parts": [{"text": "Say hello"}]}, "taskType": "RETRIEVAL_QUERY"});
    let got = json_of(
        app.client
            .post(app.url("/v1/models/gemini-embedding-001:embedContent"))
            .header("x-goog-api-key", &bought.key)
            .json(&one)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["embedding"]["values"], json!([0.25, -0.5, 1.0]));
    let entries = usage_entries(pool, bought.id).await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[1].0, -6);
    assert_eq!(balance(pool, bought.id).await, 10_000_000 - 2100 - 6);
    let seen = standin.seen();
    let counted = seen
        .iter()
        .find(|s| s.path == "/v1/models/gemini-embedding-001:countTokens")
        .expect("countTokens asked");
    assert_eq!(counted.body, json!({"contents": [one["content"]]}));
    assert!(VENDOR_KEYS.contains(&counted.key.as_deref().unwrap()));
}

/// OpenAI's Python SDK against `/v1beta/openai/`: chat (plain, streamed with and without the
/// usage chunk), embeddings and models; the same usage costs what it costs on Google's surface.
#[sqlx::test]
async fn the_openai_sdk_works_and_the_same_usage_costs_the_same(pool: PgPool) {
    let Ok(python) = python_with("openai").await.map_err(|why| {
        skip(
            "the_openai_sdk_works_and_the_same_usage_costs_the_same",
            &why,
        );
    }) else {
        return;
    };
    let (app, standin) = gateway_app(pool).await;
    let bought = buy(&app, 10_000_000).await;
    let pool = &app.state.pool;
    let got = run_script(
        &python,
        "openai_client.py",
        &[],
        &app,
        &bought.key,
        &[
            "chat",
            "stream",
            "stream_usage",
            "embed",
            "models",
            "unknown_model",
        ],
    )
    .await;
    assert_eq!(got["chat"]["text"], "Hello!", "{got}");
    assert_eq!(got["chat"]["usage"]["prompt_tokens"], 1000, "{got}");
    assert_eq!(got["stream"]["texts"], json!(["Hel", "lo", "!"]), "{got}");
    // Not asked: no usage chunk reaches the client (the upstream was asked for it anyway).
    assert_eq!(got["stream"]["usage"], Value::Null, "{got}");
    assert_eq!(got["stream"]["chunks"], 3, "{got}");
    assert_eq!(
        got["stream_usage"]["texts"],
        json!(["Hel", "lo", "!"]),
        "{got}"
    );
    assert_eq!(got["stream_usage"]["usage"]["prompt_tokens"], 1000, "{got}");
    assert_eq!(got["stream_usage"]["chunks"], 4, "{got}");
    assert_eq!(
        got["embed"]["vectors"].as_array().unwrap().len(),
        2,
        "{got}"
    );
    assert_eq!(got["embed"]["usage"]["prompt_tokens"], 14_000, "{got}");
    let models = got["models"].as_array().unwrap();
    assert!(models.contains(&json!("models/gemini-2.5-flash")), "{got}");
    assert!(!models.contains(&json!("models/gemini-1.0-ultra")), "{got}");
    assert_eq!(got["unknown_model"]["error"]["status"], 404, "{got}");
    let body = &got["unknown_model"]["error"]["body"];
    let error = body.get("error").unwrap_or(body);
    assert_eq!(error["code"], "model_not_found", "{got}");

    // The same request on Google's surface.
    let native = json_of(
        app.client
            .post(app.url("/v1beta/models/gemini-2.5-flash:generateContent"))
            .header("x-goog-api-key", &bought.key)
            .json(&json!({"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(native.0, StatusCode::OK);
    let charges: Vec<i64> = usage_entries(pool, bought.id)
        .await
        .iter()
        .map(|e| -e.0)
        .collect();
    // chat, stream, stream with usage, embeddings (14,000 × 0.15), native: equal per surface.
    assert_eq!(charges, [960, 960, 960, 2100, 960], "{charges:?}");
    let streams: Vec<_> = standin
        .seen()
        .into_iter()
        .filter(|s| s.path == "/v1beta/openai/chat/completions" && s.body["stream"] == json!(true))
        .collect();
    assert_eq!(streams.len(), 2);
    for s in &streams {
        assert_eq!(s.body["stream_options"]["include_usage"], true, "{s:?}");
        assert!(VENDOR_KEYS.contains(&s.key.as_deref().unwrap()));
    }
}

/// The OpenAI-compatible surface speaks OpenAI's error shape, checks keys before the upstream,
/// counts embeddings without usage upstream, and 404s what it does not sell.
#[sqlx::test]
async fn the_openai_surface_answers_openai_errors_and_counts_unreported_input(pool: PgPool) {
    let (app, standin) = gateway_app(pool).await;
    let bought = buy(&app, 10_000_000).await;
    let chat =
        json!({"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]});
    for (key, status, code) in [
        (None, 401, "missing_api_key"),
        (Some("vsg_nope"), 403, "invalid_api_key"),
    ] {
        let mut request = app
            .client
            .post(app.url("/v1beta/openai/chat/completions"))
            .json(&chat);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let got = json_of(request.send().await.unwrap()).await;
        assert_eq!(got.0.as_u16(), status, "{}", got.1);
        assert_eq!(got.1["error"]["code"], code, "{}", got.1);
        assert!(
            got.1["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(got.1["error"]["type"].is_string(), "{}", got.1);
    }
    let got = json_of(
        app.client
            .post(app.url("/v1beta/openai/images/generations"))
            .bearer_auth(&bought.key)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.0, StatusCode::NOT_FOUND);
    assert_eq!(got.1["error"]["type"], "not_found_error", "{}", got.1);
    assert!(
        got.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("chat/completions")
    );
    assert!(standin.seen().is_empty());

    // A stream read to its end without the SDK: charged as the plain call (960 µUSD), and the
    // usage chunk it did not ask for is not in it.
    let streamed = app
        .client
        .post(app.url("/v1beta/openai/chat/completions"))
        .bearer_auth(&bought.key)
        .json(&json!({"model": "gemini-2.5-flash", "stream": true,
                      "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), StatusCode::OK);
    let text = streamed.text().await.unwrap();
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    assert!(!text.contains("usage"), "{text}");
    assert_eq!(usage_entries(&app.state.pool, bought.id).await[0].0, -960);

    // Embeddings whose answer has no usage: counted upstream (42 tokens → 6 µUSD), free.
    let got = json_of(
        app.client
            .post(app.url("/v1beta/openai/embeddings"))
            .bearer_auth(&bought.key)
            .json(&json!({"model": "gemini-embedding-001", "input": "NOUSAGE hello"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(usage_entries(&app.state.pool, bought.id).await[1].0, -6);
    let counted = standin
        .seen()
        .into_iter()
        .find(|s| s.path == "/v1beta/models/gemini-embedding-001:countTokens")
        .expect("countTokens asked");
    assert_eq!(
        counted.body,
        json!({"contents": [{"role": "user", "parts": [{"text": "NOUSAGE hello"}]}]})
    );
}
