//! The vendor's business metrics on `/metrics`: a collector pass every [`INTERVAL`] reads the database
//! with a few aggregate queries (and each gas wallet's balance from its chain) and sets gauges, and
//! the deposit event sites count through [`deposit_detected`] / [`deposit_credited`]. Every label
//! value comes from a closed set: chain ids from the configuration, the schema's statuses and
//! channels. The README's "Monitoring" section lists every metric.

use std::time::Duration;

use metrics::{gauge, histogram};

use crate::domain::Outcome;
use crate::notify::Channel;
use crate::state::AppState;

/// How often the collector runs.
pub const INTERVAL: Duration = Duration::from_secs(15);
/// How long one gas-balance read may take before the collector leaves that gauge as it was.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// Recent confirmed sweeps whose gas cost estimates the cost of the next one.
const RECENT_SWEEPS: i64 = 20;

const PURCHASE_STATUSES: [&str; 7] = [
    "provisioning",
    "active",
    "low",
    "critical",
    "suspended",
    "deleted",
    "failed",
];
const SWEEP_STATUSES: [&str; 5] = ["planned", "signed", "broadcast", "confirmed", "failed"];
const CHANNELS: [Channel; 4] = [
    Channel::Webhook,
    Channel::Email,
    Channel::Officex,
    Channel::Alert,
];

/// One meter-usage request's time in the meter (debit, idempotency, ledger).
pub fn meter_usage_seconds(seconds: f64) {
    histogram!("vendor_meter_usage_duration_seconds").record(seconds);
}

fn usd(micros: i64) -> f64 {
    // Gauges are f64: exact up to 2^53 micro-USD (9 billion USD).
    #[allow(clippy::cast_precision_loss)]
    let m = micros as f64;
    m / 1_000_000.0
}

fn age_seconds(since: Option<chrono::DateTime<chrono::Utc>>) -> f64 {
    since.map_or(0.0, |t| {
        let ms = (chrono::Utc::now() - t).num_milliseconds().max(0);
        #[allow(clippy::cast_precision_loss)]
        let s = ms as f64 / 1000.0;
        s
    })
}

#[allow(clippy::cast_precision_loss)]
fn count(n: i64) -> f64 {
    n as f64
}

/// One collector pass. Database failures set `vendor_db_up` to 0 and fail the pass (logged by the
/// job loop); a chain that does not answer only leaves its gas gauges as they were.
pub async fn run_once(state: &AppState) -> anyhow::Result<Outcome> {
    pool_gauges(state);
    let result = database_gauges(state).await;
    gauge!("vendor_db_up").set(if result.is_ok() { 1.0 } else { 0.0 });
    result?;
    gas_gauges(state).await?;
    gauge!("vendor_metrics_collected_timestamp_seconds").set(now_seconds());
    Ok(Outcome::Idle)
}

fn now_seconds() -> f64 {
    #[allow(clippy::cast_precision_loss)]
    let ms = chrono::Utc::now().timestamp_millis() as f64;
    ms / 1000.0
}

fn pool_gauges(state: &AppState) {
    let size = state.pool.size();
    let idle = u32::try_from(state.pool.num_idle()).unwrap_or(u32::MAX);
    gauge!("vendor_db_pool_connections", "state" => "idle").set(f64::from(idle));
    gauge!("vendor_db_pool_connections", "state" => "in_use")
        .set(f64::from(size.saturating_sub(idle)));
    gauge!("vendor_db_pool_max_connections").set(f64::from(state.config.database.max_connections));
}

/// The configured chains' ids as label values.
fn chain_ids(state: &AppState) -> Vec<i64> {
    state
        .chains
        .iter()
        .filter_map(|c| i64::try_from(c.id()).ok())
        .collect()
}

async fn database_gauges(state: &AppState) -> anyhow::Result<()> {
    let pool = &state.pool;

    // Purchases by status and the customer balances (the vendor's liability).
    let rows = sqlx::query!(
        r#"select status, count(*) as "n!", coalesce(sum(balance_micros), 0)::bigint as "balance!",
                  coalesce(sum(greatest(balance_micros, 0)), 0)::bigint as "owed!"
           from purchase group by status"#
    )
    .fetch_all(pool)
    .await?;
    let mut liability = 0i64;
    for status in PURCHASE_STATUSES {
        let row = rows.iter().find(|r| r.status == status);
        gauge!("vendor_purchases", "status" => status).set(count(row.map_or(0, |r| r.n)));
        gauge!("vendor_customer_balance_usd", "status" => status)
            .set(usd(row.map_or(0, |r| r.balance)));
        if status != "deleted" {
            liability = liability.saturating_add(row.map_or(0, |r| r.owed));
        }
    }
    gauge!("vendor_customer_liability_usd").set(usd(liability));

    // Sweeps by chain and state, and the age of the oldest unfinished one.
    let chains = chain_ids(state);
    let rows = sqlx::query!(
        r#"select chain_id, status, count(*) as "n!", min(created_at) as oldest
           from sweep group by chain_id, status"#
    )
    .fetch_all(pool)
    .await?;
    for &chain in &chains {
        let label = chain.to_string();
        let mut oldest = None;
        for status in SWEEP_STATUSES {
            let row = rows
                .iter()
                .find(|r| r.chain_id == chain && r.status == status);
            gauge!("vendor_sweeps", "chain" => label.clone(), "status" => status)
                .set(count(row.map_or(0, |r| r.n)));
            if matches!(status, "planned" | "signed" | "broadcast") {
                oldest = match (oldest, row.and_then(|r| r.oldest)) {
                    (Some(a), Some(b)) => Some(std::cmp::min(a, b)),
                    (a, b) => a.or(b),
                };
            }
        }
        gauge!("vendor_sweeps_oldest_unfinished_age_seconds", "chain" => label)
            .set(age_seconds(oldest));
    }

    // The outbox per channel: backlog, retrying, given up, age of the oldest pending row.
    let rows = sqlx::query!(
        r#"select channel, status, count(*) as "n!",
                  count(*) filter (where attempt_count > 0) as "retrying!",
                  min(created_at) as oldest
           from outbox where status <> 'delivered' group by channel, status"#
    )
    .fetch_all(pool)
    .await?;
    for channel in CHANNELS {
        let name = channel.as_str();
        let pending = rows
            .iter()
            .find(|r| r.channel == name && r.status == "pending");
        let failed = rows
            .iter()
            .find(|r| r.channel == name && r.status == "failed");
        gauge!("vendor_outbox_pending", "channel" => name).set(count(pending.map_or(0, |r| r.n)));
        gauge!("vendor_outbox_retrying", "channel" => name)
            .set(count(pending.map_or(0, |r| r.retrying)));
        gauge!("vendor_outbox_failed", "channel" => name).set(count(failed.map_or(0, |r| r.n)));
        gauge!("vendor_outbox_oldest_pending_age_seconds", "channel" => name)
            .set(age_seconds(pending.and_then(|r| r.oldest)));
    }

    // The cost import: configured, its last successful run, whether the latest finished run failed.
    let enabled = crate::billing::cost_import::check_configured(&state.config).is_ok();
    gauge!("vendor_cost_import_enabled").set(if enabled { 1.0 } else { 0.0 });
    let last = sqlx::query!(
        r#"select finished_at as "finished_at!", rows_read, rows_matched
           from cost_import_run
           where status in ('succeeded', 'no_data') and finished_at is not null
           order by started_at desc limit 1"#
    )
    .fetch_optional(pool)
    .await?;
    if let Some(last) = last {
        #[allow(clippy::cast_precision_loss)]
        let at = last.finished_at.timestamp_millis() as f64 / 1000.0;
        gauge!("vendor_cost_import_last_success_timestamp_seconds").set(at);
        gauge!("vendor_cost_import_last_success_rows", "rows" => "read").set(count(last.rows_read));
        gauge!("vendor_cost_import_last_success_rows", "rows" => "matched")
            .set(count(last.rows_matched));
    }
    let latest = sqlx::query_scalar!(
        "select status from cost_import_run where status <> 'running' order by started_at desc limit 1"
    )
    .fetch_optional(pool)
    .await?;
    gauge!("vendor_cost_import_last_run_failed").set(if latest.as_deref() == Some("failed") {
        1.0
    } else {
        0.0
    });

    // The current gas wallet, when the sweeper found it too low (sweeps waiting for funds); rows of
    // an address no longer configured do not count.
    let gas = state
        .chains
        .gas()
        .map(|g| crate::chain::addr_key(g.address()));
    let low = sqlx::query_scalar!(
        "select chain_id from gas_wallet where low_since is not null and address = $1",
        gas.as_deref().unwrap_or_default()
    )
    .fetch_all(pool)
    .await?;
    for &chain in &chains {
        gauge!("vendor_gas_wallet_low", "chain" => chain.to_string())
            .set(if low.contains(&chain) { 1.0 } else { 0.0 });
    }
    Ok(())
}

/// Each chain's gas wallet balance and how many sweeps it still pays for at the average gas cost of
/// the chain's recent sweeps (absent until one has confirmed).
async fn gas_gauges(state: &AppState) -> anyhow::Result<()> {
    let Some(gas) = state.chains.gas() else {
        return Ok(());
    };
    for chain in state.chains.iter() {
        let Ok(id) = i64::try_from(chain.id()) else {
            continue;
        };
        let label = id.to_string();
        let balance = match tokio::time::timeout(
            RPC_TIMEOUT,
            crate::chain::sweeper::gas_balance(chain, gas.address()),
        )
        .await
        {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => {
                tracing::debug!(chain = chain.name(), error = %e, "gas balance unavailable");
                continue;
            }
            Err(_) => {
                tracing::debug!(chain = chain.name(), "gas balance read timed out");
                continue;
            }
        };
        let wei: f64 = balance.to_string().parse().unwrap_or(f64::NAN);
        gauge!("vendor_gas_wallet_balance_eth", "chain" => label.clone()).set(wei / 1e18);
        // The gas wallet pays the relay's fee (eip3009), or the top-up's value and its own
        // plain-transfer fee (21,000 gas) at the sweep's gas price (transfer).
        let cost = sqlx::query_scalar!(
            r#"select avg(case when method = 'eip3009' then fee_wei
                               else coalesce(topup_wei, 0) + 21000 * fee_wei / gas_used end)::float8
               from (select method, fee_wei, topup_wei, gas_used from sweep
                     where chain_id = $1 and status = 'confirmed' and fee_wei is not null
                       and gas_used > 0
                     order by confirmed_at desc limit $2) recent"#,
            id,
            RECENT_SWEEPS,
        )
        .fetch_one(&state.pool)
        .await?;
        if let Some(cost) = cost.filter(|c| *c > 0.0) {
            gauge!("vendor_gas_wallet_sweeps_left", "chain" => label).set((wei / cost).floor());
        }
    }
    Ok(())
}
