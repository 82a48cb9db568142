//! The Gemini gateway: Google's Gemini REST API under `/v1beta`, so any Gemini client works with this
//! server as its base URL and the purchase's gateway key as its API key (`x-goog-api-key` header or
//! `?key=`). Calls go upstream with the vendor's key; each response's `usageMetadata` is debited
//! through the ledger before the answer (or the end of a stream) reaches the customer. Errors use
//! Google's shape (`GoogleError`); upstream errors pass through unchanged and free.
//!
//! axum cannot route `{model}:generateContent` as a literal suffix, so `{model_action}` is one path
//! segment split on ':' here.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use tower_http::catch_panic::CatchPanicLayer;

use super::error::GoogleError;
use crate::providers::gemini::{
    self, Estimate, Gateway, GatewayError, GatewaySettings, KeyAccess, Metered, ResponseUsage,
    StreamMeter,
};
use crate::state::AppState;

/// Gemini requests carry inline images and documents: Google accepts about 20 MB per request.
pub const BODY_LIMIT: usize = 20 * 1024 * 1024;

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

/// `GET /v1beta/models`: the upstream's models this offer sells.
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

/// `POST /v1beta/models/{model}:generateContent | :streamGenerateContent | :countTokens`.
async fn call_model(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    call_model_inner(&state, path, &uri, &headers, body)
        .await
        .unwrap_or_else(|e| GoogleError::from(e).into_response())
}

async fn call_model_inner(
    state: &AppState,
    path: Result<Path<String>, PathRejection>,
    uri: &Uri,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, GatewayError> {
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
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            GatewayError::InvalidArgument(format!(
                "Request payload size exceeds the limit: {BODY_LIMIT} bytes."
            ))
        } else {
            GatewayError::InvalidArgument(e.body_text())
        }
    })?;
    let request: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        GatewayError::InvalidArgument(format!("Invalid JSON payload received. {e}"))
    })?;
    let estimate = Estimate::of_request(&request);
    let limits = settings.limits();
    let purchase_id = access.purchase_id;
    let tokens_now = if action == Action::CountTokens {
        0
    } else {
        estimate.input_tokens
    };
    gateway
        .limiter
        .admit(purchase_id, limits, tokens_now, Instant::now())?;
    if action != Action::CountTokens {
        access.check_balance(prices.estimate(&estimate))?;
    }
    // The customer's key stays here: only the other parameters (e.g. `alt=sse`) go upstream.
    let forward: Vec<(String, String)> = query.into_iter().filter(|(k, _)| k != "key").collect();
    let upstream = gateway
        .send(
            reqwest::Method::POST,
            &format!("/v1beta/models/{model}:{}", action.name()),
            &forward,
            Some(body),
        )
        .await?;
    if !upstream.status().is_success() || action == Action::CountTokens {
        // Upstream errors and token counts are free.
        return pass_through(upstream).await;
    }
    if action == Action::Stream {
        return Ok(stream_metered(
            state,
            gateway,
            upstream,
            purchase_id,
            model,
            prices,
            limits,
        ));
    }

    let status = upstream.status();
    let content_type = upstream.headers().get(header::CONTENT_TYPE).cloned();
    let bytes = upstream
        .bytes()
        .await
        .map_err(|e| GatewayError::UpstreamUnavailable(e.without_url()))?;
    let mut seen = ResponseUsage::default();
    if let Ok(response) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        seen.observe(&response);
    }
    match seen.usage {
        Some(usage) => {
            gateway
                .limiter
                .record_tokens(purchase_id, limits, usage.total(), Instant::now());
            // The answer is released only once its cost is on the ledger.
            Metered {
                purchase_id,
                model: model.to_owned(),
                prices,
                usage,
                response_id: seen.response_id,
                model_version: seen.model_version,
            }
            .post(&state.pool)
            .await?;
        }
        None => {
            tracing::warn!(%purchase_id, model, "upstream answer without usageMetadata: not metered");
        }
    }
    Ok(respond(status, content_type, Body::from(bytes)))
}

/// Passes the upstream's chunks through as they arrive and meters the last `usageMetadata` once
/// at the end (or in the background if the client leaves early).
fn stream_metered(
    state: &AppState,
    gateway: Arc<Gateway>,
    upstream: reqwest::Response,
    purchase_id: crate::domain::ids::PurchaseId,
    model: &str,
    prices: gemini::ModelPrices,
    limits: gemini::Limits,
) -> Response {
    let status = upstream.status();
    let content_type = upstream.headers().get(header::CONTENT_TYPE).cloned();
    let on_tokens = Box::new(move |tokens: u64| {
        gateway
            .limiter
            .record_tokens(purchase_id, limits, tokens, Instant::now());
    });
    let meter = StreamMeter::new(
        state.pool.clone(),
        purchase_id,
        model.to_owned(),
        prices,
        on_tokens,
    );
    let chunks = futures::stream::unfold(
        (upstream.bytes_stream(), Some(meter)),
        |(mut chunks, mut meter)| async move {
            let current = meter.as_mut()?;
            match chunks.next().await {
                Some(Ok(chunk)) => {
                    current.observe(&chunk);
                    Some((Ok(chunk), (chunks, meter)))
                }
                Some(Err(e)) => {
                    // The upstream broke off: meter what was seen (the meter's drop), then end.
                    tracing::warn!(error = %e.without_url(), "upstream stream interrupted");
                    drop(meter.take());
                    Some((
                        Err(std::io::Error::other("upstream stream interrupted")),
                        (chunks, None),
                    ))
                }
                None => {
                    if let Some(done) = meter.take() {
                        done.finish().await;
                    }
                    None
                }
            }
        },
    );
    let mut response = respond(status, content_type, Body::from_stream(chunks));
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Reverse proxies (nginx, traefik) must not buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
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

/// The gateway's routes. Merged outside the API's request timeout (generations run for minutes);
/// the upstream client cuts off a silent upstream instead.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1beta/models", get(list_models))
        .route(
            "/v1beta/models/{model_action}",
            get(get_model).post(call_model),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
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
    fn actions_are_googles() {
        assert_eq!(
            Action::parse("streamGenerateContent").unwrap(),
            Action::Stream
        );
        assert!(Action::parse("embedContent").is_err());
    }
}
