//! A purchase's ledger as its customer (and the vendor's console) reads it: newest first, one page
//! at a time, credits with the deposit transaction that paid them and a block-explorer link.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::BillingError;
use crate::config::ChainConfig;
use crate::domain::ids::PurchaseId;
use crate::domain::money::UsdMicros;
use crate::domain::page::Page;

/// One ledger entry on the wire.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct LedgerItem {
    pub id: i64,
    /// `deposit`, `usage`, `cost`, `sweep_fee` or `adjustment`.
    pub kind: String,
    /// Signed: credits positive, debits negative.
    pub amount_usd: UsdMicros,
    pub balance_after_usd: UsdMicros,
    pub description: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// When the usage happened (the CUR usage day, the meter timestamp); `created_at` otherwise.
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: DateTime<Utc>,
    /// A deposit's transaction hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_hash: Option<String>,
    /// A deposit's chain id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_id: Option<i64>,
    /// `<explorer>/tx/<hash>` when the chain has an explorer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explorer_url: Option<String>,
}

/// The explorer link of a transaction on one of the configured chains (none without an explorer).
pub fn tx_link(chains: &[ChainConfig], chain_id: i64, tx_hash: &str) -> Option<String> {
    chains
        .iter()
        .find(|c| i64::try_from(c.chain_id).ok() == Some(chain_id))
        .filter(|c| !c.explorer_url.is_empty())
        .map(|c| format!("{}/tx/{tx_hash}", c.explorer_url))
}

/// One page of a purchase's ledger, newest first: entries older than `before` (the previous page's
/// `next_cursor`, see [`crate::domain::page::id_cursor`]), at most `limit`.
pub async fn ledger_page(
    pool: &PgPool,
    id: PurchaseId,
    before: Option<i64>,
    limit: i64,
    chains: &[ChainConfig],
) -> Result<Page<LedgerItem>, BillingError> {
    let rows = sqlx::query!(
        r#"select l.entry_id, l.kind, l.amount_micros, l.balance_after_micros, l.description, l.created_at,
                  l.occurred_at, d.tx_hash as "tx_hash?", d.chain_id as "chain_id?"
           from ledger_entry l
           left join deposit d on l.kind = 'deposit' and d.reference = l.reference
           where l.purchase_id = $1 and ($2::bigint is null or l.entry_id < $2)
           order by l.entry_id desc
           limit $3"#,
        id.0,
        before,
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    let items = rows
        .into_iter()
        .map(|r| {
            let explorer_url = match (&r.tx_hash, r.chain_id) {
                (Some(hash), Some(chain)) => tx_link(chains, chain, hash),
                _ => None,
            };
            LedgerItem {
                id: r.entry_id,
                kind: r.kind,
                amount_usd: UsdMicros(r.amount_micros),
                balance_after_usd: UsdMicros(r.balance_after_micros),
                description: r.description,
                created_at: r.created_at,
                occurred_at: r.occurred_at,
                tx_hash: r.tx_hash,
                chain_id: r.chain_id,
                explorer_url,
            }
        })
        .collect();
    Ok(Page::from_rows(items, limit, |i| i.id.to_string()))
}
