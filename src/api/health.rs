//! `GET /health`: the server is up and its database answers (readiness; the database check is
//! cached for at most a second). `GET /health/live`: the process answers (liveness; no database).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use sqlx::PgPool;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::AppJson;
use crate::chain::ChainHealth;
use crate::state::AppState;

/// How long a database check result is reused.
const CHECK_TTL: Duration = Duration::from_secs(1);
/// How long a database check may take before it counts as failed.
const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// The last database check and when it was made; one check at a time refreshes it.
#[derive(Clone, Default)]
pub struct DbCheck(Arc<DbCheckInner>);

#[derive(Default)]
struct DbCheckInner {
    last: Mutex<Option<(Instant, Result<(), &'static str>)>>,
    refresh: tokio::sync::Mutex<()>,
}

impl DbCheck {
    fn fresh(&self) -> Option<Result<(), &'static str>> {
        let last = self.0.last.lock().unwrap_or_else(|e| e.into_inner());
        last.filter(|(at, _)| at.elapsed() < CHECK_TTL)
            .map(|(_, result)| result)
    }

    /// The database's state, at most [`CHECK_TTL`] old.
    pub async fn check(&self, pool: &PgPool) -> Result<(), &'static str> {
        if let Some(result) = self.fresh() {
            return result;
        }
        let _refreshing = self.0.refresh.lock().await;
        if let Some(result) = self.fresh() {
            return result;
        }
        let ping = sqlx::query_scalar!("select 1 as \"one!\"").fetch_one(pool);
        let result = match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "health check: database error");
                Err("database unavailable")
            }
            Err(_) => Err("database did not answer within 1 s"),
        };
        *self.0.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), result));
        result
    }
}

/// `GET /health`'s answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct HealthOut {
    #[schema(example = "ok")]
    pub status: &'static str,
    #[schema(example = "ok")]
    pub database: &'static str,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
    /// Per configured chain, the state of each of its RPC endpoints (no URL, only a label).
    pub chains: BTreeMap<String, ChainHealth>,
}

/// `GET /health/live`'s answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LiveOut {
    #[schema(example = "ok")]
    pub status: &'static str,
    #[schema(example = "0.1.0")]
    pub version: &'static str,
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    summary = "Readiness: the server and its database answer (database check cached for at most 1 s)",
    responses(
        (status = 200, description = "Up", body = HealthOut),
        (status = 503, description = "The database does not answer (`database_unavailable`)", body = ErrorBody),
    )
)]
async fn health(State(state): State<AppState>) -> Result<AppJson<HealthOut>, ApiError> {
    match state.db_check.check(&state.pool).await {
        Ok(()) => Ok(AppJson(HealthOut {
            status: "ok",
            database: "ok",
            version: env!("CARGO_PKG_VERSION"),
            chains: state.chains.health(),
        })),
        Err(message) => Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            message,
        )),
    }
}

#[utoipa::path(
    get,
    path = "/health/live",
    tag = "operations",
    summary = "Liveness: the process answers (no database check)",
    responses((status = 200, description = "Up", body = LiveOut))
)]
async fn live() -> AppJson<LiveOut> {
    AppJson(LiveOut {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(live))
}
