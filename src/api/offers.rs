//! `GET /v1/offer/:offer_id`: one offer with the checkout options a client can start.

use axum::extract::State;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{AppJson, AppPath};
use crate::catalog::{self, Offer};
use crate::config::Config;
use crate::state::AppState;

/// `CheckoutOption` of `@officexapp/types`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = CheckoutOption)]
pub struct CheckoutOptionOut {
    pub offer_id: String,
    /// `<offer_id>:<chain>:<token>`, or the original's flow id for the S3 offer.
    #[schema(example = "gemini-api-gateway:base:usdc")]
    pub checkout_flow_id: String,
    pub title: String,
    pub note: String,
    pub checkout_init_endpoint: String,
    pub checkout_pattern: CheckoutPattern,
    pub about_url: String,
    pub vendor_disclaimer: String,
    pub requires_email_for_init: bool,
}

/// The one checkout pattern this server offers.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub enum CheckoutPattern {
    #[serde(rename = "CRYPTO_WALLET_TOPUP")]
    CryptoWalletTopup,
}

/// An offer on the wire: the reference's `{id, sku, title, description, metadata}` plus options.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Offer)]
pub struct OfferOut {
    #[schema(example = "gemini-api-gateway")]
    pub id: String,
    pub sku: String,
    pub title: String,
    pub description: String,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub price_line: String,
    #[schema(value_type = crate::domain::money::UsdMicros)]
    pub minimum_deposit_usd: String,
    #[schema(value_type = crate::domain::money::UsdMicros)]
    pub suggested_deposit_usd: String,
    pub checkout_options: Vec<CheckoutOptionOut>,
}

impl OfferOut {
    pub fn new(offer: Offer, config: &Config) -> Self {
        let about_url = offer
            .about_url
            .clone()
            .unwrap_or_else(|| config.public_url(&format!("/v1/offer/{}", offer.offer_id)));
        let checkout_options = catalog::checkout_flows(&offer, &config.chains)
            .into_iter()
            .map(|flow| {
                let chain = config.chains.iter().find(|c| c.name == flow.chain);
                let token_name = chain
                    .and_then(|c| c.tokens.iter().find(|t| t.symbol == flow.token))
                    .and_then(|t| t.name.clone())
                    .unwrap_or_else(|| flow.token.to_uppercase());
                CheckoutOptionOut {
                    title: format!("Pay with {} on {}", flow.token.to_uppercase(), flow.chain),
                    note: format!(
                        "Send at least ${} in {token_name} to your own deposit address; top up the same address any time.",
                        offer.min_deposit
                    ),
                    vendor_disclaimer: format!(
                        "Only send {} on {}. Other tokens or chains sent to the deposit address are not credited automatically.",
                        flow.token.to_uppercase(),
                        flow.chain
                    ),
                    offer_id: flow.offer_id,
                    checkout_flow_id: flow.flow_id,
                    checkout_init_endpoint: config.public_url("/v1/checkout/initiate"),
                    checkout_pattern: CheckoutPattern::CryptoWalletTopup,
                    about_url: about_url.clone(),
                    requires_email_for_init: false,
                }
            })
            .collect();
        Self {
            id: offer.offer_id,
            sku: offer.sku,
            title: offer.title,
            description: offer.description,
            metadata: offer.metadata,
            price_line: offer.pricing_line,
            minimum_deposit_usd: offer.min_deposit.to_string(),
            suggested_deposit_usd: offer.suggested_deposit.to_string(),
            checkout_options,
        }
    }
}

#[utoipa::path(
    get,
    path = "/v1/offer/{offer_id}",
    tag = "appstore",
    summary = "One offer",
    params(("offer_id" = String, Path, description = "The offer's id", example = "aws-s3-storage-giftcard")),
    responses(
        (status = 200, description = "The offer", body = OfferOut),
        (status = 404, description = "No such offer (`offer_not_found`), or this server cannot deliver it (`offer_unavailable`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
#[tracing::instrument(skip_all, fields(offer_id = %offer_id))]
async fn get_offer(
    State(state): State<AppState>,
    AppPath(offer_id): AppPath<String>,
) -> Result<AppJson<OfferOut>, ApiError> {
    let catalog = state.catalog.current(&state.pool).await?;
    let offer = catalog
        .offer(&offer_id)
        .ok_or_else(|| ApiError::not_found("offer_not_found", "Offer not found"))?;
    // Not sold when this server cannot deliver it (SPEC §9).
    if !state.providers.has(&offer.provider) {
        return Err(ApiError::not_found(
            "offer_unavailable",
            "This offer is not available on this server",
        ));
    }
    Ok(AppJson(OfferOut::new(offer.clone(), &state.config)))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_offer))
}
