use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::{assert_error, spawn_app};

#[sqlx::test]
async fn unknown_routes_and_wrong_methods_use_the_error_shape(pool: PgPool) {
    let app = spawn_app(pool).await;
    assert_error(
        &app.get("/v1/nope").await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(&app.get("/").await, StatusCode::NOT_FOUND, "not_found");
    let got = app
        .post("/v1/offer/aws-s3-storage-giftcard", &serde_json::json!({}))
        .await;
    assert_error(&got, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let got = app
        .post_raw("/health", "application/json", b"{".to_vec())
        .await;
    assert_error(&got, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[sqlx::test]
async fn responses_carry_request_ids_and_cors(pool: PgPool) {
    let app = spawn_app(pool).await;
    let response = app
        .client
        .get(app.url("/v1/offer/aws-s3-storage-giftcard"))
        .header("origin", "https://officex.app")
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("x-request-id").is_some());
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/v1/offer/x"))
        .header("origin", "https://officex.app")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(preflight.headers()["access-control-allow-origin"], "*");
}

#[sqlx::test]
async fn openapi_document_is_served(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (status, body) = app.get("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["openapi"], "3.1.0");
    assert_eq!(body["servers"][0]["url"], app.base_url);
    assert!(body["paths"]["/v1/offer/{offer_id}"]["get"].is_object());
}

#[sqlx::test]
async fn graceful_shutdown_stops_the_server(pool: PgPool) {
    let mut app = spawn_app(pool).await;
    assert_eq!(app.get("/health").await.0, StatusCode::OK);
    app.shutdown.cancel();
    let server = tokio::time::timeout(std::time::Duration::from_secs(10), &mut app.server).await;
    assert!(matches!(server, Ok(Ok(Ok(())))), "{server:?}");
}

#[sqlx::test]
async fn metrics_count_requests_by_route(pool: PgPool) {
    let app = crate::helpers::spawn_app_with(pool, crate::appstore::SELLING).await;
    app.get("/v1/offer/aws-s3-storage-giftcard").await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("http_requests_total")
            && l.contains(r#"path="/v1/offer/{offer_id}""#)
            && l.contains(r#"status="200""#)),
        "{text}"
    );
}

#[sqlx::test]
async fn metrics_need_the_admin_token_when_set(pool: PgPool) {
    let token = "admin-token-for-tests-0123";
    let app = crate::helpers::spawn_app_with(pool, &[("ADMIN_TOKEN", token)]).await;
    assert_error(
        &app.get("/metrics").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    let response = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}
