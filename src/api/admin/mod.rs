//! The admin API under `/v1/admin/…`: everything the vendor console shows or does, for scripts too.
//!
//! - Auth ([`gate`], on every route under `/v1/admin/`): `Authorization: Bearer <token>` (or
//!   `?auth=`), an operator's token (`vso_…`, `vendor-server operators create`) or `ADMIN_TOKEN`
//!   (the bootstrap owner, compared in constant time); a wrong, revoked or missing token is 401.
//!   Without `ADMIN_TOKEN` and without any live operator every route answers 404.
//! - Roles ([`crate::admin::operators::required_role`]): viewers read (GET), operators also act
//!   (every other method), owners also manage operators and billing tokens; too low a role is 403
//!   `forbidden_role`.
//! - Lists answer `{items, next_cursor}`; pass `next_cursor` back as `cursor` (`limit` 1–500,
//!   default 50).
//! - Every mutating call requires an idempotency key, as the `Idempotency-Key` header or the body's
//!   `idempotency_key` (none: 400 `idempotency_key_required`; both present and different: 400). The same key with the same request
//!   replays the first answer (header `Idempotent-Replayed: true`); with another request it is 409
//!   `idempotency_key_reused`. Keys are kept 30 days.
//! - Every action is written to the audit log (`GET /v1/admin/audit`) in its own transaction, with
//!   the operator's id and name and the client's address.
//!
//! The SQL and business rules live in [`crate::admin`]; these handlers only parse and answer.

pub mod chains;
pub mod operators;
pub mod ops;
pub mod purchases;
pub mod refunds;
pub mod s3_usage;
pub mod stats;

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth;
use super::error::ApiError;
use super::extract::{AppJson, ClientIp};
use crate::admin::operators::{self as accounts, SignedIn};
use crate::admin::{Actor, AdminError, Done, Idempotency};
use crate::domain::ids::PurchaseId;
use crate::domain::page::{self, PageError};
use crate::state::AppState;

/// An admin request's signed-in operator (checked by [`gate`]), with the client's address for the
/// audit log.
#[derive(Debug, Clone)]
pub struct AdminAuth {
    pub client_ip: Option<IpAddr>,
    pub operator: SignedIn,
}

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        // `gate` runs on every route under /v1/admin/ and leaves the operator here; a handler
        // reached without it (a route outside that prefix) is refused, never let through.
        let operator = parts
            .extensions
            .get::<SignedIn>()
            .cloned()
            .ok_or_else(unauthorized)?;
        let ClientIp(client_ip) = ClientIp::from_request_parts(parts, state).await?;
        Ok(Self {
            client_ip,
            operator,
        })
    }
}

fn unauthorized() -> ApiError {
    ApiError::unauthorized(
        "The admin API needs an operator token or ADMIN_TOKEN (Authorization: Bearer <token>).",
    )
}

/// Who presents the request's token: `ADMIN_TOKEN` (the bootstrap owner, compared in constant
/// time) or a live operator (read from the table on every request: a revoke holds at once).
/// Without `ADMIN_TOKEN` and without any live operator the admin API does not exist (404).
async fn sign_in(parts: &Parts, state: &AppState) -> Result<SignedIn, ApiError> {
    let admin_token = state.config.server.admin_token.as_ref();
    if let Some(presented) = auth::presented_key(parts) {
        if let Some(token) = admin_token {
            use subtle::ConstantTimeEq;
            if bool::from(presented.as_bytes().ct_eq(token.expose_secret().as_bytes())) {
                return Ok(SignedIn::bootstrap());
            }
        }
        if let Some(operator) = accounts::authenticate(&state.pool, &presented).await? {
            return Ok(operator);
        }
    }
    if admin_token.is_none() && !accounts::any_live(&state.pool).await? {
        return Err(ApiError::not_found("not_found", "No such route"));
    }
    Err(unauthorized())
}

/// The admin API's one door, a route layer on every route: for a route under `/v1/admin/`, signs
/// the caller in ([`sign_in`]) and checks their role against the route's
/// ([`accounts::required_role`]: by method, plus the owner-only routes), so every admin route,
/// including ones added later, gets the same rule. Too low a role is 403 `forbidden_role`.
pub async fn gate(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(path) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .filter(|p| p.starts_with("/v1/admin/"))
    else {
        return next.run(request).await;
    };
    let (mut parts, body) = request.into_parts();
    let operator = match sign_in(&parts, &state).await {
        Ok(operator) => operator,
        Err(e) => return e.into_response(),
    };
    let needed = accounts::required_role(&parts.method, &path);
    if operator.role < needed {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden_role",
            format!(
                "{} {path} needs the {} role; {} is {}.",
                parts.method,
                needed.as_str(),
                operator.name,
                operator.role.as_str()
            ),
        )
        .into_response();
    }
    parts.extensions.insert(operator);
    next.run(axum::extract::Request::from_parts(parts, body))
        .await
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
                    "refund" => "refund_not_found",
                    "operator" => "operator_not_found",
                    "chain" => "chain_not_found",
                    _ => "not_found",
                };
                let mut message = format!("{what} not found");
                message[..1].make_ascii_uppercase();
                Self::not_found(code, message)
            }
            AdminError::InvalidState(m) => Self::conflict("invalid_state", m),
            AdminError::Invalid { code, message } => Self::bad_request(code, message),
            AdminError::Conflict { code, message } => Self::conflict(code, message),
            e @ AdminError::IdempotencyConflict(_) => {
                Self::conflict("idempotency_key_reused", e.to_string())
            }
            AdminError::ChainUnavailable(detail) => {
                tracing::warn!(error = %detail, "admin action: chain unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "chain_unavailable",
                    "The chain's RPC node cannot be reached right now; retry shortly.",
                )
            }
            AdminError::Billing(e) => e.into(),
            AdminError::Db(e) => e.into(),
            AdminError::Internal(m) => Self::Internal(anyhow::anyhow!(m)),
        }
    }
}

pub(super) fn page_error(e: PageError) -> ApiError {
    match e {
        PageError::Limit => ApiError::bad_request("invalid_limit", e.to_string()),
        PageError::Cursor => ApiError::bad_request("invalid_cursor", e.to_string()),
    }
}

/// `cursor` and `limit` of an id-ordered list.
pub(super) fn id_page(
    cursor: Option<&str>,
    limit: Option<i64>,
) -> Result<(Option<i64>, i64), ApiError> {
    Ok((
        page::id_cursor(cursor).map_err(page_error)?,
        page::limit(limit).map_err(page_error)?,
    ))
}

/// A numeric id from the path (`what`: the thing's name); a malformed one cannot exist.
pub(super) fn numeric_id<T: std::str::FromStr>(
    raw: &str,
    what: &'static str,
) -> Result<T, AdminError> {
    raw.parse().map_err(|_| AdminError::NotFound(what))
}

/// A purchase id from the path; a malformed one cannot exist.
pub(super) fn purchase_id(raw: &str) -> Result<PurchaseId, ApiError> {
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

/// A mutating admin request (extracted last: it takes the body): the signed-in operator, the
/// headers (for the idempotency key) and the body. [`Mutation::run`] is every admin action's one
/// shape: parse, act, answer.
pub struct Mutation {
    auth: AdminAuth,
    headers: HeaderMap,
    body: Bytes,
}

impl FromRequest<AppState> for Mutation {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let auth = AdminAuth::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let headers = parts.headers.clone();
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Self {
            auth,
            headers,
            body,
        })
    }
}

impl Mutation {
    /// The body as `I` and the idempotent actor for `route` ([`mutation`]), handed to `act`: what
    /// it did. `I` is [`IdempotencyIn`] for a route whose body holds nothing else.
    pub(super) async fn done<I: DeserializeOwned, T, E>(
        self,
        route: &str,
        act: impl AsyncFnOnce(I, Actor) -> Result<Done<T>, E>,
    ) -> Result<Done<T>, ApiError>
    where
        ApiError: From<E>,
    {
        let (value, actor) = mutation(self.auth, &self.headers, route, &self.body)?;
        Ok(act(body_as(value)?, actor).await?)
    }

    /// [`Self::done`], answered with `status` ([`answer`]).
    pub(super) async fn run<I: DeserializeOwned, T: Serialize, E>(
        self,
        route: &str,
        status: StatusCode,
        act: impl AsyncFnOnce(I, Actor) -> Result<Done<T>, E>,
    ) -> Result<Response, ApiError>
    where
        ApiError: From<E>,
    {
        Ok(answer(status, self.done(route, act).await?))
    }
}

/// A mutating call's body (`{}` when empty) and its actor (client address, idempotency key from
/// the header or the body, fingerprinted with `route` and the body; required).
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
    // Required on every mutating route (SPEC §9): without one, a retried adjustment posts twice.
    let key = super::metering::key_of(headers, body_key)?.ok_or_else(|| {
        ApiError::bad_request(
            "idempotency_key_required",
            "every admin action needs an idempotency key (the Idempotency-Key header or the body's idempotency_key): a retry with the same key then never acts twice",
        )
    })?;
    let idempotency = Some(Idempotency::new(key, route, &value));
    Ok((
        value,
        Actor {
            client_ip: auth.client_ip,
            idempotency,
            operator: Some(auth.operator),
            ..Actor::default()
        },
    ))
}

fn body_as<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    T::deserialize(value)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("invalid request body: {e}")))
}

/// The admin routes, each documented (`#[utoipa::path]`) and registered with `routes!`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ops::overview))
        .routes(routes!(stats::daily))
        .routes(routes!(operators::me))
        .routes(routes!(
            operators::list_operators,
            operators::create_operator
        ))
        .routes(routes!(operators::revoke_operator))
        .routes(routes!(ops::gas))
        .routes(routes!(purchases::list_purchases))
        .routes(routes!(purchases::get_purchase))
        .routes(routes!(purchases::purchase_ledger))
        .routes(routes!(s3_usage::purchase_s3_usage))
        .routes(routes!(purchases::adjust))
        .routes(routes!(purchases::suspend))
        .routes(routes!(purchases::resume))
        .routes(routes!(purchases::delete_purchase))
        .routes(routes!(purchases::reprovision))
        .routes(routes!(purchases::rotate_credential))
        .routes(routes!(ops::list_sweeps))
        .routes(routes!(ops::retry_sweep))
        .routes(routes!(ops::bump_sweep))
        .routes(routes!(ops::cancel_sweep))
        .routes(routes!(ops::list_notifications))
        .routes(routes!(ops::retry_notification))
        .routes(routes!(ops::list_cost_imports))
        .routes(routes!(ops::list_tokens, ops::create_token))
        .routes(routes!(ops::revoke_token))
        .routes(routes!(ops::audit_log))
        .routes(routes!(refunds::list_refunds))
        .routes(routes!(refunds::approve_refund))
        .routes(routes!(refunds::reject_refund))
        .routes(routes!(refunds::mark_refund_paid))
        .routes(routes!(refunds::retry_refund))
        .routes(routes!(refunds::bump_refund_payout))
        .routes(routes!(refunds::cancel_refund_payout))
        .routes(routes!(chains::rescan))
        .routes(routes!(chains::reconcile))
}

/// A mutating call's optional body when it has nothing but the idempotency key.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
pub struct IdempotencyIn {
    /// The same as the Idempotency-Key header (they must agree when both are sent).
    #[schema(pattern = "^[!-~]{1,255}$")]
    pub idempotency_key: Option<String>,
}
