//! Extractors whose rejections use the JSON error shape.

use axum::extract::FromRequest;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// `Json<T>` whose failures are `ApiError`s (400 malformed/invalid, 413 too large, 415 content type).
/// A NUL character anywhere in the body's strings or keys is a 400 `invalid_text` (PostgreSQL
/// cannot store it, SPEC §9).
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<serde_json::Value>::from_request(req, state).await?;
        crate::domain::input::json("", &value).map_err(|e| {
            ApiError::bad_request(e.code, format!("invalid request body: {}", e.message))
        })?;
        T::deserialize(value).map(Self).map_err(|e| {
            ApiError::bad_request("invalid_body", format!("invalid request body: {e}"))
        })
    }
}

impl<T: serde::Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Middleware: a NUL character (`%00`) in the path or the query is a 400 `invalid_text` before any
/// handler sees it (PostgreSQL cannot store or compare it; SPEC §9: NUL anywhere is a 4xx).
pub async fn reject_nul_in_uri(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let uri = request.uri();
    if uri.path().contains("%00") || uri.query().is_some_and(|q| q.contains("%00")) {
        return ApiError::bad_request(
            "invalid_text",
            "the path and query must not contain NUL characters (%00)",
        )
        .into_response();
    }
    next.run(request).await
}

/// `Path<T>` whose failures are `ApiError`s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct AppPath<T>(pub T);

/// `Query<T>` whose failures are `ApiError`s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct AppQuery<T>(pub T);

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::extract::DefaultBodyLimit;
    use axum::http::{Request, StatusCode};
    use axum::routing::post;
    use serde::Deserialize;
    use tower::ServiceExt;

    use super::*;
    use crate::api::error::ErrorBody;

    #[derive(Debug, Deserialize, serde::Serialize)]
    struct In {
        name: String,
        count: u32,
    }

    async fn echo(AppJson(body): AppJson<In>) -> AppJson<In> {
        AppJson(body)
    }

    async fn call(content_type: &str, body: impl Into<Body>) -> (StatusCode, Option<ErrorBody>) {
        let app = Router::new()
            .route("/", post(echo))
            .layer(DefaultBodyLimit::max(64));
        let request = Request::post("/")
            .header("content-type", content_type)
            .body(body.into())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).ok())
    }

    #[tokio::test]
    async fn json_failures_use_the_error_shape() {
        let ok = call("application/json", r#"{"name":"a","count":1}"#).await;
        assert_eq!(ok.0, StatusCode::OK);
        for (content_type, body, status, code) in [
            (
                "application/json",
                "{",
                StatusCode::BAD_REQUEST,
                "malformed_json",
            ),
            (
                "application/json",
                r#"{"name":"a","count":"x"}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                "application/json",
                r#"{"name":"a"}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                "application/json",
                r#"{"name":"a","count":-1}"#,
                StatusCode::BAD_REQUEST,
                "invalid_body",
            ),
            (
                "text/plain",
                r#"{"name":"a","count":1}"#,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
        ] {
            let (got, body) = call(content_type, body).await;
            assert_eq!(got, status, "{body:?}");
            assert_eq!(body.unwrap().code, code);
        }
        let big = format!(r#"{{"name":"{}","count":1}}"#, "x".repeat(200));
        let (got, body) = call("application/json", big).await;
        assert_eq!(got, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body.unwrap().code, "payload_too_large");
    }
}
