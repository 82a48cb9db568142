//! Admin routes beside purchases: overview, gas, sweeps, notifications, cost imports, billing tokens
//! and the audit log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::purchases::PageQuery;
use super::{AdminAuth, IdempotencyIn, Mutation, id_page, numeric_id};
use crate::admin::cost_imports::{self, CostImportRow};
use crate::admin::notifications::{self, NotificationRetryOut, NotificationRow};
use crate::admin::overview::{self, GasWallet, Overview};
use crate::admin::sweeps::{self, SweepActionOut, SweepRetryOut, SweepRow, TxAction};
use crate::admin::tokens::{self, TokenCreated, TokenRow};
use crate::admin::{AuditFilter, AuditRecord};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{AppJson, AppPath, AppQuery};
use crate::domain::page::Page;
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/v1/admin/overview",
    tag = "admin",
    operation_id = "admin_overview",
    summary = "The console's first screen: money, purchases by status, gas, sweeps, notifications, the last cost import",
    description = "Gas balances are read from each chain with a timeout; an unreadable chain carries an `error` instead of failing the call.",
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "The overview", body = Overview),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "Neither ADMIN_TOKEN nor any operator is configured: the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn overview(
    State(state): State<AppState>,
    _auth: AdminAuth,
) -> Result<AppJson<Overview>, ApiError> {
    Ok(AppJson(
        overview::overview(&state.pool, &state.chains).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/v1/admin/gas",
    tag = "admin",
    operation_id = "admin_gas",
    summary = "The gas wallet on every configured chain: balance, low flag, sweeps it still pays for",
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "One row per chain (`next_cursor` is always null; `[]` without a gas wallet)", body = Page<GasWallet>),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "Neither ADMIN_TOKEN nor any operator is configured: the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn gas(
    State(state): State<AppState>,
    _auth: AdminAuth,
) -> Result<AppJson<Page<GasWallet>>, ApiError> {
    let items = overview::gas(&state.pool, &state.chains).await?;
    Ok(AppJson(Page {
        items,
        next_cursor: None,
    }))
}

/// `GET /v1/admin/sweeps` query.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SweepsQuery {
    /// `waiting` is every unfinished one (planned, signed, broadcast).
    #[param(value_type = Option<SweepStatusFilter>, inline)]
    pub status: Option<String>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// A sweep status to list by (`waiting`: every unfinished one).
// Documents the query only; the handler reads a string.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "lowercase")]
enum SweepStatusFilter {
    Waiting,
    Planned,
    Signed,
    Broadcast,
    Confirmed,
    Failed,
}

/// `GET /v1/admin/notifications` query.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct NotificationsQuery {
    #[param(value_type = Option<NotificationStatus>, inline)]
    pub status: Option<String>,
    #[param(value_type = Option<NotificationChannel>, inline)]
    pub channel: Option<String>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// An outbox row's status.
// Documents the query only; the handler reads a string.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "lowercase")]
enum NotificationStatus {
    Pending,
    Delivered,
    Failed,
    Skipped,
}

/// An outbox row's channel.
// Documents the query only; the handler reads a string.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "lowercase")]
enum NotificationChannel {
    Webhook,
    Email,
    Officex,
    Alert,
}

#[utoipa::path(
    get,
    path = "/v1/admin/sweeps",
    tag = "admin",
    operation_id = "admin_list_sweeps",
    summary = "Sweeps, newest first, with their transactions, attempts and last errors",
    params(
        SweepsQuery
    ),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "One page of sweeps", body = Page<SweepRow>),
        (status = 400, description = "Bad query (`invalid_query`, `invalid_cursor`, `invalid_limit`, `invalid_status`, `invalid_text`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "Neither ADMIN_TOKEN nor any operator is configured: the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn list_sweeps(
    State(state): State<AppState>,
    _auth: AdminAuth,
    AppQuery(query): AppQuery<SweepsQuery>,
) -> Result<AppJson<Page<SweepRow>>, ApiError> {
    let (before, limit) = id_page(query.cursor.as_deref(), query.limit)?;
    let status = query.status.as_deref().filter(|s| !s.is_empty());
    Ok(AppJson(
        sweeps::sweeps(&state.pool, status, before, limit, &state.config.chains).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/admin/sweeps/{id}/retry",
    tag = "admin",
    operation_id = "admin_retry_sweep",
    summary = "Plan a failed sweep again (as `vendor-server sweeps retry`)",
    params(
        ("id" = String, Path, description = "The sweep's numeric id"),
        ("Idempotency-Key" = String, Header, description = "Required (or the body's `idempotency_key`): replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body(content = Option<IdempotencyIn>, description = "Optional"),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "Planned again; the sweeper picks it up on its next pass", body = SweepRetryOut, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_path`, `idempotency_key_required`, `invalid_idempotency_key`, `idempotency_key_mismatch`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such sweep (`sweep_not_found`), or the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 409, description = "The target's state does not allow it (only failed sweeps are retried) (`invalid_state`), or the idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn retry_sweep(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    request: Mutation,
) -> Result<Response, ApiError> {
    let id = numeric_id(&id, "sweep")?;
    let route = format!("POST /v1/admin/sweeps/{id}/retry");
    request
        .run(&route, StatusCode::OK, async |_: IdempotencyIn, actor| {
            sweeps::retry_sweep(&state.pool, id, &actor).await
        })
        .await
}

#[utoipa::path(
    post,
    path = "/v1/admin/sweeps/{id}/bump",
    tag = "admin",
    operation_id = "admin_bump_sweep",
    summary = "Re-sign a sweep's unmined transaction at the same nonce with both fees raised 25 % (past the chain's max_fee_gwei if need be)",
    params(
        ("id" = String, Path, description = "The sweep's numeric id"),
        ("Idempotency-Key" = String, Header, description = "Required (or the body's `idempotency_key`): replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body(content = Option<IdempotencyIn>, description = "Optional"),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "Requested; the sweeper signs and sends the replacement on its next pass", body = SweepActionOut, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_path`, `idempotency_key_required`, `invalid_idempotency_key`, `idempotency_key_mismatch`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such sweep (`sweep_not_found`), or the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 409, description = "Only a signed or broadcast transaction can be bumped (`invalid_state`), or the idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn bump_sweep(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    request: Mutation,
) -> Result<Response, ApiError> {
    sweep_tx_action(state, id, request, TxAction::Bump).await
}

#[utoipa::path(
    post,
    path = "/v1/admin/sweeps/{id}/cancel",
    tag = "admin",
    operation_id = "admin_cancel_sweep",
    summary = "Replace a sweep's unmined transaction with a 0-value transfer of its signer to itself at the same nonce; once mined the sweep fails (funds stay on the deposit address; retry re-plans it)",
    params(
        ("id" = String, Path, description = "The sweep's numeric id"),
        ("Idempotency-Key" = String, Header, description = "Required (or the body's `idempotency_key`): replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body(content = Option<IdempotencyIn>, description = "Optional"),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "Requested; the sweeper signs and sends the cancellation on its next pass", body = SweepActionOut, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_path`, `idempotency_key_required`, `invalid_idempotency_key`, `idempotency_key_mismatch`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such sweep (`sweep_not_found`), or the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 409, description = "Only a signed or broadcast transaction can be cancelled (`invalid_state`), or the idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn cancel_sweep(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    request: Mutation,
) -> Result<Response, ApiError> {
    sweep_tx_action(state, id, request, TxAction::Cancel).await
}

async fn sweep_tx_action(
    state: AppState,
    id: String,
    request: Mutation,
    action: TxAction,
) -> Result<Response, ApiError> {
    let id = numeric_id(&id, "sweep")?;
    let route = format!("POST /v1/admin/sweeps/{id}/{}", action.as_str());
    request
        .run(&route, StatusCode::OK, async |_: IdempotencyIn, actor| {
            sweeps::request_tx_action(&state.pool, id, action, &actor).await
        })
        .await
}

#[utoipa::path(
    get,
    path = "/v1/admin/notifications",
    tag = "admin",
    operation_id = "admin_list_notifications",
    summary = "The notifications outbox (webhooks, emails, OfficeX updates, alerts), newest first, with payloads and last errors",
    params(
        NotificationsQuery
    ),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "One page of outbox rows", body = Page<NotificationRow>),
        (status = 400, description = "Bad query (`invalid_query`, `invalid_cursor`, `invalid_limit`, `invalid_status`, `invalid_channel`, `invalid_text`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "Neither ADMIN_TOKEN nor any operator is configured: the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn list_notifications(
    State(state): State<AppState>,
    _auth: AdminAuth,
    AppQuery(query): AppQuery<NotificationsQuery>,
) -> Result<AppJson<Page<NotificationRow>>, ApiError> {
    let (before, limit) = id_page(query.cursor.as_deref(), query.limit)?;
    let status = query.status.as_deref().filter(|s| !s.is_empty());
    let channel = query.channel.as_deref().filter(|s| !s.is_empty());
    Ok(AppJson(
        notifications::notifications(&state.pool, status, channel, before, limit).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/admin/notifications/{id}/retry",
    tag = "admin",
    operation_id = "admin_retry_notification",
    summary = "Deliver a failed (or pending) notification again at once, with a fresh retry schedule",
    params(
        ("id" = String, Path, description = "The notification's numeric id"),
        ("Idempotency-Key" = String, Header, description = "Required (or the body's `idempotency_key`): replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body(content = Option<IdempotencyIn>, description = "Optional"),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "Pending again, due now", body = NotificationRetryOut, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_path`, `idempotency_key_required`, `invalid_idempotency_key`, `idempotency_key_mismatch`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such notification (`notification_not_found`), or the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 409, description = "The target's state does not allow it (delivered and skipped rows are final) (`invalid_state`), or the idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn retry_notification(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    request: Mutation,
) -> Result<Response, ApiError> {
    let id = numeric_id(&id, "notification")?;
    let route = format!("POST /v1/admin/notifications/{id}/retry");
    request
        .run(&route, StatusCode::OK, async |_: IdempotencyIn, actor| {
            notifications::retry_notification(&state.pool, id, &actor).await
        })
        .await
}

#[utoipa::path(
    get,
    path = "/v1/admin/cost-imports",
    tag = "admin",
    operation_id = "admin_list_cost_imports",
    summary = "Cost import runs, newest first: what each charged, restated and skipped",
    params(
        PageQuery
    ),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "One page of runs", body = Page<CostImportRow>),
        (status = 400, description = "Bad query (`invalid_query`, `invalid_cursor`, `invalid_limit`, `invalid_text`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "Neither ADMIN_TOKEN nor any operator is configured: the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn list_cost_imports(
    State(state): State<AppState>,
    _auth: AdminAuth,
    AppQuery(query): AppQuery<PageQuery>,
) -> Result<AppJson<Page<CostImportRow>>, ApiError> {
    let (before, limit) = id_page(query.cursor.as_deref(), query.limit)?;
    Ok(AppJson(
        cost_imports::cost_imports(&state.pool, before, limit).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/v1/admin/tokens",
    tag = "admin",
    operation_id = "admin_list_tokens",
    summary = "Every billing token, newest first (never the secret)",
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "Every token (`next_cursor` is always null)", body = Page<TokenRow>),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "Neither ADMIN_TOKEN nor any operator is configured: the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn list_tokens(
    State(state): State<AppState>,
    _auth: AdminAuth,
) -> Result<AppJson<Page<TokenRow>>, ApiError> {
    Ok(AppJson(tokens::tokens(&state.pool).await?))
}

/// `POST /v1/admin/tokens` body.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[schema(as = TokenRequest)]
pub struct TokenIn {
    /// What the token is for (1 to 100 characters), e.g. the AI server's name.
    #[schema(value_type = String, min_length = 1, max_length = 100, example = "ai-server-1")]
    pub label: Option<String>,
    /// The same as the Idempotency-Key header (they must agree when both are sent).
    #[schema(pattern = "^[!-~]{1,255}$")]
    pub idempotency_key: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/admin/tokens",
    tag = "admin",
    operation_id = "admin_create_token",
    summary = "Create a billing token (as `vendor-server tokens create`); the secret is shown once",
    params(
        ("Idempotency-Key" = String, Header, description = "Required (or the body's `idempotency_key`): replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body = TokenIn,
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 201, description = "Created: the secret is in `token` this once (a replay answers `null` there)", body = TokenCreated, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `idempotency_key_required`, `invalid_idempotency_key`, `idempotency_key_mismatch`, `invalid_label`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "Neither ADMIN_TOKEN nor any operator is configured: the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 409, description = "The idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn create_token(
    State(state): State<AppState>,
    request: Mutation,
) -> Result<Response, ApiError> {
    let route = "POST /v1/admin/tokens";
    request
        .run(route, StatusCode::CREATED, async |input: TokenIn, actor| {
            let label = input.label.unwrap_or_default();
            tokens::create_token(&state.pool, &label, &actor).await
        })
        .await
}

#[utoipa::path(
    delete,
    path = "/v1/admin/tokens/{id}",
    tag = "admin",
    operation_id = "admin_revoke_token",
    summary = "Revoke a billing token at once (as `vendor-server tokens revoke`); revoking twice is fine",
    params(
        ("id" = String, Path, description = "The token's numeric id"),
        ("Idempotency-Key" = String, Header, description = "Required (or the body's `idempotency_key`): replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body(content = Option<IdempotencyIn>, description = "Optional"),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "The token, revoked", body = TokenRow, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_path`, `idempotency_key_required`, `invalid_idempotency_key`, `idempotency_key_mismatch`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such token (`token_not_found`), or the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 409, description = "The idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn revoke_token(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    request: Mutation,
) -> Result<Response, ApiError> {
    let id = numeric_id(&id, "token")?;
    let route = format!("DELETE /v1/admin/tokens/{id}");
    request
        .run(&route, StatusCode::OK, async |_: IdempotencyIn, actor| {
            tokens::revoke_token(&state.pool, id, &actor).await
        })
        .await
}

/// `GET /v1/admin/audit` query.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// e.g. `purchase.adjust`, `sweep.retry`, `token.create`.
    pub action: Option<String>,
    /// `purchase`, `sweep`, `notification`, `token`, `operator`, `refund`.
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// Who acted: an operator's name, `admin-token` (ADMIN_TOKEN), `cli` or `customer`.
    pub operator_name: Option<String>,
    /// Who acted: an operator's id.
    pub operator_id: Option<i64>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/audit",
    tag = "admin",
    operation_id = "admin_audit_log",
    summary = "The audit log of every admin action, newest first; each row names its operator (filter with `operator_name` or `operator_id`)",
    params(
        AuditQuery
    ),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "One page of audit records", body = Page<AuditRecord>),
        (status = 400, description = "Bad query (`invalid_query`, `invalid_cursor`, `invalid_limit`, `invalid_text`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "Neither ADMIN_TOKEN nor any operator is configured: the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn audit_log(
    State(state): State<AppState>,
    _auth: AdminAuth,
    AppQuery(query): AppQuery<AuditQuery>,
) -> Result<AppJson<Page<AuditRecord>>, ApiError> {
    let (before, limit) = id_page(query.cursor.as_deref(), query.limit)?;
    let filter = AuditFilter {
        action: query.action.filter(|s| !s.is_empty()),
        target_type: query.target_type.filter(|s| !s.is_empty()),
        target_id: query.target_id.filter(|s| !s.is_empty()),
        operator_name: query.operator_name.filter(|s| !s.is_empty()),
        operator_id: query.operator_id,
    };
    Ok(AppJson(
        crate::admin::audit_log(&state.pool, &filter, before, limit).await?,
    ))
}
