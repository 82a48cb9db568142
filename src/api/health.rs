//! `GET /health`: the server is up and its database answers.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::AppJson;
use crate::state::AppState;

async fn health(State(state): State<AppState>) -> Result<AppJson<Value>, ApiError> {
    let ping = sqlx::query_scalar!("select 1 as \"one!\"").fetch_one(&state.pool);
    match tokio::time::timeout(Duration::from_secs(3), ping).await {
        Ok(Ok(_)) => Ok(AppJson(
            json!({ "status": "ok", "database": "ok", "version": env!("CARGO_PKG_VERSION"), "chains": state.chains.health() }),
        )),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: database error");
            Err(ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "database unavailable",
            ))
        }
        Err(_) => Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "database did not answer within 3 s",
        )),
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/health", get(health))
}
