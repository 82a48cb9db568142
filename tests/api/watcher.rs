//! Detection at any scale (issue 21): the watcher reads every Transfer of the tokens by block range and
//! matches recipients in memory, so 150,000 open checkouts cost it nothing; batches stay under what
//! the provider accepts; ranges the provider refuses are split; a range that keeps failing is retried
//! alone while every other payment is detected.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use sqlx::PgPool;
use vendor_server::checkout::{self, InitiateInput, NewCheckout};
use vendor_server::domain::ids::{CheckoutSessionId, CheckoutWalletId};

use crate::chain::{PROXY_FORWARD, RpcProxy, TestProvider, Wallets, spawn_pay_app};
use crate::checkout::{GEMINI_USDC, Pay, setup_with};

/// anvil behind a proxy enforcing provider limits, and an app on the proxy.
async fn behind_proxy(pool: PgPool, extra: &[(&str, &str)]) -> (Pay, RpcProxy) {
    let anvil = crate::chain::Anvil::start().await;
    let wallets = Wallets::random();
    anvil
        .set_eth(
            wallets.gas.address(),
            U256::from(10u64).pow(U256::from(19u64)),
        )
        .await;
    let proxy = RpcProxy::start(&anvil.url, PROXY_FORWARD).await;
    let mut vars: Vec<(&str, &str)> = vec![("RPC_ENDPOINT", &proxy.url)];
    vars.extend_from_slice(extra);
    let gemini = TestProvider::new("gemini", 0);
    let s3 = TestProvider::new("s3", 0);
    let app = spawn_pay_app(pool, &anvil, &wallets, &[gemini.clone(), s3.clone()], &vars).await;
    (
        Pay {
            anvil,
            wallets,
            app,
            gemini,
            s3,
        },
        proxy,
    )
}

async fn deposits_to(p: &Pay, address: Address) -> i64 {
    sqlx::query_scalar("select count(*) from deposit where deposit_address = $1")
        .bind(format!("{address:#x}"))
        .fetch_one(&p.app.state.pool)
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

/// The value of the first metric line starting with `prefix`.
fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// A purchase finalized on a paid checkout (its address stays watched for top-ups).
async fn finalized_purchase(p: &Pay, name: &str) -> Address {
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session, name).await;
    assert_eq!(f["success"], true, "{f}");
    address
}

async fn provider_limits(pool: PgPool, mode: &str) {
    // Short block ranges: one pass over the chain is dozens of eth_getLogs, more than 20 per batch.
    let (p, proxy) = behind_proxy(
        pool,
        &[
            ("LOG_CHUNK_BLOCKS", "4"),
            ("WATCH_MODE", mode),
            ("RPC_MAX_BATCH", "50"),
        ],
    )
    .await;
    proxy.rules.max_batch.store(20, Ordering::SeqCst);
    let purchase = finalized_purchase(&p, "PurchaseID_limits").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(p.initiate(GEMINI_USDC).await.1);
    }
    p.anvil.mine(60).await;
    for (i, address) in open.iter().enumerate() {
        p.anvil
            .mint(p.anvil.usdc, *address, 1_000_000 + i as u64)
            .await;
        p.anvil.mine(7).await;
    }
    p.anvil.mint(p.anvil.usdt, purchase, 3_000_000).await;
    p.anvil.mine(3).await;
    p.watch().await;
    p.watch().await;
    for address in &open {
        assert_eq!(deposits_to(&p, *address).await, 1, "{address}");
    }
    assert_eq!(
        p.balance().await,
        5_000_000,
        "the top-up of the purchase is credited"
    );
    let rules = &proxy.rules;
    assert!(
        rules.refused_batches.load(Ordering::SeqCst) > 0,
        "the watcher met the limit"
    );
    assert!(rules.largest_batch.load(Ordering::SeqCst) <= 20);
    let chain = p.app.state.chains.iter().next().unwrap();
    assert!(chain.batch_limit() <= 20, "{}", chain.batch_limit());
    let with_addresses = rules.get_logs_with_addresses.load(Ordering::SeqCst);
    let all = rules.get_logs.load(Ordering::SeqCst);
    match mode {
        // The checkouts' own scans (finalize) filter by their address; the passes never do.
        "logs" => assert!(with_addresses * 4 < all, "{with_addresses} of {all}"),
        _ => assert!(with_addresses * 2 > all, "{with_addresses} of {all}"),
    }
}

#[sqlx::test]
async fn a_provider_refusing_batches_above_20_still_lets_every_deposit_through(pool: PgPool) {
    provider_limits(pool, "logs").await;
}

#[sqlx::test]
async fn address_filter_mode_stays_under_a_providers_batch_limit_too(pool: PgPool) {
    provider_limits(pool, "addresses").await;
}

#[sqlx::test]
async fn a_range_refused_for_too_many_results_is_split_until_it_is_read(pool: PgPool) {
    let (p, proxy) = behind_proxy(pool, &[]).await;
    let mut open = Vec::new();
    for _ in 0..6 {
        open.push(p.initiate(GEMINI_USDC).await.1);
    }
    for address in &open {
        p.anvil.mint(p.anvil.usdc, *address, 1_000_000).await;
    }
    p.anvil.mine(3).await;
    // The provider answers -32005 whenever a range holds more than 2 transfers.
    proxy.rules.max_logs.store(2, Ordering::SeqCst);
    p.watch().await;
    for address in &open {
        assert_eq!(deposits_to(&p, *address).await, 1, "{address}");
    }
    assert_eq!(
        p.scalar_i64("select count(*) from watch_gap").await,
        0,
        "nothing left unread"
    );
}

#[sqlx::test]
async fn a_range_that_keeps_failing_is_retried_alone_and_never_stops_the_others(pool: PgPool) {
    let (p, proxy) = behind_proxy(pool, &[("LOG_CHUNK_BLOCKS", "10")]).await;
    let purchase = finalized_purchase(&p, "PurchaseID_gap").await;
    p.watch().await;
    let (_, stuck) = p.initiate(GEMINI_USDC).await;
    let (_, other) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, stuck, 1_000_000).await;
    let bad_block = p.anvil.head().await;
    p.anvil.mine(15).await;
    p.anvil.mint(p.anvil.usdc, other, 1_000_000).await;
    p.anvil.mint(p.anvil.usdc, purchase, 4_000_000).await;
    p.anvil.mine(3).await;
    // The provider cannot serve any range holding that block.
    proxy.rules.fail_block.store(bad_block, Ordering::SeqCst);
    p.watch().await;
    assert_eq!(deposits_to(&p, other).await, 1, "the others are detected");
    assert_eq!(p.balance().await, 6_000_000, "and credited");
    assert_eq!(deposits_to(&p, stuck).await, 0);
    let gap: (i64, i64) = sqlx::query_as("select from_block, to_block from watch_gap")
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap();
    assert!(
        gap.0 <= bad_block as i64 && gap.1 >= bad_block as i64 && gap.1 - gap.0 < 10,
        "the one range of {{LOG_CHUNK_BLOCKS}} holding the block: {gap:?}"
    );
    let text = metrics(&p).await;
    assert!(
        metric(&text, "vendor_watcher_failures_total{chain=\"31337\"}").unwrap_or(0.0) >= 1.0,
        "{text}"
    );
    assert!(text.contains("vendor_watcher_pass_seconds_count{chain=\"31337\"}"));
    // The cursor moved on past the gap: later passes retry the gap alone; once the provider serves
    // it, it is read.
    p.anvil.mine(3).await;
    p.watch().await;
    assert_eq!(deposits_to(&p, stuck).await, 0);
    assert!(p.scalar_i64("select scanned_to from chain_cursor").await > gap.1);
    proxy.rules.fail_block.store(0, Ordering::SeqCst);
    p.watch().await;
    assert_eq!(deposits_to(&p, stuck).await, 1, "the gap is read");
    assert_eq!(p.scalar_i64("select count(*) from watch_gap").await, 0);
    assert_eq!(p.balance().await, 6_000_000, "nothing credited twice");
}

/// 150,000 open checkouts stored through the function initiate uses (their addresses are random: a
/// debug build derives keys too slowly for 150,000, and nothing here sweeps them).
async fn open_checkouts(p: &Pay, n: usize) -> Vec<(CheckoutSessionId, Address)> {
    let cx = p.app.state.checkouts();
    let (model, _, _) = checkout::initiate(
        &cx,
        &InitiateInput {
            flow_id: GEMINI_USDC.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let terms = model.offer_terms.clone().unwrap();
    let mut out = Vec::with_capacity(n);
    let mut conn = p.app.state.pool.acquire().await.unwrap();
    for start in (0..n).step_by(10_000) {
        let rows: Vec<NewCheckout> = (start..n.min(start + 10_000))
            .map(|i| {
                let address = Address::from(rand::random::<[u8; 20]>());
                NewCheckout {
                    session: CheckoutSessionId::new(),
                    wallet_id: CheckoutWalletId::new(),
                    flow_id: model.flow_id.clone(),
                    offer_id: model.offer_id.clone(),
                    chain_name: model.chain_name.clone(),
                    token_symbol: model.token_symbol.clone(),
                    deposit_index: 1_000_000 + i as i64,
                    deposit_address: format!("{address:#x}"),
                    tracer: None,
                    email: None,
                    user_id: None,
                    org_id: None,
                    org_host: None,
                    expires_at: model.expires_at,
                    watch_until: model.watch_until,
                    offer_terms: terms.clone(),
                    start_blocks: None,
                }
            })
            .collect();
        checkout::insert_checkouts(&mut conn, &rows).await.unwrap();
        out.extend(
            rows.iter()
                .map(|r| (r.session, r.deposit_address.parse::<Address>().unwrap())),
        );
    }
    out
}

#[sqlx::test]
async fn with_150000_open_checkouts_payments_are_still_detected_in_seconds(pool: PgPool) {
    let p = setup_with(pool, &[], 0, false).await;
    let purchase = finalized_purchase(&p, "PurchaseID_busy").await;
    let open = open_checkouts(&p, 150_000).await;
    sqlx::query("analyze checkout")
        .execute(&p.app.state.pool)
        .await
        .unwrap();
    p.watch().await;
    let text = metrics(&p).await;
    assert!(
        metric(&text, "vendor_watched_addresses{chain=\"31337\"}").unwrap_or(0.0) >= 150_001.0,
        "{text}"
    );

    // A top-up of the finalized purchase: credited by the watcher's passes within 15 s.
    let chain = p.app.state.chains.iter().next().unwrap();
    let requests_before = chain.rpc_requests();
    p.anvil.mint(p.anvil.usdc, purchase, 3_000_000).await;
    p.anvil.mine(2).await;
    let paid = Instant::now();
    let mut passes = 0;
    while p.balance().await < 5_000_000 {
        assert!(
            paid.elapsed() < Duration::from_secs(15),
            "not credited within 15 s"
        );
        p.watch().await;
        passes += 1;
    }
    let per_pass = (chain.rpc_requests() - requests_before) / passes;
    println!(
        "150,000 open checkouts: top-up credited in {:?} ({passes} pass(es), {per_pass} RPC round trips per pass)",
        paid.elapsed()
    );
    assert!(per_pass <= 20, "{per_pass} round trips per pass");

    // One of the 150,000 is paid: it validates.
    let (session, address) = open[123_456];
    p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
    p.anvil.mine(2).await;
    p.watch().await;
    let v = p.validate(GEMINI_USDC, &session.to_string()).await;
    assert_eq!(v["success"], true, "{v}");
    assert_eq!(v["confirmed_balance_usd"], "2.000000", "{v}");
}

#[sqlx::test]
async fn an_expired_unpaid_checkout_leaves_the_hot_set_and_a_late_payment_is_still_found(
    pool: PgPool,
) {
    let p = setup_with(pool, &[], 0, false).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    // Expired (out of the hot set) but inside its late-payment window.
    sqlx::query("update checkout set expires_at = now() - interval '2 days', created_at = now() - interval '3 days'")
        .execute(&p.app.state.pool)
        .await
        .unwrap();
    vendor_server::chain::watcher::reload_watch_list(&p.app.state.chains).await;
    p.watch().await;
    let text = metrics(&p).await;
    assert_eq!(
        metric(&text, "vendor_watched_addresses{chain=\"31337\"}"),
        Some(0.0),
        "{text}"
    );
    p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
    p.anvil.mine(2).await;
    p.watch().await;
    assert_eq!(deposits_to(&p, address).await, 1);
    let v = p.validate(GEMINI_USDC, &session).await;
    assert_eq!(v["success"], true, "{v}");
}
