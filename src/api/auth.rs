//! Key extractors for the purchase routes. A key arrives as `Authorization: Bearer <key>` or as
//! `?auth=<key>` (the header wins when both are present), the same way on every keyed route.
//!
//! - [`CustomerAuth`]: the purchase's customer key.
//! - [`VendorKey`]: a vendor-wide billing token (`vst_…`), the one way to meter (SPEC §9); the meter
//!   checks it is live (and the purchase exists) in its batch transaction.
//!
//! An unknown purchase, a malformed id and a wrong key all give the same 401, so nobody learns
//! which purchases exist; a key of another purchase, of the other role or a revoked token too.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Query, RawPathParams};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::billing::keys::KeyKind;
use crate::billing::purchases;
use crate::domain::ids::PurchaseId;
use crate::state::AppState;

/// The one answer for a bad or missing credential.
pub fn unauthorized() -> ApiError {
    ApiError::unauthorized("Unauthorized: invalid purchase ID or API key.")
}

/// The key presented with a request: the bearer header, else `?auth=`.
pub fn presented_key(parts: &Parts) -> Option<String> {
    let from_header = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, key) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| key.trim().to_owned())
        });
    from_header
        .or_else(|| {
            Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
                .ok()
                .and_then(|q| q.0.get("auth").map(|k| k.trim().to_owned()))
        })
        .filter(|k| !k.is_empty())
}

/// The `{id}` of the route, parsed (a malformed id cannot exist, so it is just "unauthorized").
async fn path_purchase(parts: &mut Parts, state: &AppState) -> Result<PurchaseId, ApiError> {
    let params = RawPathParams::from_request_parts(parts, state)
        .await
        .map_err(|_| unauthorized())?;
    params
        .iter()
        .find(|(name, _)| *name == "id")
        .and_then(|(_, value)| value.parse().ok())
        .ok_or_else(unauthorized)
}

/// A request authenticated with the purchase's customer key.
#[derive(Debug, Clone, Copy)]
pub struct CustomerAuth {
    pub purchase_id: PurchaseId,
}

impl FromRequestParts<AppState> for CustomerAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = presented_key(parts).ok_or_else(missing_key)?;
        let purchase_id = path_purchase(parts, state).await?;
        if purchases::key_matches(&state.pool, purchase_id, KeyKind::Customer, &key).await? {
            Ok(Self { purchase_id })
        } else {
            Err(unauthorized())
        }
    }
}

/// The key presented with a request, not checked yet: for routes that find the purchase from the
/// body (`/v1/checkout/topup`); they check it with [`purchases::key_matches`] and answer
/// [`unauthorized`] alike for an unknown purchase and a wrong key.
#[derive(Debug, Clone)]
pub struct PresentedKey(pub String);

impl FromRequestParts<AppState> for PresentedKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, ApiError> {
        presented_key(parts).map(Self).ok_or_else(missing_key)
    }
}

/// A request presenting a billing token (`vst_…`) for the path's purchase, not yet checked against
/// the database: meter-usage checks the token and the purchase inside its group-commit transaction
/// (one query per batch instead of two per request), answering the same 401 for a revoked or unknown
/// token and an unknown purchase. A missing key or one that cannot be a billing token is that 401 at
/// once, before the body is read.
#[derive(Debug, Clone)]
pub struct VendorKey {
    pub purchase_id: PurchaseId,
    pub token: String,
}

impl FromRequestParts<AppState> for VendorKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = presented_key(parts).ok_or_else(missing_key)?;
        let purchase_id = path_purchase(parts, state).await?;
        if key.starts_with(KeyKind::BillingToken.prefix()) {
            Ok(Self {
                purchase_id,
                token: key,
            })
        } else {
            Err(unauthorized())
        }
    }
}

fn missing_key() -> ApiError {
    ApiError::unauthorized(
        "Unauthorized: an API key is required (Authorization: Bearer <key> or ?auth=<key>).",
    )
}
