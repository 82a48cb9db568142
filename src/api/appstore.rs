//! Appstore: `suggest` ranks curated lists for the caller; `list/:list_id` returns one list's offers.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, ErrorBody};
use super::extract::{AppJson, AppPath, AppQuery};
use super::offers::OfferOut;
use crate::catalog::{self, SuggestHints};
use crate::state::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SuggestIn {
    /// ISO country code hint.
    #[param(example = "de")]
    pub country: Option<String>,
    /// Language code hint.
    #[param(example = "de")]
    pub language: Option<String>,
    /// Profession hint.
    #[param(example = "developer")]
    pub profession: Option<String>,
    /// At most this many lists (default: all).
    pub limit: Option<usize>,
}

/// One suggested list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SuggestionOut {
    /// The list's absolute URL (`/v1/appstore/list/{list_id}`).
    pub url: String,
}

/// One curated list and its offers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AppstoreList)]
pub struct ListOut {
    pub list_id: String,
    pub title: String,
    pub description: String,
    pub offers: Vec<OfferOut>,
}

#[utoipa::path(
    get,
    path = "/v1/appstore/suggest",
    tag = "appstore",
    summary = "Curated lists ranked for the caller",
    description = "Only lists with an offer this server can deliver (its provider is configured).",
    params(SuggestIn),
    responses(
        (status = 200, description = "Absolute list URLs, best first", body = Vec<SuggestionOut>),
        (status = 400, description = "A malformed query parameter (`invalid_query`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
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

#[utoipa::path(
    get,
    path = "/v1/appstore/list/{list_id}",
    tag = "appstore",
    summary = "One curated list and its offers",
    params(("list_id" = String, Path, description = "The list's id", example = "recommended_s3")),
    responses(
        (status = 200, description = "The list", body = ListOut),
        (status = 404, description = "No such list (`list_not_found`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
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

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(suggest))
        .routes(routes!(list))
}
