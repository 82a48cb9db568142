//! Admin routes on purchases: the list, one purchase, its ledger, adjustments, suspend, resume, delete.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AdminAuth, IdempotencyIn, Mutation, body_as, id_page, page_error, purchase_id};
use crate::admin::purchases::{
    self as admin_purchases, Adjustment, AdjustmentOut, PurchaseDetail, PurchaseQuery, PurchaseRow,
    ReprovisionOut, SortBy, StatusAction, StatusActionOut,
};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{AppJson, AppPath, AppQuery};
use crate::billing::PurchaseStatus;
use crate::billing::statement::{self, LedgerItem};
use crate::domain::money::UsdMicros;
use crate::domain::page::{self, Page};
use crate::state::AppState;

/// `GET /v1/admin/purchases` query.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PurchasesQuery {
    /// A purchase id, an OfficeX purchase id or the start of a customer email.
    pub q: Option<String>,
    #[param(value_type = Option<PurchaseStatus>, inline)]
    pub status: Option<String>,
    pub offer_id: Option<String>,
    /// `created` (default), `balance` or `activity` (last activity).
    #[param(value_type = Option<PurchaseSort>, inline)]
    pub sort: Option<String>,
    /// `desc` (default: newest, largest, most recent first) or `asc`.
    #[param(value_type = Option<SortOrder>, inline)]
    pub order: Option<String>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// What the purchase list is sorted by.
// Documents the query only; the handler reads a string.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "lowercase")]
enum PurchaseSort {
    Created,
    Balance,
    Activity,
}

/// Ascending or descending.
// Documents the query only; the handler reads a string.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "lowercase")]
enum SortOrder {
    Asc,
    Desc,
}

#[utoipa::path(
    get,
    path = "/v1/admin/purchases",
    tag = "admin",
    operation_id = "admin_list_purchases",
    summary = "Purchases: search by id, OfficeX purchase id or customer email; filter; sort; keyset pages",
    params(
        PurchasesQuery
    ),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "One page of purchases", body = Page<PurchaseRow>),
        (status = 400, description = "Bad query (`invalid_query`, `invalid_cursor`, `invalid_limit`, `invalid_status`, `invalid_sort`, `invalid_order`, `invalid_text`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "Neither ADMIN_TOKEN nor any operator is configured: the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn list_purchases(
    State(state): State<AppState>,
    _auth: AdminAuth,
    AppQuery(query): AppQuery<PurchasesQuery>,
) -> Result<AppJson<Page<PurchaseRow>>, ApiError> {
    let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(PurchaseStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_status",
                format!(
                    "status {s:?} is not one of provisioning, active, low, critical, suspended, deleted, failed"
                ),
            )
        })?),
    };
    let sort = match query.sort.as_deref().filter(|s| !s.is_empty()) {
        None => SortBy::default(),
        Some(s) => SortBy::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_sort",
                format!("sort {s:?} is not one of created, balance, activity"),
            )
        })?,
    };
    let ascending = match query.order.as_deref() {
        None | Some("" | "desc") => false,
        Some("asc") => true,
        Some(o) => {
            return Err(ApiError::bad_request(
                "invalid_order",
                format!("order {o:?} is not asc or desc"),
            ));
        }
    };
    let query = PurchaseQuery {
        q: query.q,
        status,
        offer_id: query.offer_id.filter(|o| !o.is_empty()),
        sort,
        ascending,
        cursor: query.cursor,
        limit: page::limit(query.limit).map_err(page_error)?,
    };
    Ok(AppJson(admin_purchases::list(&state.pool, &query).await?))
}

#[utoipa::path(
    get,
    path = "/v1/admin/purchases/{id}",
    tag = "admin",
    operation_id = "admin_get_purchase",
    summary = "One purchase with everything around it (never a secret)",
    params(
        ("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`"),
    ),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "The purchase with its resource, OfficeX record, checkout, ledger head, deposits, sweeps, notifications and audit", body = PurchaseDetail),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such purchase, or a malformed id (`purchase_not_found`), or the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn get_purchase(
    State(state): State<AppState>,
    _auth: AdminAuth,
    AppPath(id): AppPath<String>,
) -> Result<AppJson<PurchaseDetail>, ApiError> {
    let id = purchase_id(&id)?;
    Ok(AppJson(
        admin_purchases::detail(&state.pool, id, &state.config.chains).await?,
    ))
}

/// `?cursor=&limit=` of a list ordered by id.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    /// 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/v1/admin/purchases/{id}/ledger",
    tag = "admin",
    operation_id = "admin_purchase_ledger",
    summary = "A purchase's ledger, newest first, a page at a time",
    params(
        ("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`"),
        PageQuery
    ),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "One page of ledger entries", body = Page<LedgerItem>),
        (status = 400, description = "Bad query (`invalid_query`, `invalid_cursor`, `invalid_limit`, `invalid_text`, `invalid_path`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such purchase, or a malformed id (`purchase_not_found`), or the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn purchase_ledger(
    State(state): State<AppState>,
    _auth: AdminAuth,
    AppPath(id): AppPath<String>,
    AppQuery(query): AppQuery<PageQuery>,
) -> Result<AppJson<Page<LedgerItem>>, ApiError> {
    let id = purchase_id(&id)?;
    let (before, limit) = id_page(query.cursor.as_deref(), query.limit)?;
    admin_purchases::ensure_exists(&state.pool, id).await?;
    Ok(AppJson(
        statement::ledger_page(&state.pool, id, before, limit, &state.config.chains).await?,
    ))
}

/// `POST /v1/admin/purchases/{id}/adjustments` body.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[schema(as = AdjustmentRequest)]
pub struct AdjustmentIn {
    /// Signed decimal USD (`"5"`, `"-1.25"`), up to 6 places; credits positive.
    #[schema(schema_with = signed_usd_input)]
    pub amount_usd: UsdMicros,
    /// Why (required, 1 to 500 characters; shown in the ledger and the audit log).
    #[schema(value_type = String, min_length = 1, max_length = 500, pattern = r"\S")]
    pub reason: Option<String>,
    /// The same as the Idempotency-Key header (they must agree when both are sent).
    #[schema(pattern = "^[!-~]{1,255}$")]
    pub idempotency_key: Option<String>,
}

/// A signed USD amount as an operator sends it: a decimal string or a JSON number, at most 6 places.
fn signed_usd_input() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::{ObjectBuilder, OneOfBuilder, Type};
    Schema::OneOf(
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^-?(?:[0-9]+\.?[0-9]{0,6}|\.[0-9]{1,6})$"))
                    .examples(["5", "-1.25"]),
            )
            .item(ObjectBuilder::new().schema_type(Type::Number))
            .description(Some("Exact signed decimal, at most 6 places, not zero"))
            .build(),
    )
}

#[utoipa::path(
    post,
    path = "/v1/admin/purchases/{id}/adjustments",
    tag = "admin",
    operation_id = "admin_adjust",
    summary = "Post a balance adjustment (a signed amount with a reason); the status moves as for any credit or debit",
    params(
        ("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`"),
        ("Idempotency-Key" = String, Header, description = "Required (or the body's `idempotency_key`): replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body = AdjustmentIn,
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "The ledger entry and the balance after it", body = AdjustmentOut, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_path`, `idempotency_key_required`, `invalid_idempotency_key`, `idempotency_key_mismatch`, `missing_field`, `invalid_amount`, `amount_too_large`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such purchase, or a malformed id (`purchase_not_found`), or the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 409, description = "The idempotency key was used with another request (`idempotency_key_reused`), or its ledger reference already exists (`reference_conflict`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn adjust(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    request: Mutation,
) -> Result<Response, ApiError> {
    let id = purchase_id(&id)?;
    let route = format!("POST /v1/admin/purchases/{id}/adjustments");
    request
        .run(
            &route,
            StatusCode::OK,
            async |input: AdjustmentIn, actor| {
                let adjustment = Adjustment::new(input.amount_usd, input.reason.as_deref())?;
                admin_purchases::adjust(&state.pool, id, &adjustment, &actor).await
            },
        )
        .await
}

/// `POST /v1/admin/purchases/{id}/suspend|resume` body (optional).
#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[schema(as = StatusActionRequest)]
pub struct StatusActionIn {
    /// Why (at most 500 characters; kept in the audit log).
    #[schema(max_length = 500)]
    pub reason: Option<String>,
    /// The same as the Idempotency-Key header (they must agree when both are sent).
    #[schema(pattern = "^[!-~]{1,255}$")]
    pub idempotency_key: Option<String>,
}

/// `POST /v1/admin/purchases/{id}/delete` body: `confirm` must repeat the purchase id.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[schema(as = DeleteRequest)]
pub struct DeleteIn {
    /// The purchase id typed again.
    #[schema(value_type = crate::domain::ids::PurchaseId)]
    pub confirm: Option<String>,
    /// Why (at most 500 characters; kept in the audit log).
    #[schema(max_length = 500)]
    pub reason: Option<String>,
    /// The same as the Idempotency-Key header (they must agree when both are sent).
    #[schema(pattern = "^[!-~]{1,255}$")]
    pub idempotency_key: Option<String>,
}

async fn status_action(
    state: &AppState,
    raw_id: &str,
    request: Mutation,
    action: StatusAction,
) -> Result<Response, ApiError> {
    let id = purchase_id(raw_id)?;
    let verb = match action {
        StatusAction::Suspend => "suspend",
        StatusAction::Resume => "resume",
        StatusAction::Delete => "delete",
    };
    let route = format!("POST /v1/admin/purchases/{id}/{verb}");
    request
        .run(&route, StatusCode::OK, async |value: Value, actor| -> Result<_, ApiError> {
            let reason = if action == StatusAction::Delete {
                let input: DeleteIn = body_as(value)?;
                if input.confirm.as_deref().map(str::trim) != Some(id.to_string().as_str()) {
                    return Err(ApiError::bad_request(
                        "confirmation_required",
                        format!(
                            "deleting needs {{\"confirm\": \"{id}\"}}: the purchase id typed again"
                        ),
                    ));
                }
                input.reason
            } else {
                body_as::<StatusActionIn>(value)?.reason
            };
            let reason = crate::admin::reason(reason.as_deref(), false)?;
            Ok(admin_purchases::set_status(&state.pool, id, action, reason, &actor).await?)
        })
        .await
}

#[utoipa::path(
    post,
    path = "/v1/admin/purchases/{id}/suspend",
    tag = "admin",
    operation_id = "admin_suspend",
    summary = "Suspend a purchase (held until an operator resumes it); the lifecycle job suspends its resource",
    params(
        ("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`"),
        ("Idempotency-Key" = String, Header, description = "Required (or the body's `idempotency_key`): replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body(content = Option<StatusActionIn>, description = "Optional"),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "The status before and after", body = StatusActionOut, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_path`, `idempotency_key_required`, `invalid_idempotency_key`, `idempotency_key_mismatch`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such purchase, or a malformed id (`purchase_not_found`), or the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 409, description = "The purchase's status does not allow it (`invalid_state`), or the idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn suspend(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    request: Mutation,
) -> Result<Response, ApiError> {
    status_action(&state, &id, request, StatusAction::Suspend).await
}

#[utoipa::path(
    post,
    path = "/v1/admin/purchases/{id}/resume",
    tag = "admin",
    operation_id = "admin_resume",
    summary = "Resume a suspended purchase; its status follows its balance again",
    params(
        ("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`"),
        ("Idempotency-Key" = String, Header, description = "Required (or the body's `idempotency_key`): replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body(content = Option<StatusActionIn>, description = "Optional"),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "The status before and after", body = StatusActionOut, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_path`, `idempotency_key_required`, `invalid_idempotency_key`, `idempotency_key_mismatch`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such purchase, or a malformed id (`purchase_not_found`), or the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 409, description = "The purchase's status does not allow it (`invalid_state`), or the idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn resume(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    request: Mutation,
) -> Result<Response, ApiError> {
    status_action(&state, &id, request, StatusAction::Resume).await
}

#[utoipa::path(
    post,
    path = "/v1/admin/purchases/{id}/delete",
    tag = "admin",
    operation_id = "admin_delete_purchase",
    summary = "Delete a purchase (final); the lifecycle job deletes its resource",
    params(
        ("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`"),
        ("Idempotency-Key" = String, Header, description = "Required (or the body's `idempotency_key`): replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body = DeleteIn,
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "The status before and after", body = StatusActionOut, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_path`, `idempotency_key_required`, `invalid_idempotency_key`, `idempotency_key_mismatch`, `confirmation_required`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such purchase, or a malformed id (`purchase_not_found`), or the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 409, description = "The purchase's status does not allow it (`invalid_state`), or the idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn delete_purchase(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    request: Mutation,
) -> Result<Response, ApiError> {
    status_action(&state, &id, request, StatusAction::Delete).await
}

#[utoipa::path(
    post,
    path = "/v1/admin/purchases/{id}/reprovision",
    tag = "admin",
    operation_id = "admin_reprovision",
    summary = "Retry a failed purchase's provisioning now (the attempt count and its backoff start again)",
    params(
        ("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`"),
        ("Idempotency-Key" = String, Header, description = "Required (or the body's `idempotency_key`): replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body(content = Option<IdempotencyIn>, description = "Optional"),
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "Scheduled: the attempt starts now; the purchase becomes active when it delivers", body = ReprovisionOut, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_path`, `idempotency_key_required`, `invalid_idempotency_key`, `idempotency_key_mismatch`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such purchase, or a malformed id (`purchase_not_found`), or the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 409, description = "Its provisioning did not fail, or is running now (`invalid_state`), or the idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn reprovision(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    request: Mutation,
) -> Result<Response, ApiError> {
    let id = purchase_id(&id)?;
    let route = format!("POST /v1/admin/purchases/{id}/reprovision");
    request
        .run(&route, StatusCode::OK, async |_: IdempotencyIn, actor| {
            let done = admin_purchases::reprovision(&state.pool, id, &actor).await?;
            if !done.replayed {
                // The attempt starts now rather than at the retry job's next pass.
                let checkouts = state.checkouts();
                tokio::spawn(async move {
                    if let Err(e) = crate::checkout::provision::run_once(&checkouts).await {
                        tracing::warn!(error = %e, "provisioning retry pass failed; the job retries");
                    }
                });
            }
            Ok::<_, crate::admin::AdminError>(done)
        })
        .await
}

#[utoipa::path(
    post,
    path = "/v1/admin/purchases/{id}/credentials/rotate",
    tag = "admin",
    operation_id = "admin_rotate_credential",
    summary = "A new credential for the customer (gateway key, S3 access key or customer key), shown once; the old one stops at once",
    description = "The console's rotation on the customer's behalf: the same as the customer's `POST /v1/purchase/{id}/credentials/rotate`, audited with the operator as actor. A retry with the same idempotency key within 24 hours returns the same credential.",
    params(
        ("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`"),
        ("Idempotency-Key" = String, Header, description = "Required (or the body's `idempotency_key`): replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body = crate::api::credentials::RotateIn,
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "The new credential", body = crate::credentials::RotatedOut, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body, kind or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_path`, `missing_field`, `invalid_kind`, `idempotency_key_required`, `invalid_idempotency_key`, `idempotency_key_mismatch`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such purchase, or a malformed id (`purchase_not_found`), or the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 409, description = "The resource is not ready or has no such credential any more (`invalid_state`), the purchase is deleted (`purchase_deleted`), or the idempotency key was used with another request (`idempotency_key_reused`) or its answer is no longer kept (`idempotency_key_expired`)", body = ErrorBody),
        (status = 503, description = "The resource's provider, the database or DATA_ENCRYPTION_KEY is unavailable; nothing was changed (`provider_unavailable`, `service_unavailable`, `not_configured`)", body = ErrorBody),
    )
)]
pub(super) async fn rotate_credential(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    request: Mutation,
) -> Result<Response, ApiError> {
    let id = purchase_id(&id)?;
    let route = format!("POST /v1/admin/purchases/{id}/credentials/rotate");
    let done = request
        .done(&route, async |value: Value, actor| -> Result<_, ApiError> {
            let kind = crate::api::credentials::kind_of(&value)?;
            let cx = crate::api::credentials::ctx(&state);
            Ok(crate::credentials::rotate(&cx, id, kind, &actor, None).await?)
        })
        .await?;
    // Not `answer`: a secret is never cached.
    Ok(crate::api::credentials::secret_answer(done))
}
