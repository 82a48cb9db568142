//! The admin API under `/v1/admin/…`: everything the vendor console shows or does, for scripts too.
//!
//! - Auth: `Authorization: Bearer <ADMIN_TOKEN>` (or `?auth=`), compared in constant time; a wrong
//!   or missing token is 401. Without `ADMIN_TOKEN` configured every route answers 404.
//! - Lists answer `{items, next_cursor}`; pass `next_cursor` back as `cursor` (`limit` 1–500,
//!   default 50).
//! - Every mutating call takes an optional idempotency key, as the `Idempotency-Key` header or the
//!   body's `idempotency_key` (both present and different: 400). The same key with the same request
//!   replays the first answer (header `Idempotent-Replayed: true`); with another request it is 409
//!   `idempotency_key_reused`. Keys are kept 30 days.
//! - Every action is written to the audit log (`GET /v1/admin/audit`) in its own transaction, with
//!   the client's address.
//!
//! The SQL and business rules live in [`crate::admin`]; these handlers only parse and answer.

use std::net::IpAddr;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::auth;
use super::error::ApiError;
use super::extract::{AppJson, AppPath, AppQuery, ClientIp};
use crate::admin::ops::{self, GasWallet, Overview};
use crate::admin::purchases::{
    self as admin_purchases, Adjustment, PurchaseDetail, PurchaseQuery, PurchaseRow, SortBy,
    StatusAction,
};
use crate::admin::{Actor, AdminError, AuditFilter, Done, Idempotency};
use crate::billing::PurchaseStatus;
use crate::billing::statement::{self, LedgerItem};
use crate::domain::ids::PurchaseId;
use crate::domain::money::UsdMicros;
use crate::domain::page::{self, Page, PageError};
use crate::state::AppState;

/// A request carrying the admin token, with the client's address for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct AdminAuth {
    pub client_ip: Option<IpAddr>,
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // Off without a token: the routes do not exist.
        let Some(token) = &state.config.server.admin_token else {
            return Err(ApiError::not_found("not_found", "No such route"));
        };
        let ok = auth::presented_key(parts).is_some_and(|presented| {
            use subtle::ConstantTimeEq;
            presented
                .as_bytes()
                .ct_eq(token.expose_secret().as_bytes())
                .into()
        });
        if !ok {
            return Err(ApiError::unauthorized(
                "The admin API needs the admin token (Authorization: Bearer <ADMIN_TOKEN>).",
            ));
        }
        let ClientIp(client_ip) = ClientIp::from_request_parts(parts, state).await?;
        Ok(Self { client_ip })
    }
}

impl From<AdminError> for ApiError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::NotFound(what) => {
                let code = match what {
                    "purchase" => "purchase_not_found",
                    "sweep" => "sweep_not_found",
                    "notification" => "notification_not_found",
                    "token" => "token_not_found",
                    _ => "not_found",
                };
                let mut message = format!("{what} not found");
                message[..1].make_ascii_uppercase();
                Self::not_found(code, message)
            }
            AdminError::InvalidState(m) => Self::conflict("invalid_state", m),
            AdminError::Invalid { code, message } => Self::bad_request(code, message),
            e @ AdminError::IdempotencyConflict(_) => {
                Self::conflict("idempotency_key_reused", e.to_string())
            }
            AdminError::Billing(e) => e.into(),
            AdminError::Db(e) => e.into(),
            AdminError::Internal(m) => Self::Internal(anyhow::anyhow!(m)),
        }
    }
}

fn page_error(e: PageError) -> ApiError {
    match e {
        PageError::Limit => ApiError::bad_request("invalid_limit", e.to_string()),
        PageError::Cursor => ApiError::bad_request("invalid_cursor", e.to_string()),
    }
}

/// `cursor` and `limit` of an id-ordered list.
fn id_page(cursor: Option<&str>, limit: Option<i64>) -> Result<(Option<i64>, i64), ApiError> {
    Ok((
        page::id_cursor(cursor).map_err(page_error)?,
        page::limit(limit).map_err(page_error)?,
    ))
}

/// A purchase id from the path; a malformed one cannot exist.
fn purchase_id(raw: &str) -> Result<PurchaseId, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::not_found("purchase_not_found", "Purchase not found"))
}

/// The JSON answer of an action, marked when it replays an earlier request with the same key.
fn answer<T: Serialize>(status: StatusCode, done: Done<T>) -> Response {
    let mut response = (status, AppJson(done.value)).into_response();
    if done.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// A mutating call's body (`{}` when empty) and its actor (client address, idempotency key from
/// the header or the body, fingerprinted with `route` and the body).
fn mutation(
    auth: AdminAuth,
    headers: &HeaderMap,
    route: &str,
    body: &Bytes,
) -> Result<(serde_json::Value, Actor), ApiError> {
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Object(Default::default())
    } else {
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            let code = if e.is_syntax() || e.is_eof() {
                "malformed_json"
            } else {
                "invalid_body"
            };
            ApiError::bad_request(code, format!("invalid request body: {e}"))
        })?;
        crate::domain::input::json("", &value).map_err(|e| {
            ApiError::bad_request(e.code, format!("invalid request body: {}", e.message))
        })?;
        if !value.is_object() {
            return Err(ApiError::bad_request(
                "invalid_body",
                "the request body must be a JSON object",
            ));
        }
        value
    };
    let body_key = match value.get("idempotency_key") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(k)) => Some(k.as_str()),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_idempotency_key",
                "idempotency_key must be a string",
            ));
        }
    };
    let idempotency =
        super::metering::key_of(headers, body_key)?.map(|key| Idempotency::new(key, route, &value));
    Ok((
        value,
        Actor {
            client_ip: auth.client_ip,
            idempotency,
        },
    ))
}

fn body_as<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    T::deserialize(value)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("invalid request body: {e}")))
}

// ---------------------------------------------------------------------------------------------
// Overview, gas

async fn overview(
    State(state): State<AppState>,
    _auth: AdminAuth,
) -> Result<AppJson<Overview>, ApiError> {
    Ok(AppJson(ops::overview(&state.pool, &state.chains).await?))
}

async fn gas(
    State(state): State<AppState>,
    _auth: AdminAuth,
) -> Result<AppJson<Page<GasWallet>>, ApiError> {
    let items = ops::gas(&state.pool, &state.chains).await?;
    Ok(AppJson(Page {
        items,
        next_cursor: None,
    }))
}

// ---------------------------------------------------------------------------------------------
// Purchases

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

async fn list_purchases(
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

async fn get_purchase(
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

async fn purchase_ledger(
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

async fn adjust(
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

async fn status_action(
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

async fn suspend(
    State(state): State<AppState>,
    auth: AdminAuth,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    status_action(&state, auth, &id, &headers, &body, StatusAction::Suspend).await
}

async fn resume(
    State(state): State<AppState>,
    auth: AdminAuth,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    status_action(&state, auth, &id, &headers, &body, StatusAction::Resume).await
}

async fn delete_purchase(
    State(state): State<AppState>,
    auth: AdminAuth,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    status_action(&state, auth, &id, &headers, &body, StatusAction::Delete).await
}

// ---------------------------------------------------------------------------------------------
// Sweeps, notifications, cost imports

/// `GET /v1/admin/sweeps` and `/notifications` query.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct OpsQuery {
    /// Sweeps: `waiting`, `planned`, `signed`, `broadcast`, `confirmed`, `failed`; notifications:
    /// `pending`, `delivered`, `failed`, `skipped`.
    pub status: Option<String>,
    /// Notifications only: `webhook`, `email`, `officex`, `alert`.
    pub channel: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

async fn list_sweeps(
    State(state): State<AppState>,
    _auth: AdminAuth,
    AppQuery(query): AppQuery<OpsQuery>,
) -> Result<AppJson<Page<ops::SweepRow>>, ApiError> {
    let (before, limit) = id_page(query.cursor.as_deref(), query.limit)?;
    let status = query.status.as_deref().filter(|s| !s.is_empty());
    Ok(AppJson(
        ops::sweeps(&state.pool, status, before, limit, &state.config.chains).await?,
    ))
}

fn numeric_id(raw: &str, what: &'static str) -> Result<i64, AdminError> {
    raw.parse().map_err(|_| AdminError::NotFound(what))
}

async fn retry_sweep(
    State(state): State<AppState>,
    auth: AdminAuth,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = numeric_id(&id, "sweep")?;
    let (_, actor) = mutation(
        auth,
        &headers,
        &format!("POST /v1/admin/sweeps/{id}/retry"),
        &body,
    )?;
    let done = ops::retry_sweep(&state.pool, id, &actor).await?;
    Ok(answer(StatusCode::OK, done))
}

async fn list_notifications(
    State(state): State<AppState>,
    _auth: AdminAuth,
    AppQuery(query): AppQuery<OpsQuery>,
) -> Result<AppJson<Page<ops::NotificationRow>>, ApiError> {
    let (before, limit) = id_page(query.cursor.as_deref(), query.limit)?;
    let status = query.status.as_deref().filter(|s| !s.is_empty());
    let channel = query.channel.as_deref().filter(|s| !s.is_empty());
    Ok(AppJson(
        ops::notifications(&state.pool, status, channel, before, limit).await?,
    ))
}

async fn retry_notification(
    State(state): State<AppState>,
    auth: AdminAuth,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = numeric_id(&id, "notification")?;
    let (_, actor) = mutation(
        auth,
        &headers,
        &format!("POST /v1/admin/notifications/{id}/retry"),
        &body,
    )?;
    let done = ops::retry_notification(&state.pool, id, &actor).await?;
    Ok(answer(StatusCode::OK, done))
}

async fn list_cost_imports(
    State(state): State<AppState>,
    _auth: AdminAuth,
    AppQuery(query): AppQuery<PageQuery>,
) -> Result<AppJson<Page<ops::CostImportRow>>, ApiError> {
    let (before, limit) = id_page(query.cursor.as_deref(), query.limit)?;
    Ok(AppJson(
        ops::cost_imports(&state.pool, before, limit).await?,
    ))
}

// ---------------------------------------------------------------------------------------------
// Billing tokens

async fn list_tokens(
    State(state): State<AppState>,
    _auth: AdminAuth,
) -> Result<AppJson<Page<ops::TokenRow>>, ApiError> {
    Ok(AppJson(ops::tokens(&state.pool).await?))
}

/// `POST /v1/admin/tokens` body.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct TokenIn {
    /// What the token is for (1 to 100 characters), e.g. the AI server's name.
    pub label: Option<String>,
    pub idempotency_key: Option<String>,
}

async fn create_token(
    State(state): State<AppState>,
    auth: AdminAuth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (value, actor) = mutation(auth, &headers, "POST /v1/admin/tokens", &body)?;
    let input: TokenIn = body_as(value)?;
    let label = input.label.unwrap_or_default();
    let done = ops::create_token(&state.pool, &label, &actor).await?;
    Ok(answer(StatusCode::CREATED, done))
}

async fn revoke_token(
    State(state): State<AppState>,
    auth: AdminAuth,
    AppPath(id): AppPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id = numeric_id(&id, "token")?;
    let (_, actor) = mutation(
        auth,
        &headers,
        &format!("DELETE /v1/admin/tokens/{id}"),
        &body,
    )?;
    let done = ops::revoke_token(&state.pool, id, &actor).await?;
    Ok(answer(StatusCode::OK, done))
}

// ---------------------------------------------------------------------------------------------
// Audit log

/// `GET /v1/admin/audit` query.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct AuditQuery {
    pub action: Option<String>,
    /// `purchase`, `sweep`, `notification` or `token`.
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

async fn audit_log(
    State(state): State<AppState>,
    _auth: AdminAuth,
    AppQuery(query): AppQuery<AuditQuery>,
) -> Result<AppJson<Page<crate::admin::AuditRecord>>, ApiError> {
    let (before, limit) = id_page(query.cursor.as_deref(), query.limit)?;
    let filter = AuditFilter {
        action: query.action.filter(|s| !s.is_empty()),
        target_type: query.target_type.filter(|s| !s.is_empty()),
        target_id: query.target_id.filter(|s| !s.is_empty()),
    };
    Ok(AppJson(
        crate::admin::audit_log(&state.pool, &filter, before, limit).await?,
    ))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/admin/overview", get(overview))
        .route("/v1/admin/gas", get(gas))
        .route("/v1/admin/purchases", get(list_purchases))
        .route("/v1/admin/purchases/{id}", get(get_purchase))
        .route("/v1/admin/purchases/{id}/ledger", get(purchase_ledger))
        .route("/v1/admin/purchases/{id}/adjustments", post(adjust))
        .route("/v1/admin/purchases/{id}/suspend", post(suspend))
        .route("/v1/admin/purchases/{id}/resume", post(resume))
        .route("/v1/admin/purchases/{id}/delete", post(delete_purchase))
        .route("/v1/admin/sweeps", get(list_sweeps))
        .route("/v1/admin/sweeps/{id}/retry", post(retry_sweep))
        .route("/v1/admin/notifications", get(list_notifications))
        .route(
            "/v1/admin/notifications/{id}/retry",
            post(retry_notification),
        )
        .route("/v1/admin/cost-imports", get(list_cost_imports))
        .route("/v1/admin/tokens", get(list_tokens).post(create_token))
        .route("/v1/admin/tokens/{id}", delete(revoke_token))
        .route("/v1/admin/audit", get(audit_log))
}
