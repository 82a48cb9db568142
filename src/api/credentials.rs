//! A purchase's credentials as its customer handles them: `POST /v1/purchase/{id}/credentials/rotate`
//! (a new gateway key, S3 access key or customer key, shown once, the old one stopping at once) and
//! `GET /v1/purchase/{id}/credentials/gateway_key` (the gateway key from the receipt, while it is
//! kept). The rules live in [`crate::credentials`].

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{CustomerAuth, PresentedKey, unauthorized};
use super::error::{ApiError, ErrorBody};
use super::extract::{AppJson, AppPath, ClientIp};
use crate::admin::{Actor, Done, Idempotency, Source};
use crate::billing::keys::KeyKind;
use crate::billing::purchases;
use crate::credentials::{self, CredentialError, CredentialKind, Ctx, RevealedKey, RotatedOut};
use crate::domain::ids::PurchaseId;
use crate::providers::ProviderError;
use crate::state::AppState;

impl From<CredentialError> for ApiError {
    fn from(e: CredentialError) -> Self {
        match e {
            CredentialError::NotFound => {
                Self::not_found("purchase_not_found", "Purchase not found")
            }
            CredentialError::Invalid(code, message) => Self::bad_request(code, message),
            CredentialError::InvalidState(m) => Self::conflict("invalid_state", m),
            e @ CredentialError::Deleted => Self::conflict("purchase_deleted", e.to_string()),
            e @ CredentialError::IdempotencyConflict(_) => {
                Self::conflict("idempotency_key_reused", e.to_string())
            }
            e @ CredentialError::AnswerExpired => {
                Self::conflict("idempotency_key_expired", e.to_string())
            }
            CredentialError::NotConfigured(m) => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "not_configured", m)
            }
            CredentialError::Provider(ProviderError::Permanent(m)) => {
                Self::conflict("invalid_state", m)
            }
            CredentialError::Provider(e) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "provider_unavailable",
                format!(
                    "The resource's provider cannot issue a new credential right now ({e}); nothing was changed, retry shortly."
                ),
            ),
            CredentialError::Db(e) => e.into(),
            CredentialError::Internal(m) => Self::Internal(anyhow::anyhow!(m)),
        }
    }
}

pub(crate) fn ctx(state: &AppState) -> Ctx<'_> {
    Ctx {
        pool: &state.pool,
        providers: &state.providers,
        config: &state.config,
    }
}

/// `POST …/credentials/rotate` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = RotateCredentialRequest)]
pub struct RotateIn {
    /// Which credential: `gateway_key` (Gemini purchases), `s3_access_key` (S3 purchases) or
    /// `customer_key` (any purchase).
    #[schema(value_type = CredentialKind)]
    pub kind: Option<String>,
    /// The same as the Idempotency-Key header (they must agree when both are sent).
    #[schema(pattern = "^[!-~]{1,255}$")]
    pub idempotency_key: Option<String>,
}

/// The credential kind of a rotation body.
pub(crate) fn kind_of(value: &serde_json::Value) -> Result<CredentialKind, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_kind",
            "kind must be gateway_key, s3_access_key or customer_key",
        )
    };
    match value.get("kind") {
        None | Some(serde_json::Value::Null) => Err(ApiError::bad_request(
            "missing_field",
            "kind is required (gateway_key, s3_access_key or customer_key)",
        )),
        Some(serde_json::Value::String(s)) => CredentialKind::parse(s).ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// A secret's answer: never cached, marked when it replays the first answer for the key.
pub(crate) fn secret_answer<T: serde::Serialize>(done: Done<T>) -> Response {
    let mut response = (StatusCode::OK, AppJson(done.value)).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if done.replayed {
        headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// The body as a JSON object and the customer's idempotency key for `route` (required).
fn keyed_body(
    headers: &HeaderMap,
    route: &str,
    body: &Bytes,
) -> Result<(serde_json::Value, Idempotency), ApiError> {
    let value = super::refunds::json_body(body)?;
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
    let key = super::metering::key_of(headers, body_key)?.ok_or_else(|| {
        ApiError::bad_request(
            "idempotency_key_required",
            "a rotation needs an idempotency key (the Idempotency-Key header or the body's idempotency_key): a retry with the same key then gets the same credential instead of replacing it again",
        )
    })?;
    let idempotency = Idempotency::new(key, route, &value);
    Ok((value, idempotency))
}

#[utoipa::path(
    post,
    path = "/v1/purchase/{id}/credentials/rotate",
    tag = "purchases",
    summary = "A new credential in place of the current one, shown once; the old one stops at once",
    description = "`gateway_key`: a new Gemini gateway key. `s3_access_key`: a new IAM access key for the bucket (`access_key_id`, `secret_access_key`); the old access key is deleted. `customer_key`: a new customer key and the customer page's new link; the old key no longer opens the purchase (except to retry this very request). A suspended purchase's new credential is suspended too. A retry with the same Idempotency-Key within 24 hours returns the same credential and replaces nothing; the rotation is written to the audit log.",
    params(
        ("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`"),
        ("Idempotency-Key" = String, Header, description = "Required (or the body's `idempotency_key`); 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body = RotateIn,
    security(("customer_key" = []), ("customer_key_query" = [])),
    responses(
        (status = 200, description = "The new credential (or the first answer for this idempotency key, with header `Idempotent-Replayed: true`)", body = RotatedOut, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Malformed body, kind or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `missing_field`, `invalid_kind`, `idempotency_key_required`, `invalid_idempotency_key`, `idempotency_key_mismatch`)", body = ErrorBody),
        (status = 401, description = "No key, not this purchase's customer key, or an unknown purchase (`unauthorized`)", body = ErrorBody),
        (status = 409, description = "The resource is not ready or has no such credential any more (`invalid_state`), the purchase is deleted (`purchase_deleted`), or the idempotency key was used with another request (`idempotency_key_reused`) or its answer is no longer kept (`idempotency_key_expired`)", body = ErrorBody),
        (status = 503, description = "The resource's provider, the database or DATA_ENCRYPTION_KEY is unavailable; nothing was changed (`provider_unavailable`, `service_unavailable`, `not_configured`)", body = ErrorBody),
    )
)]
async fn rotate_credential(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    PresentedKey(key): PresentedKey,
    ClientIp(client_ip): ClientIp,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let id: PurchaseId = id.parse().map_err(|_| unauthorized())?;
    let cx = ctx(&state);
    let route = format!("POST /v1/purchase/{id}/credentials/rotate");
    if !purchases::key_matches(&state.pool, id, KeyKind::Customer, &key).await? {
        // A key this purchase no longer has gets nothing, except the answer of the customer_key
        // rotation it made itself with this very idempotency key (a retry after a lost answer).
        let Ok((_, idem)) = keyed_body(&headers, &route, &body) else {
            return Err(unauthorized());
        };
        return match credentials::replay_for_replaced_key(&cx, id, &idem, &key).await? {
            Some(done) => Ok(secret_answer(done)),
            None => Err(unauthorized()),
        };
    }
    let (value, idempotency) = keyed_body(&headers, &route, &body)?;
    let kind = kind_of(&value)?;
    let actor = Actor {
        source: Source::Customer,
        client_ip,
        idempotency: Some(idempotency),
        operator: None,
    };
    let done = credentials::rotate(&cx, id, kind, &actor, Some(&key)).await?;
    Ok(secret_answer(done))
}

#[utoipa::path(
    get,
    path = "/v1/purchase/{id}/credentials/gateway_key",
    tag = "purchases",
    summary = "The Gemini gateway key from the receipt, while the receipt is kept (24 hours)",
    description = "For the customer page (officex.app shows a Gemini buyer only the page's link). After 24 hours, or once the key was replaced, it is not shown again: create a new one with `POST …/credentials/rotate`.",
    params(("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`")),
    security(("customer_key" = []), ("customer_key_query" = [])),
    responses(
        (status = 200, description = "The key", body = RevealedKey),
        (status = 401, description = "No key, not this purchase's customer key, or an unknown purchase (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "Not shown: no gateway key, the receipt is no longer kept, or the key was replaced (`credential_not_shown`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable or DATA_ENCRYPTION_KEY is not set (`service_unavailable`, `not_configured`)", body = ErrorBody),
    )
)]
async fn receipt_gateway_key(
    State(state): State<AppState>,
    auth: CustomerAuth,
) -> Result<Response, ApiError> {
    let key = credentials::receipt_gateway_key(&state.pool, &state.config, auth.purchase_id)
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "credential_not_shown",
                "The gateway key is shown here for 24 hours after the purchase, until it is replaced; create a new one with POST /v1/purchase/{id}/credentials/rotate {\"kind\": \"gateway_key\"}",
            )
        })?;
    Ok(secret_answer(Done {
        value: key,
        replayed: false,
    }))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(rotate_credential))
        .routes(routes!(receipt_gateway_key))
}
