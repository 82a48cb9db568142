//! Several RPC endpoints per chain (issue 15): two proxies in front of one anvil. Killing the first
//! during a checkout and a sweep, both complete through the second; killing both answers a clear
//! retryable error, sweeps wait, one alert; bringing one back resumes without a restart.

use alloy::primitives::{Address, U256};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use vendor_server::chain::sweeper;
use vendor_server::checkout::deposits;

use crate::chain::{Anvil, PROXY_FORWARD, RpcProxy, TestProvider, Wallets, spawn_pay_app};
use crate::checkout::{GEMINI_USDC, Pay};
use crate::helpers::assert_error;

/// The per-endpoint requests the app made so far (primary first).
fn requests(p: &Pay) -> Vec<u64> {
    let chain = p.app.state.chains.iter().next().unwrap();
    chain.endpoints().iter().map(|e| e.requests()).collect()
}

async fn sweep_statuses(p: &Pay) -> Vec<String> {
    sqlx::query_scalar("select status from sweep order by sweep_id")
        .fetch_all(&p.app.state.pool)
        .await
        .unwrap()
}

async fn metrics(p: &Pay) -> String {
    p.app
        .client
        .get(p.app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

fn metric_line<'a>(text: &'a str, name: &str, port: u16) -> Option<&'a str> {
    let label = format!(r#"endpoint="127.0.0.1:{port}""#);
    text.lines()
        .find(|l| l.starts_with(name) && l.contains(&label) && l.contains(r#"chain="anvil""#))
}

#[sqlx::test]
async fn two_rpc_endpoints_fail_over_and_recover_without_a_restart(pool: PgPool) {
    let anvil = Anvil::start().await;
    let wallets = Wallets::random();
    anvil
        .set_eth(
            wallets.gas.address(),
            U256::from(10u64).pow(U256::from(19u64)),
        )
        .await;
    let first = RpcProxy::start(&anvil.url, PROXY_FORWARD).await;
    let second = RpcProxy::start(&anvil.url, PROXY_FORWARD).await;
    // The key-like query strings must never show up anywhere.
    let endpoints = format!(
        "{}/?key=first-secret-key,{}/?key=second-secret-key",
        first.url, second.url
    );
    let gemini = TestProvider::new("gemini", 0);
    let s3 = TestProvider::new("s3", 0);
    let app = spawn_pay_app(
        pool,
        &anvil,
        &wallets,
        &[gemini.clone(), s3.clone()],
        &[("RPC_ENDPOINT", &endpoints)],
    )
    .await;
    let p = Pay {
        anvil,
        wallets,
        app,
        gemini,
        s3,
    };
    assert_eq!(requests(&p).len(), 2, "both endpoints are configured");
    // Each endpoint's chain id was checked at start (one eth_chainId each), nothing more.
    assert_eq!(
        requests(&p),
        [1, 1],
        "each endpoint's chain id checked once"
    );

    // Checkout 1 and its sweep start on the first endpoint.
    let (session1, address1) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address1, 3_000_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session1, "PurchaseID_one").await;
    assert_eq!(f["success"], true, "{f}");
    p.watch().await;
    sweeper::run_once(&p.app.state.pool, &p.app.state.chains)
        .await
        .unwrap();
    let statuses = sweep_statuses(&p).await;
    assert_eq!(statuses.len(), 1);
    assert_ne!(statuses[0], "confirmed", "the sweep is still under way");
    assert_eq!(requests(&p)[1], 1, "the second endpoint was not needed yet");

    // Checkout 2 starts; the first endpoint dies in the middle of both.
    let (session2, address2) = p.initiate(GEMINI_USDC).await;
    let first_port = first.kill().await;
    p.anvil.mint(p.anvil.usdc, address2, 2_000_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session2, "PurchaseID_two").await;
    assert_eq!(
        f["success"], true,
        "checkout 2 completes through the second: {f}"
    );
    p.watch().await;
    p.sweep_all().await;
    assert_eq!(sweep_statuses(&p).await, ["confirmed", "confirmed"]);
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, address1).await,
        U256::ZERO
    );
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, address2).await,
        U256::ZERO
    );
    assert_eq!(p.balance().await, 5_000_000);
    assert!(requests(&p)[1] > 1, "the second endpoint served");
    let (status, health) = p.app.get("/health").await;
    assert_eq!(status, StatusCode::OK, "{health}");
    let eps = &health["chains"]["anvil"]["endpoints"];
    assert_eq!(eps[0]["endpoint"], format!("127.0.0.1:{first_port}"));
    assert_eq!(eps[0]["state"], "down", "{health}");
    assert!(eps[0]["last_error_at"].is_string(), "{health}");
    assert_eq!(eps[1]["state"], "up", "{health}");
    assert_eq!(health["chains"]["anvil"]["status"], "ok");
    let text = metrics(&p).await;
    let up = metric_line(&text, "vendor_rpc_endpoint_up", first_port).expect("up gauge");
    assert!(up.ends_with(" 0"), "{up}");
    assert!(metric_line(&text, "vendor_rpc_errors_total", first_port).is_some());
    assert!(metric_line(&text, "vendor_rpc_requests_total", first_port).is_some());

    // A third checkout is paid and its sweep starts; then every endpoint dies.
    let (session3, address3) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address3, 1_000_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session3, "PurchaseID_three").await;
    assert_eq!(f["success"], true, "{f}");
    p.watch().await;
    sweeper::run_once(&p.app.state.pool, &p.app.state.chains)
        .await
        .unwrap();
    let before: (String, i32) =
        sqlx::query_as("select status, attempts from sweep order by sweep_id desc limit 1")
            .fetch_one(&p.app.state.pool)
            .await
            .unwrap();
    assert_ne!(before.0, "confirmed", "the third sweep is under way");
    let second_port = second.kill().await;
    // Sweeps wait: no attempt is spent, nothing fails.
    for _ in 0..3 {
        let _ = deposits::run_once(&p.app.state.checkouts()).await;
        sweeper::run_once(&p.app.state.pool, &p.app.state.chains)
            .await
            .unwrap();
        p.anvil.mine(2).await;
    }
    let during: (String, i32) =
        sqlx::query_as("select status, attempts from sweep order by sweep_id desc limit 1")
            .fetch_one(&p.app.state.pool)
            .await
            .unwrap();
    assert_eq!(during, before, "the sweep waits");
    // A checkout started now gets its address (initiate needs no RPC, and the address is watched)
    // but cannot complete: a clear retryable error.
    let (session4, address4): (String, Address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address4, 1_000_000).await;
    p.anvil.mine(2).await;
    let response = p
        .app
        .client
        .post(p.app.url("/v1/checkout/finalize"))
        .json(&json!({"checkout_flow_id": GEMINI_USDC, "checkout_session_id": session4, "officex_purchase_id": "PurchaseID_four"}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_error(
        &(status, body),
        StatusCode::SERVICE_UNAVAILABLE,
        "chain_unavailable",
    );
    assert_error(
        &p.app
            .post(
                "/v1/checkout/validate",
                &json!({"checkout_flow_id": GEMINI_USDC, "checkout_session_id": session4}),
            )
            .await,
        StatusCode::SERVICE_UNAVAILABLE,
        "chain_unavailable",
    );
    // One alert for the episode, whatever the number of passes.
    assert_eq!(p.outbox("alert", "rpc.down").await, 1);
    let (_, health) = p.app.get("/health").await;
    assert_eq!(health["chains"]["anvil"]["status"], "down", "{health}");
    // No health detail, metric or stored error carries a key.
    let stored: Vec<String> = sqlx::query_scalar(
        "select coalesce(last_error, '') from sweep union all select payload::text from outbox",
    )
    .fetch_all(&p.app.state.pool)
    .await
    .unwrap();
    for text in stored
        .iter()
        .chain([&health.to_string(), &metrics(&p).await])
    {
        assert!(!text.contains("secret-key"), "{text}");
    }

    // The second endpoint comes back: no restart, the next passes resume everything.
    let second = RpcProxy::start_at(&p.anvil.url, PROXY_FORWARD, second_port).await;
    p.watch().await;
    let f = p.finalize(GEMINI_USDC, &session4, "PurchaseID_four").await;
    assert_eq!(f["success"], true, "{f}");
    p.watch().await;
    p.sweep_all().await;
    assert_eq!(
        sweep_statuses(&p).await,
        ["confirmed", "confirmed", "confirmed", "confirmed"]
    );
    assert_eq!(p.balance().await, 7_000_000);
    let (_, health) = p.app.get("/health").await;
    assert_eq!(health["chains"]["anvil"]["status"], "ok", "{health}");
    assert_eq!(p.outbox("alert", "rpc.down").await, 1);

    // A later outage is a new episode: one more alert.
    second.kill().await;
    for _ in 0..2 {
        let _ = deposits::run_once(&p.app.state.checkouts()).await;
    }
    assert_eq!(p.outbox("alert", "rpc.down").await, 2);
}
