//! Admin refund routes: `GET /v1/admin/refunds`, `POST /v1/admin/refunds/{id}/approve|reject|mark-paid|retry`.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::{AdminAuth, IdempotencyIn, Mutation, id_page};
use crate::admin::refunds;
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{AppJson, AppPath, AppQuery};
use crate::api::refunds::ctx;
use crate::domain::ids::RefundId;
use crate::domain::page::Page;
use crate::refunds::{PayoutAction, RefundOut};
use crate::state::AppState;

/// `GET /v1/admin/refunds` query.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RefundsQuery {
    /// A refund status, or `open` (requested, approved, paying and failed).
    pub status: Option<String>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// `POST /v1/admin/refunds/{id}/reject` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = RefundRejectRequest)]
pub struct RejectIn {
    /// Why (1 to 500 characters); shown to the customer.
    pub reason: Option<String>,
    #[schema(pattern = "^[!-~]{1,255}$")]
    pub idempotency_key: Option<String>,
}

/// `POST /v1/admin/refunds/{id}/mark-paid` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = RefundMarkPaidRequest)]
pub struct MarkPaidIn {
    /// The transaction that paid the refund: it must hold a Transfer of the refund's token, of at
    /// least its amount, to its address.
    pub tx_hash: Option<String>,
    #[schema(pattern = "^[!-~]{1,255}$")]
    pub idempotency_key: Option<String>,
}

fn refund_id(raw: &str) -> Result<RefundId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found("refund_not_found", "Refund not found"))
}

#[utoipa::path(
    get,
    path = "/v1/admin/refunds",
    tag = "admin",
    operation_id = "admin_list_refunds",
    summary = "Refunds, newest first, with their status, payout transaction and payment link",
    params(RefundsQuery),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "One page of refunds", body = Page<RefundOut>),
        (status = 400, description = "Bad query (`invalid_query`, `invalid_cursor`, `invalid_limit`, `invalid_status`, `invalid_text`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "Neither ADMIN_TOKEN nor any operator is configured: the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn list_refunds(
    State(state): State<AppState>,
    _auth: AdminAuth,
    AppQuery(query): AppQuery<RefundsQuery>,
) -> Result<AppJson<Page<RefundOut>>, ApiError> {
    let (before, limit) = id_page(query.cursor.as_deref(), query.limit)?;
    let status = query.status.as_deref().filter(|s| !s.is_empty());
    Ok(AppJson(
        refunds::list(&ctx(&state), status, before, limit).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/admin/refunds/{id}/approve",
    tag = "admin",
    operation_id = "admin_approve_refund",
    summary = "Approve a requested refund: the payout wallet pays it, or the vendor does (payment link)",
    params(
        ("id" = String, Path, description = "`RefundID_<uuid>`"),
        ("Idempotency-Key" = Option<String>, Header, description = "Required (header or body); replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body(content = Option<IdempotencyIn>, description = "Optional"),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "Approved", body = RefundOut, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_path`, `invalid_idempotency_key`, `idempotency_key_mismatch`, `idempotency_key_required`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such refund (`refund_not_found`), or the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 409, description = "The refund is not requested (`invalid_state`), or the idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn approve_refund(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    request: Mutation,
) -> Result<Response, ApiError> {
    let id = refund_id(&id)?;
    let route = format!("POST /v1/admin/refunds/{id}/approve");
    request
        .run(
            &route,
            StatusCode::OK,
            async |_: IdempotencyIn, actor| -> Result<_, ApiError> {
                let cx = ctx(&state);
                // The head now: the vendor's own payment counts from here (best effort; else the
                // first scan).
                let chain_id =
                    sqlx::query_scalar!("select chain_id from refund where refund_id = $1", id.0)
                        .fetch_optional(&state.pool)
                        .await?
                        .ok_or_else(|| {
                            ApiError::not_found("refund_not_found", "Refund not found")
                        })?;
                let head = match u64::try_from(chain_id)
                    .ok()
                    .and_then(|c| state.chains.by_id(c))
                {
                    Some(chain) => tokio::time::timeout(Duration::from_secs(3), chain.head())
                        .await
                        .ok()
                        .and_then(Result::ok),
                    None => None,
                };
                Ok(refunds::approve(&cx, id, head, &actor).await?)
            },
        )
        .await
}

#[utoipa::path(
    post,
    path = "/v1/admin/refunds/{id}/reject",
    tag = "admin",
    operation_id = "admin_reject_refund",
    summary = "Reject a refund not being paid: its amount is credited back",
    params(
        ("id" = String, Path, description = "`RefundID_<uuid>`"),
        ("Idempotency-Key" = Option<String>, Header, description = "Required (header or body); replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body = RejectIn,
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "Rejected", body = RefundOut, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body, no reason, or a bad idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_path`, `missing_field`, `invalid_idempotency_key`, `idempotency_key_mismatch`, `idempotency_key_required`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such refund (`refund_not_found`), or the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 409, description = "The refund is being paid or is finished (`invalid_state`), or the idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn reject_refund(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    request: Mutation,
) -> Result<Response, ApiError> {
    let id = refund_id(&id)?;
    let route = format!("POST /v1/admin/refunds/{id}/reject");
    request
        .run(&route, StatusCode::OK, async |input: RejectIn, actor| {
            refunds::reject(&ctx(&state), id, input.reason.as_deref(), &actor).await
        })
        .await
}

#[utoipa::path(
    post,
    path = "/v1/admin/refunds/{id}/mark-paid",
    tag = "admin",
    operation_id = "admin_mark_refund_paid",
    summary = "Record the vendor's own payment of an approved refund, checked on chain",
    description = "The transaction must be mined, succeeded, and hold a Transfer of the refund's token, of at least its amount, to its address, not already counted for another refund.",
    params(
        ("id" = String, Path, description = "`RefundID_<uuid>`"),
        ("Idempotency-Key" = Option<String>, Header, description = "Required (header or body); replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body = MarkPaidIn,
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "Paid", body = RefundOut, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_path`, `missing_field`, `invalid_tx_hash`, `invalid_idempotency_key`, `idempotency_key_mismatch`, `idempotency_key_required`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such refund (`refund_not_found`), or the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 409, description = "The transaction does not pay the refund (`payment_not_found`), the refund is not approved or failed, or the transfer pays another refund (`invalid_state`), or the idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The chain's node or the database is unreachable; retry (`chain_unavailable`, `service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn mark_refund_paid(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    request: Mutation,
) -> Result<Response, ApiError> {
    let id = refund_id(&id)?;
    let route = format!("POST /v1/admin/refunds/{id}/mark-paid");
    request
        .run(
            &route,
            StatusCode::OK,
            async |input: MarkPaidIn, actor| -> Result<_, ApiError> {
                let tx_hash = input
                    .tx_hash
                    .filter(|h| !h.trim().is_empty())
                    .ok_or_else(|| ApiError::bad_request("missing_field", "tx_hash is required"))?;
                let cx = ctx(&state);
                let payment = crate::refunds::find_payment(&cx, id, &tx_hash).await?;
                Ok(refunds::mark_paid(&cx, id, &payment, &actor).await?)
            },
        )
        .await
}

#[utoipa::path(
    post,
    path = "/v1/admin/refunds/{id}/retry",
    tag = "admin",
    operation_id = "admin_retry_refund",
    summary = "Approve a failed refund again: a new payout transaction is signed",
    params(
        ("id" = String, Path, description = "`RefundID_<uuid>`"),
        ("Idempotency-Key" = Option<String>, Header, description = "Required (header or body); replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body(content = Option<IdempotencyIn>, description = "Optional"),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "Approved again", body = RefundOut, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_path`, `invalid_idempotency_key`, `idempotency_key_mismatch`, `idempotency_key_required`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such refund (`refund_not_found`), or the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 409, description = "Only failed refunds are retried (`invalid_state`), or the idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn retry_refund(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    request: Mutation,
) -> Result<Response, ApiError> {
    let id = refund_id(&id)?;
    let route = format!("POST /v1/admin/refunds/{id}/retry");
    request
        .run(&route, StatusCode::OK, async |_: IdempotencyIn, actor| {
            refunds::retry(&ctx(&state), id, &actor).await
        })
        .await
}

async fn payout_action(
    state: AppState,
    id: String,
    request: Mutation,
    action: PayoutAction,
) -> Result<Response, ApiError> {
    let id = refund_id(&id)?;
    let path = match action {
        PayoutAction::Bump => "bump",
        PayoutAction::Cancel => "cancel-payout",
    };
    let route = format!("POST /v1/admin/refunds/{id}/{path}");
    request
        .run(&route, StatusCode::OK, async |_: IdempotencyIn, actor| {
            refunds::payout_action(&ctx(&state), id, action, &actor).await
        })
        .await
}

#[utoipa::path(
    post,
    path = "/v1/admin/refunds/{id}/bump",
    tag = "admin",
    operation_id = "admin_bump_refund_payout",
    summary = "Re-sign a refund's unmined payout at the same nonce with both fees raised 25 % (past the chain's max_fee_gwei if need be)",
    params(
        ("id" = String, Path, description = "`RefundID_<uuid>`"),
        ("Idempotency-Key" = String, Header, description = "Required (or the body's `idempotency_key`): replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body(content = Option<IdempotencyIn>, description = "Optional"),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "Requested; the payout job signs and sends the replacement on its next pass", body = RefundOut, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_path`, `invalid_idempotency_key`, `idempotency_key_mismatch`, `idempotency_key_required`)", body = ErrorBody),
        (status = 401, description = "No admin token, or not ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such refund (`refund_not_found`), or ADMIN_TOKEN is not configured (`not_found`)", body = ErrorBody),
        (status = 409, description = "Only a payout being paid (signed, not mined) can be bumped (`invalid_state`), or the idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn bump_refund_payout(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    request: Mutation,
) -> Result<Response, ApiError> {
    payout_action(state, id, request, PayoutAction::Bump).await
}

#[utoipa::path(
    post,
    path = "/v1/admin/refunds/{id}/cancel-payout",
    tag = "admin",
    operation_id = "admin_cancel_refund_payout",
    summary = "Replace a refund's unmined payout with a 0-value transfer of the payout wallet to itself at the same nonce; once mined the refund fails, nothing paid (retry or reject it)",
    params(
        ("id" = String, Path, description = "`RefundID_<uuid>`"),
        ("Idempotency-Key" = String, Header, description = "Required (or the body's `idempotency_key`): replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body(content = Option<IdempotencyIn>, description = "Optional"),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "Requested; the payout job signs and sends the cancellation on its next pass", body = RefundOut, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_path`, `invalid_idempotency_key`, `idempotency_key_mismatch`, `idempotency_key_required`)", body = ErrorBody),
        (status = 401, description = "No admin token, or not ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such refund (`refund_not_found`), or ADMIN_TOKEN is not configured (`not_found`)", body = ErrorBody),
        (status = 409, description = "Only a payout being paid (signed, not mined) can be cancelled (`invalid_state`), or the idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn cancel_refund_payout(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    request: Mutation,
) -> Result<Response, ApiError> {
    payout_action(state, id, request, PayoutAction::Cancel).await
}
