//! A purchase as its customer sees it: `GET /v1/purchase/{id}`, `POST …/historical-billing`
//! and `GET …/ledger` (customer key), and `POST …/validate-auth` (key in the body, always 200).

use axum::body::Bytes;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::CustomerAuth;
use super::error::{ApiError, ErrorBody};
use super::extract::{AppJson, AppPath, AppQuery};
use crate::billing::history::{self, Bound, Bucket, Interval};
use crate::billing::keys::KeyKind;
use crate::billing::statement::{self, LedgerItem};
use crate::billing::{PurchaseStatus, purchases};
use crate::checkout::deposits::{self, Incoming};
use crate::config::Config;
use crate::credentials::CredentialOut;
use crate::domain::ids::{CheckoutSessionId, CheckoutWalletId, PurchaseId};
use crate::domain::money::UsdMicros;
use crate::domain::page::{self, Page, PageError};
use crate::providers::ResourceInfo;
use crate::state::AppState;

/// The purchase on the wire: the reference's fields without any key, tracer, customer org data,
/// OfficeX purchase id (with it, the customer key would lead to the receipt's secrets) or internal
/// column. USD amounts are decimal strings; times are epoch milliseconds as in the
/// reference's rows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Purchase)]
pub struct PurchaseOut {
    pub id: PurchaseId,
    pub offer_id: String,
    pub title: String,
    pub description: String,
    pub pricing: String,
    pub vendor_id: Option<String>,
    pub vendor_name: String,
    pub status: PurchaseStatus,
    /// The status as OfficeX shows it.
    #[schema(value_type = OfficexStatus)]
    pub officex_status: &'static str,
    pub balance_usd: UsdMicros,
    /// `null` until the first credit derives them.
    pub balance_low_trigger: Option<UsdMicros>,
    pub balance_critical_trigger: Option<UsdMicros>,
    pub balance_termination_trigger: Option<UsdMicros>,
    /// Epoch milliseconds.
    pub created_at: i64,
    /// Epoch milliseconds.
    pub updated_at: i64,
    /// How to use what was bought (bucket, region and endpoint; the gateway's base URL): never a
    /// secret. `null` while the resource is not ready.
    pub resource: Option<ResourceInfo>,
}

/// A purchase's status in OfficeX's words (`PurchaseStatus::officex`; documentation only).
#[derive(utoipa::ToSchema)]
#[allow(dead_code, non_camel_case_types, clippy::upper_case_acronyms)]
enum OfficexStatus {
    AWAITING,
    RUNNING,
    PAYMENT_REQUIRED,
    BLOCKED,
    CANCELED,
}

/// One chain/token a checkout address accepts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = AcceptedChainToken)]
pub struct AcceptedToken {
    pub chain: String,
    pub chain_id: u64,
    pub token_symbol: String,
    pub token_name: String,
    pub token_address: String,
    pub token_decimals: u8,
}

/// The purchase's deposit address (`checkout_wallet` in the reference), without any key or seed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = CheckoutWallet)]
pub struct CheckoutWalletOut {
    pub id: CheckoutWalletId,
    pub evm_address: String,
    pub checkout_session_id: CheckoutSessionId,
    pub offer_id: String,
    /// Every configured stablecoin the offer accepts, on every configured chain.
    pub accepts: Vec<AcceptedToken>,
}

impl CheckoutWalletOut {
    /// Builds the wire form of a checkout wallet from what the payments tables hold; the accepted
    /// tokens come from the configuration and the offer's token list (empty = all).
    pub fn new(
        id: CheckoutWalletId,
        evm_address: String,
        checkout_session_id: CheckoutSessionId,
        offer_id: String,
        offer_tokens: &[String],
        config: &Config,
    ) -> Self {
        let accepts = config
            .chains
            .iter()
            .flat_map(|chain| {
                chain
                    .tokens
                    .iter()
                    .filter(|t| offer_tokens.is_empty() || offer_tokens.contains(&t.symbol))
                    .map(|t| AcceptedToken {
                        chain: chain.name.clone(),
                        chain_id: chain.chain_id,
                        token_symbol: t.symbol.to_uppercase(),
                        token_name: t.name.clone().unwrap_or_else(|| t.symbol.to_uppercase()),
                        token_address: t.address.to_checksum(None),
                        token_decimals: t.decimals,
                    })
            })
            .collect();
        Self {
            id,
            evm_address,
            checkout_session_id,
            offer_id,
            accepts,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PurchaseResponse {
    pub purchase: PurchaseOut,
    /// The purchase's deposit wallet (top up by sending to `evm_address`); `null` for a purchase
    /// not made through a checkout.
    pub checkout_wallet: Option<CheckoutWalletOut>,
    /// Payments to the deposit address not in the balance yet, with their confirmations.
    pub pending_deposits: Vec<Incoming>,
    /// Payments that reached the purchase after it was deleted, not refunded yet: refundable with
    /// `POST /v1/purchase/{id}/refunds`.
    pub unclaimed_usd: UsdMicros,
    /// The purchase's credentials by hint (never a secret): its customer key and its resource's
    /// (gateway key, S3 access key). Replace one with `POST …/credentials/rotate`.
    pub credentials: Vec<CredentialOut>,
}

#[utoipa::path(
    get,
    path = "/v1/purchase/{id}",
    tag = "purchases",
    summary = "A purchase with its balance, status, thresholds and deposit address",
    description = "Never a key, tracer, officex_purchase_id or customer org data.",
    params(("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`")),
    security(("customer_key" = []), ("customer_key_query" = [])),
    responses(
        (status = 200, description = "The purchase", body = PurchaseResponse),
        (status = 401, description = "No key, not this purchase's customer key, or an unknown purchase (`unauthorized`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
async fn get_purchase(
    State(state): State<AppState>,
    auth: CustomerAuth,
) -> Result<AppJson<PurchaseResponse>, ApiError> {
    let r = sqlx::query!(
        r#"select p.purchase_id, p.offer_id, p.title, o.description, o.pricing_line, o.provider,
                  p.status, p.balance_micros, p.low_trigger_micros, p.critical_trigger_micros,
                  p.termination_trigger_micros, p.resource_status, p.resource_state,
                  (extract(epoch from p.created_at) * 1000)::bigint as "created_at!",
                  (extract(epoch from p.updated_at) * 1000)::bigint as "updated_at!"
           from purchase p join offer o using (offer_id) where p.purchase_id = $1"#,
        auth.purchase_id.0
    )
    .fetch_optional(&state.pool)
    .await?
    .ok_or_else(super::auth::unauthorized)?;
    let status = PurchaseStatus::parse(&r.status)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("unknown status {}", r.status)))?;
    let purchase = PurchaseOut {
        id: PurchaseId(r.purchase_id),
        offer_id: r.offer_id,
        title: r.title,
        description: r.description,
        pricing: r.pricing_line,
        vendor_id: state.config.vendor.id.clone(),
        vendor_name: state.config.vendor.name.clone(),
        status,
        officex_status: status.officex(),
        balance_usd: UsdMicros(r.balance_micros),
        balance_low_trigger: r.low_trigger_micros.map(UsdMicros),
        balance_critical_trigger: r.critical_trigger_micros.map(UsdMicros),
        balance_termination_trigger: r.termination_trigger_micros.map(UsdMicros),
        created_at: r.created_at,
        updated_at: r.updated_at,
        resource: (r.resource_status == "ready")
            .then(|| state.providers.get(&r.provider).ok())
            .flatten()
            .map(|p| p.info(&r.resource_state)),
    };
    let mut pending_deposits = Vec::new();
    let unclaimed_usd = if status == PurchaseStatus::Deleted {
        crate::refunds::unclaimed_of_purchase(&mut *state.pool.acquire().await?, purchase.id)
            .await?
    } else {
        UsdMicros::ZERO
    };
    let checkout_wallet = match crate::checkout::find_by_purchase(&state.pool, purchase.id).await? {
        Some(c) => {
            pending_deposits = deposits::incoming(&state.pool, &state.chains, c.session).await?;
            let tokens = crate::checkout::offer_of(&state.pool, &c)
                .await
                .map(|o| o.tokens)
                .unwrap_or_default();
            Some(CheckoutWalletOut::new(
                c.wallet_id,
                c.deposit_address,
                c.session,
                c.offer_id,
                &tokens,
                &state.config,
            ))
        }
        None => None,
    };
    let credentials = crate::credentials::list(&state.pool, purchase.id).await?;
    Ok(AppJson(PurchaseResponse {
        purchase,
        checkout_wallet,
        pending_deposits,
        unclaimed_usd,
        credentials,
    }))
}

/// `{interval?, start_date?, end_date?}`; an empty body (or `null`) means all defaults.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = HistoricalBillingRequest)]
pub struct HistoricalBillingIn {
    /// Default `daily`.
    #[schema(value_type = Option<BillingInterval>)]
    pub interval: Option<String>,
    /// `YYYY-MM-DD` or RFC 3339; inclusive.
    #[schema(example = "2026-01-01")]
    pub start_date: Option<String>,
    /// `YYYY-MM-DD` (the whole day is included) or RFC 3339 (inclusive).
    #[schema(example = "2026-01-31")]
    pub end_date: Option<String>,
}

/// The width of a billing bucket (`Interval::parse`; documentation only).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "lowercase")]
enum BillingInterval {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        let code = if e.is_syntax() || e.is_eof() {
            "malformed_json"
        } else {
            "invalid_body"
        };
        ApiError::bad_request(code, format!("invalid request body: {e}"))
    })?;
    crate::domain::input::json("", &value).map_err(|e| {
        ApiError::bad_request(e.code, format!("invalid request body: {}", e.message))
    })?;
    // `null` is an empty body too (the document's optional body).
    if value.is_null() {
        return Ok(T::default());
    }
    T::deserialize(value)
        .map_err(|e| ApiError::bad_request("invalid_body", format!("invalid request body: {e}")))
}

#[utoipa::path(
    post,
    path = "/v1/purchase/{id}/historical-billing",
    tag = "purchases",
    summary = "Usage charges per time bucket (UTC), net of refunds, never deposits",
    params(("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`")),
    request_body(content = Option<HistoricalBillingIn>, description = "Optional; an empty body means the defaults"),
    security(("customer_key" = []), ("customer_key_query" = [])),
    responses(
        (status = 200, description = "Buckets, ascending; only buckets with charges", body = Vec<Bucket>),
        (status = 400, description = "Malformed body or bad interval or dates (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_interval`, `invalid_date`)", body = ErrorBody),
        (status = 401, description = "No key, not this purchase's customer key, or an unknown purchase (`unauthorized`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
async fn historical_billing(
    State(state): State<AppState>,
    auth: CustomerAuth,
    body: Bytes,
) -> Result<AppJson<Vec<Bucket>>, ApiError> {
    let input: HistoricalBillingIn = optional_json(&body)?;
    let interval = match input.interval.as_deref() {
        None => Interval::Daily,
        Some(s) => Interval::parse(s)
            .map_err(|e| ApiError::bad_request("invalid_interval", e.to_string()))?,
    };
    let bound = |s: Option<String>, field: &str| {
        s.filter(|s| !s.trim().is_empty())
            .map(|s| Bound::parse(&s))
            .transpose()
            .map_err(|e| ApiError::bad_request("invalid_date", format!("{field}: {e}")))
    };
    let start = bound(input.start_date, "start_date")?;
    let end = bound(input.end_date, "end_date")?;
    let buckets = history::buckets(&state.pool, auth.purchase_id, interval, start, end)
        .await
        .map_err(|e| match e {
            crate::billing::BillingError::Invalid(m) => ApiError::bad_request("invalid_date", m),
            other => other.into(),
        })?;
    Ok(AppJson(buckets))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = ValidateAuthRequest)]
struct ValidateAuthIn {
    /// The customer key to check.
    #[schema(value_type = String)]
    api_key: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ValidateAuthResponse)]
pub struct ValidateAuthOut {
    pub valid: bool,
    pub message: &'static str,
}

/// Always 200 `{valid, message}` (the reference's contract); an unknown purchase and a wrong key
/// get the same answer.
#[utoipa::path(
    post,
    path = "/v1/purchase/{id}/validate-auth",
    tag = "purchases",
    summary = "Whether a customer key is valid for the purchase",
    description = "Always 200 with the verdict (the reference's contract), whatever the body; an unknown purchase and a wrong key answer alike.",
    params(("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`")),
    request_body(content = Option<ValidateAuthIn>, description = "`{api_key}`; anything else is an invalid key"),
    responses(
        (status = 200, description = "The verdict", body = ValidateAuthOut),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
async fn validate_auth(
    State(state): State<AppState>,
    AppPath(id): AppPath<String>,
    body: Bytes,
) -> Result<AppJson<ValidateAuthOut>, ApiError> {
    let invalid = ValidateAuthOut {
        valid: false,
        message: "Unauthorized: Invalid API Key",
    };
    let key = optional_json::<ValidateAuthIn>(&body)
        .ok()
        .and_then(|b| b.api_key)
        .and_then(|k| k.as_str().map(str::to_owned));
    let (Some(key), Ok(id)) = (key, id.parse::<PurchaseId>()) else {
        return Ok(AppJson(invalid));
    };
    if purchases::key_matches(&state.pool, id, KeyKind::Customer, &key).await? {
        Ok(AppJson(ValidateAuthOut {
            valid: true,
            message: "Authorized",
        }))
    } else {
        Ok(AppJson(invalid))
    }
}

/// `GET /v1/purchase/{id}/ledger` query: the previous page's `next_cursor`, and the page size
/// (1–500, default 50).
#[derive(Debug, Default, Deserialize, Serialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LedgerQuery {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

/// The purchase's ledger, newest first: `{items: [{id, kind, amount_usd, balance_after_usd,
/// description, created_at, occurred_at, tx_hash?, chain_id?, explorer_url?}], next_cursor}`.
/// Credits from deposits carry their transaction hash and explorer link.
#[utoipa::path(
    get,
    path = "/v1/purchase/{id}/ledger",
    tag = "purchases",
    summary = "The purchase's ledger, newest first, a page at a time",
    description = "Every balance change: deposits (with their transaction and explorer link), usage, costs, sweep fees and adjustments.",
    params(("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`"), LedgerQuery),
    security(("customer_key" = []), ("customer_key_query" = [])),
    responses(
        (status = 200, description = "One page of ledger entries", body = Page<LedgerItem>),
        (status = 400, description = "Bad cursor or limit (`invalid_cursor`, `invalid_limit`, `invalid_query`, `invalid_text`)", body = ErrorBody),
        (status = 401, description = "No key, not this purchase's customer key, or an unknown purchase (`unauthorized`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
async fn ledger(
    State(state): State<AppState>,
    auth: CustomerAuth,
    AppQuery(query): AppQuery<LedgerQuery>,
) -> Result<AppJson<Page<LedgerItem>>, ApiError> {
    let bad = |e: PageError| match e {
        PageError::Limit => ApiError::bad_request("invalid_limit", e.to_string()),
        PageError::Cursor => ApiError::bad_request("invalid_cursor", e.to_string()),
    };
    let before = page::id_cursor(query.cursor.as_deref()).map_err(bad)?;
    let limit = page::limit(query.limit).map_err(bad)?;
    let page = statement::ledger_page(
        &state.pool,
        auth.purchase_id,
        before,
        limit,
        &state.config.chains,
    )
    .await?;
    Ok(AppJson(page))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_purchase))
        .routes(routes!(ledger))
        .routes(routes!(historical_billing))
        .routes(routes!(validate_auth))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn checkout_wallet_lists_the_accepted_tokens() {
        let vars: HashMap<String, String> = [
            ("DATABASE_URL", "postgres://x@localhost/x"),
            ("RPC_ENDPOINT", "http://127.0.0.1:8545"),
            ("CHAIN_ID_DEC", "84532"),
            ("CHAIN_NAME", "base"),
            ("USDC_ADDRESS", "0x036CbD53842c5426634e7929541eC2318f3dCF7e"),
            ("USDT_ADDRESS", "0x0000000000000000000000000000000000000001"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let config = Config::from_vars(&vars).unwrap();
        let wallet = CheckoutWalletOut::new(
            CheckoutWalletId::new(),
            "0xabc".into(),
            CheckoutSessionId::new(),
            "gemini-api-gateway".into(),
            &["usdc".to_owned()],
            &config,
        );
        assert_eq!(wallet.accepts.len(), 1);
        assert_eq!(wallet.accepts[0].token_symbol, "USDC");
        assert_eq!(wallet.accepts[0].chain_id, 84532);
        let all = CheckoutWalletOut::new(
            CheckoutWalletId::new(),
            "0xabc".into(),
            CheckoutSessionId::new(),
            "x".into(),
            &[],
            &config,
        );
        assert_eq!(all.accepts.len(), 2);
        let json = serde_json::to_value(&all).unwrap();
        assert!(
            json["checkout_session_id"]
                .as_str()
                .unwrap()
                .starts_with("CheckoutSessionID_")
        );
    }
}
