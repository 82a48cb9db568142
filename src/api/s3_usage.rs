//! `GET /v1/purchase/{id}/s3-usage`: an S3 purchase's hourly estimates (today's spend so far), the
//! daily AWS figures that replaced earlier days' estimates, and an offer limit holding it suspended.

use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::CustomerAuth;
use super::error::{ApiError, ErrorBody};
use super::extract::AppJson;
use crate::billing::s3_usage::{self, S3UsageView};
use crate::state::AppState;

/// Days shown.
pub const DAYS: i64 = 7;

#[utoipa::path(
    get,
    path = "/v1/purchase/{id}/s3-usage",
    tag = "purchases",
    summary = "Today's estimated S3 spend, the last days' estimates beside the AWS figures that replaced them, and any limit hold",
    description = "Estimates are charged hourly from the bucket's access logs and storage metrics; the daily AWS cost import replaces each day's estimate with AWS's own figure (it posts only the difference).",
    params(("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`")),
    security(("customer_key" = []), ("customer_key_query" = [])),
    responses(
        (status = 200, description = "The purchase's S3 usage", body = S3UsageView),
        (status = 401, description = "No key, not this purchase's customer key, or an unknown purchase (`unauthorized`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
async fn s3_usage(
    State(state): State<AppState>,
    auth: CustomerAuth,
) -> Result<AppJson<S3UsageView>, ApiError> {
    let today = chrono::Utc::now().date_naive();
    Ok(AppJson(
        s3_usage::usage_view(&state.pool, auth.purchase_id, today, DAYS).await?,
    ))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(s3_usage))
}
