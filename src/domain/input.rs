//! Checks every request's text and times pass before they reach the database: PostgreSQL refuses
//! NUL characters in `text` and `jsonb`, and timestamps outside its range, so either would
//! otherwise surface as a 500. One rule everywhere (SPEC §9): NUL anywhere is a 4xx, and a
//! timestamp must lie between 2000-01-01 and one day from now.

use chrono::{DateTime, Duration, TimeZone, Utc};

/// Why an input was refused: a snake_case code and a human message (the API's error body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidInput {
    pub code: &'static str,
    pub message: String,
}

/// Refuses a NUL character in `s` (`field` names it in the message).
pub fn text(field: &str, s: &str) -> Result<(), InvalidInput> {
    if s.contains('\0') {
        return Err(InvalidInput {
            code: "invalid_text",
            message: format!("{field} must not contain NUL characters"),
        });
    }
    Ok(())
}

/// Refuses a NUL character in any string or object key of a JSON value; the message names where
/// (`metadata.model`, `items[2]`).
pub fn json(field: &str, value: &serde_json::Value) -> Result<(), InvalidInput> {
    let name = if field.is_empty() { "the body" } else { field };
    match value {
        serde_json::Value::String(s) => text(name, s),
        serde_json::Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| json(&format!("{field}[{i}]"), v)),
        serde_json::Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            text(&format!("a key of {name}"), k)?;
            let inner = if field.is_empty() {
                k.clone()
            } else {
                format!("{field}.{k}")
            };
            json(&inner, v)
        }),
        _ => Ok(()),
    }
}

/// The earliest timestamp accepted.
pub fn earliest() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The latest timestamp accepted now (one day ahead, for clocks that run fast).
pub fn latest() -> DateTime<Utc> {
    Utc::now() + Duration::days(1)
}

/// Refuses a timestamp outside 2000-01-01 … now + 1 day.
pub fn timestamp(field: &str, t: DateTime<Utc>) -> Result<(), InvalidInput> {
    if t < earliest() || t > latest() {
        return Err(InvalidInput {
            code: "invalid_timestamp",
            message: format!(
                "{field} must lie between 2000-01-01T00:00:00Z and one day from now (got {})",
                t.to_rfc3339()
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn nul_is_refused_anywhere_in_text_and_json() {
        assert!(text("f", "fine ünïcode ✓ \u{1} \t").is_ok());
        assert_eq!(text("f", "a\0b").unwrap_err().code, "invalid_text");
        assert!(json("m", &json!({"a": [1, "x", {"b": null}]})).is_ok());
        let err = json("m", &json!({"a": [1, "x\u{0}"]})).unwrap_err();
        assert_eq!(err.message, "m.a[1] must not contain NUL characters");
        assert!(json("m", &json!({"k\u{0}": 1})).is_err());
        assert!(json("m", &json!("\u{0}")).is_err());
    }

    #[test]
    fn timestamps_in_the_window_only() {
        assert!(timestamp("t", earliest()).is_ok());
        assert!(timestamp("t", Utc::now()).is_ok());
        assert!(timestamp("t", Utc::now() + Duration::hours(23)).is_ok());
        assert!(timestamp("t", earliest() - Duration::microseconds(1)).is_err());
        assert!(timestamp("t", Utc::now() + Duration::days(2)).is_err());
        assert_eq!(
            timestamp("t", DateTime::<Utc>::MIN_UTC).unwrap_err().code,
            "invalid_timestamp"
        );
    }
}
