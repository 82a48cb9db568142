//! Admin routes beside purchases: overview, gas, sweeps, notifications, cost imports, billing tokens
//! and the audit log.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::purchases::PageQuery;
use super::{AdminAuth, answer, body_as, id_page, mutation};
use crate::admin::cost_imports::{self, CostImportRow};
use crate::admin::notifications::{self, NotificationRow};
use crate::admin::overview::{self, GasWallet, Overview};
use crate::admin::sweeps::{self, SweepRow};
use crate::admin::tokens::{self, TokenRow};
use crate::admin::{AdminError, AuditFilter, AuditRecord};
use crate::api::error::ApiError;
use crate::api::extract::{AppJson, AppPath, AppQuery};
use crate::domain::page::Page;
use crate::state::AppState;

pub(super) async fn overview(
    State(state): State<AppState>,
    _auth: AdminAuth,
) -> Result<AppJson<Overview>, ApiError> {
    Ok(AppJson(
        overview::overview(&state.pool, &state.chains).await?,
    ))
}

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

pub(super) async fn list_sweeps(
    State(state): State<AppState>,
    _auth: AdminAuth,
    AppQuery(query): AppQuery<OpsQuery>,
) -> Result<AppJson<Page<SweepRow>>, ApiError> {
    let (before, limit) = id_page(query.cursor.as_deref(), query.limit)?;
    let status = query.status.as_deref().filter(|s| !s.is_empty());
    Ok(AppJson(
        sweeps::sweeps(&state.pool, status, before, limit, &state.config.chains).await?,
    ))
}

fn numeric_id(raw: &str, what: &'static str) -> Result<i64, AdminError> {
    raw.parse().map_err(|_| AdminError::NotFound(what))
}

pub(super) async fn retry_sweep(
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
    let done = sweeps::retry_sweep(&state.pool, id, &actor).await?;
    Ok(answer(StatusCode::OK, done))
}

pub(super) async fn list_notifications(
    State(state): State<AppState>,
    _auth: AdminAuth,
    AppQuery(query): AppQuery<OpsQuery>,
) -> Result<AppJson<Page<NotificationRow>>, ApiError> {
    let (before, limit) = id_page(query.cursor.as_deref(), query.limit)?;
    let status = query.status.as_deref().filter(|s| !s.is_empty());
    let channel = query.channel.as_deref().filter(|s| !s.is_empty());
    Ok(AppJson(
        notifications::notifications(&state.pool, status, channel, before, limit).await?,
    ))
}

pub(super) async fn retry_notification(
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
    let done = notifications::retry_notification(&state.pool, id, &actor).await?;
    Ok(answer(StatusCode::OK, done))
}

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

pub(super) async fn list_tokens(
    State(state): State<AppState>,
    _auth: AdminAuth,
) -> Result<AppJson<Page<TokenRow>>, ApiError> {
    Ok(AppJson(tokens::tokens(&state.pool).await?))
}

/// `POST /v1/admin/tokens` body.
#[derive(Debug, Default, Deserialize, Serialize)]
pub struct TokenIn {
    /// What the token is for (1 to 100 characters), e.g. the AI server's name.
    pub label: Option<String>,
    pub idempotency_key: Option<String>,
}

pub(super) async fn create_token(
    State(state): State<AppState>,
    auth: AdminAuth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (value, actor) = mutation(auth, &headers, "POST /v1/admin/tokens", &body)?;
    let input: TokenIn = body_as(value)?;
    let label = input.label.unwrap_or_default();
    let done = tokens::create_token(&state.pool, &label, &actor).await?;
    Ok(answer(StatusCode::CREATED, done))
}

pub(super) async fn revoke_token(
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
    let done = tokens::revoke_token(&state.pool, id, &actor).await?;
    Ok(answer(StatusCode::OK, done))
}

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
    };
    Ok(AppJson(
        crate::admin::audit_log(&state.pool, &filter, before, limit).await?,
    ))
}
