//! `POST /v1/purchase/{id}/meter-usage` (a vendor-wide billing token): the reference's
//! `UsageRecord` body, debited exactly once per `Idempotency-Key`.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::VendorKey;
use super::checkout::usd_input;
use super::error::{ApiError, ErrorBody};
use super::extract::AppJson;
use crate::billing::meter::{MAX_BILLED, MAX_KEY_LEN, MeterAnswer, UsageRecord};
use crate::domain::ids::PurchaseId;
use crate::domain::input;
use crate::domain::money::UsdMicros;
use crate::state::AppState;

/// Longest `usage_unit`.
const MAX_UNIT_LEN: usize = 64;
/// Longest `description`.
const MAX_DESCRIPTION_LEN: usize = 2_000;
/// Largest `metadata`, serialised.
const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Largest `usage_amount` (units).
const MAX_USAGE: UsdMicros = UsdMicros(1_000_000_000_000 * 1_000_000);

/// The body as sent (the reference's `UsageRecord`); amounts are decimal strings or JSON numbers
/// (checked by `parse`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = UsageRecord)]
pub struct UsageRecordIn {
    /// Must equal the path's purchase when present.
    #[schema(value_type = Option<crate::domain::ids::PurchaseId>)]
    pub purchase_id: Option<String>,
    /// RFC 3339 or epoch milliseconds, from 2000-01-01 to one day from now; defaults to now.
    #[schema(schema_with = timestamp_input)]
    pub timestamp: Option<serde_json::Value>,
    #[schema(schema_with = usd_input, required = true)]
    pub usage_amount: Option<serde_json::Value>,
    /// Not blank.
    #[schema(value_type = String, max_length = 64, pattern = r"\S", example = "tokens")]
    pub usage_unit: Option<String>,
    /// USD debited from the balance.
    #[schema(schema_with = usd_input, required = true)]
    pub billed_amount: Option<serde_json::Value>,
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    /// A JSON object of at most 16 KiB.
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<serde_json::Value>,
    /// The same as the Idempotency-Key header (they must agree when both are sent).
    #[schema(pattern = "^[!-~]{1,255}$")]
    pub idempotency_key: Option<String>,
}

/// `timestamp`: an RFC 3339 datetime or epoch milliseconds.
fn timestamp_input() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    Schema::OneOf(
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(946_684_800_000_i64))
                    .description(Some("epoch milliseconds")),
            )
            .item(ObjectBuilder::new().schema_type(Type::Null))
            .description(Some("Defaults to now"))
            .build(),
    )
}

fn amount(
    value: Option<serde_json::Value>,
    field: &str,
    max: UsdMicros,
) -> Result<UsdMicros, ApiError> {
    let value = value
        .ok_or_else(|| ApiError::bad_request("missing_field", format!("{field} is required")))?;
    let parsed: UsdMicros = serde_json::from_value(value).map_err(|e| {
        ApiError::bad_request(
            "invalid_amount",
            format!("{field}: {e} (a decimal with at most 6 places)"),
        )
    })?;
    if parsed.0 < 0 {
        return Err(ApiError::bad_request(
            "invalid_amount",
            format!("{field} must not be negative"),
        ));
    }
    if parsed > max {
        return Err(ApiError::bad_request(
            "invalid_amount",
            format!("{field} is too large (at most {max})"),
        ));
    }
    Ok(parsed)
}

fn timestamp(value: Option<serde_json::Value>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid_timestamp",
            "timestamp must be an RFC 3339 datetime or epoch milliseconds",
        )
    };
    match value {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => DateTime::parse_from_rfc3339(s.trim())
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| bad()),
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .and_then(|ms| Utc.timestamp_millis_opt(ms).single())
            .map(Some)
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
    .and_then(|t| {
        t.map(|t| input::timestamp("timestamp", t))
            .transpose()
            .map_err(ApiError::from)?;
        Ok(t)
    })
}

/// Checks an idempotency key: 1 to 255 visible ASCII characters.
fn idempotency_key(key: &str) -> Result<String, ApiError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            format!("the idempotency key must be 1 to {MAX_KEY_LEN} visible ASCII characters"),
        ));
    }
    Ok(key.to_owned())
}

/// Validates the body against the path's purchase.
pub fn parse(path: PurchaseId, body: UsageRecordIn) -> Result<UsageRecord, ApiError> {
    if let Some(id) = body.purchase_id.as_deref().filter(|s| !s.is_empty())
        && id.parse::<PurchaseId>().ok() != Some(path)
    {
        return Err(ApiError::bad_request(
            "purchase_mismatch",
            "purchase_id in the body must equal the purchase in the path (or be absent)",
        ));
    }
    let usage_unit = body
        .usage_unit
        .map(|u| u.trim().to_owned())
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ApiError::bad_request("missing_field", "usage_unit is required"))?;
    if usage_unit.chars().count() > MAX_UNIT_LEN {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("usage_unit is longer than {MAX_UNIT_LEN} characters"),
        ));
    }
    if body
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > MAX_DESCRIPTION_LEN)
    {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("description is longer than {MAX_DESCRIPTION_LEN} characters"),
        ));
    }
    input::text("usage_unit", &usage_unit)?;
    if let Some(d) = &body.description {
        input::text("description", d)?;
    }
    let metadata = match body.metadata {
        None | Some(serde_json::Value::Null) => serde_json::Value::Object(Default::default()),
        Some(m @ serde_json::Value::Object(_)) => m,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_body",
                "metadata must be a JSON object",
            ));
        }
    };
    input::json("metadata", &metadata)?;
    if metadata.to_string().len() > MAX_METADATA_BYTES {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("metadata is larger than {MAX_METADATA_BYTES} bytes"),
        ));
    }
    Ok(UsageRecord {
        purchase_id: path,
        timestamp: timestamp(body.timestamp)?,
        usage_amount: amount(body.usage_amount, "usage_amount", MAX_USAGE)?,
        usage_unit,
        billed_amount: amount(body.billed_amount, "billed_amount", MAX_BILLED)?,
        description: body.description,
        metadata,
    })
}

/// The idempotency key from the header or the body; both present and different is a 400.
pub(super) fn key_of(
    headers: &HeaderMap,
    body_key: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let header = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::bad_request(
                    "invalid_idempotency_key",
                    "Idempotency-Key must be visible ASCII",
                )
            })
        })
        .transpose()?;
    match (header, body_key) {
        (Some(h), Some(b)) if h != b => Err(ApiError::bad_request(
            "idempotency_key_mismatch",
            "the Idempotency-Key header and the body's idempotency_key differ",
        )),
        (Some(k), _) | (None, Some(k)) => idempotency_key(k).map(Some),
        (None, None) => Ok(None),
    }
}

#[utoipa::path(
    post,
    path = "/v1/purchase/{id}/meter-usage",
    tag = "metering",
    summary = "Record usage and debit its billed amount; idempotent per Idempotency-Key",
    description = "Needs a vendor-wide billing token (`vendor-server tokens create`). Usage always records: the balance may go negative. A retry with the same key (header or body) returns the first answer and debits once; the same key with another body is 409. Keys are scoped to the purchase and kept 30 days.",
    params(
        ("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`"),
        ("Idempotency-Key" = Option<String>, Header, description = "1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body = UsageRecordIn,
    security(("billing_token" = []), ("billing_token_query" = [])),
    responses(
        (status = 200, description = "Recorded (or the first answer replayed, with header `Idempotent-Replayed: true`)", body = MeterAnswer),
        (status = 400, description = "Malformed or invalid record (`malformed_json`, `invalid_body`, `invalid_text`, `missing_field`, `invalid_amount`, `invalid_timestamp`, `purchase_mismatch`, `invalid_idempotency_key`, `idempotency_key_mismatch`, `amount_too_large`, `invalid_request`)", body = ErrorBody),
        (status = 401, description = "No key, not a live billing token, or an unknown purchase (`unauthorized`)", body = ErrorBody),
        (status = 409, description = "The idempotency key was used with another body (`idempotency_key_reused`), a reference conflict (`reference_conflict`), or the purchase was deleted (`purchase_deleted`)", body = ErrorBody),
        (status = 415, description = "The body is not `application/json` (`unsupported_media_type`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable or the meter is saturated; retry (`service_unavailable`, `overloaded`)", body = ErrorBody),
    )
)]
async fn meter_usage(
    State(state): State<AppState>,
    auth: VendorKey,
    headers: HeaderMap,
    AppJson(body): AppJson<UsageRecordIn>,
) -> Result<Response, ApiError> {
    let key = key_of(&headers, body.idempotency_key.as_deref())?;
    let record = parse(auth.purchase_id, body)?;
    let started = std::time::Instant::now();
    let metered = state.meter.record(record, key, auth.token).await;
    crate::jobs::gauges::meter_usage_seconds(started.elapsed().as_secs_f64());
    let metered = metered?;
    let mut response = AppJson(metered.body).into_response();
    if metered.replayed {
        response
            .headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(response)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(meter_usage))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(v: serde_json::Value) -> UsageRecordIn {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn parses_exact_amounts_and_defaults() {
        let id = PurchaseId::new();
        let r = parse(
            id,
            body(json!({"usage_amount": 1.5, "usage_unit": "tokens", "billed_amount": "0.000001"})),
        )
        .unwrap();
        assert_eq!(r.usage_amount, UsdMicros(1_500_000));
        assert_eq!(r.billed_amount, UsdMicros(1));
        assert_eq!(r.timestamp, None);
        assert_eq!(r.metadata, json!({}));
        let r = parse(
            id,
            body(
                json!({"purchase_id": id.to_string(), "timestamp": 1_700_000_000_000_i64,
                        "usage_amount": "2", "usage_unit": "GB", "billed_amount": 3}),
            ),
        )
        .unwrap();
        assert_eq!(r.timestamp.unwrap().timestamp(), 1_700_000_000);
    }

    #[test]
    fn refuses_bad_records() {
        let id = PurchaseId::new();
        let ok = json!({"usage_amount": "1", "usage_unit": "u", "billed_amount": "1"});
        for (field, value, code) in [
            ("billed_amount", json!("-1"), "invalid_amount"),
            ("billed_amount", json!(-0.5), "invalid_amount"),
            ("billed_amount", json!("NaN"), "invalid_amount"),
            ("billed_amount", json!("1.0000001"), "invalid_amount"),
            ("billed_amount", json!("1e3"), "invalid_amount"),
            (
                "billed_amount",
                json!("99999999999999999999"),
                "invalid_amount",
            ),
            ("billed_amount", json!("1000000001"), "invalid_amount"),
            ("billed_amount", json!(true), "invalid_amount"),
            ("billed_amount", serde_json::Value::Null, "missing_field"),
            ("usage_amount", json!("abc"), "invalid_amount"),
            ("usage_unit", json!(""), "missing_field"),
            (
                "purchase_id",
                json!(PurchaseId::new().to_string()),
                "purchase_mismatch",
            ),
            (
                "purchase_id",
                json!("CustomerPurchaseID_nope"),
                "purchase_mismatch",
            ),
            ("timestamp", json!("yesterday"), "invalid_timestamp"),
            (
                "timestamp",
                json!(-210_866_803_200_001_i64),
                "invalid_timestamp",
            ),
            (
                "timestamp",
                json!("1999-12-31T23:59:59Z"),
                "invalid_timestamp",
            ),
            ("description", json!("a\u{0}b"), "invalid_text"),
            ("usage_unit", json!("\u{0}"), "invalid_text"),
            ("metadata", json!({"k": ["\u{0}"]}), "invalid_text"),
            ("metadata", json!([1]), "invalid_body"),
        ] {
            let mut v = ok.clone();
            v[field] = value.clone();
            let err = parse(id, body(v)).unwrap_err();
            match err {
                ApiError::Client { code: got, .. } => assert_eq!(got, code, "{field}={value}"),
                other => panic!("{other:?}"),
            }
        }
        let mut missing = ok;
        missing.as_object_mut().unwrap().remove("billed_amount");
        assert!(parse(id, body(missing)).is_err());
    }

    #[test]
    fn idempotency_key_from_header_or_body() {
        let mut h = HeaderMap::new();
        assert_eq!(key_of(&h, None).unwrap(), None);
        assert_eq!(key_of(&h, Some("k1")).unwrap().as_deref(), Some("k1"));
        h.insert("idempotency-key", "k1".parse().unwrap());
        assert_eq!(key_of(&h, Some("k1")).unwrap().as_deref(), Some("k1"));
        assert!(key_of(&h, Some("k2")).is_err());
        h.insert("idempotency-key", "has space".parse().unwrap());
        assert!(key_of(&h, None).is_err());
        assert!(key_of(&HeaderMap::new(), Some(&"x".repeat(256))).is_err());
    }
}
