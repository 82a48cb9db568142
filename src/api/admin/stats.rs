//! `GET /v1/admin/stats/daily`: money over time for the console's overview chart.

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::AdminAuth;
use crate::admin::stats::{self, Daily};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{AppJson, AppQuery};
use crate::state::AppState;

/// `GET /v1/admin/stats/daily` query.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DailyQuery {
    /// How many UTC days, today included (1 to 366; default 30; the console asks 30 or 90).
    #[param(minimum = 1, maximum = 366)]
    pub days: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/stats/daily",
    tag = "admin",
    operation_id = "admin_stats_daily",
    summary = "Money over time: per UTC day, deposits credited, usage billed (in total and per offer) and purchases with a positive balance; oldest first, one item per day (zeros included)",
    params(DailyQuery),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "One item per day, oldest first, today last", body = Daily),
        (status = 400, description = "Bad query (`invalid_query`, `invalid_days`, `invalid_text`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "Neither ADMIN_TOKEN nor any operator is configured: the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn daily(
    State(state): State<AppState>,
    _auth: AdminAuth,
    AppQuery(query): AppQuery<DailyQuery>,
) -> Result<AppJson<Daily>, ApiError> {
    Ok(AppJson(
        stats::daily(&state.pool, query.days.unwrap_or(30)).await?,
    ))
}
