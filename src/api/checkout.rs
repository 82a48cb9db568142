//! Checkout routes, wire-compatible with `@officexapp/types` `vendor.ts`: `initiate` (rate-limited per
//! client IP), `validate`, `finalize`, `topup` and `verify-topup` (customer key). The customer page
//! the receipts link to is the dashboard's (`super::dashboard`).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{CustomerAuth, PresentedKey, unauthorized};
use super::error::{ApiError, ErrorBody};
use super::extract::{AppJson, ClientIp, rate_limit_key};
use super::offers::CheckoutPattern;
use crate::billing::keys::KeyKind;
use crate::billing::purchases;
use crate::checkout::finalize::{self, FinalizeInput, Finalized};
use crate::checkout::receipt::Receipt;
use crate::checkout::{self, Checkout, CheckoutError, InitiateInput};
use crate::domain::ids::{PurchaseId, TracerId};
use crate::domain::money::UsdMicros;
use crate::state::AppState;

const PATTERN: CheckoutPattern = CheckoutPattern::CryptoWalletTopup;

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
    /// Takes one cell, or says how long until the caller, over `per_minute`, has one again (0
    /// admits everyone).
    fn check(&self, ip: Option<IpAddr>, per_minute: u32) -> Result<(), Duration> {
        let Some(per_minute) = NonZeroU32::new(per_minute) else {
            return Ok(());
        };
        let limiter = self
            .0
            .get_or_init(|| governor::RateLimiter::keyed(Quota::per_minute(per_minute)));
        if limiter.len() > 100_000 {
            limiter.retain_recent();
        }
        // IPv6 counts per /64: a host picks any address of its allocation at will.
        limiter
            .check_key(&ip.map(rate_limit_key))
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    #[cfg(test)]
    fn allow(&self, ip: Option<IpAddr>, per_minute: u32) -> bool {
        self.check(ip, per_minute).is_ok()
    }

    /// Admits the caller of `parts` or refuses with 429 and `Retry-After`.
    async fn admit(
        &self,
        parts: &mut Parts,
        state: &AppState,
        per_minute: u32,
        message: &'static str,
    ) -> Result<(), ApiError> {
        let ClientIp(ip) = ClientIp::from_request_parts(parts, state).await?;
        self.check(ip, per_minute)
            .map_err(|wait| ApiError::rate_limited(message, wait))
    }
}

/// A caller of `initiate` under its per-IP limit. An extractor, so a 429 is decided from the
/// headers: the body is not read.
pub struct InitiateAdmitted;

impl FromRequestParts<AppState> for InitiateAdmitted {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let limiter = parts
            .extensions
            .get::<Arc<RateLimiter>>()
            .cloned()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no initiate limiter")))?;
        limiter
            .admit(
                parts,
                state,
                state.config.checkout.initiate_per_minute,
                "Too many checkouts started from this address; try again in a minute.",
            )
            .await?;
        Ok(Self)
    }
}

// ---------------------------------------------------------------- initiate

/// `IRequestCheckoutInit`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = CheckoutInitiateRequest)]
pub struct InitiateIn {
    /// From the offer's `checkout_options`.
    #[schema(
        value_type = String,
        max_length = 200,
        example = "001_amazon_storage_crypto_wallet_topup_gift_card_only"
    )]
    pub checkout_flow_id: Option<String>,
    #[schema(max_length = 200)]
    pub org_id: Option<String>,
    #[schema(max_length = 200)]
    pub user_id: Option<String>,
    /// The buyer's OfficeX org host.
    #[schema(max_length = 500)]
    pub host: Option<String>,
    #[schema(max_length = 200)]
    pub tracer: Option<String>,
    /// Where payment and balance notices go (optional).
    #[schema(max_length = 320, example = "buyer@example.com")]
    pub email: Option<String>,
}

/// `IResponseCheckoutInit_Crypto`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CheckoutInitiateResponse)]
pub struct InitiateOut {
    pub offer_id: String,
    pub checkout_flow_id: String,
    pub checkout_pattern: CheckoutPattern,
    /// `CheckoutSessionID_<uuid>`.
    pub checkout_session_id: String,
    pub vendor_disclaimer: String,
    pub tracer: String,
    pub validation_endpoint: String,
    pub finalization_endpoint: String,
    pub final_cta: String,
    #[schema(value_type = Object)]
    pub post_payment: serde_json::Value,
    #[schema(value_type = Vec<Object>)]
    pub requirements: Vec<serde_json::Value>,
    pub crypto_checkout: CryptoCheckout,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CryptoCheckout {
    /// The checkout's own deposit address (EIP-55).
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
    /// RFC 3339; shown as expired after this, but late payments are still detected and credited.
    #[schema(format = DateTime)]
    pub expires_at: String,
    /// Every chain and token the address accepts.
    pub accepted: Vec<AcceptedChain>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AcceptedChain {
    pub chain: String,
    pub chain_id: u64,
    pub tokens: Vec<AcceptedToken>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
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

#[utoipa::path(
    post,
    path = "/v1/checkout/initiate",
    tag = "checkout",
    summary = "Start a checkout: a new session and its own derived deposit address",
    description = "Rate-limited per client IP (CHECKOUT_INITIATE_PER_MINUTE). The offer's terms are kept with the checkout.",
    request_body = InitiateIn,
    responses(
        (status = 200, description = "The session", body = InitiateOut),
        (status = 400, description = "Malformed or invalid body (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_request`)", body = ErrorBody),
        (status = 404, description = "Unknown checkout flow (`checkout_flow_not_found`)", body = ErrorBody),
        (status = 409, description = "The offer's provider is not configured on this server (`offer_unavailable`)", body = ErrorBody),
        (status = 415, description = "The body is not `application/json` (`unsupported_media_type`)", body = ErrorBody),
        (status = 429, description = "Too many checkouts from this client (`rate_limited`; decided before the body is read; `Retry-After` says when)", body = ErrorBody),
        (status = 503, description = "Payments not configured (`payments_not_configured`), the chain's RPC node unreachable (`chain_unavailable`; nothing changed) or the database unreachable (`service_unavailable`); retry", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
async fn initiate(
    State(state): State<AppState>,
    _admitted: InitiateAdmitted,
    AppJson(body): AppJson<InitiateIn>,
) -> Result<AppJson<InitiateOut>, ApiError> {
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

/// `IRequestCheckoutValidate`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = CheckoutValidateRequest)]
pub struct ValidateIn {
    #[schema(
        value_type = String,
        max_length = 200,
        example = "001_amazon_storage_crypto_wallet_topup_gift_card_only"
    )]
    pub checkout_flow_id: Option<String>,
    /// `CheckoutSessionID_<uuid>`, from initiate.
    #[schema(
        value_type = String,
        max_length = 200,
        example = "CheckoutSessionID_00000000-0000-4000-8000-000000000000"
    )]
    pub checkout_session_id: Option<String>,
    #[schema(max_length = 2000)]
    pub note: Option<String>,
    #[schema(max_length = 200)]
    pub tracer: Option<String>,
}

/// `IResponseCheckoutValidate` plus the amounts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CheckoutValidateResponse)]
pub struct ValidateOut {
    /// `false` when the session is unknown or the minimum is not reached.
    pub success: bool,
    pub message: String,
    #[serde(rename = "type")]
    pub kind: CheckoutPattern,
    pub tracer: Option<String>,
    pub checkout_session_id: String,
    pub checkout_flow_id: String,
    pub vendor_disclaimer: String,
    #[schema(value_type = crate::domain::money::UsdMicros)]
    pub confirmed_balance_usd: String,
    #[schema(value_type = crate::domain::money::UsdMicros)]
    pub pending_balance_usd: String,
    #[schema(value_type = crate::domain::money::UsdMicros)]
    pub minimum_usd: String,
    pub expired: bool,
    /// Confirmed money at this checkout's address that no purchase uses (a checkout never
    /// finalized, or a payment after its purchase was deleted): refundable
    /// (`POST /v1/checkout/refund`, or the purchase's refunds).
    pub unclaimed_usd: crate::domain::money::UsdMicros,
}

/// The validate route's own per-IP limiter (polling a payment must not use up initiate's budget).
#[derive(Clone, Default)]
pub struct ValidateLimiter(Arc<RateLimiter>);

/// A caller of `validate` under its per-IP limit, admitted from the headers like
/// [`InitiateAdmitted`].
pub struct ValidateAdmitted;

impl FromRequestParts<AppState> for ValidateAdmitted {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let limiter = parts
            .extensions
            .get::<ValidateLimiter>()
            .cloned()
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("no validate limiter")))?;
        limiter
            .0
            .admit(
                parts,
                state,
                state.config.checkout.validate_per_minute,
                "Too many payment checks from this address; try again in a minute.",
            )
            .await?;
        Ok(Self)
    }
}

#[utoipa::path(
    post,
    path = "/v1/checkout/validate",
    tag = "checkout",
    summary = "Read the checkout's confirmed deposits",
    description = "From the watcher's last pass when it is recent (CHECKOUT_VALIDATE_FRESH_SECS), otherwise scans the address first. Rate-limited per client IP (CHECKOUT_VALIDATE_PER_MINUTE).",
    request_body = ValidateIn,
    responses(
        (status = 200, description = "`success: false` when the session is unknown or the minimum is not reached", body = ValidateOut),
        (status = 400, description = "Malformed or invalid body (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_request`)", body = ErrorBody),
        (status = 404, description = "Unknown checkout flow (`checkout_flow_not_found`)", body = ErrorBody),
        (status = 415, description = "The body is not `application/json` (`unsupported_media_type`)", body = ErrorBody),
        (status = 429, description = "Too many payment checks from this client (`rate_limited`; decided before the body is read; `Retry-After` says when)", body = ErrorBody),
        (status = 503, description = "Payments not configured (`payments_not_configured`), the chain's RPC node unreachable (`chain_unavailable`; nothing changed) or the database unreachable (`service_unavailable`); retry", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
async fn validate(
    State(state): State<AppState>,
    // Public and backed by RPC calls: limited per client IP like initiate.
    _admitted: ValidateAdmitted,
    AppJson(body): AppJson<ValidateIn>,
) -> Result<AppJson<ValidateOut>, ApiError> {
    let flow_id = required("checkout_flow_id", body.checkout_flow_id, 200)?;
    let session_text = required("checkout_session_id", body.checkout_session_id, 200)?;
    text("note", body.note, 2000)?;
    let tracer = text("tracer", body.tracer, 200)?;
    let session = checkout::parse_session(&session_text)?;
    let v = checkout::validate(&state.checkouts(), &flow_id, session).await?;
    let unclaimed_usd = match &v.checkout {
        Some(c) => crate::refunds::unclaimed_of_checkout(&state.pool, c).await?,
        None => UsdMicros::ZERO,
    };
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
        unclaimed_usd,
    }))
}

// ---------------------------------------------------------------- finalize

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct ProxyBuyerData {
    #[schema(max_length = 200)]
    pub org_id: Option<String>,
    #[schema(max_length = 500)]
    pub org_host: Option<String>,
    /// The older name of `org_host`.
    #[schema(max_length = 500)]
    pub org_endpoint: Option<String>,
    #[schema(max_length = 200)]
    pub user_id: Option<String>,
}

/// `IRequestCheckoutFinalize`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = CheckoutFinalizeRequest)]
pub struct FinalizeIn {
    #[schema(
        value_type = String,
        max_length = 200,
        example = "001_amazon_storage_crypto_wallet_topup_gift_card_only"
    )]
    pub checkout_flow_id: Option<String>,
    #[schema(
        value_type = String,
        max_length = 200,
        example = "CheckoutSessionID_00000000-0000-4000-8000-000000000000"
    )]
    pub checkout_session_id: Option<String>,
    /// The OfficeX `PurchaseID_<uuid>`; replays with the same id within 24 h get the receipt with
    /// its secrets.
    #[schema(value_type = String, max_length = 200)]
    pub officex_purchase_id: Option<String>,
    #[schema(max_length = 2000)]
    pub note: Option<String>,
    #[schema(max_length = 200)]
    pub tracer: Option<String>,
    pub proxy_buyer_data: Option<ProxyBuyerData>,
    /// Accepted for compatibility and ignored: every configured token is swept.
    #[allow(dead_code)]
    pub sweep_tokens: Option<Vec<String>>,
}

/// The receipt of a refusal: the reference's three fields.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefusedReceipt {
    pub checkout_flow_id: String,
    pub vendor_disclaimer: String,
    pub checkout_session_id: String,
}

/// The full receipt, or the three fields of a refusal.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum FinalizeReceipt {
    Full(Box<Receipt>),
    Refused(RefusedReceipt),
}

/// `IResponseCheckoutFinalize`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CheckoutFinalizeResponse)]
pub struct FinalizeOut {
    pub success: bool,
    pub message: String,
    pub tracer: Option<String>,
    pub receipt: FinalizeReceipt,
}

#[utoipa::path(
    post,
    path = "/v1/checkout/finalize",
    tag = "checkout",
    summary = "Credit the confirmed deposits, create the purchase, provision it and return the receipt",
    description = "Idempotent by checkout_session_id. Answers within REQUEST_TIMEOUT_SECS − 5 s: `RUNNING`, or `AWAITING` while provisioning goes on (the same finalize, same officex_purchase_id, returns the secrets once ready, for 24 h). Finishes on the offer terms of initiate even after the offer or chain is retired.",
    request_body = FinalizeIn,
    responses(
        (status = 200, description = "The receipt, or `success: false` (unknown session, under the offer minimum: nothing lost)", body = FinalizeOut),
        (status = 400, description = "Malformed or invalid body (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_request`)", body = ErrorBody),
        (status = 404, description = "Unknown checkout flow (`checkout_flow_not_found`)", body = ErrorBody),
        (status = 409, description = "officex_purchase_id already belongs to another purchase, or this checkout was finalized with another officex_purchase_id (`officex_purchase_id_in_use`)", body = ErrorBody),
        (status = 415, description = "The body is not `application/json` (`unsupported_media_type`)", body = ErrorBody),
        (status = 503, description = "Payments not configured (`payments_not_configured`), the chain's RPC node unreachable (`chain_unavailable`; nothing changed) or the database unreachable (`service_unavailable`); retry", body = ErrorBody),
    )
)]
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

/// `IRequestCheckoutTopup`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = CheckoutTopupRequest)]
pub struct TopupIn {
    /// The finalized checkout's `CheckoutSessionID_<uuid>`.
    #[schema(
        value_type = String,
        max_length = 200,
        example = "CheckoutSessionID_00000000-0000-4000-8000-000000000000"
    )]
    pub checkout_session_id: Option<String>,
    #[schema(max_length = 2000)]
    pub note: Option<String>,
    #[schema(max_length = 200)]
    pub tracer: Option<String>,
    /// Accepted for compatibility and ignored.
    #[allow(dead_code)]
    pub sweep_tokens: Option<Vec<String>>,
}

/// `IResponseCheckoutTopup` plus exact amounts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CheckoutTopupResponse)]
#[allow(non_snake_case)]
pub struct TopupOut {
    pub vendor_disclaimer: String,
    pub checkout_session_id: String,
    /// `true` when this call credited a new deposit.
    pub success: bool,
    pub message: String,
    pub tracer: Option<String>,
    /// The purchase's balance in USD (a number, as the types declare).
    pub updatedValue: f64,
    #[schema(value_type = crate::domain::money::UsdMicros)]
    pub balance_usd: String,
    #[schema(value_type = crate::domain::money::UsdMicros)]
    pub credited_usd: String,
    #[schema(value_type = crate::domain::money::UsdMicros)]
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

#[utoipa::path(
    post,
    path = "/v1/checkout/topup",
    tag = "checkout",
    summary = "Credit new confirmed deposits to a finalized checkout's purchase (exactly once each)",
    request_body = TopupIn,
    security(("customer_key" = []), ("customer_key_query" = [])),
    responses(
        (status = 200, description = "What was credited", body = TopupOut),
        (status = 400, description = "Malformed or invalid body (`malformed_json`, `invalid_body`, `invalid_text`)", body = ErrorBody),
        (status = 401, description = "No key, or not the customer key of this checkout's purchase (also for an unknown or unfinalized session) (`unauthorized`)", body = ErrorBody),
        (status = 415, description = "The body is not `application/json` (`unsupported_media_type`)", body = ErrorBody),
        (status = 503, description = "Payments not configured (`payments_not_configured`), the chain's RPC node unreachable (`chain_unavailable`; nothing changed) or the database unreachable (`service_unavailable`); retry", body = ErrorBody),
    )
)]
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

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[schema(as = VerifyTopupRequest)]
pub struct VerifyTopupIn {
    /// USD, a decimal string or number with at most 6 places, not negative; default 0.
    #[schema(schema_with = usd_input)]
    pub min_target_balance: Option<UsdMicros>,
}

/// A USD amount as a client may send it: a decimal string or a JSON number, at most 6 places.
pub fn usd_input() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::{ObjectBuilder, OneOfBuilder, Type};
    Schema::OneOf(
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^(?:[0-9]+\.?[0-9]{0,6}|\.[0-9]{1,6})$")),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Number)
                    .minimum(Some(0)),
            )
            .description(Some("Exact decimal, at most 6 places, not negative"))
            .build(),
    )
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
#[schema(as = VerifyTopupResponse)]
pub enum VerifyTopupOut {
    Credited {
        message: String,
        new_balance: f64,
        topup_amount: f64,
        /// Payments that reached the purchase after it was deleted, not refunded yet (USD).
        unclaimed_usd: f64,
    },
    Nothing {
        message: String,
        /// Deposits seen but not yet confirmed.
        current_wallet_balance_usd: f64,
        min_target_balance_for_topup: f64,
        /// Payments that reached the purchase after it was deleted, not refunded yet (USD):
        /// refundable with `POST /v1/purchase/{id}/refunds`.
        unclaimed_usd: f64,
    },
}

#[utoipa::path(
    post,
    path = "/v1/purchase/{id}/verify-topup",
    tag = "checkout",
    summary = "Same as topup, addressed by purchase; never sends gas",
    params(("id" = String, Path, description = "`CustomerPurchaseID_<uuid>`")),
    request_body(content = Option<VerifyTopupIn>, description = "Optional; an empty body means the defaults"),
    security(("customer_key" = []), ("customer_key_query" = [])),
    responses(
        (status = 200, description = "Credited, or nothing new", body = VerifyTopupOut),
        (status = 400, description = "Invalid body (`invalid_body`)", body = ErrorBody),
        (status = 401, description = "No key, not this purchase's customer key, or an unknown purchase (`unauthorized`)", body = ErrorBody),
        (status = 503, description = "Payments not configured (`payments_not_configured`), the chain's RPC node unreachable (`chain_unavailable`; nothing changed) or the database unreachable (`service_unavailable`); retry", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all)]
async fn verify_topup(
    State(state): State<AppState>,
    CustomerAuth { purchase_id }: CustomerAuth,
    body: Bytes,
) -> Result<AppJson<VerifyTopupOut>, ApiError> {
    // An empty body or `null` means the defaults.
    let body: VerifyTopupIn = if body.iter().all(u8::is_ascii_whitespace) {
        VerifyTopupIn::default()
    } else {
        serde_json::from_slice::<Option<VerifyTopupIn>>(&body)
            .map_err(|e| ApiError::bad_request("invalid_body", format!("invalid body: {e}")))?
            .unwrap_or_default()
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
    let mut message = topup_message(&report);
    let unclaimed = crate::refunds::unclaimed_of_checkout(&state.pool, &report.checkout).await?;
    if unclaimed.0 > 0 {
        message.push_str(&format!(
            " {unclaimed} USD paid to this deleted purchase is unclaimed: request it back with POST /v1/purchase/{purchase_id}/refunds."
        ));
    }
    Ok(AppJson(if report.credited.is_empty() {
        VerifyTopupOut::Nothing {
            message,
            current_wallet_balance_usd: usd_number(report.pending),
            min_target_balance_for_topup: usd_number(target),
            unclaimed_usd: usd_number(unclaimed),
        }
    } else {
        VerifyTopupOut::Credited {
            message,
            new_balance: usd_number(report.balance),
            topup_amount: usd_number(report.credited_total()),
            unclaimed_usd: usd_number(unclaimed),
        }
    }))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(initiate))
        .routes(routes!(validate))
        .routes(routes!(finalize_route))
        .routes(routes!(topup))
        .routes(routes!(verify_topup))
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
