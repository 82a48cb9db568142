//! Tracing (pretty in development, JSON in production) and optional Sentry.

use secrecy::ExposeSecret;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, ServerConfig};

/// Keeps Sentry flushing until dropped at the end of `main`.
pub struct TelemetryGuard {
    _sentry: Option<sentry::ClientInitGuard>,
}

/// Installs the global subscriber. Returns a guard `main` must hold.
pub fn init(server: &ServerConfig) -> TelemetryGuard {
    let filter = EnvFilter::try_new(&server.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = match server.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().with_target(true).boxed(),
    };
    let sentry_guard = server.sentry_dsn.as_ref().map(|dsn| {
        let mut options = sentry::ClientOptions::default();
        options.release = sentry::release_name!();
        options.environment = Some(server.sentry_environment.clone().into());
        options.send_default_pii = false;
        options.attach_stacktrace = true;
        sentry::init((dsn.expose_secret().to_owned(), options))
    });
    // ERROR events become Sentry issues, with the INFO+ events before them as breadcrumbs.
    let sentry_layer = sentry_guard.as_ref().map(|_| {
        use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer};
        use tracing_subscriber::filter::LevelFilter;
        ErrorLayer::new()
            .with_filter(LevelFilter::ERROR)
            .and_then(BreadcrumbLayer::new().with_filter(LevelFilter::INFO))
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(hide_rpc_urls())
        .with(fmt)
        .with(sentry_layer)
        .try_init();
    TelemetryGuard {
        _sentry: sentry_guard,
    }
}

/// Drops alloy's HTTP-transport spans and events below INFO: their `url` field is the full RPC URL,
/// API key included (whatever `RUST_LOG` asks for).
pub fn hide_rpc_urls() -> tracing_subscriber::filter::FilterFn {
    tracing_subscriber::filter::filter_fn(|meta| {
        !(meta.target().starts_with("alloy_transport_http") && *meta.level() > tracing::Level::INFO)
    })
}

/// Runs CPU-bound work (gunzip, CSV parsing) on the blocking pool inside the caller's span.
pub fn spawn_blocking_with_tracing<F, R>(f: F) -> tokio::task::JoinHandle<R>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
}

/// A deposit seen on chain for the first time (`chain` is its chain id, `micros` its USD value).
pub fn deposit_detected(chain: i64, micros: i64) {
    let labels = [("chain", chain.to_string())];
    metrics::counter!("vendor_deposits_detected_total", &labels).increment(1);
    metrics::counter!("vendor_deposits_detected_usd_micros_total", &labels)
        .increment(u64::try_from(micros).unwrap_or(0));
}

/// A deposit posted to its purchase's ledger.
pub fn deposit_credited(chain: i64, micros: i64) {
    let labels = [("chain", chain.to_string())];
    metrics::counter!("vendor_deposits_credited_total", &labels).increment(1);
    metrics::counter!("vendor_deposits_credited_usd_micros_total", &labels)
        .increment(u64::try_from(micros).unwrap_or(0));
}
