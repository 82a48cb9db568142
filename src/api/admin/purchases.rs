//! Admin routes on purchases: the list, one purchase, its ledger, adjustments, suspend, resume, delete.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::{AdminAuth, answer, body_as, id_page, mutation, page_error, purchase_id};
use crate::admin::purchases::{
    self as admin_purchases, Adjustment, PurchaseDetail, PurchaseQuery, PurchaseRow, SortBy,
    StatusAction,
};
use crate::api::error::ApiError;
use crate::api::extract::{AppJson, AppPath, AppQuery};
use crate::billing::PurchaseStatus;
use crate::billing::statement::{self, LedgerItem};
use crate::domain::money::UsdMicros;
use crate::domain::page::{self, Page};
use crate::state::AppState;

/// `GET /v1/admin/purchases` query.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct PurchasesQuery {
    /// A purchase id, an OfficeX purchase id or the start of a customer email.
    pub q: Option<String>,
    pub status: Option<String>,
    pub offer_id: Option<String>,
    /// `created` (default), `balance` or `activity` (last activity).
    pub sort: Option<String>,
    /// `desc` (default: newest, largest, most recent first) or `asc`.
    pub order: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

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
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct PageQuery {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

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
#[derive(Debug, Deserialize, Serialize)]
pub struct AdjustmentIn {
    /// Signed decimal USD (`"5"`, `"-1.25"`), up to 6 places; credits positive.
    pub amount_usd: UsdMicros,
    /// Why (required; shown in the ledger and the audit log).
    pub reason: Option<String>,
    pub idempotency_key: Option<String>,
}

pub(super) async fn adjust(
    State(state): State<AppState>,
    auth: AdminAuth,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = purchase_id(&id)?;
    let (value, actor) = mutation(
        auth,
        &headers,
        &format!("POST /v1/admin/purchases/{id}/adjustments"),
        &body,
    )?;
    let input: AdjustmentIn = body_as(value)?;
    let adjustment = Adjustment::new(input.amount_usd, input.reason.as_deref())?;
    let done = admin_purchases::adjust(&state.pool, id, &adjustment, &actor).await?;
    Ok(answer(StatusCode::OK, done))
}

/// `POST /v1/admin/purchases/{id}/suspend|resume` body (optional).
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct StatusActionIn {
    pub reason: Option<String>,
    pub idempotency_key: Option<String>,
}

/// `POST /v1/admin/purchases/{id}/delete` body: `confirm` must repeat the purchase id.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct DeleteIn {
    pub confirm: Option<String>,
    pub reason: Option<String>,
    pub idempotency_key: Option<String>,
}

pub(super) async fn status_action(
    state: &AppState,
    auth: AdminAuth,
    raw_id: &str,
    headers: &HeaderMap,
    body: &Bytes,
    action: StatusAction,
) -> Result<Response, ApiError> {
    let id = purchase_id(raw_id)?;
    let verb = match action {
        StatusAction::Suspend => "suspend",
        StatusAction::Resume => "resume",
        StatusAction::Delete => "delete",
    };
    let (value, actor) = mutation(
        auth,
        headers,
        &format!("POST /v1/admin/purchases/{id}/{verb}"),
        body,
    )?;
    let reason = if action == StatusAction::Delete {
        let input: DeleteIn = body_as(value)?;
        if input.confirm.as_deref().map(str::trim) != Some(id.to_string().as_str()) {
            return Err(ApiError::bad_request(
                "confirmation_required",
                format!("deleting needs {{\"confirm\": \"{id}\"}}: the purchase id typed again"),
            ));
        }
        input.reason
    } else {
        body_as::<StatusActionIn>(value)?.reason
    };
    let reason = crate::admin::reason(reason.as_deref(), false)?;
    let done = admin_purchases::set_status(&state.pool, id, action, reason, &actor).await?;
    Ok(answer(StatusCode::OK, done))
}

pub(super) async fn suspend(
    State(state): State<AppState>,
    auth: AdminAuth,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    status_action(&state, auth, &id, &headers, &body, StatusAction::Suspend).await
}

pub(super) async fn resume(
    State(state): State<AppState>,
    auth: AdminAuth,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    status_action(&state, auth, &id, &headers, &body, StatusAction::Resume).await
}

pub(super) async fn delete_purchase(
    State(state): State<AppState>,
    auth: AdminAuth,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    status_action(&state, auth, &id, &headers, &body, StatusAction::Delete).await
}
