//! Checkout routes, wire-compatible with `@officexapp/types` `vendor.ts`: `initiate` (rate-limited per
//! client IP), `validate`, `finalize`, `topup` and `verify-topup` (customer key). The customer page
//! the receipts link to is the dashboard's (`super::dashboard`).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};

use axum::Extension;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::{Deserialize, Serialize};

use super::auth::{CustomerAuth, PresentedKey, unauthorized};
use super::error::ApiError;
use super::extract::{AppJson, ClientIp, rate_limit_key};
use crate::billing::keys::KeyKind;
use crate::billing::purchases;
use crate::checkout::finalize::{self, FinalizeInput, Finalized};
use crate::checkout::receipt::Receipt;
use crate::checkout::{self, Checkout, CheckoutError, InitiateInput};
use crate::domain::ids::{PurchaseId, TracerId};
use crate::domain::money::UsdMicros;
use crate::state::AppState;

const PATTERN: &str = "CRYPTO_WALLET_TOPUP";

// ---------------------------------------------------------------- input checks

fn text(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    let Some(value) = value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if value.chars().count() > max || value.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("{field} must be at most {max} printable characters"),
        ));
    }
    Ok(Some(value))
}

fn required(field: &str, value: Option<String>, max: usize) -> Result<String, ApiError> {
    text(field, value, max)?
        .ok_or_else(|| ApiError::bad_request("invalid_body", format!("{field} is required")))
}

// ---------------------------------------------------------------- client IP and rate limit

/// Per-client-IP limit (governor's keyed GCRA, in memory: one replica's view; enough to stop a script
/// draining the deposit index space). The quota is the configured per-minute rate, burst included,
/// fixed at the first call.
#[derive(Default)]
pub struct RateLimiter(OnceLock<DefaultKeyedRateLimiter<Option<IpAddr>>>);

impl RateLimiter {
    /// Takes one cell; `false` when the caller is over `per_minute` (0 admits everyone).
    fn allow(&self, ip: Option<IpAddr>, per_minute: u32) -> bool {
        let Some(per_minute) = NonZeroU32::new(per_minute) else {
            return true;
        };
        let limiter = self
            .0
            .get_or_init(|| governor::RateLimiter::keyed(Quota::per_minute(per_minute)));
        if limiter.len() > 100_000 {
            limiter.retain_recent();
        }
        // IPv6 counts per /64: a host picks any address of its allocation at will.
        limiter.check_key(&ip.map(rate_limit_key)).is_ok()
    }
}

// ---------------------------------------------------------------- initiate

#[derive(Debug, Deserialize)]
pub struct InitiateIn {
    pub checkout_flow_id: Option<String>,
    pub org_id: Option<String>,
    pub user_id: Option<String>,
    pub host: Option<String>,
    pub tracer: Option<String>,
    pub email: Option<String>,
}

/// `IResponseCheckoutInit_Crypto`.
#[derive(Debug, Serialize)]
pub struct InitiateOut {
    pub offer_id: String,
    pub checkout_flow_id: String,
    pub checkout_pattern: &'static str,
    pub checkout_session_id: String,
    pub vendor_disclaimer: String,
    pub tracer: String,
    pub validation_endpoint: String,
    pub finalization_endpoint: String,
    pub final_cta: String,
    pub post_payment: serde_json::Value,
    pub requirements: Vec<serde_json::Value>,
    pub crypto_checkout: CryptoCheckout,
}

#[derive(Debug, Serialize)]
pub struct CryptoCheckout {
    pub receiving_address: String,
    pub token_address: String,
    pub token_name: String,
    pub token_symbol: String,
    pub token_decimals: u8,
    pub suggested_amount_decimals: f64,
    pub minimum_amount_decimals: f64,
    pub maximum_amount_decimals: f64,
    pub chain: String,
    pub chain_id: u64,
    pub chain_explorer_url: String,
    pub vendor_disclaimer: String,
    pub checkout_wallet_id: String,
    /// RFC 3339; the address is still watched for late payments after this.
    pub expires_at: String,
    /// Every chain and token the address accepts.
    pub accepted: Vec<AcceptedChain>,
}

#[derive(Debug, Serialize)]
pub struct AcceptedChain {
    pub chain: String,
    pub chain_id: u64,
    pub tokens: Vec<AcceptedToken>,
}

#[derive(Debug, Serialize)]
pub struct AcceptedToken {
    pub symbol: String,
    pub address: String,
    pub decimals: u8,
}

/// A USD amount in whole tokens at a rate (display only).
fn in_tokens(amount: UsdMicros, rate: &str) -> f64 {
    let rate = UsdMicros::parse_decimal(rate).map_or(1_000_000, |r| r.0.max(1));
    amount.0 as f64 / rate as f64
}

#[tracing::instrument(skip_all)]
async fn initiate(
    State(state): State<AppState>,
    Extension(limiter): Extension<Arc<RateLimiter>>,
    ClientIp(ip): ClientIp,
    AppJson(body): AppJson<InitiateIn>,
) -> Result<AppJson<InitiateOut>, ApiError> {
    if !limiter.allow(ip, state.config.checkout.initiate_per_minute) {
        return Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many checkouts started from this address; try again in a minute.",
        ));
    }
    let email = text("email", body.email, 320)?;
    if email.as_deref().is_some_and(|e| !e.contains('@')) {
        return Err(ApiError::bad_request(
            "invalid_body",
            "email is not an email address",
        ));
    }
    let input = InitiateInput {
        flow_id: required("checkout_flow_id", body.checkout_flow_id, 200)?,
        tracer: text("tracer", body.tracer, 200)?,
        email,
        user_id: text("user_id", body.user_id, 200)?,
        org_id: text("org_id", body.org_id, 200)?,
        org_host: text("host", body.host, 500)?,
    };
    let (checkout, offer, flow) = checkout::initiate(&state.checkouts(), &input).await?;
    let chain = state
        .chains
        .get(&flow.chain)
        .ok_or_else(|| ApiError::from(CheckoutError::FlowNotFound))?;
    let token = chain
        .token(&flow.token)
        .ok_or_else(|| ApiError::from(CheckoutError::FlowNotFound))?;
    let disclaimer = finalize::disclaimer(&state.checkouts(), &checkout);
    let address: alloy::primitives::Address = checkout
        .deposit_address
        .parse()
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored address: {e}")))?;
    let accepted = state
        .chains
        .iter()
        .map(|c| AcceptedChain {
            chain: c.name().to_owned(),
            chain_id: c.id(),
            tokens: c
                .config
                .tokens
                .iter()
                .map(|t| AcceptedToken {
                    symbol: t.symbol.to_uppercase(),
                    address: t.address.to_checksum(None),
                    decimals: t.decimals,
                })
                .collect(),
        })
        .collect();
    Ok(AppJson(InitiateOut {
        offer_id: offer.offer_id.clone(),
        checkout_flow_id: flow.flow_id.clone(),
        checkout_pattern: PATTERN,
        checkout_session_id: checkout.session.to_string(),
        vendor_disclaimer: disclaimer.clone(),
        tracer: checkout
            .tracer
            .clone()
            .unwrap_or_else(|| TracerId::new().to_string()),
        validation_endpoint: state.config.public_url("/v1/checkout/validate"),
        finalization_endpoint: state.config.public_url("/v1/checkout/finalize"),
        final_cta: if offer.provider == "s3" {
            "Claim Giftcard".into()
        } else {
            "Get your API key".into()
        },
        post_payment: serde_json::json!({}),
        requirements: Vec::new(),
        crypto_checkout: CryptoCheckout {
            receiving_address: address.to_checksum(None),
            token_address: token.address.to_checksum(None),
            token_name: token
                .name
                .clone()
                .unwrap_or_else(|| token.symbol.to_uppercase()),
            token_symbol: token.symbol.to_uppercase(),
            token_decimals: token.decimals,
            suggested_amount_decimals: in_tokens(offer.suggested_deposit, &token.usd_rate),
            minimum_amount_decimals: in_tokens(offer.min_deposit, &token.usd_rate),
            maximum_amount_decimals: in_tokens(offer.max_deposit, &token.usd_rate),
            chain: chain.name().to_owned(),
            chain_id: chain.id(),
            chain_explorer_url: chain.config.explorer_url.clone(),
            vendor_disclaimer: disclaimer,
            checkout_wallet_id: checkout.wallet_id.to_string(),
            expires_at: checkout.expires_at.to_rfc3339(),
            accepted,
        },
    }))
}

// ---------------------------------------------------------------- validate

#[derive(Debug, Deserialize)]
pub struct ValidateIn {
    pub checkout_flow_id: Option<String>,
    pub checkout_session_id: Option<String>,
    pub note: Option<String>,
    pub tracer: Option<String>,
}

/// `IResponseCheckoutValidate` plus the amounts.
#[derive(Debug, Serialize)]
pub struct ValidateOut {
    pub success: bool,
    pub message: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub tracer: Option<String>,
    pub checkout_session_id: String,
    pub checkout_flow_id: String,
    pub vendor_disclaimer: String,
    pub confirmed_balance_usd: String,
    pub pending_balance_usd: String,
    pub minimum_usd: String,
    pub expired: bool,
}

/// The validate route's own per-IP limiter (polling a payment must not use up initiate's budget).
#[derive(Clone, Default)]
pub struct ValidateLimiter(Arc<RateLimiter>);

#[tracing::instrument(skip_all)]
async fn validate(
    State(state): State<AppState>,
    Extension(limiter): Extension<ValidateLimiter>,
    ClientIp(ip): ClientIp,
    AppJson(body): AppJson<ValidateIn>,
) -> Result<AppJson<ValidateOut>, ApiError> {
    // Public and backed by RPC calls: limited per client IP like initiate.
    if !limiter
        .0
        .allow(ip, state.config.checkout.validate_per_minute)
    {
        return Err(ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many payment checks from this address; try again in a minute.",
        ));
    }
    let flow_id = required("checkout_flow_id", body.checkout_flow_id, 200)?;
    let session_text = required("checkout_session_id", body.checkout_session_id, 200)?;
    text("note", body.note, 2000)?;
    let tracer = text("tracer", body.tracer, 200)?;
    let session = checkout::parse_session(&session_text)?;
    let v = checkout::validate(&state.checkouts(), &flow_id, session).await?;
    Ok(AppJson(ValidateOut {
        success: v.success,
        vendor_disclaimer: v.message.clone(),
        message: v.message,
        kind: PATTERN,
        tracer,
        checkout_session_id: session_text,
        checkout_flow_id: flow_id,
        confirmed_balance_usd: v.totals.counted().to_string(),
        pending_balance_usd: v.totals.pending.to_string(),
        minimum_usd: v.minimum.to_string(),
        expired: v.expired,
    }))
}

// ---------------------------------------------------------------- finalize

#[derive(Debug, Deserialize)]
pub struct ProxyBuyerData {
    pub org_id: Option<String>,
    pub org_host: Option<String>,
    /// The older name of `org_host`.
    pub org_endpoint: Option<String>,
    pub user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct FinalizeIn {
    pub checkout_flow_id: Option<String>,
    pub checkout_session_id: Option<String>,
    pub officex_purchase_id: Option<String>,
    pub note: Option<String>,
    pub tracer: Option<String>,
    pub proxy_buyer_data: Option<ProxyBuyerData>,
    /// Accepted for compatibility; every configured token is swept.
    #[allow(dead_code)]
    pub sweep_tokens: Option<Vec<String>>,
}

/// The receipt of a refusal: the reference's three fields.
#[derive(Debug, Serialize)]
pub struct RefusedReceipt {
    pub checkout_flow_id: String,
    pub vendor_disclaimer: String,
    pub checkout_session_id: String,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum FinalizeReceipt {
    Full(Box<Receipt>),
    Refused(RefusedReceipt),
}

/// `IResponseCheckoutFinalize`.
#[derive(Debug, Serialize)]
pub struct FinalizeOut {
    pub success: bool,
    pub message: String,
    pub tracer: Option<String>,
    pub receipt: FinalizeReceipt,
}

#[tracing::instrument(skip_all)]
async fn finalize_route(
    State(state): State<AppState>,
    AppJson(body): AppJson<FinalizeIn>,
) -> Result<AppJson<FinalizeOut>, ApiError> {
    let flow_id = required("checkout_flow_id", body.checkout_flow_id, 200)?;
    let session_text = required("checkout_session_id", body.checkout_session_id, 200)?;
    let officex_purchase_id = required("officex_purchase_id", body.officex_purchase_id, 200)?;
    text("note", body.note, 2000)?;
    let tracer = text("tracer", body.tracer, 200)?;
    let session = checkout::parse_session(&session_text)?;
    let proxy = body.proxy_buyer_data;
    let org_host = match &proxy {
        Some(p) => text(
            "proxy_buyer_data.org_host",
            p.org_host.clone().or(p.org_endpoint.clone()),
            500,
        )?,
        None => None,
    };
    let input = FinalizeInput {
        flow_id: flow_id.clone(),
        session: Some(session),
        officex_purchase_id,
        tracer: tracer.clone(),
        org_id: text(
            "proxy_buyer_data.org_id",
            proxy.as_ref().and_then(|p| p.org_id.clone()),
            200,
        )?,
        org_host,
        user_id: text(
            "proxy_buyer_data.user_id",
            proxy.as_ref().and_then(|p| p.user_id.clone()),
            200,
        )?,
    };
    Ok(AppJson(
        match finalize::finalize(&state.checkouts(), &input).await? {
            Finalized::Done { message, receipt } => FinalizeOut {
                success: true,
                message,
                tracer,
                receipt: FinalizeReceipt::Full(receipt),
            },
            Finalized::Refused { message } => FinalizeOut {
                success: false,
                tracer,
                receipt: FinalizeReceipt::Refused(RefusedReceipt {
                    checkout_flow_id: flow_id,
                    vendor_disclaimer: message.clone(),
                    checkout_session_id: session_text,
                }),
                message,
            },
        },
    ))
}

// ---------------------------------------------------------------- topup and verify-topup

async fn authorize(state: &AppState, purchase_id: PurchaseId, key: &str) -> Result<(), ApiError> {
    let ok = purchases::key_matches(&state.pool, purchase_id, KeyKind::Customer, key)
        .await
        .map_err(CheckoutError::from)?;
    if ok { Ok(()) } else { Err(unauthorized()) }
}

#[derive(Debug, Deserialize)]
pub struct TopupIn {
    pub checkout_session_id: Option<String>,
    pub note: Option<String>,
    pub tracer: Option<String>,
    #[allow(dead_code)]
    pub sweep_tokens: Option<Vec<String>>,
}

/// `IResponseCheckoutTopup` plus exact amounts.
#[derive(Debug, Serialize)]
#[allow(non_snake_case)]
pub struct TopupOut {
    pub vendor_disclaimer: String,
    pub checkout_session_id: String,
    pub success: bool,
    pub message: String,
    pub tracer: Option<String>,
    /// The purchase's balance in USD (a number, as the types declare).
    pub updatedValue: f64,
    pub balance_usd: String,
    pub credited_usd: String,
    pub pending_usd: String,
}

fn usd_number(amount: UsdMicros) -> f64 {
    amount.0 as f64 / 1_000_000.0
}

fn topup_message(report: &checkout::TopupReport) -> String {
    let pending = if report.pending.0 > 0 {
        format!(
            " {} USD is waiting for block confirmations and will be credited automatically.",
            report.pending
        )
    } else {
        String::new()
    };
    if report.credited.is_empty() {
        format!(
            "No new confirmed deposit to credit. Your balance is {} USD.{pending}",
            report.balance
        )
    } else {
        format!(
            "Credited {} USD from {} deposit(s). Your balance is {} USD.{pending}",
            report.credited_total(),
            report.credited.len(),
            report.balance
        )
    }
}

#[tracing::instrument(skip_all)]
async fn topup(
    State(state): State<AppState>,
    PresentedKey(key): PresentedKey,
    AppJson(body): AppJson<TopupIn>,
) -> Result<AppJson<TopupOut>, ApiError> {
    let session_text = required("checkout_session_id", body.checkout_session_id, 200)?;
    text("note", body.note, 2000)?;
    let tracer = text("tracer", body.tracer, 200)?;
    let Ok(session) = checkout::parse_session(&session_text) else {
        return Err(unauthorized());
    };
    let found: Option<Checkout> = checkout::find(&state.pool, session).await?;
    let Some((found, purchase_id)) = found.and_then(|c| c.purchase_id.map(|p| (c, p))) else {
        return Err(unauthorized());
    };
    authorize(&state, purchase_id, &key).await?;
    let report = checkout::topup(&state.checkouts(), found).await?;
    let message = topup_message(&report);
    Ok(AppJson(TopupOut {
        vendor_disclaimer: finalize::disclaimer(&state.checkouts(), &report.checkout),
        checkout_session_id: session_text,
        success: !report.credited.is_empty(),
        message,
        tracer,
        updatedValue: usd_number(report.balance),
        balance_usd: report.balance.to_string(),
        credited_usd: report.credited_total().to_string(),
        pending_usd: report.pending.to_string(),
    }))
}

#[derive(Debug, Default, Deserialize)]
pub struct VerifyTopupIn {
    pub min_target_balance: Option<UsdMicros>,
}

#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum VerifyTopupOut {
    Credited {
        message: String,
        new_balance: f64,
        topup_amount: f64,
    },
    Nothing {
        message: String,
        current_wallet_balance_usd: f64,
        min_target_balance_for_topup: f64,
    },
}

#[tracing::instrument(skip_all)]
async fn verify_topup(
    State(state): State<AppState>,
    CustomerAuth { purchase_id }: CustomerAuth,
    body: Bytes,
) -> Result<AppJson<VerifyTopupOut>, ApiError> {
    let body: VerifyTopupIn = if body.iter().all(u8::is_ascii_whitespace) {
        VerifyTopupIn::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request("invalid_body", format!("invalid body: {e}")))?
    };
    let target = body.min_target_balance.unwrap_or_default();
    if target.0 < 0 {
        return Err(ApiError::bad_request(
            "invalid_body",
            "min_target_balance must not be negative",
        ));
    }
    let found = checkout::find_by_purchase(&state.pool, purchase_id)
        .await?
        .ok_or_else(unauthorized)?;
    let report = checkout::topup(&state.checkouts(), found).await?;
    let message = topup_message(&report);
    Ok(AppJson(if report.credited.is_empty() {
        VerifyTopupOut::Nothing {
            message,
            current_wallet_balance_usd: usd_number(report.pending),
            min_target_balance_for_topup: usd_number(target),
        }
    } else {
        VerifyTopupOut::Credited {
            message,
            new_balance: usd_number(report.balance),
            topup_amount: usd_number(report.credited_total()),
        }
    }))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/checkout/initiate", post(initiate))
        .route("/v1/checkout/validate", post(validate))
        .route("/v1/checkout/finalize", post(finalize_route))
        .route("/v1/checkout/topup", post(topup))
        .route("/v1/purchase/{id}/verify-topup", post(verify_topup))
        .layer(Extension(Arc::new(RateLimiter::default())))
        .layer(Extension(ValidateLimiter::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_limits_per_ip() {
        let limiter = RateLimiter::default();
        let a = Some(IpAddr::from([203, 0, 113, 1]));
        let b = Some(IpAddr::from([203, 0, 113, 2]));
        assert!((0..3).all(|_| limiter.allow(a, 3)));
        assert!(!limiter.allow(a, 3));
        assert!(limiter.allow(b, 3));
        // One IPv6 /64 is one client.
        let v6 = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!((0..3).all(|i| limiter.allow(v6(&format!("2001:db8:0:1::{i}")), 3)));
        assert!(!limiter.allow(v6("2001:db8:0:1:ffff::9"), 3));
        assert!(limiter.allow(v6("2001:db8:0:2::1"), 3));
    }
}
