//! Appstore: `suggest` ranks curated lists for the caller; `list/:list_id` returns one list's offers.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{AppJson, AppPath, AppQuery};
use super::offers::OfferOut;
use crate::catalog::{self, SuggestHints};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct SuggestIn {
    pub country: Option<String>,
    pub language: Option<String>,
    pub profession: Option<String>,
    /// At most this many lists (default: all).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize)]
pub struct SuggestionOut {
    pub url: String,
}

#[derive(Debug, Serialize)]
pub struct ListOut {
    pub list_id: String,
    pub title: String,
    pub description: String,
    pub offers: Vec<OfferOut>,
}

#[tracing::instrument(skip_all)]
async fn suggest(
    State(state): State<AppState>,
    AppQuery(query): AppQuery<SuggestIn>,
) -> Result<AppJson<Vec<SuggestionOut>>, ApiError> {
    let clean = |v: Option<String>| {
        v.map(|s| s.trim().to_lowercase())
            .filter(|s| !s.is_empty() && s.len() <= 100)
    };
    let hints = SuggestHints {
        country: clean(query.country),
        language: clean(query.language),
        profession: clean(query.profession),
    };
    // Only lists with something this server can deliver (an offer whose provider is configured).
    let catalog = state.catalog.current(&state.pool).await?;
    let ranked = catalog::rank_lists(
        catalog.lists_offering(|o| state.providers.has(&o.provider)),
        &hints,
    );
    let urls = ranked
        .into_iter()
        .take(query.limit.unwrap_or(usize::MAX))
        .map(|l| SuggestionOut {
            url: state
                .config
                .public_url(&format!("/v1/appstore/list/{}", l.list_id)),
        })
        .collect();
    Ok(AppJson(urls))
}

#[tracing::instrument(skip_all, fields(list_id = %list_id))]
async fn list(
    State(state): State<AppState>,
    AppPath(list_id): AppPath<String>,
) -> Result<AppJson<ListOut>, ApiError> {
    let catalog = state.catalog.current(&state.pool).await?;
    let (list, offers) = catalog
        .list_with_offers(&list_id)
        .ok_or_else(|| ApiError::not_found("list_not_found", "Appstore list not found"))?;
    Ok(AppJson(ListOut {
        list_id: list.list_id.clone(),
        title: list.title.clone(),
        description: list.description.clone(),
        offers: offers
            .into_iter()
            .filter(|o| state.providers.has(&o.provider))
            .map(|o| OfferOut::new(o.clone(), &state.config))
            .collect(),
    }))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/appstore/suggest", get(suggest))
        .route("/v1/appstore/list/{list_id}", get(list))
}
