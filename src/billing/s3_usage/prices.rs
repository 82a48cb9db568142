//! An S3 offer's price table and limits (its `settings`), and the price of one day's usage.
//!
//! ```toml
//! [offers.settings.s3_prices]      # USD, AWS's public us-east-1 S3 Standard prices by default
//! storage_gb_month = "0.023"
//! egress_gb = "0.09"
//! get_per_1k = "0.0004"
//! put_per_1k = "0.005"
//! [offers.settings]
//! max_egress_gb_per_day = "50"     # optional
//! max_storage_gb = "1000"          # optional
//! ```
//!
//! A GB is 2³⁰ bytes, as on AWS's bill. The markup is the daily import's (`COST_MARKUP_PERCENT`), so
//! the estimate and the AWS figure that replaces it are priced alike.

use crate::billing::cost_import::Exact;

/// One GB as AWS bills it.
pub const GB: u64 = 1 << 30;

/// Unit prices in USD (exact, 18 decimals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct S3Prices {
    pub storage_gb_month: Exact,
    pub egress_gb: Exact,
    pub get_per_1k: Exact,
    pub put_per_1k: Exact,
}

impl Default for S3Prices {
    /// AWS's public us-east-1 prices (S3 Standard, first 50 TB; internet egress, first 10 TB).
    fn default() -> Self {
        let p = |s: &str| Exact::parse(s.as_bytes()).unwrap_or(Exact::ZERO);
        Self {
            storage_gb_month: p("0.023"),
            egress_gb: p("0.09"),
            get_per_1k: p("0.0004"),
            put_per_1k: p("0.005"),
        }
    }
}

/// The offer's limits in bytes (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct S3Limits {
    pub egress_bytes_per_day: Option<u64>,
    pub storage_bytes: Option<u64>,
}

/// A day's usage of one purchase.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayUsage {
    pub egress_bytes: u64,
    pub get_requests: u64,
    pub put_requests: u64,
    /// BucketSizeBytes of the day (all storage types); `None` until CloudWatch has it.
    pub storage_bytes: Option<u64>,
}

/// A setting that is not a non-negative decimal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("offer setting {0} must be a non-negative decimal (a string like \"0.023\")")]
pub struct BadSetting(pub String);

fn decimal(value: &serde_json::Value, name: &str) -> Result<Option<Exact>, BadSetting> {
    let text = match value {
        serde_json::Value::Null => return Ok(None),
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return Err(BadSetting(name.to_owned())),
    };
    Exact::parse(text.as_bytes())
        .filter(|e| e.0 >= 0)
        .map(Some)
        .ok_or_else(|| BadSetting(name.to_owned()))
}

impl S3Prices {
    /// `settings.s3_prices`, each missing price AWS's us-east-1 default.
    pub fn from_settings(settings: &serde_json::Value) -> Result<Self, BadSetting> {
        let table = &settings["s3_prices"];
        let d = Self::default();
        let get = |name: &str, default: Exact| -> Result<Exact, BadSetting> {
            Ok(decimal(&table[name], &format!("s3_prices.{name}"))?.unwrap_or(default))
        };
        Ok(Self {
            storage_gb_month: get("storage_gb_month", d.storage_gb_month)?,
            egress_gb: get("egress_gb", d.egress_gb)?,
            get_per_1k: get("get_per_1k", d.get_per_1k)?,
            put_per_1k: get("put_per_1k", d.put_per_1k)?,
        })
    }

    /// The AWS-priced cost of a day (before markup), exact to 10⁻¹⁸ USD (each term's remainder below
    /// that is dropped): egress × `egress_gb` / GB + GETs × `get_per_1k` / 1000 + PUTs ×
    /// `put_per_1k` / 1000 + storage × `storage_gb_month` / GB / days in the month.
    pub fn day_cost(&self, usage: &DayUsage, days_in_month: u32) -> Option<Exact> {
        let gb = i128::from(GB);
        let egress = i128::from(usage.egress_bytes).checked_mul(self.egress_gb.0)? / gb;
        let gets = i128::from(usage.get_requests).checked_mul(self.get_per_1k.0)? / 1000;
        let puts = i128::from(usage.put_requests).checked_mul(self.put_per_1k.0)? / 1000;
        let storage = match usage.storage_bytes {
            Some(bytes) => {
                i128::from(bytes).checked_mul(self.storage_gb_month.0)?
                    / gb
                    / i128::from(days_in_month.max(1))
            }
            None => 0,
        };
        Some(Exact(
            egress
                .checked_add(gets)?
                .checked_add(puts)?
                .checked_add(storage)?,
        ))
    }
}

impl S3Limits {
    /// `settings.max_egress_gb_per_day` and `settings.max_storage_gb` in bytes.
    pub fn from_settings(settings: &serde_json::Value) -> Result<Self, BadSetting> {
        let bytes = |name: &str| -> Result<Option<u64>, BadSetting> {
            Ok(match decimal(&settings[name], name)? {
                Some(gb) => Some(
                    u64::try_from(
                        gb.0.checked_mul(i128::from(GB))
                            .ok_or_else(|| BadSetting(name.into()))?
                            / 1_000_000_000_000_000_000,
                    )
                    .map_err(|_| BadSetting(name.to_owned()))?,
                ),
                None => None,
            })
        };
        Ok(Self {
            egress_bytes_per_day: bytes("max_egress_gb_per_day")?,
            storage_bytes: bytes("max_storage_gb")?,
        })
    }
}

/// The number of days of `day`'s month.
pub fn days_in_month(day: chrono::NaiveDate) -> u32 {
    use chrono::Datelike;
    let first = day.with_day(1).unwrap_or(day);
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .unwrap_or(first);
    u32::try_from((next - first).num_days()).unwrap_or(30)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_are_aws_us_east_1_and_settings_override() {
        let p = S3Prices::from_settings(&json!({})).unwrap();
        assert_eq!(p, S3Prices::default());
        assert_eq!(p.egress_gb.to_string(), "0.09");
        let p = S3Prices::from_settings(
            &json!({"s3_prices": {"egress_gb": "0.05", "get_per_1k": 0.001}}),
        )
        .unwrap();
        assert_eq!(p.egress_gb.to_string(), "0.05");
        assert_eq!(p.get_per_1k.to_string(), "0.001");
        assert_eq!(p.put_per_1k.to_string(), "0.005");
        for bad in [
            json!({"s3_prices": {"egress_gb": "-1"}}),
            json!({"s3_prices": {"egress_gb": true}}),
        ] {
            assert!(S3Prices::from_settings(&bad).is_err());
        }
    }

    #[test]
    fn a_day_is_priced_exactly() {
        let p = S3Prices::default();
        let usage = DayUsage {
            egress_bytes: 10 * GB,
            get_requests: 2500,
            put_requests: 1000,
            storage_bytes: Some(30 * GB),
        };
        // 10 × 0.09 + 2.5 × 0.0004 + 1 × 0.005 + 30 × 0.023 / 30 = 0.9 + 0.001 + 0.005 + 0.023
        assert_eq!(p.day_cost(&usage, 30).unwrap().to_string(), "0.929");
        assert_eq!(
            p.day_cost(&usage, 30).unwrap().charge_micros(3600),
            Some(1_263_440)
        );
        let limits = S3Limits::from_settings(&json!({"max_egress_gb_per_day": "1.5"})).unwrap();
        assert_eq!(limits.egress_bytes_per_day, Some(GB + GB / 2));
        assert_eq!(limits.storage_bytes, None);
        assert_eq!(
            days_in_month(chrono::NaiveDate::from_ymd_opt(2024, 2, 10).unwrap()),
            29
        );
    }
}
