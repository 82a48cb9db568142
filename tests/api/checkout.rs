//! Checkout and on-chain payments against a real anvil: initiate → pay → validate → finalize → sweep.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;
use vendor_server::chain::{sweeper, wallet};
use vendor_server::checkout::deposits;
use vendor_server::checkout::provision;
use vendor_server::domain::ids::PurchaseId;
use vendor_server::jobs::Outcome;
use vendor_server::providers::{Delivered, ProviderError, ProvisionRequest, ResourceProvider};

use crate::chain::{Anvil, TestProvider, Wallets, spawn_pay_app};
use crate::helpers::{TestApp, assert_error};

pub const GEMINI_USDC: &str = "gemini-api-gateway:anvil:usdc";
pub const GEMINI_USDT: &str = "gemini-api-gateway:anvil:usdt";
pub const S3_LEGACY: &str = "001_amazon_storage_crypto_wallet_topup_gift_card_only";

pub struct Pay {
    pub anvil: Anvil,
    pub wallets: Wallets,
    pub app: TestApp,
    pub gemini: Arc<TestProvider>,
    pub s3: Arc<TestProvider>,
}

/// anvil + an app on it; the gas wallet is funded with 10 ETH unless `unfunded_gas`.
pub async fn setup_with(
    pool: PgPool,
    extra: &[(&str, &str)],
    gemini_failures: usize,
    unfunded_gas: bool,
) -> Pay {
    let anvil = Anvil::start().await;
    let wallets = Wallets::random();
    if !unfunded_gas {
        anvil
            .set_eth(
                wallets.gas.address(),
                U256::from(10u64).pow(U256::from(19u64)),
            )
            .await;
    }
    let gemini = TestProvider::new("gemini", gemini_failures);
    let s3 = TestProvider::new("s3", 0);
    let app = spawn_pay_app(pool, &anvil, &wallets, &[gemini.clone(), s3.clone()], extra).await;
    Pay {
        anvil,
        wallets,
        app,
        gemini,
        s3,
    }
}

pub async fn setup(pool: PgPool) -> Pay {
    setup_with(pool, &[], 0, false).await
}

/// A paid and finalized checkout ([`Pay::paid_usdc`]).
pub struct Paid {
    /// The finalize answer.
    pub answer: Value,
    /// The deposit address paid.
    pub address: Address,
    pub session: String,
}

impl Pay {
    /// A USDC checkout paid with `units` and finalized (a fresh OfficeX id); the finalize answer.
    pub async fn bought_usdc(&self, units: u64) -> Value {
        self.paid_usdc(units).await.answer
    }

    /// [`Pay::bought_usdc`] with the deposit address paid and the session.
    pub async fn paid_usdc(&self, units: u64) -> Paid {
        let (session, address) = self.initiate(GEMINI_USDC).await;
        self.anvil.mint(self.anvil.usdc, address, units).await;
        self.anvil.mine(2).await;
        let answer = self.finalized(GEMINI_USDC, &session).await;
        Paid {
            answer,
            address,
            session,
        }
    }

    /// Finalizes `session` with a fresh OfficeX id; the answer, which must be a success.
    pub async fn finalized(&self, flow: &str, session: &str) -> Value {
        let f = self
            .finalize(
                flow,
                session,
                &format!("PurchaseID_{}", uuid::Uuid::new_v4()),
            )
            .await;
        assert_eq!(f["success"], true, "{f}");
        f
    }

    pub async fn initiate(&self, flow: &str) -> (String, Address) {
        let (status, body) = self
            .app
            .post(
                "/v1/checkout/initiate",
                &json!({"checkout_flow_id": flow, "email": "c@example.com"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let address: Address = body["crypto_checkout"]["receiving_address"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        (
            body["checkout_session_id"].as_str().unwrap().to_owned(),
            address,
        )
    }

    pub async fn validate(&self, flow: &str, session: &str) -> Value {
        let (status, body) = self
            .app
            .post(
                "/v1/checkout/validate",
                &json!({"checkout_flow_id": flow, "checkout_session_id": session}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn finalize(&self, flow: &str, session: &str, officex_id: &str) -> Value {
        let (status, body) = self
            .app
            .post(
                "/v1/checkout/finalize",
                &json!({
                    "checkout_flow_id": flow,
                    "checkout_session_id": session,
                    "officex_purchase_id": officex_id,
                    "proxy_buyer_data": {"org_id": "DriveID_abc", "org_endpoint": "https://abc.icp0.io", "user_id": "UserID_u"},
                    "sweep_tokens": []
                }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn watch(&self) -> Outcome {
        deposits::run_once(&self.app.state.checkouts())
            .await
            .unwrap()
    }

    /// Runs the sweeper (mining between passes) until no sweep is unfinished.
    pub async fn sweep_all(&self) {
        for _ in 0..12 {
            sweeper::run_once(&self.app.state.pool, &self.app.state.chains)
                .await
                .unwrap();
            self.anvil.mine(2).await;
            let open: i64 = sqlx::query_scalar(
                "select count(*) from sweep where status not in ('confirmed', 'failed')",
            )
            .fetch_one(&self.app.state.pool)
            .await
            .unwrap();
            let planned_any: i64 = sqlx::query_scalar("select count(*) from sweep")
                .fetch_one(&self.app.state.pool)
                .await
                .unwrap();
            if open == 0 && planned_any > 0 {
                return;
            }
        }
        panic!("sweeps did not finish");
    }

    pub async fn scalar_i64(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.app.state.pool)
            .await
            .unwrap()
    }

    pub async fn balance(&self) -> i64 {
        self.scalar_i64("select coalesce(sum(balance_micros), 0)::bigint from purchase")
            .await
    }

    pub async fn outbox(&self, channel: &str, event: &str) -> i64 {
        sqlx::query_scalar("select count(*) from outbox where channel = $1 and event_type = $2")
            .bind(channel)
            .bind(event)
            .fetch_one(&self.app.state.pool)
            .await
            .unwrap()
    }
}

#[sqlx::test]
async fn full_usdc_flow_credits_once_and_sweeps_by_eip3009_relay(pool: PgPool) {
    let p = setup(pool).await;
    let (status, init) = p
        .app
        .post(
            "/v1/checkout/initiate",
            &json!({"checkout_flow_id": GEMINI_USDC, "tracer": "TracerID_x"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{init}");
    assert_eq!(init["checkout_pattern"], "CRYPTO_WALLET_TOPUP");
    assert_eq!(
        init["validation_endpoint"],
        p.app.url("/v1/checkout/validate")
    );
    assert_eq!(
        init["finalization_endpoint"],
        p.app.url("/v1/checkout/finalize")
    );
    assert_eq!(init["tracer"], "TracerID_x");
    let cc = &init["crypto_checkout"];
    assert_eq!(cc["token_address"], p.anvil.usdc.to_checksum(None));
    assert_eq!(
        (cc["token_symbol"].as_str(), cc["token_decimals"].as_u64()),
        (Some("USDC"), Some(6))
    );
    assert_eq!(cc["minimum_amount_decimals"], 1.0);
    assert_eq!(
        (cc["chain"].as_str(), cc["chain_id"].as_u64()),
        (Some("anvil"), Some(31337))
    );
    assert_eq!(cc["accepted"][0]["tokens"].as_array().unwrap().len(), 2);
    let session = init["checkout_session_id"].as_str().unwrap().to_owned();
    let address: Address = cc["receiving_address"].as_str().unwrap().parse().unwrap();
    // Derived at the first index of the sequence; nothing secret stored.
    assert_eq!(
        address,
        wallet::derive_address(&p.wallets.mnemonic, 0).unwrap()
    );

    let tx = p.anvil.mint(p.anvil.usdc, address, 5_000_000).await;
    let v = p.validate(GEMINI_USDC, &session).await;
    assert_eq!(v["success"], false, "{v}");
    assert_eq!(v["pending_balance_usd"], "5.000000");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("Insufficient funds")
    );
    p.anvil.mine(2).await;
    let v = p.validate(GEMINI_USDC, &session).await;
    assert_eq!(v["success"], true, "{v}");
    assert_eq!(v["confirmed_balance_usd"], "5.000000");
    assert_eq!(v["type"], "CRYPTO_WALLET_TOPUP");

    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_one").await;
    assert_eq!(f["success"], true, "{f}");
    let r = &f["receipt"];
    assert_eq!(r["status"], "RUNNING");
    assert!(r["redeem_code"].as_str().unwrap().starts_with("gk_secret_"));
    let key = r["customer_billing_api_key"].as_str().unwrap();
    let purchase = r["vendor_purchase_id"].as_str().unwrap();
    assert_eq!(
        r["billing_url"].as_str().unwrap(),
        p.app.url(&format!(
            "/v1/dashboard/customer#vendor_purchase_id={purchase}&customer_billing_api_key={key}"
        ))
    );
    assert_eq!(r["skip_to_final_redirect"], r["billing_url"]);
    assert_eq!(r["delivery_url"], r["billing_url"]);
    assert_eq!(r["checkout_session_id"], session.as_str());
    // The customer's purchase view shows where to top up, and no secret.
    let (status, view) = p
        .app
        .get_auth(&format!("/v1/purchase/{purchase}"), key)
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{view}");
    let wallet = &view["checkout_wallet"];
    assert_eq!(
        wallet["evm_address"].as_str().unwrap().to_lowercase(),
        format!("{address:#x}")
    );
    assert_eq!(wallet["checkout_session_id"], session.as_str());
    assert_eq!(view["purchase"]["balance_usd"], "5.000000");
    assert_eq!(view["purchase"]["resource"]["kind"], "gemini", "{view}");
    assert_eq!(view["pending_deposits"], json!([]));
    assert!(!view.to_string().contains(key), "{view}");

    assert_eq!(p.balance().await, 5_000_000);
    let reference: String =
        sqlx::query_scalar("select reference from ledger_entry where kind = 'deposit'")
            .fetch_one(&p.app.state.pool)
            .await
            .unwrap();
    assert!(
        reference.starts_with(&format!("deposit:31337:{tx}:")),
        "{reference}"
    );
    let status: String = sqlx::query_scalar("select status from purchase")
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap();
    assert_eq!(status, "active");
    assert_eq!(p.outbox("webhook", "purchase.created").await, 1);
    assert_eq!(p.outbox("officex", "purchase.created").await, 1);
    assert_eq!(p.outbox("webhook", "deposit.credited").await, 1);
    // Secrets are never stored in plain text.
    let leaks = p
        .scalar_i64(&format!(
            "select count(*) from checkout where receipt_public::text like '%{key}%' or receipt_public::text like '%gk_secret%'"
        ))
        .await;
    assert_eq!(leaks, 0);

    // A top-up on its way shows with its confirmations counting up, then is in the balance.
    let topup = p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
    p.watch().await;
    let pending = |view: &Value| view["pending_deposits"].as_array().unwrap().clone();
    let (_, view) = p
        .app
        .get_auth(&format!("/v1/purchase/{purchase}"), key)
        .await;
    let incoming = pending(&view);
    assert_eq!(incoming.len(), 1, "{view}");
    assert_eq!(incoming[0]["tx_hash"], topup.as_str());
    assert_eq!(incoming[0]["amount_usd"], "2.000000");
    assert_eq!(incoming[0]["status"], "pending");
    assert_eq!(incoming[0]["confirmations"], 1);
    assert_eq!(incoming[0]["required_confirmations"], 2);
    assert_eq!(
        incoming[0]["explorer_url"],
        format!("https://explorer.test/tx/{topup}")
    );
    p.anvil.mine(1).await;
    let (_, view) = p
        .app
        .get_auth(&format!("/v1/purchase/{purchase}"), key)
        .await;
    assert_eq!(pending(&view)[0]["confirmations"], 2);
    p.anvil.mine(1).await;
    p.watch().await;
    let (_, view) = p
        .app
        .get_auth(&format!("/v1/purchase/{purchase}"), key)
        .await;
    assert_eq!(pending(&view), Vec::<Value>::new(), "{view}");
    assert_eq!(view["purchase"]["balance_usd"], "7.000000");
    assert_eq!(p.balance().await, 7_000_000);

    p.sweep_all().await;
    let sweep: (String, String) = sqlx::query_as("select method, status from sweep")
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap();
    assert_eq!(sweep, ("eip3009".to_owned(), "confirmed".to_owned()));
    assert_eq!(
        p.anvil
            .token_balance(p.anvil.usdc, p.wallets.treasury)
            .await,
        U256::from(7_000_000u64)
    );
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, address).await,
        U256::ZERO
    );
    // No gas was ever sent to the deposit address; it never sent a transaction itself.
    assert_eq!(p.anvil.eth_balance(address).await, U256::ZERO);
    assert_eq!(p.anvil.nonce(address).await, 0);
    assert_eq!(p.anvil.nonce(p.wallets.gas.address()).await, 1);
    // Credit is untouched by the sweep.
    assert_eq!(p.balance().await, 7_000_000);
}

#[sqlx::test]
async fn usdt_sweep_tops_up_exact_gas_then_transfers_and_every_token_counts(pool: PgPool) {
    let p = setup(pool).await;
    let (session, address) = p.initiate(GEMINI_USDT).await;
    // The address accepts every configured stablecoin.
    p.anvil.mint(p.anvil.usdt, address, 3_000_000).await;
    p.anvil.mint(p.anvil.usdc, address, 1_500_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDT, &session, "PurchaseID_t").await;
    assert_eq!(f["success"], true, "{f}");
    assert_eq!(p.balance().await, 4_500_000);

    p.sweep_all().await;
    let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
        "select token_symbol, method, status, topup_tx_hash from sweep order by token_symbol",
    )
    .fetch_all(&p.app.state.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0].1.as_str(), rows[0].2.as_str()),
        ("eip3009", "confirmed")
    );
    assert_eq!(
        (rows[1].0.as_str(), rows[1].1.as_str(), rows[1].2.as_str()),
        ("usdt", "transfer", "confirmed")
    );
    assert!(rows[1].3.is_some(), "USDT needs a gas top-up");
    assert_eq!(
        p.anvil
            .token_balance(p.anvil.usdt, p.wallets.treasury)
            .await,
        U256::from(3_000_000u64)
    );
    assert_eq!(
        p.anvil
            .token_balance(p.anvil.usdc, p.wallets.treasury)
            .await,
        U256::from(1_500_000u64)
    );
    assert_eq!(
        p.anvil.nonce(address).await,
        1,
        "one transfer from the deposit address"
    );
    // The top-up was estimated: what is left is reported dust, a fraction of the top-up.
    let (topup, dust): (String, String) = sqlx::query_as(
        "select topup_wei::text, dust_wei::text from sweep where method = 'transfer'",
    )
    .fetch_one(&p.app.state.pool)
    .await
    .unwrap();
    let (topup, dust): (U256, U256) = (topup.parse().unwrap(), dust.parse().unwrap());
    assert_eq!(p.anvil.eth_balance(address).await, dust);
    assert!(dust < topup, "dust {dust} vs top-up {topup}");
    assert_eq!(p.balance().await, 4_500_000);
    // Gas per swept deposit (see the README): the relay is one transaction, the other two.
    let gas: Vec<(String, i64)> =
        sqlx::query_as("select method, gas_used from sweep order by method")
            .fetch_all(&p.app.state.pool)
            .await
            .unwrap();
    println!(
        "gas per sweep: eip3009 relay {} (1 tx, no ETH to the deposit address); top-up 21000 + transfer {} (2 txs, dust {dust} wei left)",
        gas[0].1, gas[1].1
    );
}

#[sqlx::test]
async fn legacy_s3_flow_delivers_the_gift_card_and_accepts_org_endpoint(pool: PgPool) {
    let p = setup(pool).await;
    let (session, address) = p.initiate(S3_LEGACY).await;
    p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(S3_LEGACY, &session, "PurchaseID_s3").await;
    let r = &f["receipt"];
    assert!(
        r["skip_to_final_redirect"]
            .as_str()
            .unwrap()
            .starts_with("https://officex.app/org/current/redeem/disk-giftcard?redeem=secret-"),
        "{r}"
    );
    assert_eq!(r["skip_to_final_cta"], "View Giftcard");
    assert_eq!(r["status"], "RUNNING");
    let host: String = sqlx::query_scalar("select customer_org_host from purchase")
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap();
    assert_eq!(host, "https://abc.icp0.io");
    assert_eq!(p.s3.calls.load(Ordering::SeqCst), 1);
}

#[sqlx::test]
async fn finalize_is_idempotent_and_replays_secrets_only_to_the_same_purchase(pool: PgPool) {
    let p = setup(pool).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
    p.anvil.mine(2).await;
    // Two concurrent finalizes: one purchase.
    let (a, b) = tokio::join!(
        p.finalize(GEMINI_USDC, &session, "PurchaseID_same"),
        p.finalize(GEMINI_USDC, &session, "PurchaseID_same")
    );
    assert_eq!(a["receipt"], b["receipt"]);
    let again = p.finalize(GEMINI_USDC, &session, "PurchaseID_same").await;
    assert_eq!(again["receipt"], a["receipt"]);
    assert!(again["receipt"]["customer_billing_api_key"].is_string());
    // Another OfficeX purchase id on a finalized session: a conflict (SPEC §9), never a receipt.
    let other = p
        .app
        .post(
            "/v1/checkout/finalize",
            &finalize_body(GEMINI_USDC, &session, "PurchaseID_other"),
        )
        .await;
    assert_error(&other, StatusCode::CONFLICT, "officex_purchase_id_in_use");
    assert!(!other.1.to_string().contains("vsc_"), "{}", other.1);

    assert_eq!(p.scalar_i64("select count(*) from purchase").await, 1);
    assert_eq!(p.scalar_i64("select count(*) from ledger_entry").await, 1);
    assert_eq!(p.gemini.calls.load(Ordering::SeqCst), 1);
    p.sweep_all().await;
    p.finalize(GEMINI_USDC, &session, "PurchaseID_same").await;
    p.sweep_all().await;
    assert_eq!(p.scalar_i64("select count(*) from sweep").await, 1);
    assert_eq!(p.balance().await, 2_000_000);
}

#[sqlx::test]
async fn topup_credits_each_deposit_exactly_once(pool: PgPool) {
    let p = setup(pool).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_t").await;
    let key = f["receipt"]["customer_billing_api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let purchase = f["receipt"]["vendor_purchase_id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A new deposit, seen but unconfirmed: the purchase is marked "topup pending".
    p.anvil.mint(p.anvil.usdc, address, 3_000_000).await;
    p.watch().await;
    assert_eq!(
        p.scalar_i64("select count(*) from purchase where pending_deposit_at is not null")
            .await,
        1
    );
    p.anvil.mine(2).await;

    let body = json!({"checkout_session_id": session, "sweep_tokens": []});
    let verify = format!("/v1/purchase/{purchase}/verify-topup");
    let by_query = format!("/v1/checkout/topup?auth={key}");
    let target = json!({"min_target_balance": 1});
    let (t1, t2, t3, v) = tokio::join!(
        p.app.post_auth("/v1/checkout/topup", &key, &body),
        p.app.post_auth("/v1/checkout/topup", &key, &body),
        p.app.post(&by_query, &body),
        p.app.post_auth(&verify, &key, &target),
    );
    for r in [&t1, &t2, &t3, &v] {
        assert_eq!(r.0, StatusCode::OK, "{}", r.1);
    }
    let credited_by_topup = [&t1, &t2, &t3]
        .iter()
        .filter(|r| r.1["success"] == true)
        .count();
    let credited_by_verify = usize::from(v.1.get("topup_amount").is_some());
    assert_eq!(
        credited_by_topup + credited_by_verify,
        1,
        "{t1:?} {t2:?} {t3:?} {v:?}"
    );
    for r in [&t1, &t2, &t3] {
        assert_eq!(r.1["updatedValue"], 5.0);
    }
    p.watch().await;
    assert_eq!(p.balance().await, 5_000_000);
    assert_eq!(
        p.scalar_i64("select count(*) from ledger_entry where kind = 'deposit'")
            .await,
        2
    );
    assert_eq!(
        p.scalar_i64("select count(*) from purchase where pending_deposit_at is not null")
            .await,
        0
    );

    // Nothing new: the reference's "nothing to credit" shape.
    let (status, nothing) = p.app.post_auth(&verify, &key, &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(nothing["min_target_balance_for_topup"], 0.0, "{nothing}");
    assert!(nothing.get("current_wallet_balance_usd").is_some());

    // After finalize the watcher credits new deposits by itself (and tells OfficeX).
    p.anvil.mint(p.anvil.usdt, address, 1_000_000).await;
    p.anvil.mine(2).await;
    assert!(matches!(p.watch().await, Outcome::Processed(_)));
    assert_eq!(p.balance().await, 6_000_000);
    assert_eq!(p.outbox("officex", "deposit.credited").await, 2);
    assert_eq!(p.outbox("webhook", "deposit.credited").await, 3);
}

#[sqlx::test]
async fn under_the_minimum_finalize_refuses_and_nothing_is_lost(pool: PgPool) {
    let p = setup(pool).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 500_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_u").await;
    assert_eq!(f["success"], false, "{f}");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("Insufficient funds. Found: 0.500000 USD confirmed, Required: 1.000000 USD")
    );
    assert_eq!(f["receipt"]["checkout_session_id"], session.as_str());
    assert_eq!(f["receipt"]["checkout_flow_id"], GEMINI_USDC);
    assert!(f["receipt"]["vendor_disclaimer"].is_string());
    assert_eq!(p.scalar_i64("select count(*) from purchase").await, 0);

    p.anvil.mint(p.anvil.usdc, address, 600_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_u").await;
    assert_eq!(f["success"], true, "{f}");
    assert_eq!(p.balance().await, 1_100_000);
}

#[sqlx::test]
async fn a_payment_after_expiry_is_still_detected_and_creditable(pool: PgPool) {
    let p = setup_with(pool, &[("CHECKOUT_EXPIRY_HOURS", "0")], 0, false).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 1_000_000).await;
    p.anvil.mine(2).await;
    // The watcher finds it without anyone calling validate.
    assert!(matches!(p.watch().await, Outcome::Processed(_)));
    assert_eq!(
        p.scalar_i64("select count(*) from deposit where status = 'confirmed'")
            .await,
        1
    );
    let v = p.validate(GEMINI_USDC, &session).await;
    assert_eq!(
        (v["success"].as_bool(), v["expired"].as_bool()),
        (Some(true), Some(true)),
        "{v}"
    );
    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_late").await;
    assert_eq!(f["success"], true, "{f}");
    assert_eq!(p.balance().await, 1_000_000);
}

#[sqlx::test]
async fn a_reorged_credited_deposit_is_reversed_once_with_an_alert(pool: PgPool) {
    let p = setup(pool).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    let before_payment = p.anvil.snapshot().await;
    p.anvil.mint(p.anvil.usdc, address, 4_000_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_r").await;
    assert_eq!(f["success"], true);
    assert_eq!(p.balance().await, 4_000_000);

    // The payment's block leaves the chain; a longer chain without it replaces it.
    p.anvil.revert(before_payment).await;
    p.anvil.mine(6).await;
    p.watch().await;
    assert_eq!(
        p.scalar_i64("select count(*) from deposit where status = 'reorged'")
            .await,
        1
    );
    assert_eq!(p.outbox("alert", "deposit.reorged").await, 1);
    assert_eq!(p.outbox("webhook", "deposit.reversed").await, 1);
    p.watch().await;
    assert_eq!(
        p.outbox("alert", "deposit.reorged").await,
        1,
        "one alert per reorg"
    );
    assert_eq!(p.balance().await, 0, "the credit is taken back");
    assert_eq!(
        p.scalar_i64("select count(*) from ledger_entry where kind = 'reversal'")
            .await,
        1
    );
    assert_eq!(p.scalar_i64("select count(*) from ledger_entry").await, 2);
    assert_eq!(p.outbox("webhook", "deposit.reversed").await, 1);

    // A reorg before confirmations: the pending deposit simply disappears.
    let snap = p.anvil.snapshot().await;
    p.anvil.mint(p.anvil.usdc, address, 1_000_000).await;
    p.watch().await;
    assert_eq!(
        p.scalar_i64("select count(*) from deposit where status = 'pending'")
            .await,
        1
    );
    p.anvil.revert(snap).await;
    p.anvil.mine(4).await;
    p.watch().await;
    assert_eq!(
        p.scalar_i64("select count(*) from deposit where status = 'pending'")
            .await,
        0
    );
    assert_eq!(p.balance().await, 0);
    assert_eq!(p.scalar_i64("select count(*) from ledger_entry").await, 2);
}

#[sqlx::test]
async fn provisioning_failures_answer_awaiting_and_are_retried(pool: PgPool) {
    let p = setup_with(pool, &[], 1, false).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 3_000_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_p").await;
    assert_eq!(f["success"], true, "{f}");
    assert_eq!(f["receipt"]["status"], "AWAITING");
    assert!(f["receipt"]["customer_billing_api_key"].is_string());
    let (status, attempts): (String, i32) =
        sqlx::query_as("select status, provision_attempts from purchase")
            .fetch_one(&p.app.state.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    // Credit is intact whatever the provider did.
    assert_eq!(p.balance().await, 3_000_000);
    assert_eq!(
        provision::run_once(&p.app.state.checkouts()).await.unwrap(),
        Outcome::Idle,
        "backoff not due yet"
    );
    sqlx::query("update purchase set next_provision_at = now()")
        .execute(&p.app.state.pool)
        .await
        .unwrap();
    assert_eq!(
        provision::run_once(&p.app.state.checkouts()).await.unwrap(),
        Outcome::Processed(1)
    );
    let status: String = sqlx::query_scalar("select status from purchase")
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap();
    assert_eq!(status, "active");
    let replay = p.finalize(GEMINI_USDC, &session, "PurchaseID_p").await;
    assert_eq!(replay["receipt"]["status"], "RUNNING");
    assert!(
        replay["receipt"]["redeem_code"]
            .as_str()
            .unwrap()
            .starts_with("gk_secret_")
    );
    assert_eq!(
        replay["receipt"]["customer_billing_api_key"],
        f["receipt"]["customer_billing_api_key"]
    );
}

#[sqlx::test]
async fn bad_inputs_are_4xx_json(pool: PgPool) {
    let p = setup_with(pool, &[("CHECKOUT_RATE_LIMIT_PER_MINUTE", "6")], 0, false).await;
    let app = &p.app;
    let got = app
        .post_raw("/v1/checkout/initiate", "application/json", b"{".to_vec())
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "malformed_json");
    let got = app.post("/v1/checkout/initiate", &json!({})).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_body");
    let got = app
        .post(
            "/v1/checkout/initiate",
            &json!({"checkout_flow_id": "nope"}),
        )
        .await;
    assert_error(&got, StatusCode::NOT_FOUND, "checkout_flow_not_found");
    let got = app
        .post(
            "/v1/checkout/initiate",
            &json!({"checkout_flow_id": GEMINI_USDC, "email": "nope"}),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_body");

    let got = app
        .post(
            "/v1/checkout/validate",
            &json!({"checkout_flow_id": GEMINI_USDC, "checkout_session_id": "x"}),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_request");
    let unknown = "CheckoutSessionID_00000000-0000-4000-8000-000000000000";
    let v = p.validate(GEMINI_USDC, unknown).await;
    assert_eq!(v["success"], false);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("Wallet not found")
    );
    let got = app
        .post(
            "/v1/checkout/finalize",
            &json!({"checkout_flow_id": GEMINI_USDC, "checkout_session_id": unknown}),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_body");
    let f = p.finalize(GEMINI_USDC, unknown, "PurchaseID_x").await;
    assert_eq!(f["success"], false);
    let got = app
        .post(
            "/v1/checkout/finalize",
            &json!({"checkout_flow_id": 5, "checkout_session_id": unknown}),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_body");

    let body = json!({"checkout_session_id": unknown});
    let no_key = app.post("/v1/checkout/topup", &body).await;
    assert_error(&no_key, StatusCode::UNAUTHORIZED, "unauthorized");
    let unknown_session = app
        .post_auth("/v1/checkout/topup", "vsc_wrong", &body)
        .await;
    assert_error(&unknown_session, StatusCode::UNAUTHORIZED, "unauthorized");
    let bad = app
        .post_auth(
            "/v1/checkout/topup",
            "vsc_wrong",
            &json!({"checkout_session_id": "garbage"}),
        )
        .await;
    assert_eq!(bad, unknown_session, "same 401 whatever is wrong");
    let got = app
        .post_auth("/v1/purchase/nope/verify-topup", "vsc_wrong", &json!({}))
        .await;
    assert_eq!(got, unknown_session);
    let got = app
        .post_auth(
            "/v1/purchase/CustomerPurchaseID_00000000-0000-4000-8000-000000000000/verify-topup",
            "vsc_wrong",
            &json!({"min_target_balance": "1.5"}),
        )
        .await;
    assert_eq!(got, unknown_session);

    // A real purchase, a wrong key: the same 401.
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 1_000_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_k").await;
    let purchase = f["receipt"]["vendor_purchase_id"].as_str().unwrap();
    let key = f["receipt"]["customer_billing_api_key"].as_str().unwrap();
    let wrong = app
        .post_auth(
            "/v1/checkout/topup",
            "vsc_wrong",
            &json!({"checkout_session_id": session}),
        )
        .await;
    assert_eq!(wrong, unknown_session);
    let got = app
        .post_raw(
            &format!("/v1/purchase/{purchase}/verify-topup?auth={key}"),
            "application/json",
            b"{\"min_target_balance\": \"abc\"}".to_vec(),
        )
        .await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_body");
    let got = app
        .post_raw(
            &format!("/v1/purchase/{purchase}/verify-topup?auth={key}"),
            "application/json",
            Vec::new(),
        )
        .await;
    assert_eq!(got.0, StatusCode::OK, "{}", got.1);
    assert_eq!(got.1["min_target_balance_for_topup"], 0.0);

    // Five initiates so far: every one counts, even malformed (the limit is checked from the
    // headers, before the body); the sixth passes, the seventh is limited.
    let got = app
        .post(
            "/v1/checkout/initiate",
            &json!({"checkout_flow_id": GEMINI_USDC}),
        )
        .await;
    assert_eq!(got.0, StatusCode::OK);
    let got = app
        .post(
            "/v1/checkout/initiate",
            &json!({"checkout_flow_id": GEMINI_USDC}),
        )
        .await;
    assert_error(&got, StatusCode::TOO_MANY_REQUESTS, "rate_limited");

    let (status, page) = {
        let r = app
            .client
            .get(app.url("/v1/dashboard/customer"))
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    // The customer page is the dashboard's build (served when built, else a clear 503).
    if status == StatusCode::OK {
        assert!(page.contains("/v1/dashboard/assets/"), "{page}");
    } else {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(page.contains("dashboard_not_built"), "{page}");
    }
}

#[sqlx::test]
async fn an_unreachable_rpc_node_is_a_clear_retryable_error_without_state_change(pool: PgPool) {
    let anvil = Anvil::start().await;
    let wallets = Wallets::random();
    let dead = format!("http://127.0.0.1:{}", {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    });
    let mut vars = crate::chain::chain_vars(&anvil, &wallets);
    for (k, v) in &mut vars {
        if k == "RPC_ENDPOINT" {
            v.clone_from(&dead);
        }
    }
    drop(anvil);
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let app =
        crate::chain::spawn_with_providers(pool, &pairs, &[TestProvider::new("gemini", 0)]).await;
    let (status, init) = app
        .post(
            "/v1/checkout/initiate",
            &json!({"checkout_flow_id": GEMINI_USDC}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "initiate needs no RPC: {init}");
    let session = init["checkout_session_id"].as_str().unwrap();
    let got = app
        .post(
            "/v1/checkout/validate",
            &json!({"checkout_flow_id": GEMINI_USDC, "checkout_session_id": session}),
        )
        .await;
    assert_error(&got, StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable");
    assert!(
        !got.1["error"].as_str().unwrap().contains(&dead),
        "RPC URL leaked"
    );
    let got = app
        .post(
            "/v1/checkout/finalize",
            &json!({"checkout_flow_id": GEMINI_USDC, "checkout_session_id": session, "officex_purchase_id": "PurchaseID_d"}),
        )
        .await;
    assert_error(&got, StatusCode::SERVICE_UNAVAILABLE, "chain_unavailable");
    assert!(deposits::run_once(&app.state.checkouts()).await.is_err());
    let purchases: i64 = sqlx::query_scalar("select count(*) from purchase")
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    let cursors: i64 = sqlx::query_scalar("select count(*) from chain_cursor")
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert_eq!((purchases, cursors), (0, 0));
}

#[sqlx::test]
async fn public_development_keys_are_refused_on_real_chains(pool: PgPool) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let vars = crate::helpers::test_vars(
        "http://localhost",
        &[
            ("RPC_ENDPOINT", "http://127.0.0.1:1"),
            ("CHAIN_ID_DEC", "8453"),
            ("USDC_ADDRESS", "0x833589fCD6eDb6E08f4c7C32D4f71b54bdA02913"),
            ("DEPOSIT_MNEMONIC", wallet::DEV_MNEMONIC),
            ("DATA_ENCRYPTION_KEY", &"ab".repeat(32)),
        ],
    );
    let config = vendor_server::config::Config::from_vars(&vars).unwrap();
    let err = vendor_server::startup::Application::build_with(config, pool, listener)
        .await
        .err()
        .expect("must refuse");
    assert!(
        format!("{err:#}").contains("public development mnemonic"),
        "{err:#}"
    );
}

// ---------------------------------------------------------------- money path under real conditions

/// Like `chain::spawn_pay_app`, with any providers (a slow stand-in, the real S3 provider on moto).
pub async fn spawn_pay_app_dyn(
    pool: PgPool,
    anvil: &Anvil,
    wallets: &Wallets,
    providers: Vec<Arc<dyn ResourceProvider>>,
    extra: &[(&str, &str)],
) -> TestApp {
    let mut vars: Vec<(String, String)> = crate::chain::chain_vars(anvil, wallets);
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    spawn_dyn(pool, &pairs, providers).await
}

/// Starts an app with exactly `providers` registered (none from the configuration unless set).
pub async fn spawn_dyn(
    pool: PgPool,
    vars: &[(&str, &str)],
    providers: Vec<Arc<dyn ResourceProvider>>,
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base_url = format!("http://{addr}");
    let config =
        vendor_server::config::Config::from_vars(&crate::helpers::test_vars(&base_url, vars))
            .expect("test config");
    let mut app = vendor_server::startup::Application::build_with(config, pool, listener)
        .await
        .expect("build app");
    for provider in providers {
        app.providers_mut().insert(provider);
    }
    crate::helpers::serve(app, addr)
}

/// An S3 stand-in whose AWS calls take `delay` before the gift card is delivered.
struct SlowS3 {
    delay: Duration,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl ResourceProvider for SlowS3 {
    fn kind(&self) -> &'static str {
        "s3"
    }

    async fn provision(&self, request: &ProvisionRequest) -> Result<Delivered, ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let id = request.purchase_id;
        Ok(Delivered {
            description: format!("S3 bucket for {id}"),
            redeem_url: Some(SecretString::from(format!(
                "https://officex.app/org/current/redeem/disk-giftcard?redeem=slow-secret-{id}"
            ))),
            redeem_code: None,
            state: json!({}),
        })
    }

    async fn suspend(&self, _: PurchaseId, _: &Value) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn resume(&self, _: PurchaseId, _: &Value) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn delete(&self, _: PurchaseId, _: &Value) -> Result<(), ProviderError> {
        Ok(())
    }
}

async fn post_timed(app: &TestApp, path: &str, body: &Value) -> (StatusCode, Value, Duration) {
    let started = Instant::now();
    let (status, body) = app.post(path, body).await;
    (status, body, started.elapsed())
}

fn finalize_body(flow: &str, session: &str, officex_id: &str) -> Value {
    json!({
        "checkout_flow_id": flow,
        "checkout_session_id": session,
        "officex_purchase_id": officex_id,
        "proxy_buyer_data": {"org_id": "DriveID_abc", "org_host": "https://abc.icp0.io", "user_id": "UserID_u"},
    })
}

#[sqlx::test]
async fn slow_provisioning_answers_awaiting_in_time_and_the_replay_delivers_the_secrets(
    pool: PgPool,
) {
    // The S3 stand-in outlasts the whole request timeout (the production case: 45 s against 30 s).
    const TIMEOUT_SECS: u64 = 12;
    let answer_within = Duration::from_secs(TIMEOUT_SECS - 5);
    let anvil = Anvil::start().await;
    let wallets = Wallets::random();
    let slow = Arc::new(SlowS3 {
        delay: Duration::from_secs(TIMEOUT_SECS + 8),
        calls: AtomicUsize::new(0),
    });
    let timeout = TIMEOUT_SECS.to_string();
    let app = spawn_pay_app_dyn(
        pool,
        &anvil,
        &wallets,
        vec![slow.clone()],
        // The provisioning wait is left at its default (the old default was 30 s).
        &[
            ("REQUEST_TIMEOUT_SECS", &timeout),
            ("FINALIZE_PROVISION_WAIT_SECS", ""),
        ],
    )
    .await;
    let (status, init) = app
        .post(
            "/v1/checkout/initiate",
            &json!({"checkout_flow_id": S3_LEGACY}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{init}");
    let session = init["checkout_session_id"].as_str().unwrap().to_owned();
    let address: Address = init["crypto_checkout"]["receiving_address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    anvil.mint(anvil.usdc, address, 2_000_000).await;
    anvil.mine(2).await;

    let body = finalize_body(S3_LEGACY, &session, "PurchaseID_slow");
    let (status, first, took) = post_timed(&app, "/v1/checkout/finalize", &body).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert!(took < answer_within, "finalize took {took:?}");
    assert_eq!(first["success"], true, "{first}");
    let receipt = &first["receipt"];
    assert_eq!(receipt["status"], "AWAITING", "{receipt}");
    let key = receipt["customer_billing_api_key"]
        .as_str()
        .expect("the customer key is in the first answer")
        .to_owned();
    assert!(!first.to_string().contains("slow-secret"), "{first}");

    // Replays of the same finalize answer in time too, and deliver the gift card once it exists.
    let deadline = Instant::now() + Duration::from_secs(60);
    let delivered = loop {
        let (status, again, took) = post_timed(&app, "/v1/checkout/finalize", &body).await;
        assert_eq!(status, StatusCode::OK, "{again}");
        assert!(took < answer_within, "replay took {took:?}");
        if again["receipt"]["status"] == "RUNNING" {
            break again;
        }
        assert!(Instant::now() < deadline, "never provisioned: {again}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let r = &delivered["receipt"];
    assert!(
        r["skip_to_final_redirect"]
            .as_str()
            .unwrap()
            .contains("redeem=slow-secret-"),
        "{r}"
    );
    assert_eq!(r["customer_billing_api_key"], key.as_str());
    assert_eq!(slow.calls.load(Ordering::SeqCst), 1, "provisioned once");
    // Another OfficeX purchase id never gets the secrets.
    let (_, other, _) = post_timed(
        &app,
        "/v1/checkout/finalize",
        &finalize_body(S3_LEGACY, &session, "PurchaseID_other"),
    )
    .await;
    assert!(!other.to_string().contains("slow-secret"), "{other}");
    assert!(other["receipt"].get("customer_billing_api_key").is_none());
    let status: String = sqlx::query_scalar("select status from purchase")
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(status, "active");
}

#[sqlx::test]
async fn thresholds_come_from_the_total_credited_at_finalize(pool: PgPool) {
    let p = setup(pool).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    // 1 + 99 USDC in one checkout.
    p.anvil.mint(p.anvil.usdc, address, 1_000_000).await;
    p.anvil.mint(p.anvil.usdc, address, 99_000_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_th").await;
    assert_eq!(f["success"], true, "{f}");
    let key = f["receipt"]["customer_billing_api_key"].as_str().unwrap();
    let purchase = f["receipt"]["vendor_purchase_id"].as_str().unwrap();
    let (_, view) = p
        .app
        .get_auth(&format!("/v1/purchase/{purchase}"), key)
        .await;
    let v = &view["purchase"];
    assert_eq!(v["balance_usd"], "100.000000", "{view}");
    // From $100: low min(10, 20), critical min(2, 10), termination max(0.05, 1).
    assert_eq!(
        (
            v["balance_low_trigger"].as_str(),
            v["balance_critical_trigger"].as_str(),
            v["balance_termination_trigger"].as_str()
        ),
        (Some("10.000000"), Some("2.000000"), Some("1.000000")),
        "{view}"
    );
    assert_eq!(v["status"], "active");
}

/// Every receipt field except the ones meant to carry secrets (the customer links, the gift card
/// redirect, the key fields).
fn public_fields(receipt: &Value) -> Vec<(String, String)> {
    const SECRET_FIELDS: &[&str] = &[
        "skip_to_final_redirect",
        "billing_url",
        "support_url",
        "delivery_url",
        "redeem_code",
        "customer_billing_api_key",
    ];
    receipt
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| !SECRET_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.to_string()))
        .collect()
}

#[sqlx::test]
async fn no_secret_leaves_the_receipt_secret_fields_on_s3_and_gemini(pool: PgPool) {
    use vendor_server::providers::s3::{DiskAuth, GiftCard, S3Provider, S3Settings};
    let moto = crate::moto::Moto::start().await;
    let anvil = Anvil::start().await;
    let wallets = Wallets::random();
    let s3 = Arc::new(S3Provider::with_clients(
        moto.s3("us-east-1", "vendor", "vendor-secret"),
        moto.iam("us-east-1", "vendor", "vendor-secret"),
        S3Settings {
            region: "us-east-1".into(),
            endpoint_url: Some(moto.url.clone()),
            vendor_name: "Test Vendor".into(),
            officex_app_url: "https://officex.app".into(),
            access_log_bucket: None,
        },
    ));
    let gemini = TestProvider::new("gemini", 0);
    let app = spawn_pay_app_dyn(pool, &anvil, &wallets, vec![s3, gemini], &[]).await;
    let p = Pay {
        anvil,
        wallets,
        app,
        gemini: TestProvider::new("gemini", 0),
        s3: TestProvider::new("s3", 0),
    };

    let (session, address) = p.initiate(S3_LEGACY).await;
    p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(S3_LEGACY, &session, "PurchaseID_moto").await;
    let r = &f["receipt"];
    assert_eq!(r["status"], "RUNNING", "{f}");
    let url = r["skip_to_final_redirect"].as_str().unwrap().to_owned();
    let card = GiftCard::from_redeem_url(&url).expect("a gift card");
    let auth: DiskAuth = serde_json::from_str(&card.auth_json).unwrap();
    let redeem = url.split("redeem=").nth(1).unwrap().to_owned();
    let key = r["customer_billing_api_key"].as_str().unwrap().to_owned();
    let secrets = [auth.secret_key.clone(), redeem, url.clone(), key];
    for (field, value) in public_fields(r) {
        for secret in &secrets {
            assert!(
                !value.contains(secret.as_str()),
                "S3 receipt field {field} carries a secret: {value}"
            );
        }
    }
    // The message around the receipt carries none either.
    assert!(!f["message"].as_str().unwrap().contains(&auth.secret_key));

    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_gem").await;
    let r = &f["receipt"];
    assert_eq!(r["status"], "RUNNING", "{f}");
    let secrets = [
        r["redeem_code"].as_str().unwrap().to_owned(),
        r["customer_billing_api_key"].as_str().unwrap().to_owned(),
    ];
    for (field, value) in public_fields(r) {
        for secret in &secrets {
            assert!(
                !value.contains(secret.as_str()),
                "Gemini receipt field {field} carries a secret: {value}"
            );
        }
    }
}

#[sqlx::test]
async fn a_reused_officex_purchase_id_is_a_clear_conflict(pool: PgPool) {
    let p = setup(pool).await;
    let (first, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 1_000_000).await;
    let (second, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 1_000_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &first, "PurchaseID_dup").await;
    assert_eq!(f["success"], true, "{f}");
    let got = p
        .app
        .post(
            "/v1/checkout/finalize",
            &finalize_body(GEMINI_USDC, &second, "PurchaseID_dup"),
        )
        .await;
    assert_error(&got, StatusCode::CONFLICT, "officex_purchase_id_in_use");
    // Nothing changed: the second checkout finalizes with its own id.
    assert_eq!(p.scalar_i64("select count(*) from purchase").await, 1);
    let f = p.finalize(GEMINI_USDC, &second, "PurchaseID_own").await;
    assert_eq!(f["success"], true, "{f}");
    assert_eq!(p.balance().await, 2_000_000);
}

#[sqlx::test]
async fn a_customer_key_alone_never_leads_to_the_receipt_secrets(pool: PgPool) {
    let p = setup(pool).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 1_000_000).await;
    p.anvil.mine(2).await;
    let f = p
        .finalize(GEMINI_USDC, &session, "PurchaseID_private")
        .await;
    let key = f["receipt"]["customer_billing_api_key"].as_str().unwrap();
    let gateway_key = f["receipt"]["redeem_code"].as_str().unwrap();
    let purchase = f["receipt"]["vendor_purchase_id"].as_str().unwrap();
    let (status, view) = p
        .app
        .get_auth(&format!("/v1/purchase/{purchase}"), key)
        .await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert!(
        view["purchase"].get("officex_purchase_id").is_none(),
        "{view}"
    );
    assert!(!view.to_string().contains("PurchaseID_private"), "{view}");
    // Everything the key can read, tried as an officex_purchase_id: never the receipt's secrets.
    let mut guesses: Vec<String> = vec![purchase.to_owned(), key.to_owned(), session.clone()];
    fn strings(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
            Value::Object(o) => o.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    strings(&view, &mut guesses);
    for guess in guesses.iter().filter(|g| !g.is_empty()) {
        let (status, replay) = p
            .app
            .post(
                "/v1/checkout/finalize",
                &finalize_body(GEMINI_USDC, &session, guess),
            )
            .await;
        if status == StatusCode::OK {
            let text = replay.to_string();
            assert!(
                !text.contains(gateway_key) && !text.contains(key),
                "guess {guess}: {replay}"
            );
        }
    }
}

/// An offers file holding only the S3 offer (the Gemini offer retired).
fn offers_without_gemini() -> String {
    let dir = std::env::temp_dir().join(format!("offers-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("offers.toml");
    std::fs::write(
        &file,
        r#"
[[offers]]
id = "aws-s3-storage-giftcard"
sku = "aws-s3-storage"
title = "Amazon S3 Storage Bucket"
provider = "s3"
legacy_flow_id = "001_amazon_storage_crypto_wallet_topup_gift_card_only"
minimum_deposit_usd = "1"
"#,
    )
    .unwrap();
    file.to_str().unwrap().to_owned()
}

#[sqlx::test]
async fn retired_offers_and_chains_do_not_stop_paid_checkouts(pool: PgPool) {
    let p = setup(pool.clone()).await;
    // A is finalized before the change; B is paid but not finalized yet.
    let (a, address_a) = p.initiate(GEMINI_USDC).await;
    let (b, address_b) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address_a, 2_000_000).await;
    p.anvil.mint(p.anvil.usdc, address_b, 3_000_000).await;
    p.anvil.mine(2).await;
    let fa = p.finalize(GEMINI_USDC, &a, "PurchaseID_a").await;
    assert_eq!(fa["success"], true, "{fa}");
    p.watch().await;
    assert_eq!(
        p.scalar_i64("select count(*) from deposit where status = 'confirmed'")
            .await,
        1
    );

    // The vendor retires the Gemini offer and removes the chain: a new server on the same database.
    let offers = offers_without_gemini();
    let gemini: Arc<dyn ResourceProvider> = TestProvider::new("gemini", 0);
    let app = spawn_dyn(
        pool,
        &[
            ("DATA_ENCRYPTION_KEY", &p.wallets.data_key),
            ("OFFERS_FILE", &offers),
        ],
        vec![gemini],
    )
    .await;
    let (status, _) = app.get("/v1/offer/gemini-api-gateway").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "retired offers are not listed"
    );

    // officex.app validates before it finalizes: the paid checkout still validates.
    let (status, vb) = app
        .post(
            "/v1/checkout/validate",
            &json!({"checkout_flow_id": GEMINI_USDC, "checkout_session_id": b}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{vb}");
    assert_eq!(vb["success"], true, "{vb}");

    let (status, fb) = app
        .post(
            "/v1/checkout/finalize",
            &finalize_body(GEMINI_USDC, &b, "PurchaseID_b"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{fb}");
    assert_eq!(fb["success"], true, "{fb}");
    assert_eq!(fb["receipt"]["status"], "RUNNING", "{fb}");
    assert!(fb["receipt"]["customer_billing_api_key"].is_string());
    assert_eq!(fb["receipt"]["title"], fa["receipt"]["title"]);

    let (status, replay) = app
        .post(
            "/v1/checkout/finalize",
            &finalize_body(GEMINI_USDC, &a, "PurchaseID_a"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{replay}");
    assert_eq!(
        replay["receipt"]["customer_billing_api_key"],
        fa["receipt"]["customer_billing_api_key"]
    );
    assert_eq!(
        replay["receipt"]["redeem_code"],
        fa["receipt"]["redeem_code"]
    );
    let balances: Vec<i64> =
        sqlx::query_scalar("select balance_micros from purchase order by balance_micros")
            .fetch_all(&app.state.pool)
            .await
            .unwrap();
    assert_eq!(balances, [2_000_000, 3_000_000]);
}

#[sqlx::test]
async fn offers_whose_provider_is_not_configured_are_not_sold(pool: PgPool) {
    // The first server sells S3; a customer pays for it.
    let p = setup(pool.clone()).await;
    let (paid, address) = p.initiate(S3_LEGACY).await;
    p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
    p.anvil.mine(2).await;

    // A server without AWS (only the Gemini provider).
    let vars = crate::chain::chain_vars(&p.anvil, &p.wallets);
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let gemini: Arc<dyn ResourceProvider> = TestProvider::new("gemini", 0);
    let app = spawn_dyn(pool, &pairs, vec![gemini]).await;

    assert_error(
        &app.get("/v1/offer/aws-s3-storage-giftcard").await,
        StatusCode::NOT_FOUND,
        "offer_unavailable",
    );
    assert_eq!(
        app.get("/v1/offer/gemini-api-gateway").await.0,
        StatusCode::OK
    );
    let (_, list) = app.get("/v1/appstore/list/developer_essentials").await;
    let ids: Vec<&str> = list["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gemini-api-gateway"]);
    let (_, suggested) = app.get("/v1/appstore/suggest").await;
    let urls = suggested.to_string();
    assert!(!urls.contains("recommended_s3"), "{urls}");
    assert!(urls.contains("popular_gemini"), "{urls}");
    for flow in [S3_LEGACY, "aws-s3-storage-giftcard:anvil:usdt"] {
        let got = app
            .post("/v1/checkout/initiate", &json!({"checkout_flow_id": flow}))
            .await;
        assert_error(&got, StatusCode::CONFLICT, "offer_unavailable");
    }
    let (status, _) = app
        .post(
            "/v1/checkout/initiate",
            &json!({"checkout_flow_id": GEMINI_USDC}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    // The purchase already paid for: finalized, failed-retrying, and the vendor is alerted.
    let (status, f) = app
        .post(
            "/v1/checkout/finalize",
            &finalize_body(S3_LEGACY, &paid, "PurchaseID_s3off"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{f}");
    assert_eq!(f["success"], true, "{f}");
    assert_eq!(f["receipt"]["status"], "AWAITING");
    let (status, retry): (String, bool) =
        sqlx::query_as("select status, next_provision_at is not null from purchase")
            .fetch_one(&app.state.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), retry), ("failed", true));
    let alerts: i64 = sqlx::query_scalar(
        "select count(*) from outbox where channel = 'alert' and event_type = 'provision.unavailable'",
    )
    .fetch_one(&app.state.pool)
    .await
    .unwrap();
    assert_eq!(alerts, 1);
    // Past the whole backoff schedule (22 h) it is still retried, at least hourly, and never
    // reported as given up: the provider may be configured any time (SPEC §9).
    sqlx::query("update purchase set provision_attempts = 30, next_provision_at = now()")
        .execute(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(
        provision::run_once(&app.state.checkouts()).await.unwrap(),
        Outcome::Processed(1)
    );
    let (status, within_the_hour): (String, bool) = sqlx::query_as(
        "select status, next_provision_at between now() and now() + interval '1 hour 1 minute'
         from purchase",
    )
    .fetch_one(&app.state.pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), within_the_hour), ("failed", true));
    let given_up: i64 = sqlx::query_scalar(
        "select count(*) from outbox where channel = 'alert' and event_type = 'provision.failed'",
    )
    .fetch_one(&app.state.pool)
    .await
    .unwrap();
    assert_eq!(given_up, 0);
}

#[test]
fn start_up_refuses_a_provisioning_wait_that_does_not_fit_in_the_request_timeout() {
    use vendor_server::config::Config;
    let config =
        |pairs: &[(&str, &str)]| Config::from_vars(&crate::helpers::test_vars("http://x", pairs));
    // The old defaults (30 s wait, 30 s timeout) gave a 408 after the purchase committed.
    for (timeout, wait) in [("30", "30"), ("30", "26"), ("12", "8")] {
        let err = config(&[
            ("REQUEST_TIMEOUT_SECS", timeout),
            ("FINALIZE_PROVISION_WAIT_SECS", wait),
        ])
        .expect_err("must refuse")
        .to_string();
        assert!(
            err.contains("FINALIZE_PROVISION_WAIT_SECS") && err.contains("REQUEST_TIMEOUT_SECS"),
            "{err}"
        );
    }
    let ok = config(&[
        ("REQUEST_TIMEOUT_SECS", "30"),
        ("FINALIZE_PROVISION_WAIT_SECS", "25"),
    ])
    .unwrap();
    assert_eq!(ok.checkout.provision_wait, Duration::from_secs(25));
    // The default follows the request timeout.
    let c = config(&[("REQUEST_TIMEOUT_SECS", "60")]).unwrap();
    assert_eq!(c.checkout.provision_wait, Duration::from_secs(50));
    let c = config(&[]).unwrap();
    assert!(c.checkout.provision_wait + Duration::from_secs(5) <= c.server.request_timeout);
}

#[sqlx::test]
async fn receipt_notes_name_only_the_tokens_and_chains_really_configured(pool: PgPool) {
    let p = setup_with(pool, &[("USDT_ADDRESS", "")], 0, false).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 5_000_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_notes").await;
    let receipt = &f["receipt"];
    for field in ["vendor_notes", "vendor_disclaimer"] {
        let text = receipt[field].as_str().unwrap();
        assert!(text.contains("USDC on anvil"), "{field}: {text}");
        assert!(!text.contains("USDT"), "{field}: {text}");
    }
}

/// An offers file whose Gemini offer asks no minimum deposit.
fn offers_with_free_gemini() -> String {
    let gemini_minimum = "minimum_deposit_usd = \"1\"\nsuggested_deposit_usd = \"5\"";
    let text =
        std::fs::read_to_string(format!("{}/config/offers.toml", crate::helpers::ROOT)).unwrap();
    assert!(text.contains(gemini_minimum), "the offers file changed");
    let text = text.replacen(
        gemini_minimum,
        "minimum_deposit_usd = \"0\"\nsuggested_deposit_usd = \"5\"",
        1,
    );
    let dir = std::env::temp_dir().join(format!("offers-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("offers.toml");
    std::fs::write(&file, text).unwrap();
    file.to_str().unwrap().to_owned()
}

/// SPEC §9: a purchase finalized with $0 takes its thresholds from the offer's minimum and is
/// suspended like any other (it used to have none and stay active with nothing paid).
#[sqlx::test]
async fn a_purchase_finalized_with_nothing_paid_has_thresholds_and_is_suspended(pool: PgPool) {
    let offers = offers_with_free_gemini();
    let p = setup_with(pool, &[("OFFERS_FILE", &offers)], 0, false).await;
    let (session, _) = p.initiate(GEMINI_USDC).await;
    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_free").await;
    assert_eq!(f["success"], true, "{f}");
    let key = f["receipt"]["customer_billing_api_key"].as_str().unwrap();
    let purchase = f["receipt"]["vendor_purchase_id"].as_str().unwrap();
    let (_, view) = p
        .app
        .get_auth(&format!("/v1/purchase/{purchase}"), key)
        .await;
    let v = &view["purchase"];
    assert_eq!(v["balance_usd"], "0.000000", "{view}");
    // From the minimum ($0): low 0, critical 0, termination 0.05.
    assert_eq!(
        (
            v["balance_low_trigger"].as_str(),
            v["balance_critical_trigger"].as_str(),
            v["balance_termination_trigger"].as_str()
        ),
        (Some("0.000000"), Some("0.000000"), Some("0.050000")),
        "{view}"
    );
    assert_eq!(v["status"], "suspended", "{view}");
}

/// SPEC §9: a purchase whose provisioning failed for good shows `failed` to its customer; an
/// operator retries it (`POST /v1/admin/purchases/{id}/reprovision`, idempotency key, audited) and
/// it is delivered.
#[sqlx::test]
async fn a_purchase_failed_for_good_shows_failed_and_an_operator_retries_it(pool: PgPool) {
    const ADMIN: &str = "admin-token-0123456789abcdef";
    let p = setup_with(pool, &[("ADMIN_TOKEN", ADMIN)], 1, false).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 3_000_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_fail").await;
    assert_eq!(f["receipt"]["status"], "AWAITING", "{f}");
    let key = f["receipt"]["customer_billing_api_key"].as_str().unwrap();
    let purchase = f["receipt"]["vendor_purchase_id"].as_str().unwrap();
    // Given up: the whole backoff schedule has run.
    sqlx::query("update purchase set provision_attempts = 10, next_provision_at = null")
        .execute(&p.app.state.pool)
        .await
        .unwrap();
    let (_, view) = p
        .app
        .get_auth(&format!("/v1/purchase/{purchase}"), key)
        .await;
    assert_eq!(view["purchase"]["status"], "failed", "{view}");
    assert_eq!(
        provision::run_once(&p.app.state.checkouts()).await.unwrap(),
        Outcome::Idle
    );

    let path = format!("/v1/admin/purchases/{purchase}/reprovision");
    let send = |idempotency: Option<&'static str>| {
        let mut request = p.app.client.post(p.app.url(&path)).bearer_auth(ADMIN);
        if let Some(k) = idempotency {
            request = request.header("idempotency-key", k);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            let replayed = response.headers().get("idempotent-replayed").is_some();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body, replayed)
        }
    };
    let (status, body, _) = send(None).await;
    assert_error(
        &(status, body),
        StatusCode::BAD_REQUEST,
        "idempotency_key_required",
    );
    let (status, body, replayed) = send(Some("retry-provisioning-1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(!replayed);
    assert_eq!(body["previous_attempts"], 10, "{body}");
    assert_eq!(body["status"], "failed", "{body}");
    // The attempt starts at once (not at the job's next pass) and delivers.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, view) = p
            .app
            .get_auth(&format!("/v1/purchase/{purchase}"), key)
            .await;
        if view["purchase"]["status"] == "active" {
            break;
        }
        assert!(Instant::now() < deadline, "never provisioned: {view}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(p.gemini.calls.load(Ordering::SeqCst), 2);
    let (status, again, replayed) = send(Some("retry-provisioning-1")).await;
    assert_eq!((status, replayed), (StatusCode::OK, true), "{again}");
    assert_eq!(again, body);
    // A delivered purchase has nothing to retry.
    let (status, body, _) = send(Some("retry-provisioning-2")).await;
    assert_error(&(status, body), StatusCode::CONFLICT, "invalid_state");
    assert_eq!(p.gemini.calls.load(Ordering::SeqCst), 2);
    let audited: Vec<(String, String)> = sqlx::query_as(
        "select action, actor from admin_audit where target_id = $1 order by audit_id",
    )
    .bind(purchase)
    .fetch_all(&p.app.state.pool)
    .await
    .unwrap();
    assert_eq!(
        audited,
        vec![("purchase.reprovision".to_owned(), "admin".to_owned())]
    );
}
