//! `GET /v1/admin/purchases/{id}/s3-usage`: the console's view of an S3 purchase's estimates beside
//! its imported AWS costs.

use axum::extract::State;

use super::{AdminAuth, purchase_id};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{AppJson, AppPath};
use crate::billing::s3_usage::{self, S3UsageView};
use crate::state::AppState;

/// Days shown.
pub const DAYS: i64 = 31;

#[utoipa::path(
    get,
    path = "/v1/admin/purchases/{id}/s3-usage",
    tag = "admin",
    operation_id = "admin_purchase_s3_usage",
    summary = "An S3 purchase's hourly estimates per day beside the imported AWS costs (last 31 days)",
    params(("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`")),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "Estimates and imported costs per day, newest first", body = S3UsageView),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "A malformed purchase id (`purchase_not_found`), or the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn purchase_s3_usage(
    State(state): State<AppState>,
    _auth: AdminAuth,
    AppPath(id): AppPath<String>,
) -> Result<AppJson<S3UsageView>, ApiError> {
    let id = purchase_id(&id)?;
    let today = chrono::Utc::now().date_naive();
    Ok(AppJson(
        s3_usage::usage_view(&state.pool, id, today, DAYS).await?,
    ))
}
