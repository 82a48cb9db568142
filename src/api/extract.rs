//! Extractors whose rejections use the JSON error shape.

use axum::extract::FromRequest;
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// `Json<T>` whose failures are `ApiError`s (400 malformed/invalid, 413 too large, 415 content type).
#[derive(Debug, Clone, Copy, Default, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct AppJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for AppJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
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
