//! `BILLING_SOURCE=cost_explorer`: GetCostAndUsage through moto's configurable results.

use serde_json::{Value, json};
use sqlx::PgPool;
use vendor_server::jobs::Outcome;

use super::{balance, cost_rows, day, env, purchase, runs};

fn group(tag: &str, amount: &str) -> Value {
    json!({
        "Keys": [format!("officex_vendor_purchase_id${tag}")],
        "Metrics": {"UnblendedCost": {"Amount": amount, "Unit": "USD"}}
    })
}

fn by_day(day: &str, next: &str, groups: Vec<Value>) -> Value {
    json!({
        "TimePeriod": {"Start": day, "End": next},
        "Total": {},
        "Groups": groups,
        "Estimated": true
    })
}

#[sqlx::test]
async fn cost_explorer_daily_groups_are_charged_across_pages_and_restated(pool: PgPool) {
    let env = env(pool, &[("BILLING_SOURCE", "cost_explorer")]).await;
    let p = purchase(env.pool(), 10).await;
    let q = purchase(env.pool(), 10).await;
    let (tp, tq) = (p.to_string(), q.to_string());
    env.moto
        .queue_cost_and_usage(json!([
            {
                "ResultsByTime": [
                    by_day("2026-03-01", "2026-03-02", vec![
                        group(&tp, "1.0000000001"),
                        group("", "7"),
                        group("CustomerPurchaseID_00000000-0000-4000-8000-000000000000", "3"),
                    ]),
                ],
                "DimensionValueAttributes": [],
                "GroupDefinitions": [{"Type": "TAG", "Key": "officex_vendor_purchase_id"}],
                "NextPageToken": "page-2"
            },
            {
                "ResultsByTime": [
                    by_day("2026-03-02", "2026-03-03", vec![group(&tp, "-0.5"), group(&tq, "2")]),
                ],
                "DimensionValueAttributes": [],
                "GroupDefinitions": [{"Type": "TAG", "Key": "officex_vendor_purchase_id"}]
            }
        ]))
        .await;
    assert_eq!(
        env.run(day(2026, 3, 20)).await.unwrap(),
        Outcome::Processed(3)
    );
    // 1.0000000001 × 1.36 → 1.360000; -0.5 × 1.36 → credit 0.68; 2 × 1.36 = 2.72.
    assert_eq!(
        balance(env.pool(), p).await,
        10_000_000 - 1_360_000 + 680_000
    );
    assert_eq!(balance(env.pool(), q).await, 10_000_000 - 2_720_000);
    let r = &runs(env.pool()).await[0];
    assert_eq!(
        (r.0.as_str(), r.2, r.3, r.4, r.5),
        ("succeeded", 5, 3, 1, 1)
    );
    let source: (String, i32) = sqlx::query_as("select source, files from cost_import_run")
        .fetch_one(env.pool())
        .await
        .unwrap();
    assert_eq!(source, ("cost_explorer".to_owned(), 2));

    // The same answer again changes nothing (moto replays it for the same request).
    assert_eq!(
        env.run(day(2026, 3, 20)).await.unwrap(),
        Outcome::Processed(0)
    );

    // Cost Explorer restates March 1st for p higher, drops q.
    env.moto.reset().await;
    env.moto
        .queue_cost_and_usage(json!([{
            "ResultsByTime": [
                by_day("2026-03-01", "2026-03-02", vec![group(&tp, "2")]),
                by_day("2026-03-02", "2026-03-03", vec![group(&tp, "-0.5")]),
            ],
            "DimensionValueAttributes": []
        }]))
        .await;
    assert_eq!(
        env.run(day(2026, 3, 20)).await.unwrap(),
        Outcome::Processed(2)
    );
    assert_eq!(
        balance(env.pool(), p).await,
        10_000_000 - 2_720_000 + 680_000
    );
    assert_eq!(balance(env.pool(), q).await, 10_000_000);
    assert_eq!(cost_rows(env.pool(), p).await.len(), 3);
}

#[sqlx::test]
async fn cost_explorer_needs_a_mapped_cost_column(pool: PgPool) {
    let env = env(
        pool,
        &[
            ("BILLING_SOURCE", "cost_explorer"),
            ("CUR_COST_COLUMN", "pricing_public_on_demand_cost"),
        ],
    )
    .await;
    let err = env.run(day(2026, 3, 20)).await.unwrap_err();
    assert!(
        format!("{err:#}").contains("no Cost Explorer metric"),
        "{err:#}"
    );
}
