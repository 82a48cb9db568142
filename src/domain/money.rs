//! Exact money: USD in integer micro-dollars. Never floats.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One millionth of a US dollar.
pub const MICROS_PER_USD: i64 = 1_000_000;

/// A USD amount in integer micro-dollars (6 decimal places), possibly negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct UsdMicros(pub i64);

/// Why a decimal amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount is empty")]
    Empty,
    #[error("amount {0:?} is not a decimal number")]
    NotDecimal(String),
    #[error("amount {0:?} has more than 6 decimal places")]
    TooPrecise(String),
    #[error("amount {0:?} is too large")]
    TooLarge(String),
}

impl UsdMicros {
    pub const ZERO: Self = Self(0);

    /// Parses a plain decimal string (`"12"`, `"-0.5"`, `"12.345678"`) exactly. No exponent, NaN,
    /// infinity or more than 6 decimal places.
    pub fn parse_decimal(input: &str) -> Result<Self, AmountError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(AmountError::Empty);
        }
        let (negative, digits) = match s.as_bytes()[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if (int_part.is_empty() && frac_part.is_empty())
            || !all_digits(int_part)
            || !all_digits(frac_part)
        {
            return Err(AmountError::NotDecimal(s.to_owned()));
        }
        if digits.ends_with('.') && frac_part.is_empty() && int_part.is_empty() {
            return Err(AmountError::NotDecimal(s.to_owned()));
        }
        let frac_trimmed = frac_part.trim_end_matches('0');
        if frac_trimmed.len() > 6 {
            return Err(AmountError::TooPrecise(s.to_owned()));
        }
        let too_large = || AmountError::TooLarge(s.to_owned());
        let int_value: i64 = if int_part.is_empty() {
            0
        } else {
            int_part
                .trim_start_matches('0')
                .parse::<i64>()
                .or_else(|e| {
                    if int_part.trim_start_matches('0').is_empty() {
                        Ok(0)
                    } else {
                        Err(e)
                    }
                })
                .map_err(|_| too_large())?
        };
        let frac_value: i64 = format!("{frac_trimmed:0<6}")
            .parse()
            .map_err(|_| AmountError::NotDecimal(s.to_owned()))?;
        let magnitude = int_value
            .checked_mul(MICROS_PER_USD)
            .and_then(|v| v.checked_add(frac_value))
            .ok_or_else(too_large)?;
        Ok(Self(if negative { -magnitude } else { magnitude }))
    }

    /// Checked addition; `None` on overflow.
    pub fn checked_add(self, other: Self) -> Option<Self> {
        self.0.checked_add(other.0).map(Self)
    }

    /// Checked subtraction; `None` on overflow.
    pub fn checked_sub(self, other: Self) -> Option<Self> {
        self.0.checked_sub(other.0).map(Self)
    }
}

impl fmt::Display for UsdMicros {
    /// Formats as a decimal string with exactly 6 places (`"12.345678"`, `"-0.500000"`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let per = MICROS_PER_USD.unsigned_abs();
        write!(f, "{sign}{}.{:06}", abs / per, abs % per)
    }
}

impl Serialize for UsdMicros {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// On the wire (OpenAPI component `UsdAmount`): a decimal string with exactly 6 places.
impl utoipa::PartialSchema for UsdMicros {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::String)
            .pattern(Some(r"^-?[0-9]+\.[0-9]{6}$"))
            .description(Some("USD decimal string with 6 places"))
            .examples(["12.500000"])
            .into()
    }
}

impl utoipa::ToSchema for UsdMicros {
    fn name() -> std::borrow::Cow<'static, str> {
        "UsdAmount".into()
    }
}

/// Accepts a JSON string or number; numbers are read from their exact decimal text.
impl<'de> Deserialize<'de> for UsdMicros {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let text = match &value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => {
                return Err(serde::de::Error::custom(
                    "expected a decimal amount as a string or number",
                ));
            }
        };
        if let serde_json::Value::Number(_) = &value {
            // A JSON number arrives as an f64, whose shortest form reproduces the sender's decimal
            // exactly only up to 15 significant digits; beyond that, ask for a string.
            let digits = text
                .bytes()
                .take_while(|b| *b != b'e' && *b != b'E')
                .filter(u8::is_ascii_digit);
            if digits.count() > 15
                || text.contains(['e', 'E']) && Self::parse_decimal(&text).is_err()
            {
                return Err(serde::de::Error::custom(format!(
                    "amount {text} cannot be represented exactly as a JSON number; send it as a decimal string"
                )));
            }
        }
        Self::parse_decimal(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exact_decimals() {
        for (s, micros) in [
            ("0", 0),
            ("1", 1_000_000),
            ("12.345678", 12_345_678),
            ("-0.5", -500_000),
            (".25", 250_000),
            ("3.", 3_000_000),
            ("0.1000000", 100_000),
            ("+7.000001", 7_000_001),
            ("000012.5", 12_500_000),
        ] {
            assert_eq!(UsdMicros::parse_decimal(s), Ok(UsdMicros(micros)), "{s}");
        }
    }

    #[test]
    fn refuses_inexact_or_malformed() {
        for s in [
            "",
            "abc",
            "1.2345678",
            "NaN",
            "inf",
            "1e5",
            "1.2.3",
            "-",
            ".",
            "99999999999999999999",
            "1,5",
            " - 1",
        ] {
            assert!(UsdMicros::parse_decimal(s).is_err(), "{s}");
        }
    }

    #[test]
    fn formats_with_six_places() {
        assert_eq!(UsdMicros(12_345_678).to_string(), "12.345678");
        assert_eq!(UsdMicros(-500_000).to_string(), "-0.500000");
        assert_eq!(UsdMicros(0).to_string(), "0.000000");
        assert_eq!(UsdMicros(i64::MIN).to_string(), "-9223372036854.775808");
    }

    #[test]
    fn deserializes_strings_and_numbers() {
        let v: Vec<UsdMicros> = serde_json::from_str(r#"["1.5", 2.25, 3]"#).unwrap();
        assert_eq!(
            v,
            vec![
                UsdMicros(1_500_000),
                UsdMicros(2_250_000),
                UsdMicros(3_000_000)
            ]
        );
        assert_eq!(
            serde_json::from_str::<UsdMicros>("1e3").unwrap(),
            UsdMicros(1_000_000_000)
        );
        assert!(serde_json::from_str::<UsdMicros>("1e-7").is_err());
        assert!(serde_json::from_str::<UsdMicros>("123456789.1234567").is_err());
        assert!(serde_json::from_str::<UsdMicros>("true").is_err());
        assert!(serde_json::from_str::<UsdMicros>("0.0000001").is_err());
    }
}
