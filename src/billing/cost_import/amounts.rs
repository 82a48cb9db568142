//! Exact amounts (`Exact`, fixed-point with the CUR's full precision) and billing periods (a month).

use super::*;

/// An exact signed decimal with 18 fractional digits (units of 10⁻¹⁸), for AWS costs (CUR writes up to
/// about 10 places) and usage amounts. Sums are exact; rounding happens once, in [`Exact::charge_micros`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Exact(pub i128);

pub(super) const EXACT_ONE: i128 = 1_000_000_000_000_000_000;

impl Exact {
    pub const ZERO: Self = Self(0);
    /// Fractional digits.
    pub const SCALE: i32 = 18;

    /// Parses a plain decimal (`12`, `-0.0000004`, `+.5`) or one with an exponent (`1.6E-9`), as AWS
    /// writes them, exactly. Surrounding ASCII whitespace is ignored. `None` for anything else, for
    /// more than 18 significant fractional digits, or out of range (|x| ≥ 1.7·10²⁰).
    pub fn parse(input: &[u8]) -> Option<Self> {
        let s = input.trim_ascii();
        let (negative, body) = match s.first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let mut mantissa: i128 = 0;
        let mut fraction_digits: i32 = 0;
        let mut seen_digit = false;
        let mut seen_dot = false;
        let mut i = 0;
        while i < body.len() {
            match body[i] {
                b @ b'0'..=b'9' => {
                    seen_digit = true;
                    mantissa = mantissa
                        .checked_mul(10)?
                        .checked_add(i128::from(b - b'0'))?;
                    if seen_dot {
                        fraction_digits += 1;
                    }
                }
                b'.' if !seen_dot => seen_dot = true,
                b'e' | b'E' => break,
                _ => return None,
            }
            i += 1;
        }
        if !seen_digit {
            return None;
        }
        let mut exponent: i32 = 0;
        if i < body.len() {
            let exp = &body[i + 1..];
            let (exp_negative, digits) = match exp.first()? {
                b'-' => (true, &exp[1..]),
                b'+' => (false, &exp[1..]),
                _ => (false, exp),
            };
            if digits.is_empty() || digits.len() > 4 || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let magnitude = digits
                .iter()
                .fold(0i32, |acc, d| acc * 10 + i32::from(d - b'0'));
            exponent = if exp_negative { -magnitude } else { magnitude };
        }
        // value = mantissa × 10^-(fraction_digits - exponent)
        let scale = fraction_digits - exponent;
        let units = if scale <= Self::SCALE {
            let shift = u32::try_from(Self::SCALE - scale).ok()?;
            mantissa.checked_mul(10i128.checked_pow(shift)?)?
        } else {
            let shift = u32::try_from(scale - Self::SCALE).ok()?;
            let divisor = 10i128.checked_pow(shift)?;
            if mantissa % divisor != 0 {
                return None;
            }
            mantissa / divisor
        };
        Some(Self(if negative { -units } else { units }))
    }

    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }

    /// What a customer is charged for this AWS cost: `cost × (1 + markup_bps / 10 000)` in micro-USD,
    /// rounded half up (towards +∞ at exactly half, also for net credits). `None` out of range.
    pub fn charge_micros(self, markup_bps: u32) -> Option<i64> {
        let numerator = self.0.checked_mul(10_000 + i128::from(markup_bps))?;
        // 10⁻¹⁸ units × basis points → micro-USD: divide by 10⁴ × 10¹².
        let denominator: i128 = 10_000 * 1_000_000_000_000;
        let rounded = numerator
            .checked_mul(2)?
            .checked_add(denominator)?
            .div_euclid(2 * denominator);
        i64::try_from(rounded).ok()
    }

    /// The same value as a `numeric`.
    pub fn to_bigdecimal(self) -> BigDecimal {
        // Display is a plain decimal, which BigDecimal always parses.
        BigDecimal::from_str(&self.to_string()).unwrap_or_default()
    }
}

impl fmt::Display for Exact {
    /// A plain decimal without trailing zeros: `0`, `-1.5`, `0.0000004`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let one = EXACT_ONE.unsigned_abs();
        let (int, frac) = (abs / one, abs % one);
        if frac == 0 {
            write!(f, "{sign}{int}")
        } else {
            let digits = format!("{frac:018}");
            write!(f, "{sign}{int}.{}", digits.trim_end_matches('0'))
        }
    }
}

impl Serialize for Exact {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

// Billing periods

/// A billing period: one calendar month (UTC), written `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BillingPeriod(NaiveDate);

/// A period that is not `YYYY-MM`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("billing period {0:?} is not YYYY-MM")]
pub struct PeriodError(String);

impl BillingPeriod {
    /// The period `day` falls in.
    pub fn containing(day: NaiveDate) -> Self {
        Self(day.with_day(1).unwrap_or(day))
    }

    pub fn first_day(self) -> NaiveDate {
        self.0
    }

    /// The first day of the next period (exclusive end).
    pub fn end(self) -> NaiveDate {
        self.0
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(NaiveDate::MAX)
    }

    pub fn next(self) -> Self {
        Self(self.end())
    }

    pub fn previous(self) -> Self {
        Self(
            self.0
                .checked_sub_months(chrono::Months::new(1))
                .unwrap_or(NaiveDate::MIN),
        )
    }

    /// Periods a daily run on `today` imports: the current one and, during the first 15 days of a
    /// month (AWS still restates the last one), the previous one first.
    pub fn to_import(today: NaiveDate) -> Vec<Self> {
        let current = Self::containing(today);
        if today.day() <= 15 {
            vec![current.previous(), current]
        } else {
            vec![current]
        }
    }
}

impl fmt::Display for BillingPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.0.year(), self.0.month())
    }
}

impl FromStr for BillingPeriod {
    type Err = PeriodError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PeriodError(s.to_owned());
        let (year, month) = s.trim().split_once('-').ok_or_else(err)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(err());
        }
        let year: i32 = year.parse().map_err(|_| err())?;
        let month: u32 = month.parse().map_err(|_| err())?;
        NaiveDate::from_ymd_opt(year, month, 1)
            .map(Self)
            .ok_or_else(err)
    }
}
