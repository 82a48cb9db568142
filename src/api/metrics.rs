//! Prometheus `/metrics`: request counts and latencies per route, plus whatever the domain modules
//! record through the `metrics` macros. Protected by `ADMIN_TOKEN` when one is set.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use secrecy::ExposeSecret;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth;
use super::error::{ApiError, ErrorBody};
use crate::state::AppState;

/// How often histogram samples are folded into their buckets (bounded memory whether or not anyone
/// scrapes `/metrics`).
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The process-wide recorder (installed once; several test apps in one process share it).
fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                ])
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            // Histogram samples wait in the recorder until they are folded into their buckets; without
            // this upkeep that only happens when /metrics is scraped, so an unscraped server grows by
            // every request it serves (found by scripts/soak.sh: ~1 MB a minute under load).
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start the metrics upkeep thread");
            }
            Some(handle)
        })
        .as_ref()
}

/// Records `http_requests_total` and `http_request_duration_seconds` by method, route and status.
/// Every label comes from a closed set (a client must not be able to mint label values): known
/// methods or `other`, the route template or `unmatched`, the status code.
pub async fn track(request: Request, next: Next) -> Response {
    let _ = handle();
    let start = Instant::now();
    let method = method_label(request.method());
    let path = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let response = next.run(request).await;
    let labels = [
        ("method", method.to_owned()),
        ("path", path),
        ("status", response.status().as_u16().to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    response
}

/// The standard methods by name, anything else as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics (the admin token when ADMIN_TOKEN is set)",
    security((), ("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 401, description = "ADMIN_TOKEN is set and was not presented (`unauthorized`)", body = ErrorBody),
    )
)]
async fn render(State(state): State<AppState>, parts: Parts) -> Result<Response, ApiError> {
    if let Some(token) = &state.config.server.admin_token {
        // The same credential forms as every keyed route (bearer in any case, or `?auth=`).
        let ok = auth::presented_key(&parts).is_some_and(|presented| {
            use subtle::ConstantTimeEq;
            presented
                .as_bytes()
                .ct_eq(token.expose_secret().as_bytes())
                .into()
        });
        if !ok {
            return Err(ApiError::unauthorized("metrics need the admin token"));
        }
    }
    let body = handle().map(PrometheusHandle::render).unwrap_or_default();
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}

pub fn router() -> OpenApiRouter<AppState> {
    // Installed before the jobs start, so their counters are never recorded into nothing.
    let _ = handle();
    OpenApiRouter::new().routes(routes!(render))
}
