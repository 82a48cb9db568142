//! Historical billing: usage charges of one purchase per time bucket (UTC), on plain PostgreSQL
//! (`date_trunc`). Buckets hold usage and cost ledger rows net of refunds (a cost credit-back is
//! negative), never deposits.

use std::collections::BTreeMap;

use bigdecimal::{BigDecimal, RoundingMode};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use serde::Serialize;
use sqlx::PgPool;

use super::BillingError;
use crate::domain::ids::PurchaseId;
use crate::domain::money::UsdMicros;

/// Bucket width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interval {
    Hourly,
    Daily,
    /// ISO weeks (Monday 00:00 UTC).
    Weekly,
    Monthly,
    Yearly,
}

impl Interval {
    /// `hourly|daily|weekly|monthly|yearly` (also `hour`, `day`, … and `1 day`, …).
    pub fn parse(s: &str) -> Result<Self, BillingError> {
        let s = s.trim().to_ascii_lowercase();
        Ok(match s.strip_prefix("1 ").unwrap_or(&s) {
            "hourly" | "hour" => Self::Hourly,
            "daily" | "day" => Self::Daily,
            "weekly" | "week" => Self::Weekly,
            "monthly" | "month" => Self::Monthly,
            "yearly" | "year" => Self::Yearly,
            _ => {
                return Err(BillingError::Invalid(format!(
                    "interval {s:?} is not one of hourly, daily, weekly, monthly, yearly"
                )));
            }
        })
    }

    fn unit(self) -> &'static str {
        match self {
            Self::Hourly => "hour",
            Self::Daily => "day",
            Self::Weekly => "week",
            Self::Monthly => "month",
            Self::Yearly => "year",
        }
    }
}

/// A date bound as given: a whole day or an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    Date(NaiveDate),
    Instant(DateTime<Utc>),
}

impl Bound {
    /// `YYYY-MM-DD`, an RFC 3339 datetime, or `YYYY-MM-DDTHH:MM:SS[.f]` (UTC).
    /// Only 2000-01-01 … now + 1 day (SPEC §9): anything else is refused, never sent to PostgreSQL.
    pub fn parse(s: &str) -> Result<Self, BillingError> {
        let bound = Self::parse_any(s)?;
        crate::domain::input::timestamp("the date", bound.start())
            .map_err(|e| BillingError::Invalid(e.message))?;
        Ok(bound)
    }

    fn parse_any(s: &str) -> Result<Self, BillingError> {
        let s = s.trim();
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok(Self::Date(d));
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(Self::Instant(t.with_timezone(&Utc)));
        }
        for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
            if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
                return Ok(Self::Instant(t.and_utc()));
            }
        }
        Err(BillingError::Invalid(format!(
            "{s:?} is not a date (YYYY-MM-DD) or an RFC 3339 datetime"
        )))
    }

    /// Inclusive lower bound: a date starts at its midnight.
    fn start(self) -> DateTime<Utc> {
        match self {
            Self::Date(d) => d.and_time(chrono::NaiveTime::MIN).and_utc(),
            Self::Instant(t) => t,
        }
    }

    /// Exclusive upper bound: a date includes its whole day; an instant is included.
    fn end_exclusive(self) -> DateTime<Utc> {
        match self {
            Self::Date(d) => d.and_time(chrono::NaiveTime::MIN).and_utc() + Duration::days(1),
            Self::Instant(t) => t + Duration::microseconds(1),
        }
    }
}

/// One bucket on the wire.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Bucket {
    pub time_bucket: String,
    pub total_usage_amount: String,
    pub total_billed_amount: UsdMicros,
    pub usage_by_unit: BTreeMap<String, String>,
    pub purchase_id: PurchaseId,
}

fn amount_text(d: &BigDecimal) -> String {
    d.with_scale_round(6, RoundingMode::HalfUp)
        .to_plain_string()
}

/// The buckets of `purchase_id`, ascending; only buckets with charges appear.
pub async fn buckets(
    pool: &PgPool,
    purchase_id: PurchaseId,
    interval: Interval,
    start: Option<Bound>,
    end: Option<Bound>,
) -> Result<Vec<Bucket>, BillingError> {
    let from = start.map(Bound::start);
    let until = end.map(Bound::end_exclusive);
    if let (Some(from), Some(until)) = (from, until)
        && from >= until
    {
        return Err(BillingError::Invalid(
            "start_date must be before end_date".into(),
        ));
    }
    let rows = sqlx::query!(
        r#"select date_trunc($2, occurred_at, 'UTC') as "bucket!",
                  usage_unit,
                  coalesce(sum(usage_amount), 0) as "usage!",
                  (-sum(amount_micros))::bigint as "billed!"
           from ledger_entry
           where purchase_id = $1 and kind in ('usage', 'cost', 'usage_estimate')
             and ($3::timestamptz is null or occurred_at >= $3)
             and ($4::timestamptz is null or occurred_at < $4)
           group by 1, 2
           order by 1, 2"#,
        purchase_id.0,
        interval.unit(),
        from,
        until,
    )
    .fetch_all(pool)
    .await?;
    struct Acc {
        bucket: DateTime<Utc>,
        usage: BigDecimal,
        billed: i64,
        by_unit: BTreeMap<String, String>,
    }
    let mut out: Vec<Acc> = Vec::new();
    for r in rows {
        if out.last().is_none_or(|b| b.bucket != r.bucket) {
            out.push(Acc {
                bucket: r.bucket,
                usage: BigDecimal::from(0),
                billed: 0,
                by_unit: BTreeMap::new(),
            });
        }
        if let Some(b) = out.last_mut() {
            b.usage += &r.usage;
            b.billed += r.billed;
            if let Some(unit) = r.usage_unit {
                b.by_unit.insert(unit, amount_text(&r.usage));
            }
        }
    }
    Ok(out
        .into_iter()
        .map(|b| Bucket {
            time_bucket: b.bucket.to_rfc3339_opts(SecondsFormat::Secs, true),
            total_usage_amount: amount_text(&b.usage),
            total_billed_amount: UsdMicros(b.billed),
            usage_by_unit: b.by_unit,
            purchase_id,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_bounds_parse() {
        assert_eq!(Interval::parse("Weekly").unwrap(), Interval::Weekly);
        assert_eq!(Interval::parse("1 day").unwrap(), Interval::Daily);
        assert!(Interval::parse("fortnightly").is_err());
        assert_eq!(
            Bound::parse("2026-03-01")
                .unwrap()
                .end_exclusive()
                .to_rfc3339(),
            "2026-03-02T00:00:00+00:00"
        );
        assert_eq!(
            Bound::parse("2026-03-01T10:00:00+02:00")
                .unwrap()
                .start()
                .to_rfc3339(),
            "2026-03-01T08:00:00+00:00"
        );
        assert!(matches!(
            Bound::parse("2026-03-01T10:00:00").unwrap(),
            Bound::Instant(_)
        ));
        for bad in [
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "",
            "-5000-01-01",
            "1999-12-31",
            "9999-12-31",
            "262143-12-31",
        ] {
            assert!(Bound::parse(bad).is_err(), "{bad}");
        }
    }
}
