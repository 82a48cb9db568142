//! Refunds as the customer asks for them: `POST|GET /v1/purchase/{id}/refunds`,
//! `POST /v1/purchase/{id}/refunds/{refund_id}/cancel` (customer key; a deleted purchase's key still
//! works here) and `POST /v1/checkout/refund` for a checkout never finalized. The rules live in
//! [`crate::refunds`].

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::CustomerAuth;
use super::error::{ApiError, ErrorBody};
use super::extract::{AppJson, AppPath};
use crate::domain::ids::{CheckoutSessionId, RefundId};
use crate::domain::money::UsdMicros;
use crate::domain::page::Page;
use crate::refunds::{
    self, Amount, Ctx, IdempotencyKey, NewRefund, RefundError, RefundOut, Target,
};
use crate::state::AppState;

impl From<RefundError> for ApiError {
    fn from(e: RefundError) -> Self {
        use crate::chain::ChainError;
        match e {
            RefundError::NotFound => Self::not_found("refund_not_found", "Refund not found"),
            RefundError::CheckoutNotFound => Self::not_found(
                "checkout_not_found",
                "No checkout with this checkout_session_id and checkout_flow_id",
            ),
            RefundError::Insufficient(m) => Self::conflict("insufficient_balance", m),
            RefundError::InvalidState(m) => Self::conflict("invalid_state", m),
            RefundError::Invalid { code, message } => Self::bad_request(code, message),
            e @ RefundError::IdempotencyConflict(_) => {
                Self::conflict("idempotency_key_reused", e.to_string())
            }
            RefundError::NotPaid(m) => Self::conflict("payment_not_found", m),
            RefundError::Chain(ChainError::Rpc { chain, .. }) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "chain_unavailable",
                format!(
                    "The {chain} node cannot be reached right now; nothing was changed, retry shortly."
                ),
            ),
            RefundError::Chain(other) => Self::Internal(other.into()),
            RefundError::Billing(e) => e.into(),
            RefundError::Db(e) => e.into(),
        }
    }
}

pub(crate) fn ctx(state: &AppState) -> Ctx<'_> {
    Ctx {
        pool: &state.pool,
        chains: &state.chains,
        config: &state.config.refunds,
    }
}

/// `POST /v1/purchase/{id}/refunds` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = RefundRequest)]
pub struct RefundIn {
    /// A USD decimal (string or number, at most 6 places, more than 0), or `"all"`: everything
    /// available, and the purchase is closed once paid.
    #[schema(value_type = String, example = "12.5")]
    pub amount_usd: Option<serde_json::Value>,
    /// A configured chain's id.
    pub chain_id: Option<u64>,
    /// `usdc`, `usdt` or a configured token's address on that chain.
    #[schema(example = "usdc")]
    pub token: Option<String>,
    /// Where the refund is paid (0x address).
    pub to_address: Option<String>,
    /// The same as the Idempotency-Key header (they must agree when both are sent).
    #[schema(pattern = "^[!-~]{1,255}$")]
    pub idempotency_key: Option<String>,
}

/// `POST /v1/checkout/refund` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = CheckoutRefundRequest)]
pub struct CheckoutRefundIn {
    pub checkout_flow_id: Option<String>,
    /// `CheckoutSessionID_<uuid>`.
    pub checkout_session_id: Option<String>,
    /// Where the refund is paid (0x address).
    pub to_address: Option<String>,
    /// Optional: by default the chain and token of the largest payment.
    pub chain_id: Option<u64>,
    pub token: Option<String>,
    #[schema(pattern = "^[!-~]{1,255}$")]
    pub idempotency_key: Option<String>,
}

pub(super) fn json_body(body: &Bytes) -> Result<serde_json::Value, ApiError> {
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
    Ok(value)
}

/// The customer's idempotency key (header or body) fingerprinted with the route and the body.
fn idempotency(
    headers: &HeaderMap,
    route: &str,
    value: &serde_json::Value,
) -> Result<Option<IdempotencyKey>, ApiError> {
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
    let Some(key) = super::metering::key_of(headers, body_key)? else {
        return Ok(None);
    };
    let mut body = value.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("idempotency_key");
    }
    let mut hasher = Sha256::new();
    hasher.update(route.as_bytes());
    hasher.update(b"\n");
    hasher.update(body.to_string().as_bytes());
    Ok(Some(IdempotencyKey {
        key,
        request_hash: hasher.finalize().to_vec(),
    }))
}

fn amount(value: Option<&serde_json::Value>) -> Result<Amount, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_amount",
            "amount_usd must be a USD decimal with at most 6 places (e.g. \"12.5\") or \"all\"",
        )
    };
    match value {
        None | Some(serde_json::Value::Null) => Err(ApiError::bad_request(
            "missing_field",
            "amount_usd is required (a USD decimal or \"all\")",
        )),
        Some(serde_json::Value::String(s)) if s.trim().eq_ignore_ascii_case("all") => {
            Ok(Amount::All)
        }
        Some(serde_json::Value::String(s)) => UsdMicros::parse_decimal(s)
            .map(Amount::Usd)
            .map_err(|_| bad()),
        Some(serde_json::Value::Number(n)) => UsdMicros::parse_decimal(&n.to_string())
            .map(Amount::Usd)
            .map_err(|_| bad()),
        Some(_) => Err(bad()),
    }
}

fn required(field: &str, value: Option<String>) -> Result<String, ApiError> {
    value
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .ok_or_else(|| ApiError::bad_request("missing_field", format!("{field} is required")))
}

fn created(refund: RefundOut, replayed: bool) -> Response {
    let mut response = (StatusCode::CREATED, AppJson(refund)).into_response();
    if replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

#[utoipa::path(
    post,
    path = "/v1/purchase/{id}/refunds",
    tag = "refunds",
    summary = "Ask for unused balance (or, on a deleted purchase, unclaimed payments) back",
    description = "The amount leaves the balance at once (ledger kind `refund`), so it cannot be spent meanwhile; the vendor approves it (small refunds to an address that paid this purchase may be approved at once) and it is paid in the token named. `\"all\"` closes the purchase once paid. A retry with the same Idempotency-Key returns the same refund.",
    params(
        ("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body = RefundIn,
    security(("customer_key" = []), ("customer_key_query" = [])),
    responses(
        (status = 201, description = "Requested (or the first answer for this idempotency key, with header `Idempotent-Replayed: true`)", body = RefundOut),
        (status = 400, description = "Malformed or invalid body (`malformed_json`, `invalid_body`, `invalid_text`, `missing_field`, `invalid_amount`, `invalid_address`, `invalid_chain`, `invalid_token`, `invalid_idempotency_key`, `idempotency_key_mismatch`)", body = ErrorBody),
        (status = 401, description = "No key, not this purchase's customer key, or an unknown purchase (`unauthorized`)", body = ErrorBody),
        (status = 409, description = "More than the balance less running holds (`insufficient_balance`), or the idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
async fn request_refund(
    State(state): State<AppState>,
    auth: CustomerAuth,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let value = json_body(&body)?;
    let idem = idempotency(
        &headers,
        &format!("POST /v1/purchase/{}/refunds", auth.purchase_id),
        &value,
    )?;
    let amount = amount(value.get("amount_usd"))?;
    let input: RefundIn = serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("invalid request body: {e}")))?;
    let new = NewRefund {
        amount,
        chain_id: Some(
            input
                .chain_id
                .ok_or_else(|| ApiError::bad_request("missing_field", "chain_id is required"))?,
        ),
        token: Some(required("token", input.token)?),
        to_address: required("to_address", input.to_address)?,
        flow_id: None,
    };
    let (refund, replayed) = refunds::request(
        &ctx(&state),
        Target::Purchase(auth.purchase_id),
        &new,
        idem.as_ref(),
    )
    .await?;
    Ok(created(refund, replayed))
}

#[utoipa::path(
    get,
    path = "/v1/purchase/{id}/refunds",
    tag = "refunds",
    summary = "The purchase's refunds, newest first (at most 100)",
    params(("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`")),
    security(("customer_key" = []), ("customer_key_query" = [])),
    responses(
        (status = 200, description = "The refunds (`next_cursor` is always null)", body = Page<RefundOut>),
        (status = 401, description = "No key, not this purchase's customer key, or an unknown purchase (`unauthorized`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
async fn list_refunds(
    State(state): State<AppState>,
    auth: CustomerAuth,
) -> Result<AppJson<Page<RefundOut>>, ApiError> {
    let items = refunds::list_for_purchase(&ctx(&state), auth.purchase_id).await?;
    Ok(AppJson(Page {
        items,
        next_cursor: None,
    }))
}

#[utoipa::path(
    post,
    path = "/v1/purchase/{id}/refunds/{refund_id}/cancel",
    tag = "refunds",
    summary = "Cancel a refund still requested: its amount is credited back",
    params(
        ("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`"),
        ("refund_id" = String, Path, description = "`RefundID_<uuid>`"),
    ),
    security(("customer_key" = []), ("customer_key_query" = [])),
    responses(
        (status = 200, description = "Canceled (a retried cancel answers the same)", body = RefundOut),
        (status = 401, description = "No key, not this purchase's customer key, or an unknown purchase (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No such refund on this purchase (`refund_not_found`)", body = ErrorBody),
        (status = 409, description = "The refund is no longer requested (`invalid_state`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
async fn cancel_refund(
    State(state): State<AppState>,
    auth: CustomerAuth,
    AppPath((_, refund_id)): AppPath<(String, String)>,
) -> Result<AppJson<RefundOut>, ApiError> {
    let id: RefundId = refund_id
        .parse()
        .map_err(|_| ApiError::not_found("refund_not_found", "Refund not found"))?;
    Ok(AppJson(
        refunds::cancel(&ctx(&state), auth.purchase_id, id).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/checkout/refund",
    tag = "refunds",
    summary = "Ask for the payments to a checkout never finalized back",
    description = "Refunds every confirmed payment on the checkout's address not yet covered by a refund; always approved by an operator. Those payments are no longer credited by a later finalize.",
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body = CheckoutRefundIn,
    responses(
        (status = 201, description = "Requested (or the first answer for this idempotency key, with header `Idempotent-Replayed: true`)", body = RefundOut),
        (status = 400, description = "Malformed or invalid body (`malformed_json`, `invalid_body`, `invalid_text`, `missing_field`, `invalid_request`, `invalid_address`, `invalid_chain`, `invalid_token`, `invalid_idempotency_key`, `idempotency_key_mismatch`)", body = ErrorBody),
        (status = 404, description = "No such checkout (`checkout_not_found`)", body = ErrorBody),
        (status = 409, description = "Nothing to refund (`insufficient_balance`), the checkout was finalized (`invalid_state`), or the idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
async fn checkout_refund(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let value = json_body(&body)?;
    let input: CheckoutRefundIn = serde_json::from_value(value.clone())
        .map_err(|e| ApiError::bad_request("invalid_body", format!("invalid request body: {e}")))?;
    let flow = required("checkout_flow_id", input.checkout_flow_id)?;
    let session: CheckoutSessionId = required("checkout_session_id", input.checkout_session_id)?
        .parse()
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_request",
                "checkout_session_id must look like CheckoutSessionID_<uuid>",
            )
        })?;
    let idem = idempotency(
        &headers,
        &format!("POST /v1/checkout/refund {session}"),
        &value,
    )?;
    let new = NewRefund {
        amount: Amount::All,
        chain_id: input.chain_id,
        token: input.token,
        to_address: required("to_address", input.to_address)?,
        flow_id: Some(flow),
    };
    let (refund, replayed) =
        refunds::request(&ctx(&state), Target::Checkout(session), &new, idem.as_ref()).await?;
    Ok(created(refund, replayed))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_refund, list_refunds))
        .routes(routes!(cancel_refund))
        .routes(routes!(checkout_refund))
}
