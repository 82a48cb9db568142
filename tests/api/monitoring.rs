//! The business metrics on `/metrics`: known database and chain state, one collector pass, and the
//! exact values (README "Monitoring").

use std::collections::BTreeMap;

use alloy::primitives::U256;
use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use vendor_server::jobs::gauges;

use crate::checkout::{setup, setup_with};
use crate::fixtures::buy;
use crate::helpers::{TestApp, spawn_app};

const OFFER: &str = "gemini-api-gateway";

async fn scrape(app: &TestApp) -> String {
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

/// The value of the sample `name` whose labels are exactly `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    text.lines().find_map(|line| {
        if line.starts_with('#') {
            return None;
        }
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, got) = match series.split_once('{') {
            Some((m, rest)) => {
                let inner = rest.strip_suffix('}')?;
                let got: BTreeMap<String, String> = inner
                    .split("\",")
                    .filter(|p| !p.is_empty())
                    .filter_map(|p| {
                        let (k, v) = p.split_once('=')?;
                        Some((k.to_owned(), v.trim_matches('"').to_owned()))
                    })
                    .collect();
                (m, got)
            }
            None => (series, BTreeMap::new()),
        };
        (metric == name && got == want).then(|| value.parse().unwrap())
    })
}

fn must(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or_else(|| panic!("no {name}{labels:?} in\n{text}"))
}

#[sqlx::test]
async fn one_collector_pass_reports_purchases_outbox_cost_import_and_pool(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let active = buy(&pool, OFFER, 10_000_000, None).await;
    let owing = buy(&pool, OFFER, 2_500_000, None).await;
    let gone = buy(&pool, OFFER, 1_000_000, None).await;
    for (p, status, balance) in [
        (&active, "active", 10_000_000i64),
        (&owing, "suspended", -500_000),
        (&gone, "deleted", 1_000_000),
    ] {
        sqlx::query("update purchase set status = $2, balance_micros = $3 where purchase_id = $1")
            .bind(p.id.0)
            .bind(status)
            .bind(balance)
            .execute(&pool)
            .await
            .unwrap();
    }
    sqlx::query("delete from outbox_attempt")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("delete from outbox")
        .execute(&pool)
        .await
        .unwrap();
    for (channel, status, attempts, age_secs) in [
        ("webhook", "pending", 0, 0),
        ("webhook", "pending", 2, 600),
        ("webhook", "failed", 8, 0),
        ("email", "delivered", 1, 9000),
        ("alert", "pending", 0, 30),
    ] {
        sqlx::query(
            "insert into outbox (channel, event_id, event_type, payload, status, attempt_count, created_at)
             values ($1, gen_random_uuid(), 'test.event', '{}', $2, $3,
                     now() - make_interval(secs => $4))",
        )
        .bind(channel)
        .bind(status)
        .bind(attempts)
        .bind(f64::from(age_secs))
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "insert into cost_import_run (source, billing_period, trigger, status, rows_read, rows_matched,
                                      started_at, finished_at)
         values ('cur', '2026-11-01', 'schedule', 'succeeded', 1234, 56,
                 '2026-11-30 02:00:00+00', '2026-11-30 02:01:40+00'),
                ('cur', '2026-11-01', 'schedule', 'failed', 7, 0,
                 '2026-12-01 02:00:00+00', '2026-12-01 02:00:05+00')",
    )
    .execute(&pool)
    .await
    .unwrap();
    // One meter-usage call for the latency histogram.
    let response = app
        .client
        .post(app.url(&format!("/v1/purchase/{}/meter-usage", active.id)))
        .bearer_auth(&active.vendor_key)
        .json(&json!({
            "purchase_id": active.id.to_string(),
            "usage_amount": 1,
            "usage_unit": "tokens",
            "billed_amount": "0.000001",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let before = scrape(&app).await;
    assert_eq!(
        sample(&before, "vendor_purchases", &[("status", "active")]),
        None
    );

    gauges::run_once(&app.state).await.unwrap();
    let text = scrape(&app).await;

    for (status, n, usd) in [
        ("active", 1.0, 9.999_999),
        ("suspended", 1.0, -0.5),
        ("deleted", 1.0, 1.0),
        ("low", 0.0, 0.0),
        ("critical", 0.0, 0.0),
        ("provisioning", 0.0, 0.0),
        ("failed", 0.0, 0.0),
    ] {
        assert_eq!(
            must(&text, "vendor_purchases", &[("status", status)]),
            n,
            "{status}"
        );
        assert_eq!(
            must(&text, "vendor_customer_balance_usd", &[("status", status)]),
            usd,
            "{status}"
        );
    }
    // Positive balances of every purchase not deleted: the active one only.
    assert_eq!(must(&text, "vendor_customer_liability_usd", &[]), 9.999_999);

    let webhook = [("channel", "webhook")];
    assert_eq!(must(&text, "vendor_outbox_pending", &webhook), 2.0);
    assert_eq!(must(&text, "vendor_outbox_retrying", &webhook), 1.0);
    assert_eq!(must(&text, "vendor_outbox_failed", &webhook), 1.0);
    let age = must(&text, "vendor_outbox_oldest_pending_age_seconds", &webhook);
    assert!((600.0..660.0).contains(&age), "{age}");
    let email = [("channel", "email")];
    assert_eq!(must(&text, "vendor_outbox_pending", &email), 0.0);
    assert_eq!(must(&text, "vendor_outbox_failed", &email), 0.0);
    assert_eq!(
        must(&text, "vendor_outbox_oldest_pending_age_seconds", &email),
        0.0
    );
    let alert = [("channel", "alert")];
    assert_eq!(must(&text, "vendor_outbox_pending", &alert), 1.0);
    assert_eq!(must(&text, "vendor_outbox_retrying", &alert), 0.0);
    assert_eq!(
        must(&text, "vendor_outbox_pending", &[("channel", "officex")]),
        0.0
    );

    assert_eq!(must(&text, "vendor_cost_import_enabled", &[]), 0.0);
    assert_eq!(
        must(
            &text,
            "vendor_cost_import_last_success_timestamp_seconds",
            &[]
        ),
        1_796_004_100.0
    );
    assert_eq!(
        must(
            &text,
            "vendor_cost_import_last_success_rows",
            &[("rows", "read")]
        ),
        1234.0
    );
    assert_eq!(
        must(
            &text,
            "vendor_cost_import_last_success_rows",
            &[("rows", "matched")]
        ),
        56.0
    );
    assert_eq!(must(&text, "vendor_cost_import_last_run_failed", &[]), 1.0);

    assert_eq!(must(&text, "vendor_db_up", &[]), 1.0);
    assert_eq!(
        must(&text, "vendor_db_pool_max_connections", &[]),
        f64::from(app.state.config.database.max_connections)
    );
    let idle = must(&text, "vendor_db_pool_connections", &[("state", "idle")]);
    let in_use = must(&text, "vendor_db_pool_connections", &[("state", "in_use")]);
    assert!(idle + in_use >= 1.0, "{idle} + {in_use}");
    assert_eq!(
        must(&text, "vendor_meter_usage_duration_seconds_count", &[]),
        1.0
    );
}

#[sqlx::test]
async fn deposits_sweeps_and_the_gas_wallet_on_anvil(pool: PgPool) {
    let p = setup(pool).await;
    let chain = p.app.state.chains.iter().next().unwrap().id().to_string();
    let c = [("chain", chain.as_str())];
    p.paid_usdc(2_500_000).await;

    // Before the sweep: one unfinished sweep, planned by the sweeper's first pass.
    vendor_server::chain::sweeper::run_once(&p.app.state.pool, &p.app.state.chains)
        .await
        .unwrap();
    gauges::run_once(&p.app.state).await.unwrap();
    let text = scrape(&p.app).await;
    assert_eq!(must(&text, "vendor_deposits_detected_total", &c), 1.0);
    assert_eq!(
        must(&text, "vendor_deposits_detected_usd_micros_total", &c),
        2_500_000.0
    );
    assert_eq!(must(&text, "vendor_deposits_credited_total", &c), 1.0);
    assert_eq!(
        must(&text, "vendor_deposits_credited_usd_micros_total", &c),
        2_500_000.0
    );
    let unfinished: f64 = ["planned", "signed", "broadcast"]
        .iter()
        .map(|s| must(&text, "vendor_sweeps", &[("chain", &chain), ("status", s)]))
        .sum();
    assert_eq!(unfinished, 1.0, "{text}");
    assert_eq!(sample(&text, "vendor_gas_wallet_sweeps_left", &c), None);

    p.sweep_all().await;
    gauges::run_once(&p.app.state).await.unwrap();
    let text = scrape(&p.app).await;
    for (status, n) in [
        ("planned", 0.0),
        ("signed", 0.0),
        ("broadcast", 0.0),
        ("confirmed", 1.0),
        ("failed", 0.0),
    ] {
        assert_eq!(
            must(
                &text,
                "vendor_sweeps",
                &[("chain", &chain), ("status", status)]
            ),
            n,
            "{status}"
        );
    }
    assert_eq!(
        must(&text, "vendor_sweeps_oldest_unfinished_age_seconds", &c),
        0.0
    );
    assert_eq!(must(&text, "vendor_gas_wallet_low", &c), 0.0);
    let wei = p.anvil.eth_balance(p.wallets.gas.address()).await;
    let eth = must(&text, "vendor_gas_wallet_balance_eth", &c);
    let want: f64 = wei.to_string().parse::<f64>().unwrap() / 1e18;
    assert!((eth - want).abs() < 1e-9, "{eth} vs {want}");
    // The gas wallet paid this one sweep: its balance covers balance / that cost more.
    let (method, fee, topup, gas_used): (String, String, Option<String>, i64) = sqlx::query_as(
        "select method, fee_wei::text, topup_wei::text, gas_used from sweep where status = 'confirmed'",
    )
    .fetch_one(&p.app.state.pool)
    .await
    .unwrap();
    let fee: U256 = fee.parse().unwrap();
    let cost = if method == "eip3009" {
        fee
    } else {
        topup.unwrap().parse::<U256>().unwrap() + U256::from(21_000u64) * fee / U256::from(gas_used)
    };
    let left = must(&text, "vendor_gas_wallet_sweeps_left", &c);
    let expected: f64 = (wei / cost).to_string().parse().unwrap();
    assert!((left - expected).abs() <= 1.0, "{left} vs {expected}");
    assert!(left > 100.0, "{left}");
}

#[sqlx::test]
async fn an_empty_gas_wallet_shows_as_low_with_no_balance(pool: PgPool) {
    let p = setup_with(pool, &[], 0, true).await;
    let chain = p.app.state.chains.iter().next().unwrap().id().to_string();
    let c = [("chain", chain.as_str())];
    p.paid_usdc(1_000_000).await;
    gauges::run_once(&p.app.state).await.unwrap();
    assert_eq!(
        must(&scrape(&p.app).await, "vendor_gas_wallet_low", &c),
        0.0
    );
    for _ in 0..2 {
        vendor_server::chain::sweeper::run_once(&p.app.state.pool, &p.app.state.chains)
            .await
            .unwrap();
    }
    gauges::run_once(&p.app.state).await.unwrap();
    let text = scrape(&p.app).await;
    assert_eq!(must(&text, "vendor_gas_wallet_low", &c), 1.0);
    assert_eq!(must(&text, "vendor_gas_wallet_balance_eth", &c), 0.0);
    assert_eq!(
        must(
            &text,
            "vendor_sweeps",
            &[("chain", &chain), ("status", "planned")]
        ),
        1.0
    );
}

#[sqlx::test]
async fn a_database_without_autovacuum_is_reported_at_start(pool: PgPool) {
    let shown: String = sqlx::query_scalar("show autovacuum")
        .fetch_one(&pool)
        .await
        .unwrap();
    let warnings = vendor_server::db::setting_warnings(&pool).await.unwrap();
    if shown == "off" {
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("autovacuum = off"), "{warnings:?}");
    } else {
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}
