//! `GET /v1/offer/:offer_id`: one offer with the checkout options a client can start.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::Serialize;

use super::error::ApiError;
use super::extract::{AppJson, AppPath};
use crate::catalog::{self, Offer};
use crate::config::Config;
use crate::state::AppState;

/// `CheckoutOption` of `@officexapp/types`.
#[derive(Debug, Serialize)]
pub struct CheckoutOptionOut {
    pub offer_id: String,
    pub checkout_flow_id: String,
    pub title: String,
    pub note: String,
    pub checkout_init_endpoint: String,
    pub checkout_pattern: &'static str,
    pub about_url: String,
    pub vendor_disclaimer: String,
    pub requires_email_for_init: bool,
}

/// An offer on the wire: the reference's `{id, sku, title, description, metadata}` plus options.
#[derive(Debug, Serialize)]
pub struct OfferOut {
    pub id: String,
    pub sku: String,
    pub title: String,
    pub description: String,
    pub metadata: serde_json::Value,
    pub price_line: String,
    pub minimum_deposit_usd: String,
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
                    checkout_pattern: "CRYPTO_WALLET_TOPUP",
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

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/offer/{offer_id}", get(get_offer))
}
