//! Refunds on anvil (SPEC §9 "Customers get what they paid for, or their money back"): the amount
//! leaves the balance at once, a refund is paid exactly once whatever the concurrency and the
//! crashes, `"all"` closes the purchase, money nobody can use is refundable, and `mark-paid` is
//! checked on chain.

use std::time::Instant;

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use vendor_server::refunds::payout;

use crate::checkout::{GEMINI_USDC, Pay, setup_with};
use crate::helpers::{TestApp, assert_error};

const TOKEN: &str = "admin-token-for-refund-tests-0123456789";

/// A test chain with a funded payout wallet (10 ETH, 1,000 USDC) unless `payout` is false.
async fn refund_setup(
    pool: PgPool,
    payout: bool,
    extra: &[(&str, &str)],
) -> (Pay, PrivateKeySigner) {
    let wallet = PrivateKeySigner::random();
    let key = format!("0x{}", hex::encode(wallet.to_bytes()));
    let mut vars = vec![("ADMIN_TOKEN", TOKEN)];
    if payout {
        vars.push(("VENDOR_PAYOUT_PRIVATE_KEY", key.as_str()));
    }
    vars.extend_from_slice(extra);
    let p = setup_with(pool, &vars, 0, false).await;
    if payout {
        p.anvil
            .set_eth(wallet.address(), U256::from(10u64).pow(U256::from(19u64)))
            .await;
        p.anvil
            .mint(p.anvil.usdc, wallet.address(), 1_000_000_000)
            .await;
        p.anvil.mine(1).await;
    }
    (p, wallet)
}

/// A finalized USDC checkout paid with `amount` units by `payer` (minted to it, then transferred);
/// returns (purchase id, customer key, deposit address, session).
async fn bought(p: &Pay, amount: u64) -> (String, String, Address, String) {
    let paid = p.paid_usdc(amount).await;
    let r = &paid.answer["receipt"];
    (
        r["vendor_purchase_id"].as_str().unwrap().to_owned(),
        r["customer_billing_api_key"].as_str().unwrap().to_owned(),
        paid.address,
        paid.session,
    )
}

async fn send(
    app: &TestApp,
    path: &str,
    bearer: &str,
    key: Option<&str>,
    body: &Value,
) -> (StatusCode, Value) {
    let mut request = app
        .client
        .post(app.url(path))
        .bearer_auth(bearer)
        .json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn ask(
    p: &Pay,
    purchase: &str,
    key: &str,
    amount: Value,
    to: Address,
) -> (StatusCode, Value) {
    send(
        &p.app,
        &format!("/v1/purchase/{purchase}/refunds"),
        key,
        Some(&uuid::Uuid::new_v4().to_string()),
        &json!({"amount_usd": amount, "chain_id": 31337, "token": "usdc", "to_address": format!("{to:#x}")}),
    )
    .await
}

async fn admin(p: &Pay, refund: &str, action: &str, body: Value) -> (StatusCode, Value) {
    send(
        &p.app,
        &format!("/v1/admin/refunds/{refund}/{action}"),
        TOKEN,
        Some(&uuid::Uuid::new_v4().to_string()),
        &body,
    )
    .await
}

async fn balance_of(p: &Pay, purchase: &str) -> i64 {
    let id = purchase.strip_prefix("CustomerPurchaseID_").unwrap();
    sqlx::query_scalar("select balance_micros from purchase where purchase_id = $1::uuid")
        .bind(id)
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap()
}

async fn refund_status(p: &Pay, refund: &str) -> String {
    let id = refund.strip_prefix("RefundID_").unwrap();
    sqlx::query_scalar("select status from refund where refund_id = $1::uuid")
        .bind(id)
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap()
}

async fn pass(p: &Pay) {
    payout::run_once(
        &p.app.state.pool,
        &p.app.state.chains,
        &p.app.state.config.refunds,
    )
    .await
    .unwrap();
}

/// Runs the payout job (mining between passes) until the refund is paid; returns the passes.
async fn pay_out(p: &Pay, refund: &str) -> usize {
    for n in 1..=12 {
        pass(p).await;
        if refund_status(p, refund).await == "paid" {
            return n;
        }
        p.anvil.mine(1).await;
    }
    panic!(
        "refund {refund} was not paid: {}",
        refund_status(p, refund).await
    );
}

async fn ledger_matches(p: &Pay, purchase: &str) {
    let id = purchase.strip_prefix("CustomerPurchaseID_").unwrap();
    let (balance, sum): (i64, i64) = sqlx::query_as(
        "select p.balance_micros, (select coalesce(sum(amount_micros), 0)::bigint from ledger_entry l
                                    where l.purchase_id = p.purchase_id)
         from purchase p where purchase_id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&p.app.state.pool)
    .await
    .unwrap();
    assert_eq!(balance, sum, "the balance is the sum of the ledger");
}

#[sqlx::test]
async fn a_partial_refund_is_paid_to_a_fresh_address_exactly_once_under_three_concurrent_approvals(
    pool: PgPool,
) {
    let (p, wallet) = refund_setup(pool, true, &[]).await;
    let (purchase, key, _, _) = bought(&p, 10_000_000).await;
    let to = PrivateKeySigner::random().address();
    let (status, refund) = ask(&p, &purchase, &key, json!("4.25"), to).await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    assert_eq!(refund["status"], "requested");
    assert_eq!(refund["amount_usd"], "4.250000");
    assert_eq!(refund["token_amount"], "4.25");
    assert_eq!(balance_of(&p, &purchase).await, 5_750_000, "leaves at once");
    ledger_matches(&p, &purchase).await;
    let id = refund["refund_id"].as_str().unwrap().to_owned();

    // Three operators approve at once: one wins, the others see it approved.
    let approvals =
        futures::future::join_all((0..3).map(|_| admin(&p, &id, "approve", json!({})))).await;
    let ok = approvals
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .count();
    assert_eq!(ok, 1, "{approvals:?}");
    for a in approvals.iter().filter(|(s, _)| *s != StatusCode::OK) {
        assert_error(a, StatusCode::CONFLICT, "invalid_state");
    }
    let approved_at = Instant::now();

    // Three payout replicas on one database.
    let states = [
        p.app.state.clone(),
        p.app.state.clone(),
        p.app.state.clone(),
    ];
    let mut passes = 0;
    while refund_status(&p, &id).await != "paid" {
        passes += 1;
        assert!(passes < 12, "not paid: {}", refund_status(&p, &id).await);
        futures::future::join_all(states.iter().map(|s| async move {
            payout::run_once(&s.pool, &s.chains, &s.config.refunds)
                .await
                .unwrap()
        }))
        .await;
        p.anvil.mine(1).await;
    }
    println!(
        "refund payout on anvil: approve -> paid in {:?}, {passes} passes of three replicas (2 confirmations, a block mined per pass)",
        approved_at.elapsed()
    );
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, to).await,
        U256::from(4_250_000u64)
    );
    assert_eq!(p.anvil.nonce(wallet.address()).await, 1, "one transaction");
    let (_, list) = p
        .app
        .get_auth(&format!("/v1/purchase/{purchase}/refunds"), &key)
        .await;
    assert_eq!(list["items"][0]["status"], "paid");
    assert!(list["items"][0]["tx_hash"].is_string());
    assert!(
        list["items"][0]["explorer_url"]
            .as_str()
            .unwrap()
            .starts_with("https://explorer.test/tx/0x")
    );
    assert_eq!(p.outbox("webhook", "refund.requested").await, 1);
    assert_eq!(p.outbox("webhook", "refund.approved").await, 1);
    assert_eq!(p.outbox("webhook", "refund.paid").await, 1);
    assert_eq!(p.outbox("email", "refund.paid").await, 1);
    assert_eq!(balance_of(&p, &purchase).await, 5_750_000);
    ledger_matches(&p, &purchase).await;
    let audits: i64 =
        sqlx::query_scalar("select count(*) from admin_audit where action = 'refund.approve'")
            .fetch_one(&p.app.state.pool)
            .await
            .unwrap();
    assert_eq!(audits, 1);
}

#[sqlx::test]
async fn a_server_killed_between_sign_and_broadcast_pays_once(pool: PgPool) {
    let (p, wallet) = refund_setup(pool, true, &[]).await;
    let (purchase, key, _, _) = bought(&p, 10_000_000).await;
    let to = PrivateKeySigner::random().address();
    let (_, refund) = ask(&p, &purchase, &key, json!("3"), to).await;
    let id = refund["refund_id"].as_str().unwrap().to_owned();
    assert_eq!(admin(&p, &id, "approve", json!({})).await.0, StatusCode::OK);
    // Pass 1 signs (intent, nonce and bytes committed); the "kill" is that nothing else runs.
    pass(&p).await;
    assert_eq!(refund_status(&p, &id).await, "paying");
    assert_eq!(
        p.anvil.nonce(wallet.address()).await,
        0,
        "nothing sent before the commit"
    );
    let raw: Option<Vec<u8>> = sqlx::query_scalar("select raw_tx from refund")
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap();
    assert!(raw.is_some(), "signed bytes stored before the broadcast");

    // A new process on the same database reconciles and sends the stored bytes once.
    let restarted = crate::chain::spawn_pay_app(
        p.app.state.pool.clone(),
        &p.anvil,
        &p.wallets,
        std::slice::from_ref(&p.gemini),
        &[
            ("ADMIN_TOKEN", TOKEN),
            (
                "VENDOR_PAYOUT_PRIVATE_KEY",
                &format!("0x{}", hex::encode(wallet.to_bytes())),
            ),
        ],
    )
    .await;
    for _ in 0..6 {
        payout::run_once(
            &restarted.state.pool,
            &restarted.state.chains,
            &restarted.state.config.refunds,
        )
        .await
        .unwrap();
        p.anvil.mine(1).await;
    }
    assert_eq!(refund_status(&p, &id).await, "paid");
    assert_eq!(p.anvil.nonce(wallet.address()).await, 1);
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, to).await,
        U256::from(3_000_000u64)
    );
}

#[sqlx::test]
async fn a_crash_between_broadcast_and_record_does_not_pay_again(pool: PgPool) {
    let (p, wallet) = refund_setup(pool, true, &[]).await;
    let (purchase, key, _, _) = bought(&p, 10_000_000).await;
    let to = PrivateKeySigner::random().address();
    let (_, refund) = ask(&p, &purchase, &key, json!(2), to).await;
    let id = refund["refund_id"].as_str().unwrap().to_owned();
    admin(&p, &id, "approve", json!({})).await;
    pass(&p).await;
    let (hash, raw): (String, Vec<u8>) = sqlx::query_as("select tx_hash, raw_tx from refund")
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap();
    // The broadcast reached the node, but the process died before recording it.
    let sent = p
        .anvil
        .rpc(
            "eth_sendRawTransaction",
            json!([format!("0x{}", hex::encode(raw))]),
        )
        .await;
    assert_eq!(sent.as_str(), Some(hash.as_str()));
    pay_out(&p, &id).await;
    assert_eq!(p.anvil.nonce(wallet.address()).await, 1);
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, to).await,
        U256::from(2_000_000u64)
    );
}

#[sqlx::test]
async fn over_balance_is_409_cancel_credits_back_and_the_same_key_returns_the_same_refund(
    pool: PgPool,
) {
    let (p, _) = refund_setup(pool, true, &[]).await;
    let (purchase, key, _, _) = bought(&p, 10_000_000).await;
    let to = PrivateKeySigner::random().address();
    let path = format!("/v1/purchase/{purchase}/refunds");
    let over = ask(&p, &purchase, &key, json!("10.000001"), to).await;
    assert_error(&over, StatusCode::CONFLICT, "insufficient_balance");
    // Gateway calls in flight hold part of the balance.
    sqlx::query(
        "insert into gateway_reservation (reservation_id, purchase_id, amount_micros, model, expires_at)
         values (gen_random_uuid(), $1::uuid, 2000000, 'm', now() + interval '1 minute')",
    )
    .bind(purchase.strip_prefix("CustomerPurchaseID_").unwrap())
    .execute(&p.app.state.pool)
    .await
    .unwrap();
    let held = ask(&p, &purchase, &key, json!("8.5"), to).await;
    assert_error(&held, StatusCode::CONFLICT, "insufficient_balance");
    let body = json!({"amount_usd": "3", "chain_id": 31337, "token": "usdc", "to_address": format!("{to:#x}")});
    let first = send(&p.app, &path, &key, Some("refund-key-1"), &body).await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    let again = send(&p.app, &path, &key, Some("refund-key-1"), &body).await;
    assert_eq!(again.0, StatusCode::CREATED);
    assert_eq!(again.1["refund_id"], first.1["refund_id"]);
    assert_eq!(balance_of(&p, &purchase).await, 7_000_000, "taken once");
    let other = send(
        &p.app,
        &path,
        &key,
        Some("refund-key-1"),
        &json!({"amount_usd": "4", "chain_id": 31337, "token": "usdc", "to_address": format!("{to:#x}")}),
    )
    .await;
    assert_error(&other, StatusCode::CONFLICT, "idempotency_key_reused");
    let bad = send(
        &p.app,
        &path,
        &key,
        None,
        &json!({"amount_usd": "1", "chain_id": 31337, "token": "usdc", "to_address": "0x12"}),
    )
    .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_address");
    let bad = send(
        &p.app,
        &path,
        &key,
        None,
        &json!({"amount_usd": "1", "chain_id": 1, "token": "usdc", "to_address": format!("{to:#x}")}),
    )
    .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_chain");

    let id = first.1["refund_id"].as_str().unwrap();
    let cancel = format!("/v1/purchase/{purchase}/refunds/{id}/cancel");
    let (status, canceled) = send(&p.app, &cancel, &key, None, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(balance_of(&p, &purchase).await, 10_000_000, "credited back");
    let (status, _) = send(&p.app, &cancel, &key, None, &json!({})).await;
    assert_eq!(status, StatusCode::OK, "a retried cancel");
    ledger_matches(&p, &purchase).await;
    let kinds: Vec<(String, i64)> = sqlx::query_as(
        "select kind, amount_micros from ledger_entry where kind like 'refund%' order by entry_id",
    )
    .fetch_all(&p.app.state.pool)
    .await
    .unwrap();
    assert_eq!(
        kinds,
        [
            ("refund".to_owned(), -3_000_000),
            ("refund_reversal".to_owned(), 3_000_000)
        ]
    );
    // An approved refund is no longer the customer's to cancel; a rejected one is credited back.
    let (_, second) = ask(&p, &purchase, &key, json!("1"), to).await;
    let id = second["refund_id"].as_str().unwrap();
    admin(&p, id, "approve", json!({})).await;
    let late = send(
        &p.app,
        &format!("/v1/purchase/{purchase}/refunds/{id}/cancel"),
        &key,
        None,
        &json!({}),
    )
    .await;
    assert_error(&late, StatusCode::CONFLICT, "invalid_state");
    let no_reason = admin(&p, id, "reject", json!({})).await;
    assert_error(&no_reason, StatusCode::BAD_REQUEST, "missing_field");
    let (status, rejected) = admin(&p, id, "reject", json!({"reason": "duplicate"})).await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    assert_eq!(rejected["reason"], "duplicate");
    assert_eq!(balance_of(&p, &purchase).await, 10_000_000);
    assert_eq!(p.outbox("webhook", "refund.rejected").await, 1);
    let unkeyed = p
        .app
        .client
        .post(p.app.url(&format!("/v1/admin/refunds/{id}/approve")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(unkeyed.status(), StatusCode::BAD_REQUEST);
}

#[sqlx::test]
async fn all_pays_the_whole_balance_deletes_the_purchase_and_a_later_payment_is_unclaimed_and_refundable(
    pool: PgPool,
) {
    let (p, _) = refund_setup(pool, true, &[]).await;
    let (purchase, key, address, session) = bought(&p, 7_500_000).await;
    let to = PrivateKeySigner::random().address();
    let (status, refund) = ask(&p, &purchase, &key, json!("all"), to).await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    assert_eq!(refund["amount_usd"], "7.500000");
    assert_eq!(refund["closes_purchase"], true);
    assert_eq!(balance_of(&p, &purchase).await, 0);
    let id = refund["refund_id"].as_str().unwrap().to_owned();
    admin(&p, &id, "approve", json!({})).await;
    pay_out(&p, &id).await;
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, to).await,
        U256::from(7_500_000u64)
    );
    let (_, got) = p
        .app
        .get_auth(&format!("/v1/purchase/{purchase}"), &key)
        .await;
    assert_eq!(got["purchase"]["status"], "deleted", "{got}");
    assert_eq!(got["purchase"]["officex_status"], "CANCELED");
    let officex: i64 = sqlx::query_scalar(
        "select count(*) from outbox where channel = 'officex' and event_type = 'purchase.status_changed'",
    )
    .fetch_one(&p.app.state.pool)
    .await
    .unwrap();
    assert!(officex >= 1);

    // A payment to the deleted purchase: shown as unclaimed, refundable with the same key.
    p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
    p.anvil.mine(3).await;
    p.watch().await;
    let (_, got) = p
        .app
        .get_auth(&format!("/v1/purchase/{purchase}"), &key)
        .await;
    assert_eq!(got["unclaimed_usd"], "2.000000", "{got}");
    let v = p.validate(GEMINI_USDC, &session).await;
    assert_eq!(v["unclaimed_usd"], "2.000000", "{v}");
    let over = ask(&p, &purchase, &key, json!("2.5"), to).await;
    assert_error(&over, StatusCode::CONFLICT, "insufficient_balance");
    let back = PrivateKeySigner::random().address();
    let (status, refund) = ask(&p, &purchase, &key, json!("all"), back).await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    assert_eq!(refund["source"], "unclaimed");
    assert_eq!(refund["amount_usd"], "2.000000");
    let id = refund["refund_id"].as_str().unwrap().to_owned();
    let (_, got) = p
        .app
        .get_auth(&format!("/v1/purchase/{purchase}"), &key)
        .await;
    assert_eq!(got["unclaimed_usd"], "0.000000");
    admin(&p, &id, "approve", json!({})).await;
    pay_out(&p, &id).await;
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, back).await,
        U256::from(2_000_000u64)
    );
    assert_eq!(balance_of(&p, &purchase).await, 0);
    ledger_matches(&p, &purchase).await;
}

#[sqlx::test]
async fn without_a_payout_key_the_vendors_own_payment_is_recognised_and_mark_paid_is_checked_on_chain(
    pool: PgPool,
) {
    let (p, _) = refund_setup(pool, false, &[]).await;
    let (purchase, key, _, _) = bought(&p, 10_000_000).await;
    let to = PrivateKeySigner::random().address();
    let (_, first) = ask(&p, &purchase, &key, json!("2"), to).await;
    let (_, second) = ask(&p, &purchase, &key, json!("1"), to).await;
    let first = first["refund_id"].as_str().unwrap().to_owned();
    let second = second["refund_id"].as_str().unwrap().to_owned();
    let (status, approved) = admin(&p, &first, "approve", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    let uri = approved["payment_uri"].as_str().unwrap();
    assert_eq!(
        uri,
        format!(
            "ethereum:{:#x}@31337/transfer?address={to:#x}&uint256=2000000",
            p.anvil.usdc
        )
    );
    admin(&p, &second, "approve", json!({})).await;
    // Waits: nothing is paid by this server.
    pass(&p).await;
    assert_eq!(refund_status(&p, &first).await, "approved");

    // A transaction that pays someone else is refused, and so is a made-up hash.
    let elsewhere = p
        .anvil
        .mint(
            p.anvil.usdc,
            PrivateKeySigner::random().address(),
            5_000_000,
        )
        .await;
    let refused = admin(&p, &first, "mark-paid", json!({"tx_hash": elsewhere})).await;
    assert_error(&refused, StatusCode::CONFLICT, "payment_not_found");
    let refused = admin(
        &p,
        &first,
        "mark-paid",
        json!({"tx_hash": format!("0x{}", "ab".repeat(32))}),
    )
    .await;
    assert_error(&refused, StatusCode::CONFLICT, "payment_not_found");
    assert_eq!(refund_status(&p, &first).await, "approved");

    // The vendor pays the first by hand: the job sees it on chain.
    p.anvil.mint(p.anvil.usdc, to, 2_000_000).await;
    p.anvil.mine(3).await;
    pass(&p).await;
    assert_eq!(refund_status(&p, &first).await, "paid");
    assert_eq!(
        refund_status(&p, &second).await,
        "approved",
        "one transfer pays one refund"
    );
    // The second is paid by hand too and recorded by an operator, checked on chain.
    let paid = p.anvil.mint(p.anvil.usdc, to, 1_000_000).await;
    let (status, marked) = admin(&p, &second, "mark-paid", json!({"tx_hash": paid})).await;
    assert_eq!(status, StatusCode::OK, "{marked}");
    assert_eq!(marked["status"], "paid");
    assert_eq!(marked["tx_hash"], paid.as_str());
}

#[sqlx::test]
async fn a_payment_to_a_checkout_never_finalized_is_unclaimed_and_refundable(pool: PgPool) {
    let (p, _) = refund_setup(pool, true, &[]).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 3_000_000).await;
    p.anvil.mine(3).await;
    let v = p.validate(GEMINI_USDC, &session).await;
    assert_eq!(v["unclaimed_usd"], "3.000000", "{v}");
    let to = PrivateKeySigner::random().address();
    let wrong_flow = p
        .app
        .post(
            "/v1/checkout/refund",
            &json!({"checkout_flow_id": "gemini-api-gateway:anvil:usdt", "checkout_session_id": session, "to_address": format!("{to:#x}")}),
        )
        .await;
    assert_error(&wrong_flow, StatusCode::NOT_FOUND, "checkout_not_found");
    let (status, refund) = p
        .app
        .post(
            "/v1/checkout/refund",
            &json!({"checkout_flow_id": GEMINI_USDC, "checkout_session_id": session, "to_address": format!("{to:#x}")}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    assert_eq!(refund["source"], "checkout");
    assert_eq!(refund["status"], "requested", "always operator-approved");
    assert_eq!(refund["amount_usd"], "3.000000");
    let nothing = p
        .app
        .post(
            "/v1/checkout/refund",
            &json!({"checkout_flow_id": GEMINI_USDC, "checkout_session_id": session, "to_address": format!("{to:#x}")}),
        )
        .await;
    assert_error(&nothing, StatusCode::CONFLICT, "insufficient_balance");
    // The refunded payment is no longer finalize's to credit.
    let v = p.validate(GEMINI_USDC, &session).await;
    assert_eq!(v["unclaimed_usd"], "0.000000");
    assert_eq!(v["success"], false, "{v}");
    let id = refund["refund_id"].as_str().unwrap().to_owned();
    admin(&p, &id, "approve", json!({})).await;
    pay_out(&p, &id).await;
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, to).await,
        U256::from(3_000_000u64)
    );
    let (_, listed) = p.app.get_auth("/v1/admin/refunds?status=paid", TOKEN).await;
    assert_eq!(listed["items"][0]["refund_id"], id.as_str());
}

#[sqlx::test]
async fn small_refunds_to_an_address_that_paid_before_are_approved_at_once(pool: PgPool) {
    let (p, _) = refund_setup(pool, true, &[("REFUND_AUTO_APPROVE_USD", "5")]).await;
    let (purchase, key, _, _) = bought(&p, 10_000_000).await;
    // The deposit was minted: its Transfer comes from the zero address, so mark a known payer.
    let payer = PrivateKeySigner::random().address();
    sqlx::query("update deposit set from_address = $1")
        .bind(format!("{payer:#x}"))
        .execute(&p.app.state.pool)
        .await
        .unwrap();
    let (_, auto) = ask(&p, &purchase, &key, json!("5"), payer).await;
    assert_eq!(auto["status"], "approved", "{auto}");
    assert_eq!(auto["auto_approved"], true);
    let (_, stranger) = ask(
        &p,
        &purchase,
        &key,
        json!("1"),
        PrivateKeySigner::random().address(),
    )
    .await;
    assert_eq!(stranger["status"], "requested");
    let (_, big) = ask(&p, &purchase, &key, json!("0.5"), payer).await;
    assert_eq!(big["status"], "approved");
    pay_out(&p, auto["refund_id"].as_str().unwrap()).await;
}

#[sqlx::test]
async fn the_cli_lists_approves_and_rejects_refunds_and_audits_them_as_cli(pool: PgPool) {
    let (p, _) = refund_setup(pool, false, &[]).await;
    let (purchase, key, _, _) = bought(&p, 10_000_000).await;
    let to = PrivateKeySigner::random().address();
    let (_, first) = ask(&p, &purchase, &key, json!("2"), to).await;
    let (_, second) = ask(&p, &purchase, &key, json!("1"), to).await;
    let first = first["refund_id"].as_str().unwrap().to_owned();
    let second = second["refund_id"].as_str().unwrap().to_owned();
    let db_url = {
        let options = p.app.state.pool.connect_options();
        format!(
            "postgres://{}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        )
    };
    let vars: Vec<(String, String)> = crate::chain::chain_vars(&p.anvil, &p.wallets)
        .into_iter()
        .chain([("DATABASE_URL".to_owned(), db_url)])
        .collect();
    let run = |args: &[&str]| {
        let dir = std::env::temp_dir().join(format!("vendor-cli-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vendor-server"))
            .args(args)
            .current_dir(&dir)
            .env_clear()
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, listed, err) = run(&["refunds", "list"]);
    assert!(ok, "{err}");
    assert!(
        listed.contains(&first) && listed.contains("requested"),
        "{listed}"
    );
    let (ok, out, err) = run(&["refunds", "approve", &first]);
    assert!(ok, "{err}");
    assert!(out.contains("ethereum:"), "the payment link: {out}");
    assert_eq!(refund_status(&p, &first).await, "approved");
    let (ok, _, err) = run(&["refunds", "reject", &second, "--reason", "asked twice"]);
    assert!(ok, "{err}");
    assert_eq!(refund_status(&p, &second).await, "rejected");
    assert_eq!(balance_of(&p, &purchase).await, 8_000_000);
    let (ok, _, err) = run(&["refunds", "approve", &second]);
    assert!(!ok);
    assert!(err.contains("only a requested refund"), "{err}");
    let audited: Vec<(String, String)> = sqlx::query_as(
        "select action, actor from admin_audit where target_type = 'refund' order by audit_id",
    )
    .fetch_all(&p.app.state.pool)
    .await
    .unwrap();
    assert_eq!(
        audited,
        [
            ("refund.approve".to_owned(), "cli".to_owned()),
            ("refund.reject".to_owned(), "cli".to_owned())
        ]
    );
}

#[derive(Debug, sqlx::FromRow)]
struct PayoutRow {
    status: String,
    nonce: Option<i64>,
    tx_hash: Option<String>,
    raw_tx: Option<Vec<u8>>,
    replaced_tx_hashes: Vec<String>,
    replacements: i32,
    broadcast_at: Option<chrono::DateTime<chrono::Utc>>,
    last_error: Option<String>,
}

async fn payout_row(p: &Pay, refund: &str) -> PayoutRow {
    let id = refund.strip_prefix("RefundID_").unwrap();
    sqlx::query_as(
        "select status, nonce, tx_hash, raw_tx, replaced_tx_hashes, replacements, broadcast_at, last_error
         from refund where refund_id = $1::uuid",
    )
    .bind(id)
    .fetch_one(&p.app.state.pool)
    .await
    .unwrap()
}

/// Mines `blocks` blocks, each at `base_fee` wei per gas.
async fn mine_at(p: &Pay, blocks: u64, base_fee: u128) {
    for _ in 0..blocks {
        p.anvil
            .rpc(
                "anvil_setNextBlockBaseFeePerGas",
                json!([format!("{base_fee:#x}")]),
            )
            .await;
        p.anvil.rpc("evm_mine", json!([])).await;
    }
}

/// Every backoff is over (time passes).
async fn refunds_due_now(p: &Pay) {
    sqlx::query("update refund set next_attempt_at = now()")
        .execute(&p.app.state.pool)
        .await
        .unwrap();
}

/// The base fee rises above a signed payout's max fee: the node refuses its bytes. After
/// `replace_after_blocks` the payout job re-signs it at the same nonce with higher fees (the sweeps'
/// machinery); the replacement is mined and the refund paid exactly once. Meanwhile the signed payout
/// counts as gas in flight for its wallet.
#[sqlx::test]
async fn a_payout_priced_out_by_the_base_fee_is_replaced_at_the_same_nonce_and_paid_once(
    pool: PgPool,
) {
    use vendor_server::chain::{replace, sweeper};
    let (p, wallet) = refund_setup(pool, true, &[("REPLACE_AFTER_BLOCKS", "3")]).await;
    let (purchase, key, _, _) = bought(&p, 10_000_000).await;
    let to = PrivateKeySigner::random().address();
    let (_, refund) = ask(&p, &purchase, &key, json!("2"), to).await;
    let id = refund["refund_id"].as_str().unwrap().to_owned();
    assert_eq!(admin(&p, &id, "approve", json!({})).await.0, StatusCode::OK);
    let approved_at = Instant::now();
    pass(&p).await;
    let signed = payout_row(&p, &id).await;
    assert_eq!(signed.status, "paying", "{signed:?}");
    let original = signed.tx_hash.clone().unwrap();
    let tx = replace::decode(signed.raw_tx.as_deref().unwrap()).unwrap();
    let in_flight = sweeper::in_flight_cost(&p.app.state.pool, 31337, wallet.address(), 0)
        .await
        .unwrap();
    assert_eq!(
        in_flight,
        U256::from(tx.gas_limit) * U256::from(tx.max_fee_per_gas),
        "a signed payout is gas in flight for its wallet"
    );

    let high = tx.max_fee_per_gas * 2;
    mine_at(&p, 1, high).await;
    pass(&p).await;
    let refused = payout_row(&p, &id).await;
    assert_eq!(refused.status, "paying");
    assert!(
        refused.broadcast_at.is_none() && refused.last_error.is_some(),
        "{refused:?}"
    );
    assert_eq!(refused.replacements, 0, "not due yet");
    assert_eq!(p.anvil.nonce(wallet.address()).await, 0);

    mine_at(&p, 3, high).await;
    refunds_due_now(&p).await;
    pass(&p).await;
    let replaced = payout_row(&p, &id).await;
    assert_eq!(replaced.replacements, 1, "{replaced:?}");
    assert!(replaced.broadcast_at.is_some());
    assert_eq!(replaced.nonce, signed.nonce, "same nonce");
    assert_eq!(replaced.replaced_tx_hashes, vec![original.clone()]);
    let new = replace::decode(replaced.raw_tx.as_deref().unwrap()).unwrap();
    assert!(new.max_fee_per_gas >= tx.max_fee_per_gas * 125 / 100);
    assert!(new.max_fee_per_gas > high, "at least the node's estimate");
    let replacement = replaced.tx_hash.clone().unwrap();

    for _ in 0..8 {
        p.anvil.mine(1).await;
        refunds_due_now(&p).await;
        pass(&p).await;
        if refund_status(&p, &id).await == "paid" {
            break;
        }
    }
    println!(
        "refund payout on anvil with one replacement (replace_after_blocks = 3): approve -> paid in {:?}",
        approved_at.elapsed()
    );
    let paid = payout_row(&p, &id).await;
    assert_eq!(paid.status, "paid", "{paid:?}");
    assert_eq!(paid.tx_hash.as_deref(), Some(replacement.as_str()));
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, to).await,
        U256::from(2_000_000u64),
        "paid exactly once"
    );
    assert_eq!(
        p.anvil.nonce(wallet.address()).await,
        1,
        "one transaction at that nonce"
    );
    assert_eq!(p.outbox("webhook", "refund.paid").await, 1);
    assert_eq!(p.outbox("webhook", "tx.stuck").await, 0);
    assert_eq!(
        sweeper::in_flight_cost(&p.app.state.pool, 31337, wallet.address(), 1)
            .await
            .unwrap(),
        U256::ZERO
    );
}

/// A payout the node holds but cannot mine (it does not fit the block gas limit) reaches the
/// chain's max_fee_gwei: one `tx.stuck` alert. The operator cancels it: a 0-value transfer of the
/// payout wallet to itself at its nonce is mined instead, the refund fails with nothing paid, and a
/// retry pays it once on the next nonce.
#[sqlx::test]
async fn a_payout_stuck_at_the_fee_cap_alerts_once_and_a_cancel_then_retry_pays_once(pool: PgPool) {
    use vendor_server::chain::replace;
    let (p, wallet) = refund_setup(
        pool,
        true,
        &[("REPLACE_AFTER_BLOCKS", "3"), ("MAX_FEE_GWEI", "1")],
    )
    .await;
    let (purchase, key, _, _) = bought(&p, 10_000_000).await;
    let to = PrivateKeySigner::random().address();
    let (_, refund) = ask(&p, &purchase, &key, json!("3"), to).await;
    let id = refund["refund_id"].as_str().unwrap().to_owned();
    assert_eq!(admin(&p, &id, "approve", json!({})).await.0, StatusCode::OK);
    p.anvil.rpc("evm_setAutomine", json!([false])).await;
    pass(&p).await;
    pass(&p).await;
    let sent = payout_row(&p, &id).await;
    assert!(sent.broadcast_at.is_some(), "{sent:?}");
    let signed = replace::decode(sent.raw_tx.as_deref().unwrap()).unwrap();
    assert!(
        signed.max_fee_per_gas <= 1_000_000_000,
        "signed within the cap"
    );
    p.anvil
        .rpc("evm_setBlockGasLimit", json!([format!("{:#x}", 30_000)]))
        .await;
    for _ in 0..3 {
        p.anvil.mine(3).await;
        refunds_due_now(&p).await;
        pass(&p).await;
    }
    let stuck: bool = sqlx::query_scalar("select stuck_at is not null from refund")
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap();
    assert!(stuck, "{:?}", payout_row(&p, &id).await);
    assert_eq!(p.outbox("webhook", "tx.stuck").await, 1);
    assert_eq!(p.outbox("alert", "tx.stuck").await, 1);
    // The console sees the stuck payout: its nonce, current transaction, replacements, since when
    // it is stuck, its fee against the chain's cap, and that it can be bumped or cancelled.
    let now = payout_row(&p, &id).await;
    let (status, listed) = p
        .app
        .get_auth("/v1/admin/refunds?status=paying", TOKEN)
        .await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let payout = &listed["items"][0]["payout"];
    assert_eq!(
        payout["from_address"],
        format!("{:#x}", wallet.address()).as_str(),
        "{payout}"
    );
    assert_eq!(payout["nonce"], sent.nonce.unwrap(), "{payout}");
    assert_eq!(
        payout["tx_hash"],
        now.tx_hash.as_deref().unwrap(),
        "{payout}"
    );
    assert_eq!(payout["replacements"], now.replacements, "{payout}");
    assert_eq!(
        payout["replaced_tx_hashes"],
        json!(now.replaced_tx_hashes),
        "{payout}"
    );
    assert!(payout["stuck_at"].is_string(), "{payout}");
    assert_eq!(payout["fee_cap_wei"], "1000000000", "{payout}");
    assert_eq!(payout["at_fee_cap"], true, "{payout}");
    let current = replace::decode(now.raw_tx.as_deref().unwrap()).unwrap();
    assert_eq!(
        payout["max_fee_per_gas_wei"],
        current.max_fee_per_gas.to_string().as_str(),
        "{payout}"
    );
    assert_eq!(payout["replaceable"], true, "{payout}");
    assert!(payout["operator_action"].is_null(), "{payout}");
    assert!(payout["fee_wei"].is_null(), "not mined: {payout}");
    // Customers never see it.
    let (_, mine) = p
        .app
        .get_auth(&format!("/v1/purchase/{purchase}/refunds"), &key)
        .await;
    assert!(mine.to_string().contains(&id), "{mine}");
    assert!(!mine.to_string().contains("\"payout\""), "{mine}");
    let before_cancel = p.anvil.eth_balance(wallet.address()).await;

    let (status, body) = admin(&p, &id, "cancel-payout", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["payout"]["operator_action"], "cancel", "{body}");
    pass(&p).await;
    let cancelling = payout_row(&p, &id).await;
    let cancel = replace::decode(cancelling.raw_tx.as_deref().unwrap()).unwrap();
    assert_eq!(cancel.to.to(), Some(&wallet.address()));
    assert_eq!(cancel.value, U256::ZERO);
    assert_eq!(cancelling.nonce, sent.nonce, "same nonce");
    // 21,000 gas fits where the token transfer did not: the cancellation is mined.
    p.anvil.mine(3).await;
    refunds_due_now(&p).await;
    pass(&p).await;
    let failed = payout_row(&p, &id).await;
    assert_eq!(failed.status, "failed", "{failed:?}");
    assert!(failed.last_error.unwrap().contains("cancelled"));
    assert_eq!(p.anvil.token_balance(p.anvil.usdc, to).await, U256::ZERO);
    assert_eq!(p.anvil.nonce(wallet.address()).await, 1);
    // The cancellation was mined: what it cost the wallet is recorded on the refund.
    let spent = before_cancel - p.anvil.eth_balance(wallet.address()).await;
    let (_, listed) = p
        .app
        .get_auth("/v1/admin/refunds?status=failed", TOKEN)
        .await;
    let payout = &listed["items"][0]["payout"];
    assert_eq!(payout["cancelled"], true, "{payout}");
    assert_eq!(payout["replaceable"], false, "{payout}");
    assert_eq!(payout["fee_wei"], spent.to_string().as_str(), "{payout}");

    p.anvil
        .rpc(
            "evm_setBlockGasLimit",
            json!([format!("{:#x}", 30_000_000)]),
        )
        .await;
    p.anvil.rpc("evm_setAutomine", json!([true])).await;
    assert_eq!(admin(&p, &id, "retry", json!({})).await.0, StatusCode::OK);
    pay_out(&p, &id).await;
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, to).await,
        U256::from(3_000_000u64),
        "paid once"
    );
    assert_eq!(p.anvil.nonce(wallet.address()).await, 2);
    let audited: i64 = p
        .scalar_i64("select count(*) from admin_audit where action = 'refund.cancel_payout'")
        .await;
    assert_eq!(audited, 1);
}

/// The payout latency README "Refunds" states: on anvil, with the server's own jobs running (the
/// payout job idles 5 s between empty passes) and a block a second, from the operator's approval to
/// `paid` (2 confirmations on the test chain). Prints the figure.
#[sqlx::test]
async fn refund_payout_latency_on_anvil_with_the_jobs_running(pool: PgPool) {
    let (p, _) = refund_setup(pool, true, &[("JOBS_ENABLED", "true")]).await;
    let (purchase, key, _, _) = bought(&p, 10_000_000).await;
    let to = PrivateKeySigner::random().address();
    let (status, refund) = ask(&p, &purchase, &key, json!("3"), to).await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    let id = refund["refund_id"].as_str().unwrap().to_owned();
    let approved_at = Instant::now();
    let (status, approved) = admin(&p, &id, "approve", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    let mut mined_at = Instant::now();
    while refund_status(&p, &id).await != "paid" {
        assert!(
            approved_at.elapsed() < std::time::Duration::from_secs(60),
            "not paid after 60 s: {}",
            refund_status(&p, &id).await
        );
        if mined_at.elapsed() >= std::time::Duration::from_secs(1) {
            p.anvil.mine(1).await;
            mined_at = Instant::now();
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    println!(
        "refund payout latency on anvil (jobs running, a block a second, 2 confirmations): approve -> paid in {:?}",
        approved_at.elapsed()
    );
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, to).await,
        U256::from(3_000_000u64)
    );
}
