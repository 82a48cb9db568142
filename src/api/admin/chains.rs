//! Admin routes on chains: rescan a block range for missed deposits, reconcile deposit addresses.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::{AdminAuth, Mutation, numeric_id};
use crate::admin::chains::{self, API_MAX_RESCAN_BLOCKS, RescanOut};
use crate::api::error::{ApiError, ErrorBody};
use crate::api::extract::{AppJson, AppPath};
use crate::chain::reconcile::ReconcileReport;
use crate::state::AppState;

/// `POST /v1/admin/chains/{chain_id}/rescan` body.
#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[schema(as = RescanRequest)]
#[serde(deny_unknown_fields)]
pub struct RescanIn {
    /// The first block to read.
    pub from_block: u64,
    /// The last block to read (default: the chain's head; a block above the head reads to the head).
    pub to_block: Option<u64>,
    /// The same as the Idempotency-Key header (they must agree when both are sent).
    #[schema(pattern = "^[!-~]{1,255}$")]
    pub idempotency_key: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/admin/chains/{chain_id}/rescan",
    tag = "admin",
    operation_id = "admin_rescan_chain",
    summary = "Re-read a block range's Transfer logs for every watched address and record and credit what the watcher missed (as `vendor-server deposits rescan`)",
    description = "Idempotent: a deposit already recorded is matched by its position and never recorded or credited twice, so a range may be rescanned any number of times. At most 200,000 blocks per request (`range_too_large`): split the range, or use the command line on the server (no limit).",
    params(
        ("chain_id" = u64, Path, description = "The chain's id (e.g. 8453)"),
        ("Idempotency-Key" = String, Header, description = "Required (or the body's `idempotency_key`): replays the first answer for the same request; 1 to 255 visible ASCII characters", pattern = "^[!-~]{1,255}$"),
    ),
    request_body = RescanIn,
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "Rescanned: what was read, found, recorded and credited", body = RescanOut, headers(("Idempotent-Replayed" = String, description = "`true` when this replays the first answer for the idempotency key"))),
        (status = 400, description = "Bad body, range or idempotency key (`malformed_json`, `invalid_body`, `invalid_text`, `invalid_path`, `invalid_range`, `range_too_large`, `idempotency_key_required`, `invalid_idempotency_key`, `idempotency_key_mismatch`)", body = ErrorBody),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "No configured chain with this id (`chain_not_found`), or the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 409, description = "The idempotency key was used with another request (`idempotency_key_reused`)", body = ErrorBody),
        (status = 503, description = "The chain's RPC node cannot be reached (`chain_unavailable`; blocks read before the failure stay recorded: rescan again) or the database is unreachable (`service_unavailable`); retry", body = ErrorBody),
    )
)]
pub(super) async fn rescan(
    State(state): State<AppState>,
    AppPath(chain_id): AppPath<String>,
    request: Mutation,
) -> Result<Response, ApiError> {
    let chain_id: u64 = numeric_id(&chain_id, "chain")?;
    let route = format!("POST /v1/admin/chains/{chain_id}/rescan");
    request
        .run(&route, StatusCode::OK, async |input: RescanIn, actor| {
            chains::rescan(
                &state.pool,
                &state.chains,
                chain_id,
                input.from_block,
                input.to_block,
                Some(API_MAX_RESCAN_BLOCKS),
                &actor,
                |_, _| {},
            )
            .await
        })
        .await
}

#[utoipa::path(
    get,
    path = "/v1/admin/reconcile",
    tag = "admin",
    operation_id = "admin_reconcile",
    summary = "Compare every deposit address's on-chain token balance with its recorded deposits less sweeps (as `vendor-server reconcile` and the daily job)",
    description = "Each difference raises one `reconcile.mismatch` alert (not repeated while it stays the same). A chain whose RPC fails carries an `error` instead of failing the call.",
    security(("admin_token" = []), ("admin_token_query" = [])),
    responses(
        (status = 200, description = "The comparison, per chain, and every difference", body = ReconcileReport),
        (status = 401, description = "No token, or not a live operator token nor ADMIN_TOKEN (`unauthorized`)", body = ErrorBody),
        (status = 404, description = "Neither ADMIN_TOKEN nor any operator is configured: the admin API does not exist (`not_found`)", body = ErrorBody),
        (status = 503, description = "The database is unreachable; retry (`service_unavailable`)", body = ErrorBody),
    )
)]
pub(super) async fn reconcile(
    State(state): State<AppState>,
    _auth: AdminAuth,
) -> Result<AppJson<ReconcileReport>, ApiError> {
    Ok(AppJson(
        chains::reconcile(&state.pool, &state.chains).await?,
    ))
}
