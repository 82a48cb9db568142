//! Token amounts: base units to micro-dollars at the configured rate, display formatting, and the
//! exact `NUMERIC` form stored in PostgreSQL.

use super::*;

/// `floor(units × rate / 10^decimals)` micro-dollars; `None` when it does not fit.
pub fn units_to_micros(units: U256, decimals: u8, rate: UsdMicros) -> Option<UsdMicros> {
    let rate = U256::from(u64::try_from(rate.0).ok()?);
    let scale = U256::from(10u8).checked_pow(U256::from(decimals))?;
    let micros = units.checked_mul(rate)? / scale;
    i64::try_from(micros).ok().map(UsdMicros)
}

/// Token units as an exact decimal string with the token's decimals (`"12.5"`).
pub fn format_units(units: U256, decimals: u8) -> String {
    let text = units.to_string();
    let decimals = usize::from(decimals);
    if decimals == 0 {
        return text;
    }
    let padded = format!("{text:0>width$}", width = decimals + 1);
    let (int, frac) = padded.split_at(padded.len() - decimals);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        int.to_owned()
    } else {
        format!("{int}.{frac}")
    }
}

/// A `U256` as a `numeric` value.
pub fn to_numeric(units: U256) -> BigDecimal {
    BigDecimal::from_str(&units.to_string()).unwrap_or_default()
}

/// A `numeric(78,0)` value as a `U256` (`None` for negatives, fractions or overflow).
pub fn from_numeric(value: &BigDecimal) -> Option<U256> {
    let (digits, scale) = value.as_bigint_and_exponent();
    if scale > 0 && !value.is_integer() {
        return None;
    }
    let int = if scale > 0 {
        value.with_scale(0).as_bigint_and_exponent().0
    } else {
        digits * num_pow10(-scale)
    };
    U256::from_str(&int.to_string()).ok()
}

pub(super) fn num_pow10(exp: i64) -> bigdecimal::num_bigint::BigInt {
    let mut out = bigdecimal::num_bigint::BigInt::from(1);
    for _ in 0..exp {
        out *= 10;
    }
    out
}

/// Lowercase `0x…` form used in the database.
pub fn addr_key(address: Address) -> String {
    format!("{address:#x}")
}
