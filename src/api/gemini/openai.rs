//! Gemini's OpenAI-compatible API under `/v1beta/openai/` (`chat/completions`, streamed or not,
//! `embeddings`, `models`), so the `openai` SDKs and the tools built on them work with a base URL
//! change. The gateway key comes as `Authorization: Bearer`; errors are OpenAI's shape
//! (`OpenAiError`). Calls go through the gateway's one forward/hold/charge path
//! ([`super::forward_metered`]) and are charged exactly as the same usage is on Google's own
//! surface: upstream streams always ask for their usage chunk, which reaches the client only if
//! it asked for it.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::{Caller, Dialect, Forward, authorize_key, configured, forward_metered, read_limited};
use crate::api::error::{OpenAiError, OpenAiErrorBody};
use crate::providers::gemini::{self, CallSlot, GatewayError, UpstreamAuth};
use crate::state::AppState;

/// The path of Gemini's OpenAI-compatible API, here and upstream.
pub const BASE: &str = "/v1beta/openai";

/// The customer's key: `Authorization: Bearer`, else `x-goog-api-key`.
fn bearer_key(headers: &HeaderMap) -> Result<String, GatewayError> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-goog-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .ok_or(GatewayError::MissingKey)
}

async fn caller(state: &AppState, headers: &HeaderMap) -> Result<Caller, GatewayError> {
    let gateway = configured(state)?;
    let key = bearer_key(headers)?;
    authorize_key(state, gateway, &key).await
}

/// The model a request names (`gemini-2.5-flash` or `models/gemini-2.5-flash`), as the offer
/// prices it.
fn model_of(body: &Value) -> Result<String, GatewayError> {
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .ok_or_else(|| GatewayError::InvalidArgument("`model` is required.".to_owned()))?;
    Ok(model.strip_prefix("models/").unwrap_or(model).to_owned())
}

/// Google's OpenAI-compatible `ChatCompletion` / `CreateEmbeddingResponse`, as it came.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct OpenAiAnswer {
    /// `{prompt_tokens, completion_tokens, total_tokens, …}`: what the call is charged by.
    #[schema(value_type = Option<Object>)]
    usage: Option<Value>,
}

/// A chat request as OpenAI's SDK sends it, forwarded as is (a stream also asks its usage).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ChatRequest {
    model: String,
    #[schema(value_type = Vec<Object>)]
    messages: Vec<Value>,
    stream: Option<bool>,
    /// Also bounds the balance held while the call runs (else `max_tokens`, else the model's
    /// output limit).
    max_completion_tokens: Option<u64>,
    max_tokens: Option<u64>,
    n: Option<u64>,
    #[schema(value_type = Option<Object>)]
    stream_options: Option<Value>,
}

/// An embeddings request: `input` is a string or a list of them.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct EmbeddingsRequest {
    model: String,
    #[schema(value_type = Object)]
    input: Value,
    encoding_format: Option<String>,
}

/// `{object: "list", data: [{id, object: "model", …}]}`, filtered to the offer's models.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct OpenAiModelList {
    object: String,
    #[schema(value_type = Vec<Object>)]
    data: Vec<Value>,
}

/// `POST /v1beta/openai/chat/completions`.
#[utoipa::path(
    post,
    path = "/v1beta/openai/chat/completions",
    tag = "gemini",
    summary = "Gemini gateway, OpenAI-compatible: chat completions",
    description = "Gemini's OpenAI-compatible chat completions (`stream` too: server-sent `chat.completion.chunk` events ending with `data: [DONE]`). The gateway key as `Authorization: Bearer`. Charged as the same usage on Google's own surface: `prompt_tokens` (less `prompt_tokens_details.cached_tokens`) × input, cached × cached_input, and the larger of `completion_tokens` and `total_tokens − prompt_tokens` × output. Upstream streams always ask `stream_options.include_usage`; the usage chunk reaches the client only if it asked for it. Errors in OpenAI's shape.",
    request_body = ChatRequest,
    security(("gemini_bearer" = [])),
    responses(
        (status = 200, description = "Google's ChatCompletion, or text/event-stream of chunks", content(
            (OpenAiAnswer = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 400, description = "Malformed JSON or request (`invalid_request`)", body = OpenAiErrorBody),
        (status = 401, description = "No key (`missing_api_key`)", body = OpenAiErrorBody),
        (status = 402, description = "Purchase suspended, balance used up, or it cannot cover the call's hold (`insufficient_quota`)", body = OpenAiErrorBody),
        (status = 403, description = "Unknown or revoked key (`invalid_api_key`)", body = OpenAiErrorBody),
        (status = 404, description = "The gateway is not configured, or the model is not sold (`model_not_found`)", body = OpenAiErrorBody),
        (status = 408, description = "The request body did not arrive in time (`request_timeout`)", body = OpenAiErrorBody),
        (status = 413, description = "The request body is larger than GEMINI_MAX_BODY_BYTES (`payload_too_large`)", body = OpenAiErrorBody),
        (status = 429, description = "Over the purchase's rate or concurrency limits (`rate_limit_exceeded`); Retry-After set", body = OpenAiErrorBody),
        (status = 500, description = "Internal error (`internal_error`)", body = OpenAiErrorBody),
        (status = 503, description = "Upstream or database unreachable (`upstream_unavailable`); Retry-After set", body = OpenAiErrorBody),
        (status = "default", description = "An upstream error, passed through as Google sent it (free)", body = Object),
    )
)]
async fn chat_completions(State(state): State<AppState>, request: Request) -> Response {
    metered(&state, request, chat).await
}

/// A chat request's call: a stream also asks its usage chunk upstream.
fn chat(request: Value, bytes: Bytes, _model: &str) -> Result<Call, GatewayError> {
    let stream = request.get("stream").and_then(Value::as_bool) == Some(true);
    let estimate = gemini::estimate_chat(&request, bytes.len() as u64);
    let (body, client_wants_usage) = if stream {
        let (body, asked) = gemini::with_stream_usage(request);
        let body = serde_json::to_vec(&body)
            .map_err(|e| GatewayError::InvalidArgument(format!("Invalid JSON payload: {e}")))?;
        (body.into(), asked)
    } else {
        (bytes, true)
    };
    Ok(Call {
        path: "chat/completions",
        body,
        estimate,
        client_wants_usage,
        stream,
        count_tokens: None,
    })
}

/// `POST /v1beta/openai/embeddings`.
#[utoipa::path(
    post,
    path = "/v1beta/openai/embeddings",
    tag = "gemini",
    summary = "Gemini gateway, OpenAI-compatible: embeddings",
    description = "Gemini's OpenAI-compatible embeddings. Charged input tokens × the model's input price: the answer's `usage.prompt_tokens`, else a free upstream countTokens of the same input. Errors in OpenAI's shape.",
    request_body = EmbeddingsRequest,
    security(("gemini_bearer" = [])),
    responses(
        (status = 200, description = "Google's CreateEmbeddingResponse", body = OpenAiAnswer),
        (status = 400, description = "Malformed JSON or request (`invalid_request`)", body = OpenAiErrorBody),
        (status = 401, description = "No key (`missing_api_key`)", body = OpenAiErrorBody),
        (status = 402, description = "Purchase suspended, balance used up, or it cannot cover the call's hold (`insufficient_quota`)", body = OpenAiErrorBody),
        (status = 403, description = "Unknown or revoked key (`invalid_api_key`)", body = OpenAiErrorBody),
        (status = 404, description = "The gateway is not configured, or the model is not sold (`model_not_found`)", body = OpenAiErrorBody),
        (status = 408, description = "The request body did not arrive in time (`request_timeout`)", body = OpenAiErrorBody),
        (status = 413, description = "The request body is larger than GEMINI_MAX_BODY_BYTES (`payload_too_large`)", body = OpenAiErrorBody),
        (status = 429, description = "Over the purchase's rate or concurrency limits (`rate_limit_exceeded`); Retry-After set", body = OpenAiErrorBody),
        (status = 500, description = "Internal error (`internal_error`)", body = OpenAiErrorBody),
        (status = 503, description = "Upstream or database unreachable (`upstream_unavailable`); Retry-After set", body = OpenAiErrorBody),
        (status = "default", description = "An upstream error, passed through as Google sent it (free)", body = Object),
    )
)]
async fn embeddings(State(state): State<AppState>, request: Request) -> Response {
    metered(&state, request, embedding).await
}

/// An embeddings request's call: without usage in the answer, its string inputs are counted by a
/// free countTokens call.
fn embedding(request: Value, bytes: Bytes, model: &str) -> Result<Call, GatewayError> {
    // The same input as Google's countTokens contents (strings only; token arrays are charged
    // the hold when the answer has no usage).
    let texts: Vec<Value> = match request.get("input") {
        Some(Value::String(s)) => vec![Value::String(s.clone())],
        Some(Value::Array(items)) => items.iter().filter(|i| i.is_string()).cloned().collect(),
        _ => Vec::new(),
    };
    let count_tokens = (!texts.is_empty()).then(|| {
        let contents: Vec<Value> = texts
            .into_iter()
            .map(|t| serde_json::json!({"role": "user", "parts": [{"text": t}]}))
            .collect();
        (
            format!("/v1beta/models/{model}:countTokens"),
            serde_json::json!({ "contents": contents }),
        )
    });
    Ok(Call {
        path: "embeddings",
        estimate: gemini::Estimate::input_only(bytes.len() as u64),
        body: bytes,
        client_wants_usage: true,
        stream: false,
        count_tokens,
    })
}

/// What a metered call forwards beyond its model and prices (see [`Forward`]).
struct Call {
    /// Under [`BASE`].
    path: &'static str,
    body: Bytes,
    estimate: gemini::Estimate,
    client_wants_usage: bool,
    stream: bool,
    count_tokens: Option<(String, Value)>,
}

/// A metered call (chat completions, embeddings): the caller's key, its body (within the limits,
/// taking the purchase's slot), the model's prices, then `call` shapes what is forwarded and
/// charged ([`forward_metered`]). The slot is held until the answer is sent; errors in OpenAI's
/// shape.
async fn metered(
    state: &AppState,
    request: Request,
    call: fn(Value, Bytes, &str) -> Result<Call, GatewayError>,
) -> Response {
    let mut slot = None;
    metered_inner(state, request, &mut slot, call)
        .await
        // The purchase's slot is taken until the answer is sent.
        .map(|response| crate::api::hold_until_sent(response, slot))
        .unwrap_or_else(|e| OpenAiError::from(e).into_response())
}

async fn metered_inner(
    state: &AppState,
    request: Request,
    slot: &mut Option<CallSlot>,
    call: fn(Value, Bytes, &str) -> Result<Call, GatewayError>,
) -> Result<Response, GatewayError> {
    let (parts, body) = request.into_parts();
    let caller = caller(state, &parts.headers).await?;
    let bytes = read_limited(&caller, &parts.headers, body, slot).await?;
    let request: Value = parse(&bytes)?;
    let model = model_of(&request)?;
    let prices = caller.prices(&model)?;
    let call = call(request, bytes, &model)?;
    let forward = Forward {
        model,
        prices,
        path: format!("{BASE}/{}", call.path),
        query: Vec::new(),
        body: call.body,
        auth: UpstreamAuth::Bearer,
        estimate: call.estimate,
        dialect: Dialect::OpenAi {
            client_wants_usage: call.client_wants_usage,
        },
        stream: call.stream,
        count_tokens: call.count_tokens,
    };
    forward_metered(state, caller, forward).await
}

/// `GET /v1beta/openai/models`.
#[utoipa::path(
    get,
    path = "/v1beta/openai/models",
    tag = "gemini",
    summary = "Gemini gateway, OpenAI-compatible: the models this purchase may use",
    description = "Gemini's OpenAI-compatible model list, filtered to the offer's models. Free.",
    security(("gemini_bearer" = [])),
    responses(
        (status = 200, description = "`{object: \"list\", data: [Model]}`", body = OpenAiModelList),
        (status = 401, description = "No key (`missing_api_key`)", body = OpenAiErrorBody),
        (status = 402, description = "Purchase suspended or balance used up (`insufficient_quota`)", body = OpenAiErrorBody),
        (status = 403, description = "Unknown or revoked key (`invalid_api_key`)", body = OpenAiErrorBody),
        (status = 404, description = "The gateway is not configured on this server (`not_found`)", body = OpenAiErrorBody),
        (status = 429, description = "Over the purchase's requests per minute (`rate_limit_exceeded`); Retry-After set", body = OpenAiErrorBody),
        (status = 500, description = "Internal error (`internal_error`)", body = OpenAiErrorBody),
        (status = 503, description = "Upstream or database unreachable (`upstream_unavailable`); Retry-After set", body = OpenAiErrorBody),
        (status = "default", description = "An upstream error, passed through as Google sent it (free)", body = Object),
    )
)]
async fn models(State(state): State<AppState>, headers: HeaderMap) -> Response {
    models_inner(&state, &headers)
        .await
        .unwrap_or_else(|e| OpenAiError::from(e).into_response())
}

async fn models_inner(state: &AppState, headers: &HeaderMap) -> Result<Response, GatewayError> {
    let caller = caller(state, headers).await?;
    caller.admit(0)?;
    let upstream = caller
        .gateway
        .send_as(
            reqwest::Method::GET,
            &format!("{BASE}/models"),
            &[],
            None,
            UpstreamAuth::Bearer,
        )
        .await?;
    if !upstream.status().is_success() {
        return super::pass_through(upstream).await;
    }
    let body = upstream
        .bytes()
        .await
        .map_err(|e| GatewayError::UpstreamUnavailable(e.without_url()))?;
    let listed: Value = serde_json::from_slice(&body).unwrap_or_default();
    let data: Vec<Value> = listed
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| {
            m.get("id").and_then(Value::as_str).is_some_and(|id| {
                caller
                    .settings
                    .models
                    .contains_key(id.strip_prefix("models/").unwrap_or(id))
            })
        })
        .cloned()
        .collect();
    Ok(axum::Json(serde_json::json!({ "object": "list", "data": data })).into_response())
}

/// Anything else under `/v1beta/openai/`: 404 in OpenAI's shape, naming what is served.
pub async fn not_sold(uri: Uri) -> OpenAiError {
    OpenAiError {
        status: StatusCode::NOT_FOUND,
        message: format!(
            "{} is not sold by this gateway. Its OpenAI-compatible API serves POST \
             {BASE}/chat/completions, POST {BASE}/embeddings and GET {BASE}/models.",
            uri.path()
        ),
        code: "not_found",
        retry_after_secs: None,
    }
}

fn parse(bytes: &[u8]) -> Result<Value, GatewayError> {
    serde_json::from_slice(bytes)
        .map_err(|e| GatewayError::InvalidArgument(format!("Invalid JSON payload received. {e}")))
}

/// The routes (documented) and the 404 of the rest.
pub fn router() -> utoipa_axum::router::OpenApiRouter<AppState> {
    use utoipa_axum::routes;
    utoipa_axum::router::OpenApiRouter::new()
        .routes(routes!(chat_completions))
        .routes(routes!(embeddings))
        .routes(routes!(models))
        .route("/v1beta/openai/{*rest}", axum::routing::any(not_sold))
}
