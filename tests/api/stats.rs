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
    use crate::checkout::{GEMINI_USDC, setup_with};
    use alloy::primitives::U256;
    let p = setup_with(pool.clone(), &[("ADMIN_TOKEN", ADMIN)], 0, true).await;
    // Nothing spent yet: no runway.
    let o = get(&p.app, "/v1/admin/overview").await;
    assert_eq!(o["gas"][0]["chain_id"], 31337);
    assert!(o["gas"][0]["gas_runway_days"].is_null(), "{o}");
    assert_eq!(o["gas_runway_days"], json!({"31337": null}));
    assert_eq!(o["swept"], json!([]));

    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 3_250_000).await;
    p.anvil.mine(2).await;
    let f = p
        .finalize(
            GEMINI_USDC,
            &session,
            &format!("PurchaseID_{}", uuid::Uuid::new_v4()),
        )
        .await;
    assert_eq!(f["success"], true, "{f}");
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
