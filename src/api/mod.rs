//! The HTTP edge: routers of each resource merged, with tracing, request ids, timeouts, body limits,
//! CORS and one JSON error shape for every failure (including unknown routes and layer errors).

pub mod admin;
pub mod appstore;
pub mod auth;
pub mod checkout;
pub mod credentials;
pub mod dashboard;
pub mod error;
pub mod extract;
pub mod gemini;
pub mod health;
pub mod listener;
pub mod metering;
pub mod metrics;
pub mod offers;
pub mod openapi;
pub mod purchases;
pub mod refunds;
pub mod s3_usage;

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{Any as CorsAny, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::{TimeoutBody, TimeoutError, TimeoutLayer};
use tower_http::trace::TraceLayer;
use tracing::{Level, Span};

use crate::state::AppState;
use error::{ApiError, ErrorBody, code_for_status};

/// Builds the whole HTTP application.
pub fn router(state: AppState) -> Router {
    let server = &state.config.server;
    let body_limit = server.body_limit_bytes;
    let timeout = server.request_timeout;
    let body_read_timeout = server.limits.body_read_timeout;
    // The routes and the OpenAPI document come from the same routers; the document is serialised
    // once here and served as these bytes.
    let (api, gemini, doc) = openapi::documented();
    let served = openapi::Served(
        openapi::render(doc, &server.public_base_url)
            .map_err(|e| tracing::error!(error = %e, "cannot serialise the OpenAPI document"))
            .ok(),
    );
    // Every route under /v1/admin/ signs its caller in and checks their role (one rule for all).
    api.route_layer(axum::middleware::from_fn_with_state(
        state.clone(),
        admin::gate,
    ))
    .layer(axum::Extension(served))
    .layer(axum::Extension(dashboard::DashboardDir::new(
        server.dashboard_dir.clone(),
    )))
    .fallback(not_found)
    .method_not_allowed_fallback(method_not_allowed)
    .layer(axum::middleware::map_response(json_error_bodies))
    .layer(axum::middleware::from_fn(stalled_body_is_408))
    .layer(axum::middleware::from_fn(extract::reject_nul_in_uri))
    .route_layer(axum::middleware::from_fn(metrics::track))
    .layer(DefaultBodyLimit::max(body_limit))
    .layer(CatchPanicLayer::custom(panic_response))
    .layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        timeout,
    ))
    // The Gemini gateway answers in Google's error shape and streams for minutes: it brings its
    // own body limit and panic handler, outside the JSON-error and timeout layers above.
    .merge(gemini::finish(gemini))
    // Every route's body: a pause longer than BODY_READ_TIMEOUT_SECS ends it with an error.
    .layer(axum::middleware::from_fn_with_state(
        body_read_timeout,
        cut_stalled_bodies,
    ))
    .layer(cors())
    .layer(PropagateRequestIdLayer::x_request_id())
    .layer(
        TraceLayer::new_for_http()
            .make_span_with(make_span)
            .on_request(())
            .on_response(on_response)
            .on_failure(()),
    )
    .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
    .with_state(state)
}

/// Keeps `guard` alive until `response`'s body is sent (or dropped with a client that left).
pub(crate) fn hold_until_sent<G: Send + 'static>(response: Response, guard: G) -> Response {
    response.map(|body| {
        Body::new(body.map_frame(move |frame| {
            let _held = &guard;
            frame
        }))
    })
}

/// Set on a request whose body stalled longer than the body-read timeout.
#[derive(Clone, Default)]
struct BodyStalled(Arc<AtomicBool>);

/// Wraps the request body so a pause longer than `timeout` between chunks fails the read (the
/// extractor reading it errs out; [`stalled_body_is_408`] turns that into a 408).
async fn cut_stalled_bodies(
    axum::extract::State(timeout): axum::extract::State<Duration>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let stalled = BodyStalled::default();
    let flag = Arc::clone(&stalled.0);
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(stalled);
    let body = TimeoutBody::new(timeout, body).map_err(move |e| {
        if e.is::<TimeoutError>() {
            flag.store(true, Ordering::Release);
        }
        e
    });
    next.run(Request::from_parts(parts, Body::new(body))).await
}

/// Answers a request whose body stalled with a JSON 408 (and closes the connection), whatever
/// error the extractor made of the failed read.
async fn stalled_body_is_408(request: Request<Body>, next: Next) -> Response {
    let stalled = request.extensions().get::<BodyStalled>().cloned();
    let response = next.run(request).await;
    if stalled.is_some_and(|s| s.0.load(Ordering::Acquire)) {
        let mut response = ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "The request body was not received in time.",
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    response
}

/// CORS as the original: any origin, the usual methods and headers.
fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(CorsAny)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers(CorsAny)
        .max_age(Duration::from_secs(3600))
}

fn make_span(request: &Request<Body>) -> Span {
    let path = request.extensions().get::<MatchedPath>().map_or_else(
        || request.uri().path().to_owned(),
        |p| p.as_str().to_owned(),
    );
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // Health checks poll every few seconds: keep them out of the default log.
    if path == "/health" {
        tracing::debug_span!("request", method = %request.method(), path, request_id)
    } else {
        tracing::info_span!("request", method = %request.method(), path, request_id)
    }
}

fn on_response(response: &Response, latency: Duration, span: &Span) {
    let status = response.status().as_u16();
    let latency_ms = latency.as_millis();
    if span.metadata().is_some_and(|m| *m.level() == Level::DEBUG) {
        tracing::debug!(status, latency_ms, "response");
    } else {
        tracing::info!(status, latency_ms, "response");
    }
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "No such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "Method not allowed on this route",
    )
}

fn panic_response(_panic: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    ApiError::Internal(anyhow::anyhow!("handler panicked")).into_response()
}

/// Gives error responses produced outside handlers (timeouts, layers) the JSON error shape.
async fn json_error_bodies(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let message = status
        .canonical_reason()
        .unwrap_or("Request failed")
        .to_owned();
    let body = ErrorBody {
        error: message,
        code: code_for_status(status).to_owned(),
    };
    let mut out = (status, axum::Json(body)).into_response();
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    if status == StatusCode::REQUEST_TIMEOUT {
        out.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    out
}
