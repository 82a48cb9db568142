//! `ApiError`: the only place that knows HTTP status codes. Every failure leaves the server as
//! `{"error": "<human message>", "code": "<stable_snake_case>"}`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The JSON error body of every route outside the Gemini gateway.
#[derive(Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// Human-readable message.
    #[schema(example = "Purchase not found")]
    pub error: String,
    /// Stable snake_case code.
    #[schema(example = "purchase_not_found")]
    pub code: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A client error with its status, stable code and message.
    #[error("{message}")]
    Client {
        status: StatusCode,
        code: &'static str,
        message: String,
    },
    /// Over a rate limit (429 with `Retry-After`, code `rate_limited`).
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: std::time::Duration,
    },
    /// The database cannot be reached right now (503, retryable).
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Anything else: logged with its cause, answered with a generic 500.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Client {
            status,
            code,
            message: message.into(),
        }
    }

    /// 429 `rate_limited`, to retry after `retry_after` (rounded up to whole seconds, at least 1).
    pub fn rate_limited(message: impl Into<String>, retry_after: std::time::Duration) -> Self {
        Self::RateLimited {
            message: message.into(),
            retry_after,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Client { status, .. } => *status,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Database errors: connectivity problems are 503 (the server stays up and retries), the rest 500.
impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        if crate::db::is_unavailable(&e) {
            Self::Unavailable(e)
        } else {
            Self::Internal(e.into())
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (code, message) = match &self {
            Self::Client { code, message, .. } => (*code, message.clone()),
            Self::RateLimited { message, .. } => ("rate_limited", message.clone()),
            Self::Unavailable(e) => {
                tracing::warn!(error = %e, "database unavailable");
                (
                    "service_unavailable",
                    "The service is temporarily unavailable; retry shortly.".to_owned(),
                )
            }
            Self::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "internal error");
                ("internal_error", "Internal server error".to_owned())
            }
        };
        let mut response = (
            status,
            Json(ErrorBody {
                error: message,
                code: code.to_owned(),
            }),
        )
            .into_response();
        // Every 429 and 503 says when to retry.
        let retry_after_secs = match &self {
            Self::RateLimited { retry_after, .. } => {
                (retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1)
            }
            _ if status == StatusCode::TOO_MANY_REQUESTS => 60,
            _ if status == StatusCode::SERVICE_UNAVAILABLE => 5,
            _ => 0,
        };
        if retry_after_secs > 0 {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(retry_after_secs),
            );
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let code = match &rejection {
            JsonRejection::JsonDataError(_) => "invalid_body",
            JsonRejection::JsonSyntaxError(_) => "malformed_json",
            JsonRejection::MissingJsonContentType(_) => "unsupported_media_type",
            _ if status == StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            _ => "invalid_body",
        };
        // JsonDataError is 422 in axum; bad input here is uniformly 400.
        let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        Self::new(status, code, rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request("invalid_path", rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request("invalid_query", rejection.body_text())
    }
}

impl From<crate::checkout::CheckoutError> for ApiError {
    fn from(e: crate::checkout::CheckoutError) -> Self {
        use crate::chain::ChainError;
        use crate::checkout::CheckoutError as E;
        match e {
            E::FlowNotFound => {
                Self::not_found("checkout_flow_not_found", "Checkout flow not found")
            }
            E::OfferUnavailable => Self::conflict(
                "offer_unavailable",
                "This offer is not available on this server right now",
            ),
            E::Conflict { code, message } => Self::conflict(code, message),
            E::NotConfigured(m) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "payments_not_configured",
                format!("Payments are not configured on this server: {m}"),
            ),
            E::Unauthorized => Self::unauthorized("Unauthorized: Invalid purchase ID or token."),
            E::Invalid(m) => Self::bad_request("invalid_request", m),
            E::Chain(ChainError::Rpc { chain, .. }) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "chain_unavailable",
                format!(
                    "The {chain} node cannot be reached right now; nothing was changed, retry shortly."
                ),
            ),
            E::Chain(other) => Self::Internal(other.into()),
            E::Billing(crate::billing::BillingError::Db(e)) | E::Db(e) => e.into(),
            E::Billing(other) => Self::Internal(other.into()),
            E::Internal(m) => Self::Internal(anyhow::anyhow!(m)),
        }
    }
}

impl From<crate::billing::BillingError> for ApiError {
    fn from(e: crate::billing::BillingError) -> Self {
        use crate::billing::BillingError as B;
        match e {
            B::PurchaseNotFound => Self::not_found("purchase_not_found", "Purchase not found"),
            B::Unauthorized => super::auth::unauthorized(),
            B::PurchaseDeleted => Self::conflict(
                "purchase_deleted",
                "This purchase was deleted; its balance no longer moves.",
            ),
            B::Overflow => Self::bad_request("amount_too_large", e.to_string()),
            B::ReferenceConflict(_) => Self::conflict("reference_conflict", e.to_string()),
            B::Invalid(message) => Self::bad_request("invalid_request", message),
            B::InvalidState(message) => Self::conflict("invalid_state", message),
            B::IdempotencyConflict(_) => Self::conflict("idempotency_key_reused", e.to_string()),
            B::TokenNotFound(_) => Self::not_found("token_not_found", e.to_string()),
            B::Overloaded => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", e.to_string())
            }
            B::Unavailable(detail) => {
                tracing::warn!(error = %detail, "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "service_unavailable",
                    "The service is temporarily unavailable; retry shortly.",
                )
            }
            B::Internal(detail) => Self::Internal(anyhow::anyhow!(detail)),
            B::Db(e) => Self::from(e),
        }
    }
}

impl From<crate::domain::input::InvalidInput> for ApiError {
    fn from(e: crate::domain::input::InvalidInput) -> Self {
        Self::bad_request(e.code, e.message)
    }
}

/// The stable code for a status produced outside a handler (router fallbacks, layers).
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::REQUEST_TIMEOUT => "request_timeout",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "service_unavailable",
        s if s.is_server_error() => "internal_error",
        _ => "bad_request",
    }
}

/// The Gemini gateway's error body: Google's own shape `{"error": {"code", "message", "status"}}`
/// (SPEC §9), so Google SDKs understand it. `status` is Google's canonical status name.
#[derive(Debug)]
pub struct GoogleError {
    pub status: StatusCode,
    pub message: String,
    pub retry_after_secs: Option<u64>,
    /// Why, for a refusal of this gateway's own (`tool_not_sold`): sent as Google's
    /// `google.rpc.ErrorInfo` detail.
    pub reason: Option<&'static str>,
}

impl GoogleError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after_secs: None,
            reason: None,
        }
    }

    /// Google's status name for an HTTP status (402 has none at Google: a precondition failed).
    pub fn status_name(status: StatusCode) -> &'static str {
        match status.as_u16() {
            400 | 413 => "INVALID_ARGUMENT",
            401 => "UNAUTHENTICATED",
            402 => "FAILED_PRECONDITION",
            403 => "PERMISSION_DENIED",
            404 => "NOT_FOUND",
            405 => "UNIMPLEMENTED",
            408 => "DEADLINE_EXCEEDED",
            409 => "ABORTED",
            429 => "RESOURCE_EXHAUSTED",
            501 => "UNIMPLEMENTED",
            503 => "UNAVAILABLE",
            504 => "DEADLINE_EXCEEDED",
            _ => "INTERNAL",
        }
    }
}

impl From<crate::providers::gemini::GatewayError> for GoogleError {
    fn from(e: crate::providers::gemini::GatewayError) -> Self {
        use crate::providers::gemini::GatewayError as G;
        let status = match &e {
            G::MissingKey => StatusCode::UNAUTHORIZED,
            G::InvalidKey => StatusCode::FORBIDDEN,
            G::PaymentRequired(_) => StatusCode::PAYMENT_REQUIRED,
            G::RateLimited { .. } | G::TooManyConcurrent { .. } => StatusCode::TOO_MANY_REQUESTS,
            G::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            G::BodyTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            // Not configured: this server does not serve the gateway at all (not a passing outage).
            G::UnknownModel { .. } | G::UnknownMethod(_) | G::NotConfigured => {
                StatusCode::NOT_FOUND
            }
            G::InvalidArgument(_) | G::ToolNotSold(_) => StatusCode::BAD_REQUEST,
            G::UpstreamUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            G::Db(db) if crate::db::is_unavailable(db) => StatusCode::SERVICE_UNAVAILABLE,
            G::Billing(crate::billing::BillingError::Db(db)) if crate::db::is_unavailable(db) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            G::Misconfigured(_) | G::TaskLost | G::Billing(_) | G::Db(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = format!("{e:#}"), "Gemini gateway internal error");
            "Internal error encountered.".to_owned()
        } else if status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(error = %e, "Gemini gateway unavailable");
            match &e {
                G::Db(_) | G::Billing(_) => {
                    "The service is currently unavailable; retry shortly.".to_owned()
                }
                other => other.to_string(),
            }
        } else {
            e.to_string()
        };
        let reason = match e {
            G::ToolNotSold(_) => Some("tool_not_sold"),
            _ => None,
        };
        let retry_after_secs = match e {
            G::RateLimited {
                retry_after_secs, ..
            } => Some(retry_after_secs),
            G::TooManyConcurrent { .. } => Some(1),
            _ if status == StatusCode::SERVICE_UNAVAILABLE => Some(5),
            _ => None,
        };
        Self {
            status,
            message,
            retry_after_secs,
            reason,
        }
    }
}

/// Google's error shape (the gateway's only error body).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = GoogleError)]
pub struct GoogleErrorBody {
    pub error: GoogleErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GoogleErrorDetail {
    /// The HTTP status.
    #[schema(example = 404)]
    pub code: u16,
    pub message: String,
    /// Google's canonical status (INVALID_ARGUMENT, UNAUTHENTICATED, FAILED_PRECONDITION,
    /// PERMISSION_DENIED, NOT_FOUND, RESOURCE_EXHAUSTED, UNAVAILABLE, INTERNAL, …).
    #[schema(example = "NOT_FOUND")]
    pub status: &'static str,
    /// Google's `google.rpc.ErrorInfo` with this gateway's own reason (`tool_not_sold`), when
    /// the refusal is the gateway's rather than Google's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<GoogleErrorInfo>,
}

/// `google.rpc.ErrorInfo`, as Google puts it in `error.details`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GoogleErrorInfo {
    /// `type.googleapis.com/google.rpc.ErrorInfo`
    #[serde(rename = "@type")]
    pub type_url: &'static str,
    /// `tool_not_sold`
    pub reason: &'static str,
    /// `vendor-server`
    pub domain: &'static str,
}

/// An error of the gateway's OpenAI-compatible surface, in OpenAI's shape
/// `{"error": {"message", "type", "code"}}`.
#[derive(Debug)]
pub struct OpenAiError {
    pub status: StatusCode,
    pub message: String,
    pub code: &'static str,
    pub retry_after_secs: Option<u64>,
}

/// OpenAI's error body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = OpenAiError)]
pub struct OpenAiErrorBody {
    pub error: OpenAiErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OpenAiErrorDetail {
    pub message: String,
    /// OpenAI's error type: invalid_request_error, authentication_error, permission_error,
    /// not_found_error, insufficient_quota, rate_limit_error, server_error.
    #[serde(rename = "type")]
    #[schema(example = "invalid_request_error")]
    pub kind: &'static str,
    /// A machine-readable code (`invalid_api_key`, `model_not_found`, `tool_not_sold`, …).
    #[schema(example = "model_not_found")]
    pub code: &'static str,
}

impl From<crate::providers::gemini::GatewayError> for OpenAiError {
    fn from(e: crate::providers::gemini::GatewayError) -> Self {
        use crate::providers::gemini::GatewayError as G;
        let code = match &e {
            G::MissingKey => "missing_api_key",
            G::InvalidKey => "invalid_api_key",
            G::PaymentRequired(_) => "insufficient_quota",
            G::RateLimited { .. } | G::TooManyConcurrent { .. } => "rate_limit_exceeded",
            G::PayloadTooLarge(_) => "payload_too_large",
            G::BodyTimeout(_) => "request_timeout",
            G::UnknownModel { .. } => "model_not_found",
            G::UnknownMethod(_) | G::NotConfigured => "not_found",
            G::InvalidArgument(_) => "invalid_request",
            G::UpstreamUnavailable(_) => "upstream_unavailable",
            _ => "internal_error",
        };
        let google = GoogleError::from(e);
        let code = match google.status {
            StatusCode::SERVICE_UNAVAILABLE if code == "internal_error" => "service_unavailable",
            _ => code,
        };
        Self {
            status: google.status,
            message: google.message,
            code,
            retry_after_secs: google.retry_after_secs,
        }
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let kind = match self.status.as_u16() {
            401 => "authentication_error",
            402 => "insufficient_quota",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            s if s >= 500 => "server_error",
            _ => "invalid_request_error",
        };
        let body = OpenAiErrorBody {
            error: OpenAiErrorDetail {
                message: self.message,
                kind,
                code: self.code,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs
            && let Ok(value) = axum::http::HeaderValue::from_str(&secs.to_string())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        response
    }
}

impl IntoResponse for GoogleError {
    fn into_response(self) -> Response {
        let body = GoogleErrorBody {
            error: GoogleErrorDetail {
                code: self.status.as_u16(),
                message: self.message,
                status: Self::status_name(self.status),
                details: self
                    .reason
                    .map(|reason| GoogleErrorInfo {
                        type_url: "type.googleapis.com/google.rpc.ErrorInfo",
                        reason,
                        domain: "vendor-server",
                    })
                    .into_iter()
                    .collect(),
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs
            && let Ok(value) = axum::http::HeaderValue::from_str(&secs.to_string())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_timeouts_are_503_and_other_db_errors_500() {
        assert_eq!(
            ApiError::from(sqlx::Error::PoolTimedOut).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::from(sqlx::Error::RowNotFound).status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let response = ApiError::Internal(anyhow::anyhow!("secret detail")).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let body: ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(body.code, "internal_error");
        assert!(!body.error.contains("secret"));
    }
}
