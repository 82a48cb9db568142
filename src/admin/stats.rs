//! Money over time for the console's overview chart: per UTC day, money credited, usage billed
//! (per offer) and purchases with a positive balance, from the ledger alone.

use std::collections::BTreeMap;

use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::AdminError;
use crate::domain::money::UsdMicros;

/// The longest window asked for (`days`).
pub const MAX_DAYS: i64 = 366;

/// One UTC day.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = DailyStat)]
pub struct Day {
    /// The UTC day (`2026-12-07`).
    #[schema(value_type = String, format = Date)]
    pub day: NaiveDate,
    /// Deposits credited that day, net of deposits a reorg took back (`reversal`).
    pub credited_usd: UsdMicros,
    /// Usage billed that day (meter-usage, the Gemini gateway, S3 estimates and the cost import, net
    /// of the import's credits back).
    pub billed_usd: UsdMicros,
    /// `billed_usd` per offer id; offers with nothing billed that day are absent.
    #[schema(value_type = BTreeMap<String, UsdMicros>)]
    pub billed_by_offer: BTreeMap<String, UsdMicros>,
    /// Purchases whose balance was positive at the end of the day (from the ledger's running
    /// balance), the purchases the vendor serves and owes.
    pub active_purchases: i64,
}

/// `GET /v1/admin/stats/daily`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = DailyStats)]
pub struct Daily {
    /// One item per day, oldest first, today (UTC, so far) last; days without activity included.
    pub items: Vec<Day>,
}

/// The last `days` UTC days (today included), oldest first, one item per day. Days are bucketed by
/// when the ledger row was written (`created_at`), as the overview's windows.
///
/// One statement (one snapshot) and one pass over the window's ledger rows, never the history
/// before it: money is summed per (day, offer); a purchase's balance turns positive or stops being
/// so only at a ledger row whose balance before (`balance_after - amount`) and after differ in sign,
/// so each day's change in active purchases is the sum of those rows' ±1, and the count before the
/// window is today's count less every change since.
pub async fn daily(pool: &PgPool, days: i64) -> Result<Daily, AdminError> {
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(AdminError::invalid(
            "invalid_days",
            format!("days must be 1 to {MAX_DAYS} (30 and 90 are the console's)"),
        ));
    }
    let today = Utc::now().date_naive();
    let first = today - chrono::Duration::days(days - 1);
    let since = first.and_time(chrono::NaiveTime::MIN).and_utc();
    let rows = sqlx::query!(
        r#"with w as (
               select (l.created_at at time zone 'UTC')::date as day, p.offer_id, l.kind, l.amount_micros,
                      l.balance_after_micros
               from ledger_entry l join purchase p using (purchase_id)
               where l.created_at >= $1
           ),
           per_offer as (
               select day, offer_id,
                      coalesce(sum(amount_micros) filter (where kind in ('deposit', 'reversal')), 0) as credited,
                      coalesce(-sum(amount_micros) filter (where kind in ('usage', 'cost', 'usage_estimate')), 0) as billed,
                      sum(case when (balance_after_micros > 0) = (balance_after_micros - amount_micros > 0) then 0
                               when balance_after_micros > 0 then 1 else -1 end) as delta
               from w group by day, offer_id
           ),
           per_day as (
               select day, sum(credited)::bigint as credited, sum(billed)::bigint as billed,
                      sum(delta)::bigint as delta,
                      jsonb_object_agg(offer_id, billed::bigint) filter (where billed <> 0) as by_offer
               from per_offer group by day
           ),
           opening as (
               select (select count(*) from purchase where balance_micros > 0)
                      - coalesce((select sum(delta) from per_day), 0) as n
           )
           select s.day::date as "day!", coalesce(d.credited, 0)::bigint as "credited!",
                  coalesce(d.billed, 0)::bigint as "billed!", coalesce(d.by_offer, '{}') as "by_offer!",
                  ((select n from opening) + sum(coalesce(d.delta, 0)) over (order by s.day))::bigint as "active!"
           from generate_series($2::date, $3::date, interval '1 day') as s(day)
           left join per_day d on d.day = s.day::date
           order by s.day"#,
        since,
        first,
        today
    )
    .fetch_all(pool)
    .await?;
    let items = rows
        .into_iter()
        .map(|r| {
            let by_offer: BTreeMap<String, i64> = serde_json::from_value(r.by_offer)
                .map_err(|e| AdminError::Internal(format!("billed_by_offer unreadable: {e}")))?;
            Ok(Day {
                day: r.day,
                credited_usd: UsdMicros(r.credited),
                billed_usd: UsdMicros(r.billed),
                billed_by_offer: by_offer
                    .into_iter()
                    .map(|(k, v)| (k, UsdMicros(v)))
                    .collect(),
                active_purchases: r.active,
            })
        })
        .collect::<Result<_, AdminError>>()?;
    Ok(Daily { items })
}
