//! Deposits under real conditions (issue 10): multisends, deleted purchases, lagging RPC nodes, a
//! public validate that must not amplify RPC calls, and a chain id that lies.

use alloy::primitives::{Address, U256};
use alloy::sol_types::SolCall;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use vendor_server::chain::erc20::IMulticall3;
use vendor_server::chain::{sweeper, watcher};
use vendor_server::checkout::deposits;
use vendor_server::config::MULTICALL3;

use crate::chain::{
    Anvil, DEV, PROXY_DOWN, PROXY_FORWARD, PROXY_OMIT_LOGS, RpcProxy, TestProvider, Wallets,
    chain_vars_via, spawn_with_providers,
};
use crate::checkout::{GEMINI_USDC, Pay, setup, setup_with};
use crate::helpers::{TestApp, assert_error};

alloy::sol! {
    function mint(address to, uint256 amount) external returns (bool);
}

/// One transaction (a Multicall3 batch from the dev account) minting `amounts` of `token` to `to`,
/// each its own Transfer log; returns the transaction hash.
async fn multisend(anvil: &Anvil, token: Address, to: Address, amounts: &[u64]) -> String {
    let calls = amounts
        .iter()
        .map(|a| IMulticall3::Call3 {
            target: token,
            allowFailure: false,
            callData: mintCall {
                to,
                amount: U256::from(*a),
            }
            .abi_encode()
            .into(),
        })
        .collect();
    let data = IMulticall3::aggregate3Call { calls }.abi_encode();
    let hash = anvil
        .rpc(
            "eth_sendTransaction",
            json!([{"from": DEV, "to": MULTICALL3, "data": format!("0x{}", hex::encode(data))}]),
        )
        .await;
    let receipt = anvil.receipt(&hash).await;
    receipt["transactionHash"].as_str().unwrap().to_owned()
}

// ---------------------------------------------------------------- item 5: multisend

#[sqlx::test]
async fn two_equal_transfers_in_one_transaction_are_both_credited_and_swept_once(pool: PgPool) {
    let p = setup(pool).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    let tx = multisend(&p.anvil, p.anvil.usdc, address, &[1_000_000, 1_000_000]).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_multi").await;
    assert_eq!(f["success"], true, "{f}");
    let rows: Vec<(String, i64, String)> =
        sqlx::query_as("select tx_hash, log_index, reference from deposit order by log_index")
            .fetch_all(&p.app.state.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.0 == tx));
    assert_eq!(rows[0].2, format!("deposit:31337:{tx}:{}", rows[0].1));
    assert_ne!(rows[0].2, rows[1].2);
    assert_eq!(p.balance().await, 2_000_000);
    // Watching again changes nothing.
    p.watch().await;
    assert_eq!(p.balance().await, 2_000_000);
    assert_eq!(
        p.scalar_i64("select count(*) from ledger_entry where kind = 'deposit'")
            .await,
        2
    );
    p.sweep_all().await;
    assert_eq!(
        p.anvil
            .token_balance(p.anvil.usdc, p.wallets.treasury)
            .await,
        U256::from(2_000_000u64)
    );
    assert_eq!(p.scalar_i64("select count(*) from sweep").await, 1);
}

#[sqlx::test]
async fn a_multisend_reincluded_at_another_position_after_a_reorg_is_not_credited_twice(
    pool: PgPool,
) {
    let p = setup(pool).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    let snap = p.anvil.snapshot().await;
    let tx = multisend(&p.anvil, p.anvil.usdc, address, &[1_000_000, 1_000_000]).await;
    let raw = p
        .anvil
        .rpc("eth_getRawTransactionByHash", json!([tx]))
        .await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_reinc").await;
    assert_eq!(f["success"], true, "{f}");
    assert_eq!(p.balance().await, 2_000_000);
    let first: Vec<i64> = sqlx::query_scalar("select log_index from deposit order by log_index")
        .fetch_all(&p.app.state.pool)
        .await
        .unwrap();

    // Reorg: the same transaction comes back in a block where another transfer precedes it.
    p.anvil.revert(snap).await;
    p.anvil.rpc("evm_setAutomine", json!([false])).await;
    let other = alloy::signers::local::PrivateKeySigner::random().address();
    let before = p
        .anvil
        .rpc(
            "eth_sendTransaction",
            json!([{"from": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "to": p.anvil.usdc,
                    "data": format!("0x{}", hex::encode(mintCall { to: other, amount: U256::from(5u64) }.abi_encode())),
                    "maxPriorityFeePerGas": "0x174876e800", "maxFeePerGas": "0x2e90edd000"}]),
        )
        .await;
    p.anvil.rpc("eth_sendRawTransaction", json!([raw])).await;
    p.anvil.rpc("evm_mine", json!([])).await;
    p.anvil.rpc("evm_setAutomine", json!([true])).await;
    p.anvil.receipt(&before).await;
    p.anvil.receipt(&json!(tx)).await;
    p.anvil.mine(6).await;
    p.watch().await;
    p.watch().await;
    let rows: Vec<(i64, String)> =
        sqlx::query_as("select log_index, status from deposit order by log_index")
            .fetch_all(&p.app.state.pool)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.1 == "credited"), "{rows:?}");
    assert_ne!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        first,
        "the logs moved"
    );
    assert_eq!(p.balance().await, 2_000_000);
    assert_eq!(
        p.scalar_i64("select count(*) from ledger_entry where kind = 'deposit'")
            .await,
        2
    );
}

// ---------------------------------------------------------------- item 7: deleted purchases

async fn delete_purchase(p: &Pay, ago: &str) {
    sqlx::query(&format!(
        "update purchase set status = 'deleted', status_changed_at = now() - interval '{ago}'"
    ))
    .execute(&p.app.state.pool)
    .await
    .unwrap();
    // The checkout's own late-payment window is long over.
    sqlx::query("update checkout set watch_until = now() - interval '1 day', expires_at = now() - interval '40 days'")
        .execute(&p.app.state.pool)
        .await
        .unwrap();
}

#[sqlx::test]
async fn a_payment_to_a_deleted_purchase_is_swept_alerted_and_credited_to_nothing(pool: PgPool) {
    let p = setup(pool).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_del").await;
    assert_eq!(f["success"], true, "{f}");
    p.sweep_all().await;
    delete_purchase(&p, "1 day").await;

    p.anvil.mint(p.anvil.usdc, address, 3_000_000).await;
    p.anvil.mine(2).await;
    p.watch().await;
    p.watch().await;
    assert_eq!(
        p.scalar_i64("select count(*) from deposit").await,
        2,
        "the late payment is detected"
    );
    assert_eq!(
        p.scalar_i64("select count(*) from ledger_entry where kind = 'deposit'")
            .await,
        1,
        "credited to nothing"
    );
    assert_eq!(p.balance().await, 2_000_000);
    assert_eq!(p.outbox("alert", "deposit.unclaimed").await, 1);
    let alert: Value =
        sqlx::query_scalar("select payload from outbox where event_type = 'deposit.unclaimed'")
            .fetch_one(&p.app.state.pool)
            .await
            .unwrap();
    assert!(
        alert.to_string().contains("3.000000") || alert.to_string().contains("\"3\""),
        "{alert}"
    );
    // Swept to the treasury and visible in the sweeps list.
    for _ in 0..8 {
        sweeper::run_once(&p.app.state.pool, &p.app.state.chains)
            .await
            .unwrap();
        p.anvil.mine(2).await;
    }
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, address).await,
        U256::ZERO
    );
    assert_eq!(
        p.anvil
            .token_balance(p.anvil.usdc, p.wallets.treasury)
            .await,
        U256::from(5_000_000u64)
    );
    let listed = sweeper::list(&p.app.state.pool, false, 10).await.unwrap();
    assert!(
        listed
            .iter()
            .any(|s| s.amount_units == "3000000" && s.status == "confirmed"),
        "{listed:?}"
    );

    // After the late-payment window the address is no longer watched.
    delete_purchase(&p, "31 days").await;
    watcher::reload_watch_list(&p.app.state.chains).await;
    p.anvil.mint(p.anvil.usdc, address, 1_000_000).await;
    p.anvil.mine(2).await;
    p.watch().await;
    assert_eq!(p.scalar_i64("select count(*) from deposit").await, 2);
}

#[sqlx::test]
async fn a_confirmed_but_uncredited_deposit_keeps_a_suspended_purchase_from_deletion(pool: PgPool) {
    let p = setup(pool).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_susp").await;
    assert_eq!(f["success"], true, "{f}");
    sqlx::query(
        "update purchase set status = 'suspended', status_changed_at = now() - interval '30 days',
             last_credit_at = now() - interval '30 days'",
    )
    .execute(&p.app.state.pool)
    .await
    .unwrap();
    // A new payment is confirmed on chain and recorded, but not yet credited.
    p.anvil.mint(p.anvil.usdc, address, 1_000_000).await;
    p.anvil.mine(2).await;
    let chain = p.app.state.chains.iter().next().unwrap();
    watcher::scan(&p.app.state.pool, chain, watcher::Scope::All)
        .await
        .unwrap();
    assert_eq!(
        p.scalar_i64("select count(*) from deposit where status = 'confirmed'")
            .await,
        1
    );
    vendor_server::providers::lifecycle::run_once(
        &p.app.state.pool,
        &p.app.state.providers,
        &p.app.state.config.billing,
    )
    .await
    .unwrap();
    let status: String = sqlx::query_scalar("select status from purchase")
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap();
    assert_eq!(status, "suspended", "nothing is deleted while money waits");
}

// ---------------------------------------------------------------- item 11: reorg false positives

struct Proxied {
    anvil: Anvil,
    proxy: RpcProxy,
    app: TestApp,
}

async fn proxied(pool: PgPool, mode: u8, chain_id: &str) -> Result<Proxied, String> {
    let anvil = Anvil::start().await;
    let wallets = Wallets::random();
    anvil
        .set_eth(
            wallets.gas.address(),
            U256::from(10u64).pow(U256::from(19u64)),
        )
        .await;
    let proxy = RpcProxy::start(&anvil.url, mode).await;
    let mut vars = chain_vars_via(&anvil, &wallets, &proxy.url);
    for (k, v) in &mut vars {
        if k == "CHAIN_ID_DEC" {
            *v = chain_id.to_owned();
        }
    }
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let config = vendor_server::config::Config::from_vars(&crate::helpers::test_vars(
        "http://localhost",
        &pairs,
    ))
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    if let Err(e) =
        vendor_server::startup::Application::build_with(config, pool.clone(), listener).await
    {
        return Err(format!("{e:#}"));
    }
    let app = spawn_with_providers(pool, &pairs, &[TestProvider::new("gemini", 0)]).await;
    Ok(Proxied { anvil, proxy, app })
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&app.state.pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn a_node_that_omits_a_log_does_not_make_a_confirmed_deposit_look_reorged(pool: PgPool) {
    let Ok(x) = proxied(pool, PROXY_FORWARD, "31337").await else {
        panic!("start")
    };
    let (status, init) = x
        .app
        .post(
            "/v1/checkout/initiate",
            &json!({"checkout_flow_id": GEMINI_USDC}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{init}");
    let session = init["checkout_session_id"].as_str().unwrap().to_owned();
    let address: Address = init["crypto_checkout"]["receiving_address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    x.anvil.mint(x.anvil.usdc, address, 4_000_000).await;
    x.anvil.mine(2).await;
    let (status, f) = x
        .app
        .post(
            "/v1/checkout/finalize",
            &json!({"checkout_flow_id": GEMINI_USDC, "checkout_session_id": session, "officex_purchase_id": "PurchaseID_lag"}),
        )
        .await;
    assert_eq!(
        (status, &f["success"]),
        (StatusCode::OK, &json!(true)),
        "{f}"
    );
    deposits::run_once(&x.app.state.checkouts()).await.unwrap();
    assert_eq!(
        count(
            &x.app,
            "select count(*) from deposit where status = 'credited'"
        )
        .await,
        1
    );

    // A lagging/load-balanced node answers eth_getLogs without the log; the block is unchanged.
    x.proxy.set(PROXY_OMIT_LOGS);
    x.anvil.mine(1).await;
    deposits::run_once(&x.app.state.checkouts()).await.unwrap();
    deposits::run_once(&x.app.state.checkouts()).await.unwrap();
    assert_eq!(
        count(
            &x.app,
            "select count(*) from deposit where status = 'credited'"
        )
        .await,
        1,
        "still credited"
    );
    assert_eq!(
        count(
            &x.app,
            "select count(*) from outbox where event_type = 'deposit.reorged'"
        )
        .await,
        0,
        "no false alert"
    );
    x.proxy.set(PROXY_FORWARD);
    deposits::run_once(&x.app.state.checkouts()).await.unwrap();
    assert_eq!(
        count(
            &x.app,
            "select count(*) from deposit where status = 'credited'"
        )
        .await,
        1
    );
    assert_eq!(count(&x.app, "select count(*) from ledger_entry").await, 1);
}

// ---------------------------------------------------------------- item 12: validate

#[sqlx::test]
async fn validate_answers_from_a_fresh_scan_without_rpc_and_is_rate_limited(pool: PgPool) {
    let p = setup_with(
        pool,
        &[("CHECKOUT_VALIDATE_RATE_LIMIT_PER_MINUTE", "5")],
        0,
        false,
    )
    .await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
    p.anvil.mine(2).await;
    // The checkout began a minute ago; the watcher's pass since then saw the payment.
    sqlx::query("update checkout set created_at = now() - interval '1 minute'")
        .execute(&p.app.state.pool)
        .await
        .unwrap();
    p.watch().await;
    let chain = p.app.state.chains.iter().next().unwrap();
    let before = chain.rpc_requests();
    for _ in 0..5 {
        let v = p.validate(GEMINI_USDC, &session).await;
        assert_eq!(v["success"], true, "{v}");
        assert_eq!(v["confirmed_balance_usd"], "2.000000", "{v}");
    }
    assert_eq!(
        chain.rpc_requests(),
        before,
        "a fresh watcher scan is answered from the database"
    );
    let got = p
        .app
        .post(
            "/v1/checkout/validate",
            &json!({"checkout_flow_id": GEMINI_USDC, "checkout_session_id": session}),
        )
        .await;
    assert_error(&got, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

#[sqlx::test]
async fn validate_scans_the_chain_when_the_watcher_is_not_fresh(pool: PgPool) {
    let p = setup(pool).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
    p.anvil.mine(2).await;
    // No watcher pass since the checkout began: validate must look itself.
    let v = p.validate(GEMINI_USDC, &session).await;
    assert_eq!(v["confirmed_balance_usd"], "2.000000", "{v}");
}

// ---------------------------------------------------------------- item 17: chain id

#[sqlx::test]
async fn a_configured_chain_id_that_the_rpc_contradicts_refuses_to_start(pool: PgPool) {
    let Err(err) = proxied(pool.clone(), PROXY_FORWARD, "84532").await else {
        panic!("a server on the wrong chain id must not start")
    };
    assert!(
        err.contains("84532") && err.contains("31337"),
        "names both ids: {err}"
    );
    for table in ["deposit", "chain_cursor", "checkout"] {
        let n: i64 = sqlx::query_scalar(&format!("select count(*) from {table}"))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 0, "{table}: nothing recorded");
    }
}

#[sqlx::test]
async fn a_chain_unreachable_at_start_stays_off_until_its_id_matches(pool: PgPool) {
    let x = proxied(pool, PROXY_DOWN, "84532")
        .await
        .expect("an unreachable RPC does not stop the start");
    let (status, init) = x
        .app
        .post(
            "/v1/checkout/initiate",
            &json!({"checkout_flow_id": "gemini-api-gateway:anvil:usdc"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{init}");
    let address: Address = init["crypto_checkout"]["receiving_address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    x.anvil.mint(x.anvil.usdc, address, 2_000_000).await;
    x.anvil.mine(2).await;
    // The node answers now, with another chain id: the chain stays off.
    x.proxy.set(PROXY_FORWARD);
    let err = deposits::run_once(&x.app.state.checkouts())
        .await
        .unwrap_err();
    assert!(format!("{err:#}").contains("31337"), "{err:#}");
    assert_eq!(count(&x.app, "select count(*) from deposit").await, 0);
    assert_eq!(count(&x.app, "select count(*) from chain_cursor").await, 0);
    let session = init["checkout_session_id"].as_str().unwrap();
    let got = x
        .app
        .post(
            "/v1/checkout/validate",
            &json!({"checkout_flow_id": "gemini-api-gateway:anvil:usdc", "checkout_session_id": session}),
        )
        .await;
    assert_error(&got, StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable");
    assert_eq!(count(&x.app, "select count(*) from deposit").await, 0);
}

// ---------------------------------------------------------------- item 16: pass cost at scale

/// Watcher pass time with 100,000 historical checkouts and deposits (a benchmark, not a timed test):
/// `cargo nextest run --run-ignored only -E 'test(watcher_pass_at_100k_history_benchmark)' --no-capture`.
/// History: 100,000 expired checkouts that were paid but never finalized (their deposits stay
/// `confirmed`); live: 1,000 open checkouts, 10 of them paid during the run.
#[ignore = "benchmark; run explicitly"]
#[sqlx::test]
async fn watcher_pass_at_100k_history_benchmark(pool: PgPool) {
    const HISTORY: i64 = 100_000;
    const LIVE: i64 = 1_000;
    let p = setup_with(
        pool,
        &[("CHECKOUT_RATE_LIMIT_PER_MINUTE", "100000")],
        0,
        false,
    )
    .await;
    let db = &p.app.state.pool;
    sqlx::query(
        "insert into checkout (checkout_session_id, checkout_wallet_id, checkout_flow_id, offer_id, chain_name,
             token_symbol, deposit_index, deposit_address, expires_at, watch_until, created_at)
         select gen_random_uuid(), gen_random_uuid(), $1, 'gemini-api-gateway', 'anvil', 'usdc', 1000000 + i,
                '0x' || lpad(to_hex(i), 40, '0'), now() - interval '60 days', now() - interval '30 days',
                now() - interval '61 days'
         from generate_series(1, $2) i",
    )
    .bind(GEMINI_USDC)
    .bind(HISTORY)
    .execute(db)
    .await
    .unwrap();
    sqlx::query(
        "insert into deposit (chain_id, tx_hash, log_index, block_number, block_hash, token_address, token_symbol,
             from_address, deposit_address, checkout_session_id, amount_units, amount_micros, status, reference)
         select 31337, '0x' || lpad(to_hex(c.deposit_index), 64, '0'), 0, 1, '0x' || repeat('0', 64), $1, 'usdc',
                '0x' || repeat('0', 40), c.deposit_address, c.checkout_session_id, 1000, 1000, 'confirmed',
                'deposit:31337:' || c.deposit_index
         from checkout c where c.deposit_index >= 1000000",
    )
    .bind(format!("{:#x}", p.anvil.usdc))
    .execute(db)
    .await
    .unwrap();
    // The history lies below the reorg window of a chain that has moved on.
    p.anvil.mine(300).await;
    let mut live = Vec::new();
    for _ in 0..LIVE {
        live.push(p.initiate(GEMINI_USDC).await);
    }
    sqlx::query("analyze").execute(db).await.unwrap();
    let time_pass = || async {
        let started = std::time::Instant::now();
        deposits::run_once(&p.app.state.checkouts()).await.unwrap();
        started.elapsed()
    };
    let first = time_pass().await;
    let mut idle = Vec::new();
    for _ in 0..5 {
        p.anvil.mine(1).await;
        idle.push(time_pass().await);
    }
    let mut paid = Vec::new();
    for (_, address) in live.iter().take(10) {
        p.anvil.mint(p.anvil.usdc, *address, 1_000_000).await;
        p.anvil.mine(2).await;
        paid.push(time_pass().await);
    }
    let found: i64 =
        sqlx::query_scalar("select count(*) from deposit where amount_micros = 1000000")
            .fetch_one(db)
            .await
            .unwrap();
    assert_eq!(found, 10);
    let median = |v: &mut Vec<std::time::Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    println!(
        "watcher pass with {HISTORY} historical checkouts + deposits and {LIVE} watched checkouts (anvil, debug build):\n\
         - first pass: {first:?}\n\
         - idle pass (one new block), median of 5: {:?}\n\
         - pass finding a new payment, median of 10: {:?}",
        median(&mut idle),
        median(&mut paid)
    );
}
