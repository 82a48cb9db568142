//! Operators of the console (owners only) and who is signed in (`GET /v1/admin/me`, any role).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::{AdminAuth, IdempotencyIn, Mutation, numeric_id};
use crate::admin::operators::{self, OperatorCreated, OperatorRow, Role, SignedIn};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{AppJson, AppPath};
use crate::domain::page::Page;
use crate::state::AppState;

#[utoipa::path(
    get,
    path = "/v1/admin/me",
    tag = "admin",
    operation_id = "admin_me",
    summary = "Who is signed in: the operator's name and role (`admin-token` for ADMIN_TOKEN, the bootstrap owner)",
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "The signed-in operator", body = SignedIn),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "Neither ADMIN_TOKEN nor any operator is configured: the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn me(auth: AdminAuth) -> AppJson<SignedIn> {
    AppJson(auth.operator)
}

#[utoipa::path(
    get,
    path = "/v1/admin/operators",
    tag = "admin",
    operation_id = "admin_list_operators",
    summary = "Every operator, newest first, revoked ones too (never the token); owners only",
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "Every operator (`next_cursor` is always null)", body = Page<OperatorRow>),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "Neither ADMIN_TOKEN nor any operator is configured: the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn list_operators(
    State(state): State<AppState>,
    _auth: AdminAuth,
) -> Result<AppJson<Page<OperatorRow>>, ApiError> {
    Ok(AppJson(operators::list(&state.pool).await?))
}

/// `POST /v1/admin/operators` body.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[schema(as = OperatorRequest)]
pub struct OperatorIn {
    /// The operator's name as the audit log shows it (1 to 64 characters: letters, digits, spaces
    /// and `. _ - @ +`; unique, never reused; not `admin-token`, `cli` or `customer`).
    #[schema(value_type = String, min_length = 1, max_length = 64, example = "alice")]
    pub name: Option<String>,
    #[schema(value_type = Role)]
    pub role: Option<String>,
    /// The same as the Idempotency-Key header (they must agree when both are sent).
    #[schema(pattern = "^[!-~]{1,255}$")]
    pub idempotency_key: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/admin/operators",
    tag = "admin",
    operation_id = "admin_create_operator",
    summary = "Create an operator (as `vendor-server operators create`); the token is shown once; owners only",
    params(
        ("Idempotency-Key" = String, Header, description = "Required (or the body's `idempotency_key`): replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body = OperatorIn,
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 201, description = "Created: the token is in `token` this once (a replay answers `null` there)", body = OperatorCreated, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `idempotency_key_required`, `invalid_idempotency_key`, `idempotency_key_mismatch`, `invalid_name`, `invalid_role`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "Neither ADMIN_TOKEN nor any operator is configured: the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 409, description = "An operator of that name exists or existed (`operator_name_taken`), or the idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn create_operator(
    State(state): State<AppState>,
    request: Mutation,
) -> Result<Response, ApiError> {
    let route = "POST /v1/admin/operators";
    request
        .run(
            route,
            StatusCode::CREATED,
            async |input: OperatorIn, actor| {
                let role: Role = input.role.as_deref().unwrap_or_default().parse()?;
                let name = input.name.unwrap_or_default();
                operators::create(&state.pool, &name, role, &actor).await
            },
        )
        .await
}

#[utoipa::path(
    post,
    path = "/v1/admin/operators/{id}/revoke",
    tag = "admin",
    operation_id = "admin_revoke_operator",
    summary = "Revoke an operator's token at once (as `vendor-server operators revoke`): their next request is 401; revoking twice is fine; owners only",
    params(
        ("id" = String, Path, description = "The operator's numeric id"),
        ("Idempotency-Key" = String, Header, description = "Required (or the body's `idempotency_key`): replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body(content = Option<IdempotencyIn>, description = "Optional"),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "The operator, revoked", body = OperatorRow, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_path`, `idempotency_key_required`, `invalid_idempotency_key`, `idempotency_key_mismatch`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such operator (`operator_not_found`), or the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 409, description = "The operator is the last owner and ADMIN_TOKEN is not configured: nobody could manage operators any more; create another owner first (`last_owner`), or the idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn revoke_operator(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    request: Mutation,
) -> Result<Response, ApiError> {
    let id: i64 = numeric_id(&id, "operator")?;
    let route = format!("POST /v1/admin/operators/{id}/revoke");
    let bootstrap_owner = state.config.server.admin_token.is_some();
    request
        .run(&route, StatusCode::OK, async |_: IdempotencyIn, actor| {
            operators::revoke(&state.pool, id, bootstrap_owner, &actor).await
        })
        .await
}
