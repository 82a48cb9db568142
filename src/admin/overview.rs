//! The console's first screen and the gas wallet per chain.

use std::collections::BTreeMap;
use std::time::Duration;

use alloy::primitives::U256;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::AdminError;
use super::cost_imports::{CostImportRow, cost_imports};
use crate::billing::PurchaseStatus;
use crate::chain::watcher::{self, WatcherStatus};
use crate::chain::{ChainHealth, Chains};
use crate::domain::money::UsdMicros;

/// How long one gas-balance read may take before the console shows the chain as unreadable.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// Recent confirmed sweeps whose gas cost estimates the cost of the next one.
const RECENT_SWEEPS: i64 = 20;

/// The gas wallet on one chain.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct GasWallet {
    pub chain: String,
    pub chain_id: u64,
    pub address: String,
    /// `null` when the chain could not be read (see `error`).
    pub balance_wei: Option<String>,
    /// The balance in ETH, as an exact decimal string.
    pub balance_eth: Option<String>,
    /// The sweeper found it too low for the next sweep (sweeps wait; a `gas.low` alert went out).
    pub low: bool,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub low_since: Option<DateTime<Utc>>,
    /// Average gas cost of the chain's recent sweeps (`null` until one has confirmed).
    pub sweep_cost_wei: Option<String>,
    /// How many sweeps the balance still pays for at that cost.
    pub sweeps_covered: Option<String>,
    /// Unfinished sweeps on this chain.
    pub sweeps_waiting: i64,
    /// What the gas wallet spent over the last 7 days: its single relays' fees, its sweep batches'
    /// transactions, its gas top-ups (value and fee) and, when it is also the payout wallet, its
    /// refund payouts' transactions; `null` when nothing.
    pub gas_spent_7d_wei: Option<String>,
    /// How many days the balance lasts at the last 7 days' rate (balance ÷ (spent ÷ 7), rounded
    /// down to a tenth); `null` when nothing was spent or the balance is unreadable.
    pub gas_runway_days: Option<f64>,
    pub error: Option<String>,
}

/// Days of gas left: `balance / (spent / 7)`, rounded down to a tenth (`None` without spending).
fn runway_days(balance: U256, spent_7d: U256) -> Option<f64> {
    if spent_7d.is_zero() {
        return None;
    }
    let tenths = balance.saturating_mul(U256::from(70u64)) / spent_7d;
    let tenths = u64::try_from(tenths).unwrap_or(u64::MAX);
    // Exact below 2^53 tenths of a day; a runway that long is "forever" anyway.
    #[allow(clippy::cast_precision_loss)]
    Some(tenths as f64 / 10.0)
}

/// The gas wallet's balance, low flag and coverage on every configured chain (`[]` without a gas
/// wallet). Each balance read is bounded by a timeout; an unreadable chain carries an `error`.
pub async fn gas(pool: &PgPool, chains: &Chains) -> Result<Vec<GasWallet>, AdminError> {
    let Some(gas) = chains.gas() else {
        return Ok(Vec::new());
    };
    let address = crate::chain::addr_key(gas.address());
    // Every chain's balance at once: one slow RPC does not add up with the others.
    let balances = futures::future::join_all(chains.iter().map(|chain| async move {
        match tokio::time::timeout(
            RPC_TIMEOUT,
            crate::chain::sweeper::gas_balance(chain, gas.address()),
        )
        .await
        {
            Ok(Ok(b)) => (Some(b), None),
            Ok(Err(e)) => (None, Some(e.to_string())),
            Err(_) => (None, Some(format!("no answer within {RPC_TIMEOUT:?}"))),
        }
    }))
    .await;
    let mut out = Vec::new();
    for (chain, (balance, error)) in chains.iter().zip(balances) {
        let Ok(id) = i64::try_from(chain.id()) else {
            continue;
        };
        // Spent over the last 7 days by the gas wallet: its single relays' fees (a batched relay's
        // share is in its batch's), its batches' whole transactions (members failed or not), its
        // gas top-ups' value and fee when mined (whatever became of their sweep; top-ups from
        // before their fee was recorded: value plus 21,000 gas at their sweep's price, when the
        // sweep confirmed) and its refund payouts' mined transactions (the payout wallet may be
        // the gas wallet).
        let row = sqlx::query!(
            r#"select (select low_since from gas_wallet where chain_id = $1 and address = $2) as low_since,
                      (select avg(case when method = 'eip3009' then fee_wei
                                       else coalesce(topup_wei, 0) + coalesce(topup_fee_wei, 21000 * fee_wei / gas_used) end)::numeric(78, 0)::text
                       from (select method, fee_wei, topup_wei, topup_fee_wei, gas_used from sweep
                             where chain_id = $1 and status = 'confirmed' and fee_wei is not null and gas_used > 0
                             order by confirmed_at desc limit $3) recent) as cost,
                      (select count(*) from sweep where chain_id = $1
                         and status not in ('confirmed', 'failed')) as "waiting!",
                      (coalesce((select sum(fee_wei) from sweep
                                 where chain_id = $1 and method = 'eip3009' and batch_id is null and status = 'confirmed'
                                   and confirmed_at >= now() - interval '7 days'), 0)
                       + coalesce((select sum(topup_wei + topup_fee_wei) from sweep
                                   where chain_id = $1 and topup_confirmed_at >= now() - interval '7 days'), 0)
                       + coalesce((select sum(topup_wei + 21000 * fee_wei / gas_used) from sweep
                                   where chain_id = $1 and method = 'transfer' and topup_tx_hash is not null
                                     and topup_confirmed_at is null and status = 'confirmed' and gas_used > 0
                                     and confirmed_at >= now() - interval '7 days'), 0)
                       + coalesce((select sum(fee_wei) from sweep_batch
                                   where chain_id = $1 and from_address = $2 and confirmed_at >= now() - interval '7 days'), 0)
                       + coalesce((select sum(payout_fee_wei) from refund
                                   where chain_id = $1 and from_address = $2 and payout_mined_at >= now() - interval '7 days'), 0)
                      )::numeric(78, 0)::text as "spent_7d!""#,
            id,
            address,
            RECENT_SWEEPS
        )
        .fetch_one(pool)
        .await?;
        let cost = row
            .cost
            .and_then(|c| c.parse::<U256>().ok())
            .filter(|c| !c.is_zero());
        let spent_7d = row.spent_7d.parse::<U256>().ok().filter(|s| !s.is_zero());
        out.push(GasWallet {
            chain: chain.name().to_owned(),
            chain_id: chain.id(),
            address: address.clone(),
            balance_wei: balance.map(|b| b.to_string()),
            balance_eth: balance.map(|b| crate::chain::format_units(b, 18)),
            low: row.low_since.is_some(),
            low_since: row.low_since,
            sweep_cost_wei: cost.map(|c| c.to_string()),
            sweeps_covered: balance.zip(cost).map(|(b, c)| (b / c).to_string()),
            sweeps_waiting: row.waiting,
            gas_spent_7d_wei: spent_7d.map(|s| s.to_string()),
            gas_runway_days: balance.zip(spent_7d).and_then(|(b, s)| runway_days(b, s)),
            error,
        });
    }
    Ok(out)
}

/// Money over one window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Money {
    /// Deposits credited.
    pub credited_usd: UsdMicros,
    /// Usage billed (meter-usage, the Gemini gateway, the cost import), net of refunds.
    pub usage_billed_usd: UsdMicros,
    /// Operators' adjustments, net.
    pub adjustments_usd: UsdMicros,
}

/// Money today (since 00:00 UTC), over the last 7 and 30 days (rolling).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct MoneyWindows {
    pub today: Money,
    pub last_7_days: Money,
    pub last_30_days: Money,
}

/// Money swept from deposit addresses to the treasury on one chain, in one token (confirmed
/// sweeps, all time; chains and tokens no longer configured are left out: their decimals are
/// unknown).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Swept {
    pub chain_id: u64,
    /// The chain's name in the chains file.
    pub chain: String,
    /// The token's symbol (`usdc`).
    pub token: String,
    /// In whole tokens, exact (`"4.75"`).
    pub amount: String,
    /// In the token's smallest units.
    pub amount_units: String,
}

/// The console's first screen.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[schema(as = AdminOverview)]
pub struct Overview {
    pub money: MoneyWindows,
    /// What the vendor owes: the sum of every positive purchase balance.
    pub liability_usd: UsdMicros,
    /// Money swept per chain and token (confirmed sweeps, all time).
    pub swept: Vec<Swept>,
    /// Each chain's `gas[].gas_runway_days`, keyed by chain id (`"31337"`): days of gas left at
    /// the last 7 days' rate; `null` when nothing was spent or the balance is unreadable.
    pub gas_runway_days: BTreeMap<String, Option<f64>>,
    /// Every status with its count (0 included).
    pub purchases_by_status: BTreeMap<String, i64>,
    pub purchases_total: i64,
    pub gas: Vec<GasWallet>,
    /// Each chain's JSON-RPC endpoints: up, down or not called yet, with their counters (as on
    /// `/health`). A chain whose endpoints are all down holds its checkouts (503) and sweeps.
    pub rpc: BTreeMap<String, ChainHealth>,
    /// Each chain's deposit watcher: its last full pass and the block ranges it could not read yet.
    #[serde(default)]
    pub watcher: BTreeMap<String, WatcherStatus>,
    /// Unfinished sweeps (planned, signed, broadcast).
    pub sweeps_waiting: i64,
    pub sweeps_failed: i64,
    pub notifications_failed: i64,
    pub notifications_pending: i64,
    /// The newest cost import run (`null` before the first).
    pub last_cost_import: Option<CostImportRow>,
    #[schema(value_type = String, format = DateTime)]
    pub generated_at: DateTime<Utc>,
}

/// Everything the overview shows.
pub async fn overview(pool: &PgPool, chains: &Chains) -> Result<Overview, AdminError> {
    let m = sqlx::query!(
        r#"select
             coalesce(sum(amount_micros) filter (where kind = 'deposit' and created_at >= date_trunc('day', now() at time zone 'UTC') at time zone 'UTC'), 0)::bigint as "credited_today!",
             coalesce(sum(amount_micros) filter (where kind = 'deposit' and created_at >= now() - interval '7 days'), 0)::bigint as "credited_7!",
             coalesce(sum(amount_micros) filter (where kind = 'deposit'), 0)::bigint as "credited_30!",
             coalesce(-sum(amount_micros) filter (where kind in ('usage', 'cost', 'usage_estimate') and created_at >= date_trunc('day', now() at time zone 'UTC') at time zone 'UTC'), 0)::bigint as "billed_today!",
             coalesce(-sum(amount_micros) filter (where kind in ('usage', 'cost', 'usage_estimate') and created_at >= now() - interval '7 days'), 0)::bigint as "billed_7!",
             coalesce(-sum(amount_micros) filter (where kind in ('usage', 'cost', 'usage_estimate')), 0)::bigint as "billed_30!",
             coalesce(sum(amount_micros) filter (where kind = 'adjustment' and created_at >= date_trunc('day', now() at time zone 'UTC') at time zone 'UTC'), 0)::bigint as "adjusted_today!",
             coalesce(sum(amount_micros) filter (where kind = 'adjustment' and created_at >= now() - interval '7 days'), 0)::bigint as "adjusted_7!",
             coalesce(sum(amount_micros) filter (where kind = 'adjustment'), 0)::bigint as "adjusted_30!"
           from ledger_entry
           where kind in ('deposit', 'usage', 'cost', 'usage_estimate', 'adjustment') and created_at >= now() - interval '30 days'"#
    )
    .fetch_one(pool)
    .await?;
    let money = MoneyWindows {
        today: Money {
            credited_usd: UsdMicros(m.credited_today),
            usage_billed_usd: UsdMicros(m.billed_today),
            adjustments_usd: UsdMicros(m.adjusted_today),
        },
        last_7_days: Money {
            credited_usd: UsdMicros(m.credited_7),
            usage_billed_usd: UsdMicros(m.billed_7),
            adjustments_usd: UsdMicros(m.adjusted_7),
        },
        last_30_days: Money {
            credited_usd: UsdMicros(m.credited_30),
            usage_billed_usd: UsdMicros(m.billed_30),
            adjustments_usd: UsdMicros(m.adjusted_30),
        },
    };
    let mut purchases_by_status: BTreeMap<String, i64> = [
        PurchaseStatus::Provisioning,
        PurchaseStatus::Active,
        PurchaseStatus::Low,
        PurchaseStatus::Critical,
        PurchaseStatus::Suspended,
        PurchaseStatus::Deleted,
        PurchaseStatus::Failed,
    ]
    .iter()
    .map(|s| (s.as_str().to_owned(), 0))
    .collect();
    let counts = sqlx::query!(r#"select status, count(*) as "n!" from purchase group by status"#)
        .fetch_all(pool)
        .await?;
    for c in counts {
        purchases_by_status.insert(c.status, c.n);
    }
    let purchases_total = purchases_by_status.values().sum();
    let q = sqlx::query!(
        r#"select
             (select count(*) from sweep where status not in ('confirmed', 'failed')) as "sweeps_waiting!",
             (select count(*) from sweep where status = 'failed') as "sweeps_failed!",
             (select count(*) from outbox where status = 'failed') as "notifications_failed!",
             (select count(*) from outbox where status = 'pending') as "notifications_pending!""#
    )
    .fetch_one(pool)
    .await?;
    let last_cost_import = cost_imports(pool, None, 1).await?.items.pop();
    let liability = sqlx::query_scalar!(
        r#"select coalesce(sum(balance_micros) filter (where balance_micros > 0), 0)::bigint as "owed!"
           from purchase"#
    )
    .fetch_one(pool)
    .await?;
    let swept = sqlx::query!(
        r#"select chain_id, token_address, token_symbol, sum(amount_units)::text as "units!"
           from sweep where status = 'confirmed'
           group by chain_id, token_address, token_symbol
           order by chain_id, token_symbol, token_address"#
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .filter_map(|r| {
        let chain_id = u64::try_from(r.chain_id).ok()?;
        let chain = chains.by_id(chain_id)?;
        let token = chain.token_by_address(r.token_address.parse().ok()?)?;
        let units = r.units.parse::<U256>().ok()?;
        Some(Swept {
            chain_id,
            chain: chain.name().to_owned(),
            token: r.token_symbol,
            amount: crate::chain::format_units(units, token.decimals),
            amount_units: r.units,
        })
    })
    .collect();
    let gas = gas(pool, chains).await?;
    let gas_runway_days = gas
        .iter()
        .map(|g| (g.chain_id.to_string(), g.gas_runway_days))
        .collect();
    Ok(Overview {
        money,
        liability_usd: UsdMicros(liability),
        swept,
        gas_runway_days,
        purchases_by_status,
        purchases_total,
        gas,
        rpc: chains.health(),
        watcher: watcher::status(pool, chains).await.map_err(|e| match e {
            crate::chain::ChainError::Db(e) => AdminError::Db(e),
            other => AdminError::InvalidState(other.to_string()),
        })?,
        sweeps_waiting: q.sweeps_waiting,
        sweeps_failed: q.sweeps_failed,
        notifications_failed: q.notifications_failed,
        notifications_pending: q.notifications_pending,
        last_cost_import,
        generated_at: Utc::now(),
    })
}
