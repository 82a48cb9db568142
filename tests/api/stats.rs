//! Money over time (SPEC §9 "Operators"): `GET /v1/admin/stats/daily` and the overview's
//! liability, money swept per chain and token, and gas runway, with exact expected values.

use chrono::{Duration, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use vendor_server::domain::ids::PurchaseId;

use crate::fixtures::{balance, buy};
use crate::helpers::{TestApp, assert_error, spawn_app_with};

const ADMIN: &str = "admin-token-0123456789abcdef";
const GEMINI: &str = "gemini-api-gateway";
const S3: &str = "aws-s3-storage-giftcard";

async fn get(app: &TestApp, path: &str) -> Value {
    let (status, body) = app.get_auth(path, ADMIN).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    body
}

/// Posts a ledger row written `days_ago` days before now (a past day's activity), keeping the
/// balance and the ledger in step as `ledger::post` does.
async fn post_at(pool: &PgPool, id: PurchaseId, kind: &str, micros: i64, days_ago: i64) {
    let mut tx = pool.begin().await.unwrap();
    let balance: i64 = sqlx::query_scalar(
        "update purchase set balance_micros = balance_micros + $2 where purchase_id = $1
         returning balance_micros",
    )
    .bind(id.0)
    .bind(micros)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    sqlx::query(
        "insert into ledger_entry (purchase_id, kind, amount_micros, balance_after_micros, created_at, occurred_at)
         values ($1, $2, $3, $4, now() - make_interval(days => $5), now() - make_interval(days => $5))",
    )
    .bind(id.0)
    .bind(kind)
    .bind(micros)
    .bind(balance)
    .bind(i32::try_from(days_ago).unwrap())
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// The item of `days_ago` (0: today) in a list whose last item is today.
fn day(items: &[Value], days_ago: usize) -> &Value {
    &items[items.len() - 1 - days_ago]
}

/// Credits, usage on two offers, a cost import credit back, a reversal and quiet days: every day
/// of the window is there, oldest first, with exact sums and the purchases then owed service.
#[sqlx::test]
async fn daily_stats_sum_credits_usage_per_offer_and_active_purchases(pool: PgPool) {
    let app = spawn_app_with(pool.clone(), &[("ADMIN_TOKEN", ADMIN)]).await;
    let a = buy(&pool, GEMINI, 0, None).await.id;
    let b = buy(&pool, S3, 0, None).await.id;
    let c = buy(&pool, GEMINI, 0, None).await.id;
    let d = buy(&pool, S3, 0, None).await.id;
    // 40 days ago (before a 30-day window): C is credited.
    post_at(&pool, c, "deposit", 1_000_000, 40).await;
    // 3 days ago: A and B are credited.
    post_at(&pool, a, "deposit", 50_000_000, 3).await;
    post_at(&pool, b, "deposit", 20_000_000, 3).await;
    // 2 days ago: usage on both offers.
    post_at(&pool, a, "usage", -1_000_000, 2).await;
    post_at(&pool, a, "usage", -250_000, 2).await;
    post_at(&pool, b, "cost", -333_333, 2).await;
    // Yesterday: nothing. Today: A uses everything, B is topped up and estimated, the cost import
    // gives B something back, C uses its dollar, D is credited then the deposit is reversed.
    post_at(&pool, a, "usage", -48_750_000, 0).await;
    post_at(&pool, b, "deposit", 5_500_000, 0).await;
    post_at(&pool, b, "usage_estimate", -1, 0).await;
    post_at(&pool, b, "cost", 100_000, 0).await;
    post_at(&pool, c, "usage", -1_000_000, 0).await;
    post_at(&pool, d, "deposit", 2_000_000, 0).await;
    post_at(&pool, d, "reversal", -2_000_000, 0).await;
    // Not money in or usage: an adjustment moves the balance only.
    post_at(&pool, d, "adjustment", 3_000_000, 0).await;

    let stats = get(&app, "/v1/admin/stats/daily?days=30").await;
    let items = stats["items"].as_array().unwrap();
    assert_eq!(items.len(), 30);
    let today = Utc::now().date_naive();
    assert_eq!(items[0]["day"], (today - Duration::days(29)).to_string());
    assert_eq!(day(items, 0)["day"], today.to_string());
    for (i, item) in items.iter().enumerate().skip(1) {
        assert!(item["day"].as_str() > items[i - 1]["day"].as_str());
    }
    let quiet = |active: i64| json!({"credited_usd": "0.000000", "billed_usd": "0.000000", "billed_by_offer": {}, "active_purchases": active});
    let without_day = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().unwrap().remove("day");
        v
    };
    // Before day -3 only C had a balance.
    assert_eq!(without_day(&items[0]), quiet(1));
    assert_eq!(without_day(day(items, 4)), quiet(1));
    assert_eq!(
        without_day(day(items, 3)),
        json!({"credited_usd": "70.000000", "billed_usd": "0.000000", "billed_by_offer": {},
               "active_purchases": 3})
    );
    assert_eq!(
        without_day(day(items, 2)),
        json!({"credited_usd": "0.000000", "billed_usd": "1.583333",
               "billed_by_offer": {GEMINI: "1.250000", S3: "0.333333"}, "active_purchases": 3})
    );
    assert_eq!(without_day(day(items, 1)), quiet(3));
    // Today: A and C are at 0; B and D (the adjustment) are positive.
    assert_eq!(
        without_day(day(items, 0)),
        json!({"credited_usd": "5.500000", "billed_usd": "49.650001",
               "billed_by_offer": {GEMINI: "49.750000", S3: "-0.099999"}, "active_purchases": 2})
    );

    // 90 days reach C's credit, before which nobody had a balance.
    let long = get(&app, "/v1/admin/stats/daily?days=90").await;
    let long = long["items"].as_array().unwrap();
    assert_eq!(long.len(), 90);
    assert_eq!(without_day(day(long, 41)), quiet(0));
    assert_eq!(
        without_day(day(long, 40)),
        json!({"credited_usd": "1.000000", "billed_usd": "0.000000", "billed_by_offer": {},
               "active_purchases": 1})
    );
    assert_eq!(&long[60..], items.as_slice());
    assert_eq!(
        get(&app, "/v1/admin/stats/daily").await["items"]
            .as_array()
            .unwrap()
            .len(),
        30
    );
    for bad in ["0", "367", "x"] {
        let got = app
            .get_auth(&format!("/v1/admin/stats/daily?days={bad}"), ADMIN)
            .await;
        assert_eq!(got.0, StatusCode::BAD_REQUEST, "{bad}: {}", got.1);
    }
    let got = app.get_auth("/v1/admin/stats/daily?days=0", ADMIN).await;
    assert_error(&got, StatusCode::BAD_REQUEST, "invalid_days");

    // The overview's liability: positive balances only (B and D; A and C are at 0).
    post_at(&pool, c, "usage", -500_000, 0).await;
    let owed = balance(&pool, b).await + balance(&pool, d).await;
    assert_eq!(owed, 25_266_666 + 3_000_000);
    let overview = get(&app, "/v1/admin/overview").await;
    assert_eq!(overview["liability_usd"], "28.266666");
    assert_eq!(overview["swept"], json!([]));
    assert_eq!(
        overview["gas_runway_days"],
        json!({}),
        "no gas wallet configured"
    );
}

/// On anvil: a real sweep, plus earlier ones, give money swept per chain and token and the gas
/// runway at the last 7 days' rate (a sweep 8 days ago does not count).
#[sqlx::test]
async fn the_overview_shows_swept_money_and_the_gas_runway(pool: PgPool) {
    use crate::checkout::setup_with;
    use alloy::primitives::U256;
    let p = setup_with(pool.clone(), &[("ADMIN_TOKEN", ADMIN)], 0, true).await;
    // Nothing spent yet: no runway.
    let o = get(&p.app, "/v1/admin/overview").await;
    assert_eq!(o["gas"][0]["chain_id"], 31337);
    assert!(o["gas"][0]["gas_runway_days"].is_null(), "{o}");
    assert_eq!(o["gas_runway_days"], json!({"31337": null}));
    assert_eq!(o["swept"], json!([]));

    p.bought_usdc(3_250_000).await;
    p.anvil
        .set_eth(
            p.wallets.gas.address(),
            U256::from(10u64).pow(U256::from(18u64)),
        )
        .await;
    p.sweep_all().await;
    // An older confirmed sweep of the same token on this chain (8 days ago: swept, but outside the
    // runway's 7 days).
    let treasury: String = sqlx::query_scalar("select treasury_address from sweep limit 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query(
        "insert into sweep (chain_id, token_address, token_symbol, deposit_address, deposit_index,
             treasury_address, amount_units, method, step, status, gas_used, fee_wei, confirmed_at)
         select chain_id, token_address, token_symbol, deposit_address, deposit_index, treasury_address,
                1500000, method, 'sweep', 'confirmed', 50000, 999000000000000000,
                now() - interval '8 days'
         from sweep limit 1",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert!(!treasury.is_empty());

    let spent: String = sqlx::query_scalar(
        "select sum(case when method = 'eip3009' then fee_wei
                         else coalesce(topup_wei, 0) + 21000 * fee_wei / gas_used end)::numeric(78, 0)::text
         from sweep where status = 'confirmed' and confirmed_at >= now() - interval '7 days'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let spent: U256 = spent.parse().unwrap();
    assert!(spent > U256::ZERO);

    let o = get(&p.app, "/v1/admin/overview").await;
    assert_eq!(
        o["swept"],
        json!([{"chain_id": 31337, "chain": "anvil", "token": "usdc", "amount": "4.75", "amount_units": "4750000"}]),
        "{o}"
    );
    let gas = &o["gas"][0];
    let balance: U256 = gas["balance_wei"].as_str().unwrap().parse().unwrap();
    assert_eq!(gas["gas_spent_7d_wei"], spent.to_string().as_str());
    // balance / (spent / 7), to a tenth of a day (rounded down).
    let tenths = balance * U256::from(70u64) / spent;
    let want = f64::from(u32::try_from(tenths).unwrap()) / 10.0;
    assert_eq!(gas["gas_runway_days"].as_f64().unwrap(), want, "{gas}");
    assert_eq!(o["gas_runway_days"], json!({"31337": want}));
    assert!(
        want > 7.0,
        "1 ETH lasts more than a week of one sweep: {want}"
    );
}

/// The gas runway counts everything the gas wallet paid for over the last 7 days, exactly: single
/// relays, sweep batches (the whole transaction, whatever became of its members), gas top-ups (value
/// and fee, when sent, even if their sweep later failed) and refund payouts when the payout wallet is
/// the gas wallet (a real payout on anvil: its fee is the wallet's ETH that left). Not another
/// wallet's payouts, nor anything older than 7 days.
#[sqlx::test]
async fn the_gas_runway_counts_batches_top_ups_and_refund_payouts(pool: PgPool) {
    use crate::checkout::setup_with;
    use alloy::primitives::U256;
    use alloy::signers::local::PrivateKeySigner;
    let gas = PrivateKeySigner::random();
    let key = format!("0x{}", hex::encode(gas.to_bytes()));
    let p = setup_with(
        pool.clone(),
        &[
            ("ADMIN_TOKEN", ADMIN),
            ("VENDOR_GAS_TANK_PRIVATE_KEY", &key),
            ("VENDOR_PAYOUT_PRIVATE_KEY", &key),
        ],
        0,
        true,
    )
    .await;
    let gas_addr = format!("{:#x}", gas.address());
    p.anvil
        .set_eth(gas.address(), U256::from(10u64).pow(U256::from(18u64)))
        .await;
    p.anvil.mint(p.anvil.usdc, gas.address(), 10_000_000).await;
    let f = p.bought_usdc(5_000_000).await;
    let purchase = f["receipt"]["vendor_purchase_id"].as_str().unwrap();
    let customer = f["receipt"]["customer_billing_api_key"].as_str().unwrap();

    // A real refund payout from the gas wallet.
    let to = PrivateKeySigner::random().address();
    let asked = p
        .app
        .client
        .post(p.app.url(&format!("/v1/purchase/{purchase}/refunds")))
        .bearer_auth(customer)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"amount_usd": "1", "chain_id": 31337, "token": "usdc", "to_address": format!("{to:#x}")}))
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), StatusCode::CREATED);
    let refund: Value = asked.json().await.unwrap();
    let refund_id = refund["refund_id"].as_str().unwrap();
    let approved = p
        .app
        .client
        .post(p.app.url(&format!("/v1/admin/refunds/{refund_id}/approve")))
        .bearer_auth(ADMIN)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), StatusCode::OK);
    let before = p.anvil.eth_balance(gas.address()).await;
    let mut paid = false;
    for _ in 0..12 {
        vendor_server::refunds::payout::run_once(
            &p.app.state.pool,
            &p.app.state.chains,
            &p.app.state.config.refunds,
        )
        .await
        .unwrap();
        let status: String = sqlx::query_scalar("select status from refund")
            .fetch_one(&pool)
            .await
            .unwrap();
        if status == "paid" {
            paid = true;
            break;
        }
        p.anvil.mine(1).await;
    }
    assert!(paid, "the refund was not paid");
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, to).await,
        U256::from(1_000_000u64)
    );
    let payout_fee = before - p.anvil.eth_balance(gas.address()).await;
    assert!(payout_fee > U256::ZERO);

    let (deposit, index, token, treasury): (String, i64, String, String) =
        sqlx::query_as("select deposit_address, deposit_index, $1, $2 from checkout limit 1")
            .bind(format!("{:#x}", p.anvil.usdc))
            .bind(format!("{:#x}", p.wallets.treasury))
            .fetch_one(&pool)
            .await
            .unwrap();
    let sweep = |method: &str,
                 status: &str,
                 batch: Option<i64>,
                 fee: Option<&str>,
                 days_ago: i64| {
        sqlx::query(
            "insert into sweep (chain_id, token_address, token_symbol, deposit_address, deposit_index,
                 treasury_address, amount_units, method, status, batch_id, gas_used, fee_wei, confirmed_at)
             values (31337, $1, 'usdc', $2, $3, $4, 1000000, $5, $6, $7, 50000, $8::numeric,
                     case when $6 = 'confirmed' then now() - make_interval(days => $9) end)",
        )
        .bind(token.clone())
        .bind(deposit.clone())
        .bind(index)
        .bind(treasury.clone())
        .bind(method.to_owned())
        .bind(status.to_owned())
        .bind(batch)
        .bind(fee.map(str::to_owned))
        .bind(i32::try_from(days_ago).unwrap())
    };
    let batch = |nonce: i64, fee: &str, days_ago: i32| {
        sqlx::query_scalar::<_, i64>(
            "insert into sweep_batch (chain_id, status, from_address, nonce, tx_hash, max_cost_wei, size,
                 block_number, gas_used, fee_wei, confirmed_at)
             values (31337, 'confirmed', $1, $2, '0x' || md5($2::text), 1, 2, 1, 100000, $3::numeric,
                     now() - make_interval(days => $4))
             returning batch_id",
        )
        .bind(gas_addr.clone())
        .bind(nonce)
        .bind(fee.to_owned())
        .bind(days_ago)
    };
    // A batch of two relays sent today: 0.0009 ETH for its transaction; one relay went through (its
    // share recorded on the sweep), the other failed.
    let today = batch(1000, "900000000000000", 0)
        .fetch_one(&pool)
        .await
        .unwrap();
    sweep(
        "eip3009",
        "confirmed",
        Some(today),
        Some("450000000000000"),
        0,
    )
    .execute(&pool)
    .await
    .unwrap();
    sweep("eip3009", "failed", Some(today), None, 0)
        .execute(&pool)
        .await
        .unwrap();
    // A batch 8 days ago, and its relay: outside the 7 days.
    let old = batch(999, "5000000000000000", 8)
        .fetch_one(&pool)
        .await
        .unwrap();
    sweep(
        "eip3009",
        "confirmed",
        Some(old),
        Some("2500000000000000"),
        8,
    )
    .execute(&pool)
    .await
    .unwrap();
    // A single relay today.
    sweep("eip3009", "confirmed", None, Some("70000000000000"), 0)
        .execute(&pool)
        .await
        .unwrap();
    // A gas top-up sent today (0.00003 ETH plus its 0.000021 ETH fee) whose sweep then failed.
    sqlx::query(
        "insert into sweep (chain_id, token_address, token_symbol, deposit_address, deposit_index,
             treasury_address, amount_units, method, step, status, topup_tx_hash, topup_wei, topup_fee_wei,
             topup_confirmed_at)
         values (31337, $1, 'usdc', $2, $3, $4, 1000000, 'transfer', 'sweep', 'failed', '0x01',
                 30000000000000, 21000000000000, now())",
    )
    .bind(&token)
    .bind(&deposit)
    .bind(index)
    .bind(&treasury)
    .execute(&pool)
    .await
    .unwrap();
    // Another wallet's payout: not the gas wallet's spending.
    sqlx::query(
        "insert into refund (refund_id, purchase_id, source, amount_micros, chain_id, token_address,
             token_symbol, token_decimals, token_amount, to_address, status, from_address, nonce,
             payout_fee_wei, payout_mined_at)
         select gen_random_uuid(), purchase_id, source, amount_micros, chain_id, token_address, token_symbol,
                token_decimals, token_amount, to_address, 'failed', '0x00000000000000000000000000000000000000aa',
                1, 1000000000000000, now()
         from refund limit 1",
    )
    .execute(&pool)
    .await
    .unwrap();

    let spent = payout_fee
        + U256::from(900_000_000_000_000u64)
        + U256::from(70_000_000_000_000u64)
        + U256::from(30_000_000_000_000u64 + 21_000_000_000_000u64);
    let o = get(&p.app, "/v1/admin/overview").await;
    let g = &o["gas"][0];
    assert_eq!(g["address"], gas_addr.as_str(), "{g}");
    let balance: U256 = g["balance_wei"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        balance,
        U256::from(10u64).pow(U256::from(18u64)) - payout_fee
    );
    assert_eq!(g["gas_spent_7d_wei"], spent.to_string().as_str(), "{g}");
    let tenths = balance * U256::from(70u64) / spent;
    let want = f64::from(u32::try_from(tenths).unwrap()) / 10.0;
    assert_eq!(g["gas_runway_days"].as_f64().unwrap(), want, "{g}");
    assert_eq!(o["gas_runway_days"], json!({"31337": want}));
}
