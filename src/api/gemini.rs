//! The Gemini gateway: Google's Gemini REST API under `/v1beta`, so any Gemini client works with this
//! server as its base URL and the purchase's gateway key as its API key (`x-goog-api-key` header or
//! `?key=`). Calls go upstream with the vendor's key; each response's `usageMetadata` is debited
//! through the ledger before the answer (or the end of a stream) reaches the customer. Errors use
//! Google's shape (`GoogleError`); upstream errors pass through unchanged and free. Every metered
//! call goes through [`Gateway::run`] (hold, forward, read to the end and charge in a task of its
//! own) and reaches the client through [`deliver`]: other surfaces built on the gateway use the same
//! two.
//!
//! axum cannot route `{model}:generateContent` as a literal suffix, so `{model_action}` is one path
//! segment split on ':' here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{GoogleError, GoogleErrorBody};
use crate::providers::gemini::{
    self, CallSlot, Delivery, Estimate, Forwarded, ForwardedBody, Gateway, GatewayError,
    GatewaySettings, KeyAccess, MeteredCall, UpstreamRequest,
};
use crate::state::AppState;

/// The methods the gateway serves on a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Generate,
    Stream,
    CountTokens,
}

impl Action {
    fn parse(action: &str) -> Result<Self, GatewayError> {
        match action {
            "generateContent" => Ok(Self::Generate),
            "streamGenerateContent" => Ok(Self::Stream),
            "countTokens" => Ok(Self::CountTokens),
            other => Err(GatewayError::UnknownMethod(other.to_owned())),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Generate => "generateContent",
            Self::Stream => "streamGenerateContent",
            Self::CountTokens => "countTokens",
        }
    }
}

/// The query parameters, in order.
fn query_pairs(uri: &Uri) -> Result<Vec<(String, String)>, GatewayError> {
    Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|Query(pairs)| pairs)
        .map_err(|e| GatewayError::InvalidArgument(format!("Invalid query string: {e}")))
}

/// The customer's key: `x-goog-api-key`, else `?key=`.
fn presented_key(headers: &HeaderMap, query: &[(String, String)]) -> Result<String, GatewayError> {
    headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .or_else(|| {
            query
                .iter()
                .find(|(name, _)| name == "key")
                .map(|(_, v)| v.trim())
                .filter(|k| !k.is_empty())
        })
        .map(str::to_owned)
        .ok_or(GatewayError::MissingKey)
}

/// What an authorised caller may use.
struct Caller {
    gateway: Arc<Gateway>,
    access: KeyAccess,
    settings: GatewaySettings,
}

async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Result<Caller, GatewayError> {
    let gateway = state.gemini.clone().ok_or(GatewayError::NotConfigured)?;
    let key = presented_key(headers, query)?;
    let access = gemini::find_key(&state.pool, &key)
        .await?
        .ok_or(GatewayError::InvalidKey)?;
    access.check_usable()?;
    let settings = GatewaySettings::from_offer_settings(&access.settings)?;
    Ok(Caller {
        gateway,
        access,
        settings,
    })
}

/// An upstream answer as it came: status, content type, body.
async fn pass_through(upstream: reqwest::Response) -> Result<Response, GatewayError> {
    let status = upstream.status();
    let content_type = upstream.headers().get(header::CONTENT_TYPE).cloned();
    let body = upstream
        .bytes()
        .await
        .map_err(|e| GatewayError::UpstreamUnavailable(e.without_url()))?;
    Ok(respond(status, content_type, Body::from(body)))
}

fn respond(status: StatusCode, content_type: Option<HeaderValue>, body: Body) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        content_type.unwrap_or(HeaderValue::from_static("application/json; charset=UTF-8")),
    );
    response
}

// Documentation only: Google's own types, passed through (the fields the gateway reads).

/// `{models: [Model]}` as Google answers, filtered to the offer's models.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct ModelList {
    /// Google's `Model` objects.
    #[schema(value_type = Vec<Object>)]
    models: Vec<serde_json::Value>,
}

/// Google's `GenerateContentRequest`, forwarded as is (also `CountTokensRequest`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, non_snake_case)]
struct GenerateContentRequest {
    #[schema(value_type = Option<Vec<Object>>)]
    contents: Option<Vec<serde_json::Value>>,
    #[schema(value_type = Option<Object>)]
    systemInstruction: Option<serde_json::Value>,
    generationConfig: Option<GenerationConfig>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code, non_snake_case)]
struct GenerationConfig {
    /// Also bounds the balance held while the call runs.
    maxOutputTokens: Option<u64>,
    candidateCount: Option<u64>,
}

/// Google's `GenerateContentResponse` (or `CountTokensResponse`), returned as is.
#[derive(utoipa::ToSchema)]
#[allow(dead_code, non_snake_case)]
struct GenerateContentResponse {
    #[schema(value_type = Option<Vec<Object>>)]
    candidates: Option<Vec<serde_json::Value>>,
    usageMetadata: Option<UsageMetadata>,
    responseId: Option<String>,
    modelVersion: Option<String>,
}

/// What each answer is debited by (USD per million tokens at the offer's per-model prices).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, non_snake_case)]
struct UsageMetadata {
    promptTokenCount: Option<u64>,
    cachedContentTokenCount: Option<u64>,
    candidatesTokenCount: Option<u64>,
    thoughtsTokenCount: Option<u64>,
    toolUsePromptTokenCount: Option<u64>,
    totalTokenCount: Option<u64>,
}

/// `GET /v1beta/models`: the upstream's models this offer sells.
#[utoipa::path(
    get,
    path = "/v1beta/models",
    tag = "gemini",
    summary = "Gemini gateway: the models this purchase may use",
    description = "Google's `models.list`, filtered to the offer's models. Drop-in for Google's Gemini REST API: point any Gemini client's base URL at this server and use the gateway key as the API key.",
    security(("gemini_key" = []), ("gemini_key_query" = [])),
    responses(
        (status = 200, description = "`{models: [Model]}` as Google answers", body = ModelList),
        (status = 400, description = "A malformed query string (INVALID_ARGUMENT)", body = GoogleErrorBody),
        (status = 401, description = "No key (UNAUTHENTICATED)", body = GoogleErrorBody),
        (status = 402, description = "Purchase suspended or balance used up (FAILED_PRECONDITION)", body = GoogleErrorBody),
        (status = 403, description = "Unknown or revoked key (PERMISSION_DENIED)", body = GoogleErrorBody),
        (status = 404, description = "The gateway is not configured on this server (no GEMINI_API_KEY) (NOT_FOUND)", body = GoogleErrorBody),
        (status = 429, description = "Over the purchase's requests per minute (RESOURCE_EXHAUSTED); Retry-After set", body = GoogleErrorBody),
        (status = 500, description = "Internal error (INTERNAL)", body = GoogleErrorBody),
        (status = 503, description = "Upstream or database unreachable (UNAVAILABLE); Retry-After set", body = GoogleErrorBody),
        (status = "default", description = "An upstream error, passed through as Google sent it (free)", body = GoogleErrorBody),
    )
)]
async fn list_models(State(state): State<AppState>, uri: Uri, headers: HeaderMap) -> Response {
    list_models_inner(&state, &uri, &headers)
        .await
        .unwrap_or_else(|e| GoogleError::from(e).into_response())
}

async fn list_models_inner(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, GatewayError> {
    let query = query_pairs(uri)?;
    let caller = authorize(state, headers, &query).await?;
    let limits = caller.settings.limits();
    caller
        .gateway
        .limiter
        .admit(caller.access.purchase_id, limits, 0, Instant::now())?;
    let upstream = caller
        .gateway
        .send(
            reqwest::Method::GET,
            "/v1beta/models",
            &[("pageSize".to_owned(), "1000".to_owned())],
            None,
        )
        .await?;
    if !upstream.status().is_success() {
        return pass_through(upstream).await;
    }
    let body = upstream
        .bytes()
        .await
        .map_err(|e| GatewayError::UpstreamUnavailable(e.without_url()))?;
    let listed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let models: Vec<serde_json::Value> = listed
        .get("models")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter(|m| {
            m.get("name")
                .and_then(serde_json::Value::as_str)
                .and_then(|n| n.strip_prefix("models/"))
                .is_some_and(|n| caller.settings.models.contains_key(n))
        })
        .cloned()
        .collect();
    Ok(axum::Json(serde_json::json!({ "models": models })).into_response())
}

/// `GET /v1beta/models/{model}`: one model the offer sells, as the upstream describes it.
#[utoipa::path(
    get,
    path = "/v1beta/models/{model_action}",
    tag = "gemini",
    summary = "Gemini gateway: one model",
    description = "`{model_action}` is a model name (`gemini-2.5-flash`); answers Google's `models.get`.",
    params(("model_action" = String, Path, description = "A model name", example = "gemini-2.5-flash")),
    security(("gemini_key" = []), ("gemini_key_query" = [])),
    responses(
        (status = 200, description = "Google's Model object", body = Object),
        (status = 400, description = "A malformed path or query string (INVALID_ARGUMENT)", body = GoogleErrorBody),
        (status = 401, description = "No key (UNAUTHENTICATED)", body = GoogleErrorBody),
        (status = 402, description = "Purchase suspended or balance used up (FAILED_PRECONDITION)", body = GoogleErrorBody),
        (status = 403, description = "Unknown or revoked key (PERMISSION_DENIED)", body = GoogleErrorBody),
        (status = 404, description = "The gateway is not configured on this server, the model is not sold by this offer, or a method was named (NOT_FOUND)", body = GoogleErrorBody),
        (status = 429, description = "Over the purchase's requests per minute (RESOURCE_EXHAUSTED); Retry-After set", body = GoogleErrorBody),
        (status = 500, description = "Internal error (INTERNAL)", body = GoogleErrorBody),
        (status = 503, description = "Upstream or database unreachable (UNAVAILABLE); Retry-After set", body = GoogleErrorBody),
        (status = "default", description = "An upstream error, passed through as Google sent it (free)", body = GoogleErrorBody),
    )
)]
async fn get_model(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    get_model_inner(&state, path, &uri, &headers)
        .await
        .unwrap_or_else(|e| GoogleError::from(e).into_response())
}

async fn get_model_inner(
    state: &AppState,
    path: Result<Path<String>, PathRejection>,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Response, GatewayError> {
    let Path(model) = path.map_err(|e| GatewayError::InvalidArgument(e.body_text()))?;
    if let Some((_, action)) = model.split_once(':') {
        return Err(GatewayError::UnknownMethod(action.to_owned()));
    }
    let query = query_pairs(uri)?;
    let caller = authorize(state, headers, &query).await?;
    if !caller.settings.models.contains_key(&model) {
        return Err(GatewayError::UnknownModel { model });
    }
    caller.gateway.limiter.admit(
        caller.access.purchase_id,
        caller.settings.limits(),
        0,
        Instant::now(),
    )?;
    let upstream = caller
        .gateway
        .send(
            reqwest::Method::GET,
            &format!("/v1beta/models/{model}"),
            &[],
            None,
        )
        .await?;
    pass_through(upstream).await
}

/// The query parameters sent upstream: only `alt=sse` on `streamGenerateContent`. `key` is the
/// customer's credential and stays here. A response filter (`fields`, `$fields`) or another wire
/// format (`alt=proto`, `alt=media`) is refused: Google's filter would drop `usageMetadata` and an
/// answer in another format cannot be metered. Anything else (`prettyPrint`, `$alt=json…`,
/// `quotaUser`, …) is dropped: the answer is JSON either way.
fn forwarded_query(
    action: Action,
    query: &[(String, String)],
) -> Result<Vec<(String, String)>, GatewayError> {
    let mut sse = false;
    for (name, value) in query {
        match name.as_str() {
            "key" => {}
            "fields" | "$fields" => {
                return Err(GatewayError::InvalidArgument(format!(
                    "Query parameter {name:?} is not supported by this gateway: responses are \
                     never filtered (usageMetadata is how calls are metered)."
                )));
            }
            "alt" | "$alt" => match value.split(';').next().unwrap_or_default() {
                "sse" if action == Action::Stream && name == "alt" => sse = true,
                "json" => {}
                other => {
                    return Err(GatewayError::InvalidArgument(format!(
                        "Unsupported {name}={other:?}: this gateway answers JSON, or \
                         server-sent events with alt=sse on streamGenerateContent."
                    )));
                }
            },
            _ => {}
        }
    }
    Ok(if sse {
        vec![("alt".to_owned(), "sse".to_owned())]
    } else {
        Vec::new()
    })
}

/// Reads a request body of at most `limit` bytes within `within`; the caller has checked the key.
async fn read_body(body: Body, limit: usize, within: Duration) -> Result<Bytes, GatewayError> {
    let read = async {
        let mut stream = body.into_data_stream();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                GatewayError::InvalidArgument(format!("Cannot read the request body: {e}"))
            })?;
            if buf.len().saturating_add(chunk.len()) > limit {
                return Err(GatewayError::PayloadTooLarge(limit));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    };
    tokio::time::timeout(within, read)
        .await
        .map_err(|_| GatewayError::BodyTimeout(within.as_secs()))?
}

/// `POST /v1beta/models/{model}:generateContent | :streamGenerateContent | :countTokens`.
///
/// The body is read only after the key, the gateway and the model are checked, within the
/// gateway's body limit and body-read timeout.
#[utoipa::path(
    post,
    path = "/v1beta/models/{model_action}",
    tag = "gemini",
    summary = "Gemini gateway: generateContent, streamGenerateContent, countTokens",
    description = "`{model_action}` is `<model>:generateContent`, `<model>:streamGenerateContent` (SSE with `?alt=sse`, else a streamed JSON array; chunks pass through as they arrive) or `<model>:countTokens` (free). The request and response bodies are Google's (`GenerateContentRequest` / `GenerateContentResponse`), forwarded with the vendor's key. Each answer's `usageMetadata` is debited at the offer's per-model prices (USD per million tokens: uncached prompt and tool-use prompt × input, cached prompt × cached_input, candidates and thoughts × output; rounded half up to micro-USD) before the answer — or the end of the stream — is released. Prompts over 200k tokens pay the model's long-context prices when the offer sets them. Prices and models are the purchase's terms as stored at checkout. A call that reached the upstream is charged even if the client hangs up: the answer is read to its end regardless. Upstream errors pass through unchanged and free. While the call runs its worst case is held against the balance and the call is admitted only if that fits the balance less the running holds: input tokens bounded by the body's size in bytes (the model's whole input limit for a fileData part, inline video/audio/PDF or a built-in tool), plus maxOutputTokens × candidateCount (or the model's output limit), at the highest price tier it may fall in; at most the offer's max_concurrent_requests (default 4) calls of a purchase run at once. Built-in tools (googleSearch, urlContext, codeExecution, …) the offer does not price are refused with 400 (reason tool_not_sold); priced ones are charged per request. Only `alt=sse` goes upstream: `fields`/`$fields` and other formats (`alt=proto`) are refused with 400, other query parameters dropped; an answer without usageMetadata is charged its hold's usage. The key is checked before the body is read; the body is capped at GEMINI_MAX_BODY_BYTES and must arrive within GEMINI_BODY_READ_TIMEOUT_SECS.",
    params(
        ("model_action" = String, Path, description = "`<model>:<method>`", pattern = "^[^:]+:(generateContent|streamGenerateContent|countTokens)$", example = "gemini-2.5-flash:generateContent"),
        ("alt" = Option<String>, Query, description = "`sse`: server-sent events for streamGenerateContent"),
    ),
    request_body = GenerateContentRequest,
    security(("gemini_key" = []), ("gemini_key_query" = [])),
    responses(
        (status = 200, description = "Google's GenerateContentResponse (or CountTokensResponse); for streams, text/event-stream (or a JSON array) of GenerateContentResponse chunks", content(
            (GenerateContentResponse = "application/json"),
            (String = "text/event-stream"),
        )),
        (status = 400, description = "Malformed JSON or request, an unsupported query parameter (fields, $fields, alt other than sse), or a built-in tool the offer does not sell (details[0].reason tool_not_sold) (INVALID_ARGUMENT)", body = GoogleErrorBody),
        (status = 401, description = "No key (UNAUTHENTICATED)", body = GoogleErrorBody),
        (status = 402, description = "Purchase suspended, balance used up, or the balance less what running calls hold cannot cover this call's worst case (FAILED_PRECONDITION)", body = GoogleErrorBody),
        (status = 403, description = "Unknown or revoked key (PERMISSION_DENIED)", body = GoogleErrorBody),
        (status = 404, description = "The gateway is not configured on this server, the model is not sold by this offer, or an unsupported method (NOT_FOUND)", body = GoogleErrorBody),
        (status = 408, description = "The request body did not arrive within GEMINI_BODY_READ_TIMEOUT_SECS (DEADLINE_EXCEEDED)", body = GoogleErrorBody),
        (status = 413, description = "The request body is larger than GEMINI_MAX_BODY_BYTES (INVALID_ARGUMENT)", body = GoogleErrorBody),
        (status = 429, description = "Over the purchase's requests or tokens per minute, or its max_concurrent_requests calls already running (RESOURCE_EXHAUSTED); Retry-After set", body = GoogleErrorBody),
        (status = 500, description = "Internal error (INTERNAL)", body = GoogleErrorBody),
        (status = 503, description = "Upstream or database unreachable (UNAVAILABLE); Retry-After set", body = GoogleErrorBody),
        (status = "default", description = "An upstream error, passed through as Google sent it (free)", body = GoogleErrorBody),
    )
)]
async fn call_model(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    request: Request,
) -> Response {
    let mut slot = None;
    call_model_inner(&state, path, request, &mut slot)
        .await
        // The purchase's slot is taken until the answer is sent.
        .map(|response| super::hold_until_sent(response, slot))
        .unwrap_or_else(|e| {
            let close = matches!(
                e,
                GatewayError::BodyTimeout(_) | GatewayError::PayloadTooLarge(_)
            );
            let mut response = GoogleError::from(e).into_response();
            if close {
                // The rest of the body is not read: end the connection rather than drain it.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        })
}

async fn call_model_inner(
    state: &AppState,
    path: Result<Path<String>, PathRejection>,
    request: Request,
    slot: &mut Option<CallSlot>,
) -> Result<Response, GatewayError> {
    let (parts, body) = request.into_parts();
    let (uri, headers) = (&parts.uri, &parts.headers);
    let Path(model_action) = path.map_err(|e| GatewayError::InvalidArgument(e.body_text()))?;
    let (model, action) = model_action.split_once(':').ok_or_else(|| {
        GatewayError::UnknownMethod("(none: expected <model>:<method>)".to_owned())
    })?;
    let action = Action::parse(action)?;
    let query = query_pairs(uri)?;
    let Caller {
        gateway,
        access,
        settings,
    } = authorize(state, headers, &query).await?;
    let prices = *settings
        .models
        .get(model)
        .ok_or_else(|| GatewayError::UnknownModel {
            model: model.to_owned(),
        })?;
    let forward = forwarded_query(action, &query)?;
    let limit = gateway.max_body_bytes;
    let announced = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(GatewayError::PayloadTooLarge(limit));
    }
    // Concurrency counts from the headers: no more calls with bodies arriving than the limit.
    *slot = Some(
        gateway
            .slots
            .enter(access.purchase_id, settings.max_concurrent())?,
    );
    let body = read_body(body, limit, gateway.body_read_timeout).await?;
    let request: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        GatewayError::InvalidArgument(format!("Invalid JSON payload received. {e}"))
    })?;
    let estimate = Estimate::of_request(&request, body.len() as u64);
    let limits = settings.limits();
    let purchase_id = access.purchase_id;
    let path = format!("/v1beta/models/{model}:{}", action.name());
    if action == Action::CountTokens {
        // Token counts are free.
        gateway
            .limiter
            .admit(purchase_id, limits, 0, Instant::now())?;
        let upstream = gateway
            .send(reqwest::Method::POST, &path, &forward, Some(body))
            .await?;
        return pass_through(upstream).await;
    }
    let tools = settings.tool_charge(&estimate.tools)?;
    gateway
        .limiter
        .admit(purchase_id, limits, estimate.input_tokens, Instant::now())?;
    let call = MeteredCall {
        purchase_id,
        model: model.to_owned(),
        prices,
        tools,
        worst_case: estimate.worst_case(&prices),
        limits,
    };
    let delivery = if action == Action::Stream {
        Delivery::Streamed
    } else {
        Delivery::Buffered
    };
    let forwarded = gateway
        .run(
            &state.pool,
            call,
            settings.max_concurrent(),
            UpstreamRequest {
                method: reqwest::Method::POST,
                path,
                query: forward,
                body: Some(body),
            },
            delivery,
            gemini::gemini_usage(),
        )
        .await?;
    Ok(deliver(forwarded))
}

/// The answer of a metered call as the client gets it: whole, or streamed as it arrives.
pub(super) fn deliver(forwarded: Forwarded) -> Response {
    let Forwarded {
        status,
        content_type,
        body,
    } = forwarded;
    match body {
        ForwardedBody::Whole(bytes) => respond(status, content_type, Body::from(bytes)),
        ForwardedBody::Chunks(chunks) => {
            let chunks = futures::stream::unfold(chunks, |mut chunks| async move {
                chunks.recv().await.map(|chunk| (chunk, chunks))
            });
            let mut response = respond(status, content_type, Body::from_stream(chunks));
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            // Reverse proxies (nginx, traefik) must not buffer the stream.
            headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
            response
        }
    }
}

async fn method_not_allowed() -> GoogleError {
    GoogleError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed: use GET for models and POST for their methods.",
    )
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("Gemini gateway handler panicked");
    GoogleError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Internal error encountered.",
    )
    .into_response()
}

/// The gateway's routes. Merged outside the API's request timeout (generations run for minutes):
/// the request body has its own limit and read timeout (`call_model`), and the upstream client
/// cuts off a silent upstream.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_models))
        .routes(routes!(get_model, call_model))
}

/// The gateway's own fallbacks and panic handler (Google's error shape), around [`router`]'s routes.
pub fn finish(routes: Router<AppState>) -> Router<AppState> {
    routes
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(panic_response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_from_the_header_or_the_query() {
        let mut headers = HeaderMap::new();
        let query = vec![
            ("alt".to_owned(), "sse".to_owned()),
            ("key".to_owned(), "vsg_q".to_owned()),
        ];
        assert_eq!(presented_key(&headers, &query).unwrap(), "vsg_q");
        headers.insert("x-goog-api-key", HeaderValue::from_static("vsg_h"));
        assert_eq!(presented_key(&headers, &query).unwrap(), "vsg_h");
        assert!(matches!(
            presented_key(&HeaderMap::new(), &[]),
            Err(GatewayError::MissingKey)
        ));
    }

    #[test]
    fn only_alt_sse_goes_upstream_and_response_filters_are_refused() {
        let q = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        let sse = q(&[("alt", "sse")]);
        assert_eq!(
            forwarded_query(
                Action::Stream,
                &q(&[("alt", "sse"), ("key", "vsg_x"), ("prettyPrint", "false")])
            )
            .unwrap(),
            sse
        );
        // JSON is the default: dropped, with the parameters that do not change the answer.
        for dropped in [
            q(&[("$alt", "json;enum-encoding=int")]),
            q(&[("alt", "json"), ("quotaUser", "x"), ("callback", "f")]),
        ] {
            assert!(
                forwarded_query(Action::Generate, &dropped)
                    .unwrap()
                    .is_empty()
            );
        }
        for refused in [
            q(&[("fields", "candidates")]),
            q(&[("$fields", "candidates")]),
            q(&[("alt", "sse"), ("fields", "candidates")]),
            q(&[("alt", "proto")]),
            q(&[("$alt", "proto")]),
            q(&[("alt", "media")]),
            q(&[("$alt", "sse")]),
        ] {
            assert!(
                matches!(
                    forwarded_query(Action::Stream, &refused),
                    Err(GatewayError::InvalidArgument(_))
                ),
                "{refused:?}"
            );
        }
        assert!(forwarded_query(Action::Generate, &sse).is_err());
    }

    #[test]
    fn actions_are_googles() {
        assert_eq!(
            Action::parse("streamGenerateContent").unwrap(),
            Action::Stream
        );
        assert!(Action::parse("embedContent").is_err());
    }
}
