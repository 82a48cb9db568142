use reqwest::StatusCode;
use sqlx::PgPool;

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};

/// Both offer providers configured (AWS at an address that is never called, a Gemini key): every
/// offer is sold.
pub const SELLING: &[(&str, &str)] = &[
    ("AWS_REGION", "us-east-1"),
    ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
    ("GEMINI_API_KEY", "test-upstream-key"),
];

async fn spawn_selling(pool: PgPool, extra: &[(&str, &str)]) -> TestApp {
    let vars: Vec<(&str, &str)> = SELLING.iter().chain(extra).copied().collect();
    spawn_app_with(pool, &vars).await
}

#[sqlx::test]
async fn health_checks_the_database(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (status, body) = app.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok");
    assert_eq!(body["database"], "ok");
}

#[sqlx::test]
async fn health_answers_503_when_the_database_is_gone(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.state.pool.close().await;
    let got = app.get("/health").await;
    assert_error(
        &got,
        StatusCode::SERVICE_UNAVAILABLE,
        "database_unavailable",
    );
    let got = app.get("/v1/offer/aws-s3-storage-giftcard").await;
    assert_error(&got, StatusCode::SERVICE_UNAVAILABLE, "service_unavailable");
}

#[sqlx::test]
async fn suggest_returns_absolute_urls_that_resolve(pool: PgPool) {
    let app = spawn_selling(pool, &[]).await;
    let (status, body) = app.get("/v1/appstore/suggest").await;
    assert_eq!(status, StatusCode::OK);
    let urls: Vec<String> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["url"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(urls.len(), 3, "{body}");
    assert_eq!(urls[0], app.url("/v1/appstore/list/recommended_s3"));
    for url in urls {
        let response = app.client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
    }
}

#[sqlx::test]
async fn suggest_ranks_by_hints(pool: PgPool) {
    let app = spawn_selling(pool, &[]).await;
    let (_, body) = app
        .get("/v1/appstore/suggest?profession=Writer&limit=1")
        .await;
    assert_eq!(body.as_array().unwrap().len(), 1);
    assert_eq!(body[0]["url"], app.url("/v1/appstore/list/popular_gemini"));
    let (_, body) = app
        .get("/v1/appstore/suggest?profession=photographer&country=FR&language=fr")
        .await;
    assert_eq!(body[0]["url"], app.url("/v1/appstore/list/recommended_s3"));
}

#[sqlx::test]
async fn suggest_rejects_bad_query(pool: PgPool) {
    let app = spawn_app(pool).await;
    assert_error(
        &app.get("/v1/appstore/suggest?limit=lots").await,
        StatusCode::BAD_REQUEST,
        "invalid_query",
    );
}

#[sqlx::test]
async fn list_returns_only_its_own_offers(pool: PgPool) {
    let app = spawn_selling(pool, &[]).await;
    let (status, body) = app.get("/v1/appstore/list/recommended_s3").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["list_id"], "recommended_s3");
    let ids: Vec<&str> = body["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["aws-s3-storage-giftcard"]);
    let (_, body) = app.get("/v1/appstore/list/developer_essentials").await;
    let ids: Vec<&str> = body["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gemini-api-gateway", "aws-s3-storage-giftcard"]);
}

#[sqlx::test]
async fn unknown_list_is_404(pool: PgPool) {
    let app = spawn_app(pool).await;
    assert_error(
        &app.get("/v1/appstore/list/nope").await,
        StatusCode::NOT_FOUND,
        "list_not_found",
    );
}

#[sqlx::test]
async fn offer_has_the_reference_fields(pool: PgPool) {
    let app = spawn_selling(pool, &[]).await;
    let (status, body) = app.get("/v1/offer/aws-s3-storage-giftcard").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], "aws-s3-storage-giftcard");
    assert_eq!(body["sku"], "aws-s3-storage");
    assert_eq!(body["title"], "Amazon S3 Storage Bucket");
    assert!(body["description"].as_str().unwrap().contains("S3"));
    assert_eq!(body["metadata"]["unit_price_usd_per_gb_month"], 0.023);
    assert_eq!(body["minimum_deposit_usd"], "1.000000");
    // No chain configured: nothing to pay with.
    assert_eq!(body["checkout_options"], serde_json::json!([]));
    // Provider settings stay internal.
    assert!(body.get("settings").is_none());
}

#[sqlx::test]
async fn unknown_offer_is_404(pool: PgPool) {
    let app = spawn_app(pool).await;
    assert_error(
        &app.get("/v1/offer/nope").await,
        StatusCode::NOT_FOUND,
        "offer_not_found",
    );
}

#[sqlx::test]
async fn checkout_options_cover_every_chain_and_token(pool: PgPool) {
    let app = spawn_selling(
        pool,
        &[
            ("RPC_ENDPOINT", "http://127.0.0.1:9"),
            ("CHAIN_ID_DEC", "31337"),
            ("CHAIN_NAME", "base"),
            ("USDC_ADDRESS", "0x0000000000000000000000000000000000000001"),
            ("USDT_ADDRESS", "0x0000000000000000000000000000000000000002"),
        ],
    )
    .await;
    let (_, body) = app.get("/v1/offer/aws-s3-storage-giftcard").await;
    let flows: Vec<&str> = body["checkout_options"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["checkout_flow_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        flows,
        [
            "001_amazon_storage_crypto_wallet_topup_gift_card_only",
            "aws-s3-storage-giftcard:base:usdc",
            "aws-s3-storage-giftcard:base:usdt"
        ]
    );
    let option = &body["checkout_options"][0];
    assert_eq!(option["offer_id"], "aws-s3-storage-giftcard");
    assert_eq!(option["checkout_pattern"], "CRYPTO_WALLET_TOPUP");
    assert_eq!(
        option["checkout_init_endpoint"],
        app.url("/v1/checkout/initiate")
    );
    let (_, body) = app.get("/v1/offer/gemini-api-gateway").await;
    assert_eq!(
        body["checkout_options"][0]["checkout_flow_id"],
        "gemini-api-gateway:base:usdc"
    );
}

#[sqlx::test]
async fn offers_file_changes_are_synced_on_restart(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    drop(app);
    let dir = std::env::temp_dir().join(format!("offers-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("offers.toml");
    std::fs::write(
        &file,
        r#"
[[offers]]
id = "gemini-api-gateway"
sku = "gemini-api-key"
title = "Gemini, renamed"
provider = "gemini"
minimum_deposit_usd = "3"
"#,
    )
    .unwrap();
    let app = spawn_selling(pool, &[("OFFERS_FILE", file.to_str().unwrap())]).await;
    let (_, body) = app.get("/v1/offer/gemini-api-gateway").await;
    assert_eq!(body["title"], "Gemini, renamed");
    assert_eq!(body["minimum_deposit_usd"], "3.000000");
    assert_error(
        &app.get("/v1/offer/aws-s3-storage-giftcard").await,
        StatusCode::NOT_FOUND,
        "offer_not_found",
    );
    assert_error(
        &app.get("/v1/appstore/list/recommended_s3").await,
        StatusCode::NOT_FOUND,
        "list_not_found",
    );
    let (_, body) = app.get("/v1/appstore/suggest").await;
    assert_eq!(body, serde_json::json!([]));
}

#[sqlx::test]
async fn offers_whose_provider_is_off_are_neither_listed_nor_suggested(pool: PgPool) {
    // Only Gemini is configured: the S3 offer cannot be delivered.
    let app = spawn_app_with(pool, &[("GEMINI_API_KEY", "test-upstream-key")]).await;
    assert_error(
        &app.get("/v1/offer/aws-s3-storage-giftcard").await,
        StatusCode::NOT_FOUND,
        "offer_unavailable",
    );
    assert_eq!(
        app.get("/v1/offer/gemini-api-gateway").await.0,
        StatusCode::OK
    );
    let (_, body) = app.get("/v1/appstore/suggest").await;
    let urls: Vec<&str> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["url"].as_str().unwrap())
        .collect();
    assert!(
        !urls.contains(&app.url("/v1/appstore/list/recommended_s3").as_str()),
        "{body}"
    );
    assert_eq!(urls.len(), 2, "{body}");
    let (_, list) = app.get("/v1/appstore/list/developer_essentials").await;
    assert_eq!(list["offers"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["offers"][0]["id"], "gemini-api-gateway");

    // Nothing configured: nothing is sold.
    let none = spawn_app(app.state.pool.clone()).await;
    let (_, body) = none.get("/v1/appstore/suggest").await;
    assert_eq!(body, serde_json::json!([]));
}
