//! `GET /health`: the server is up and its database answers (readiness; the database check is
//! cached for at most a second). `GET /health/live`: the process answers (liveness; no database).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};
use sqlx::PgPool;

use super::error::ApiError;
use super::extract::AppJson;
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

async fn health(State(state): State<AppState>) -> Result<AppJson<Value>, ApiError> {
    match state.db_check.check(&state.pool).await {
        Ok(()) => Ok(AppJson(
            json!({ "status": "ok", "database": "ok", "version": env!("CARGO_PKG_VERSION"), "chains": state.chains.health() }),
        )),
        Err(message) => Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            message,
        )),
    }
}

async fn live() -> AppJson<Value> {
    AppJson(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
}
