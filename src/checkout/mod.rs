//! Checkouts: a session with its own derived deposit address (initiate), confirmed balance reads
//! (validate), the purchase it becomes (finalize), later credits (topup) and provisioning.

pub mod credit;
pub mod deposits;
pub mod finalize;
pub mod provision;
pub mod receipt;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use crate::billing::BillingError;
use crate::catalog::{self, CheckoutFlow, Offer};
use crate::chain::watcher::{self, Scope};
use crate::chain::{ChainError, Chains, addr_key};
use crate::config::Config;
use crate::domain::ids::{CheckoutSessionId, CheckoutWalletId, PurchaseId};
use crate::domain::money::UsdMicros;
use crate::providers::Providers;

/// What checkouts work with: the database, the configuration, the chains and the providers that
/// deliver what was bought. Cheap to clone (every field is a shared handle).
#[derive(Clone)]
pub struct Checkouts {
    pub pool: PgPool,
    pub config: Arc<Config>,
    pub chains: Arc<Chains>,
    pub providers: Providers,
    /// The active offers, in memory.
    pub catalog: catalog::Snapshot,
}

/// Checkout failures, mapped to HTTP at the edge.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("Checkout flow not found")]
    FlowNotFound,
    /// The offer's provider is not configured on this server: it is not sold (409).
    #[error("this offer is not available on this server right now")]
    OfferUnavailable,
    /// A request that contradicts stored state (409 with a stable code).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("payments are not configured on this server: {0}")]
    NotConfigured(String),
    #[error("Unauthorized: invalid purchase or key")]
    Unauthorized,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Chain(ChainError),
    #[error(transparent)]
    Billing(#[from] BillingError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("{0}")]
    Internal(String),
}

impl From<ChainError> for CheckoutError {
    fn from(e: ChainError) -> Self {
        match e {
            ChainError::NotConfigured(m) => Self::NotConfigured(m),
            ChainError::Db(e) => Self::Db(e),
            ChainError::Billing(e) => Self::Billing(e),
            other => Self::Chain(other),
        }
    }
}

/// A stored checkout.
#[derive(Debug, Clone)]
pub struct Checkout {
    pub session: CheckoutSessionId,
    pub wallet_id: CheckoutWalletId,
    pub flow_id: String,
    pub offer_id: String,
    pub chain_name: String,
    pub token_symbol: String,
    pub deposit_index: i64,
    pub deposit_address: String,
    pub tracer: Option<String>,
    pub customer_email: Option<String>,
    pub customer_user_id: Option<String>,
    pub customer_org_id: Option<String>,
    pub customer_org_host: Option<String>,
    pub purchase_id: Option<PurchaseId>,
    pub officex_purchase_id: Option<String>,
    pub receipt_public: Option<serde_json::Value>,
    pub receipt_sealed: Option<Vec<u8>>,
    pub expires_at: DateTime<Utc>,
    pub watch_until: DateTime<Utc>,
    /// The offer as it was at initiate (`None` for checkouts older than this column).
    pub offer_terms: Option<serde_json::Value>,
    /// Each chain's head at initiate, `{"<chain_id>": block}`: the checkout's own scans start there.
    pub start_blocks: Option<serde_json::Value>,
    pub created_at: DateTime<Utc>,
}

impl Checkout {
    /// The block this checkout's own scans of a chain start at (its head at initiate).
    pub fn start_block(&self, chain_id: u64) -> Option<u64> {
        self.start_blocks
            .as_ref()?
            .get(chain_id.to_string())?
            .as_u64()
    }
}

/// A stored checkout with the offer terms it was started on, read once and passed down: finalize's
/// steps, provisioning, validate, topup and the unclaimed-money answers all work from this value.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub checkout: Checkout,
    pub offer: Offer,
}

impl Loaded {
    /// One checkout by session, with its terms.
    pub async fn by_session(
        pool: &PgPool,
        session: CheckoutSessionId,
    ) -> Result<Option<Self>, CheckoutError> {
        match find(pool, session).await? {
            Some(checkout) => Ok(Some(Self::with_terms(pool, checkout).await?)),
            None => Ok(None),
        }
    }

    /// The checkout a purchase was finalized from, with its terms.
    pub async fn by_purchase(
        pool: &PgPool,
        purchase_id: PurchaseId,
    ) -> Result<Option<Self>, CheckoutError> {
        match find_by_purchase(pool, purchase_id).await? {
            Some(checkout) => Ok(Some(Self::with_terms(pool, checkout).await?)),
            None => Ok(None),
        }
    }

    async fn with_terms(pool: &PgPool, checkout: Checkout) -> Result<Self, CheckoutError> {
        let offer = offer_of(pool, &checkout).await?;
        Ok(Self { checkout, offer })
    }
}

macro_rules! checkout_select {
    ($where:literal, $($arg:expr),*) => {
        sqlx::query!(
            r#"select checkout_session_id, checkout_wallet_id, checkout_flow_id, offer_id, chain_name,
                      token_symbol, deposit_index, deposit_address, tracer, customer_email, customer_user_id,
                      customer_org_id, customer_org_host, purchase_id, officex_purchase_id, receipt_public,
                      case when receipt_sealed_until > now() then receipt_sealed end as receipt_sealed,
                      expires_at, watch_until, offer_terms, start_blocks, created_at
               from checkout "# + $where,
            $($arg),*
        )
    };
}

macro_rules! checkout_from_row {
    ($r:expr) => {{
        let r = $r;
        $crate::checkout::Checkout {
            session: $crate::domain::ids::CheckoutSessionId(r.checkout_session_id),
            wallet_id: $crate::domain::ids::CheckoutWalletId(r.checkout_wallet_id),
            flow_id: r.checkout_flow_id,
            offer_id: r.offer_id,
            chain_name: r.chain_name,
            token_symbol: r.token_symbol,
            deposit_index: r.deposit_index,
            deposit_address: r.deposit_address,
            tracer: r.tracer,
            customer_email: r.customer_email,
            customer_user_id: r.customer_user_id,
            customer_org_id: r.customer_org_id,
            customer_org_host: r.customer_org_host,
            purchase_id: r.purchase_id.map($crate::domain::ids::PurchaseId),
            officex_purchase_id: r.officex_purchase_id,
            receipt_public: r.receipt_public,
            receipt_sealed: r.receipt_sealed,
            expires_at: r.expires_at,
            watch_until: r.watch_until,
            offer_terms: r.offer_terms,
            start_blocks: r.start_blocks,
            created_at: r.created_at,
        }
    }};
}

/// One checkout by session.
pub async fn find(
    conn: impl sqlx::PgExecutor<'_>,
    session: CheckoutSessionId,
) -> Result<Option<Checkout>, sqlx::Error> {
    let row = checkout_select!("where checkout_session_id = $1", session.0)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| checkout_from_row!(r)))
}

/// The checkout a purchase was finalized from.
pub async fn find_by_purchase(
    conn: impl sqlx::PgExecutor<'_>,
    purchase_id: PurchaseId,
) -> Result<Option<Checkout>, sqlx::Error> {
    let row = checkout_select!("where purchase_id = $1", purchase_id.0)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|r| checkout_from_row!(r)))
}

/// The offer a checkout was started on, on the terms it was started with: the copy stored at
/// initiate, else (older checkouts) the offer row, active or retired.
pub async fn offer_of(pool: &sqlx::PgPool, checkout: &Checkout) -> Result<Offer, CheckoutError> {
    if let Some(offer) = checkout
        .offer_terms
        .as_ref()
        .and_then(|t| serde_json::from_value::<Offer>(t.clone()).ok())
    {
        return Ok(offer);
    }
    catalog::find_offer_any(pool, &checkout.offer_id)
        .await?
        .ok_or_else(|| {
            CheckoutError::Internal(format!("offer {} of a checkout is gone", checkout.offer_id))
        })
}

/// What initiate is told.
#[derive(Debug, Clone, Default)]
pub struct InitiateInput {
    pub flow_id: String,
    pub tracer: Option<String>,
    pub email: Option<String>,
    pub user_id: Option<String>,
    pub org_id: Option<String>,
    pub org_host: Option<String>,
}

/// Creates a checkout session with the next derived deposit address.
// A refused checkout call (unknown flow or session, bad input) is the client's business: its error is
// logged at info (here and on validate, finalize, topup); failures of ours are logged at the edge as 5xx
// and by the jobs that meet them.
#[tracing::instrument(skip_all, fields(flow_id = %input.flow_id), err(level = "info"))]
pub async fn initiate(
    cx: &Checkouts,
    input: &InitiateInput,
) -> Result<(Checkout, Offer, CheckoutFlow), CheckoutError> {
    let (offer, flow) = cx
        .catalog
        .resolve_flow(&cx.pool, &cx.config.chains, &input.flow_id)
        .await?
        .ok_or(CheckoutError::FlowNotFound)?;
    if !cx.providers.has(&offer.provider) {
        return Err(CheckoutError::OfferUnavailable);
    }
    let terms = serde_json::to_value(&offer).map_err(|e| CheckoutError::Internal(e.to_string()))?;
    let keys = cx.chains.keys()?;
    let session = CheckoutSessionId::new();
    let wallet_id = CheckoutWalletId::new();
    let expiry = chrono::Duration::from_std(cx.config.checkout.expiry)
        .map_err(|e| CheckoutError::Internal(e.to_string()))?;
    let watch = chrono::Duration::from_std(cx.config.checkout.late_payment_watch)
        .map_err(|e| CheckoutError::Internal(e.to_string()))?;
    let start_blocks = start_blocks(cx).await?;
    let now = Utc::now();
    let mut tx = cx.pool.begin().await?;
    let index: i64 = sqlx::query_scalar!(r#"select nextval('deposit_index_seq') as "index!""#)
        .fetch_one(&mut *tx)
        .await?;
    let child = u32::try_from(index)
        .map_err(|_| CheckoutError::Internal("deposit index space exhausted".into()))?;
    let address = addr_key(keys.address(child)?);
    let row = NewCheckout {
        session,
        wallet_id,
        flow_id: flow.flow_id.clone(),
        offer_id: offer.offer_id.clone(),
        chain_name: flow.chain.clone(),
        token_symbol: flow.token.clone(),
        deposit_index: index,
        deposit_address: address,
        tracer: input.tracer.clone(),
        email: input.email.clone(),
        user_id: input.user_id.clone(),
        org_id: input.org_id.clone(),
        org_host: input.org_host.clone(),
        expires_at: now + expiry,
        watch_until: now + expiry.max(watch),
        offer_terms: terms,
        start_blocks: Some(start_blocks),
    };
    insert_checkouts(&mut tx, std::slice::from_ref(&row)).await?;
    tx.commit().await?;
    let checkout = find(&cx.pool, session)
        .await?
        .ok_or_else(|| CheckoutError::Internal("checkout vanished".into()))?;
    tracing::info!(session = %session, index, "checkout initiated");
    Ok((checkout, offer, flow))
}

/// How long initiate waits for a chain's head.
const HEAD_AT_INITIATE: std::time::Duration = std::time::Duration::from_millis(1500);

/// Every chain's head now, `{"<chain_id>": block}`, read at once on all chains. A chain whose node does
/// not answer within [`HEAD_AT_INITIATE`] gives its watcher's cursor instead (a block at or below
/// the head, so the checkout's scans cover at least as much); without either it is left out, and the
/// checkout's scans of that chain start where the watcher's do.
async fn start_blocks(cx: &Checkouts) -> Result<serde_json::Value, CheckoutError> {
    let heads = futures::future::join_all(
        cx.chains
            .iter()
            .map(|c| tokio::time::timeout(HEAD_AT_INITIATE, c.head())),
    )
    .await;
    let mut out = serde_json::Map::new();
    for (chain, head) in cx.chains.iter().zip(heads) {
        let block = match head {
            Ok(Ok(head)) => Some(head),
            _ => {
                let chain_id = i64::try_from(chain.id()).unwrap_or(i64::MAX);
                sqlx::query_scalar!(
                    "select scanned_to from chain_cursor where chain_id = $1",
                    chain_id
                )
                .fetch_optional(&cx.pool)
                .await?
                .and_then(|b| u64::try_from(b).ok())
            }
        };
        if let Some(block) = block {
            out.insert(chain.id().to_string(), block.into());
        }
    }
    Ok(serde_json::Value::Object(out))
}

/// A checkout as initiate stores it.
#[derive(Debug, Clone)]
pub struct NewCheckout {
    pub session: CheckoutSessionId,
    pub wallet_id: CheckoutWalletId,
    pub flow_id: String,
    pub offer_id: String,
    pub chain_name: String,
    pub token_symbol: String,
    /// From `deposit_index_seq`; the address is the key derived at this index.
    pub deposit_index: i64,
    /// Lowercase 0x-hex.
    pub deposit_address: String,
    pub tracer: Option<String>,
    pub email: Option<String>,
    pub user_id: Option<String>,
    pub org_id: Option<String>,
    pub org_host: Option<String>,
    pub expires_at: DateTime<Utc>,
    pub watch_until: DateTime<Utc>,
    /// The offer as it is now (the checkout finishes on these terms).
    pub offer_terms: serde_json::Value,
    /// Each chain's head now, `{"<chain_id>": block}` (see [`Checkout::start_blocks`]).
    pub start_blocks: Option<serde_json::Value>,
}

/// Stores checkouts in one statement (initiate stores one). Nothing else is needed for their
/// addresses to be watched: the deposit watcher picks new checkouts up by their creation time.
pub async fn insert_checkouts(
    conn: &mut sqlx::PgConnection,
    rows: &[NewCheckout],
) -> Result<(), sqlx::Error> {
    macro_rules! column {
        ($field:ident) => {
            rows.iter().map(|r| r.$field.clone()).collect::<Vec<_>>()
        };
    }
    let sessions: Vec<uuid::Uuid> = rows.iter().map(|r| r.session.0).collect();
    let wallets: Vec<uuid::Uuid> = rows.iter().map(|r| r.wallet_id.0).collect();
    sqlx::query!(
        "insert into checkout (checkout_session_id, checkout_wallet_id, checkout_flow_id, offer_id, chain_name,
             token_symbol, deposit_index, deposit_address, tracer, customer_email, customer_user_id,
             customer_org_id, customer_org_host, expires_at, watch_until, offer_terms, start_blocks)
         select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
             $7::bigint[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[],
             $14::timestamptz[], $15::timestamptz[], $16::jsonb[], $17::jsonb[])",
        &sessions,
        &wallets,
        &column!(flow_id),
        &column!(offer_id),
        &column!(chain_name),
        &column!(token_symbol),
        &column!(deposit_index),
        &column!(deposit_address),
        &column!(tracer) as &[Option<String>],
        &column!(email) as &[Option<String>],
        &column!(user_id) as &[Option<String>],
        &column!(org_id) as &[Option<String>],
        &column!(org_host) as &[Option<String>],
        &column!(expires_at),
        &column!(watch_until),
        &column!(offer_terms),
        &column!(start_blocks) as &[Option<serde_json::Value>],
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Deposit totals of one checkout, by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DepositTotals {
    pub pending: UsdMicros,
    pub confirmed: UsdMicros,
    pub credited: UsdMicros,
    pub reorged: UsdMicros,
}

impl DepositTotals {
    /// Everything confirmed on the address, credited or not.
    pub fn counted(&self) -> UsdMicros {
        UsdMicros(self.confirmed.0 + self.credited.0)
    }
}

pub async fn totals(
    conn: impl sqlx::PgExecutor<'_>,
    session: CheckoutSessionId,
) -> Result<DepositTotals, sqlx::Error> {
    let rows = sqlx::query!(
        r#"select status, coalesce(sum(amount_micros), 0)::bigint as "total!"
           from deposit where checkout_session_id = $1 and refund_id is null group by status"#,
        session.0
    )
    .fetch_all(conn)
    .await?;
    let mut totals = DepositTotals::default();
    for r in rows {
        let amount = UsdMicros(r.total);
        match r.status.as_str() {
            "pending" => totals.pending = amount,
            "confirmed" => totals.confirmed = amount,
            "credited" => totals.credited = amount,
            _ => totals.reorged = amount,
        }
    }
    Ok(totals)
}

/// Scans every chain for one checkout's address, each from the checkout's start block on it;
/// returns the RPC failures (nothing else changed).
pub async fn scan_checkout(
    cx: &Checkouts,
    checkout: &Checkout,
) -> Result<Vec<ChainError>, CheckoutError> {
    let mut failures = Vec::new();
    let Ok(address) = checkout.deposit_address.parse() else {
        return Ok(failures);
    };
    for chain in cx.chains.iter() {
        let scope = Scope::Checkout {
            session: checkout.session.0,
            address,
            start_block: checkout.start_block(chain.id()),
        };
        match watcher::scan(&cx.pool, chain, scope).await {
            Ok(_) => {}
            Err(e @ ChainError::Rpc { .. }) => failures.push(e),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(failures)
}

/// The result of `validate`.
#[derive(Debug, Clone)]
pub struct Validation {
    pub success: bool,
    pub message: String,
    pub totals: DepositTotals,
    pub minimum: UsdMicros,
    pub expired: bool,
    /// The checkout validated (`None` for an unknown session).
    pub checkout: Option<Checkout>,
}

/// Reads the checkout's confirmed deposits (scanning its address first).
#[tracing::instrument(skip_all, fields(session = %session), err(level = "info"))]
pub async fn validate(
    cx: &Checkouts,
    flow_id: &str,
    session: CheckoutSessionId,
) -> Result<Validation, CheckoutError> {
    let Some(Loaded { checkout, offer }) = Loaded::by_session(&cx.pool, session).await? else {
        let (offer, _flow) = cx
            .catalog
            .resolve_flow(&cx.pool, &cx.config.chains, flow_id)
            .await?
            .ok_or(CheckoutError::FlowNotFound)?;
        return Ok(Validation {
            success: false,
            message: format!("Wallet not found for checkout_session_id={session}"),
            totals: DepositTotals::default(),
            minimum: offer.min_deposit,
            expired: false,
            checkout: None,
        });
    };
    // The terms the checkout was started with, like finalize: a checkout paid before its offer or
    // chain was retired still validates.
    finalize::check_flow(cx, flow_id, &checkout, &offer).await?;
    // A recent watcher pass already covered this address: answer from the database, no RPC.
    let fresh = watcher::fresh_for(
        &cx.pool,
        &cx.chains,
        checkout.created_at,
        cx.config.checkout.validate_fresh,
    )
    .await?;
    let failures = if fresh {
        Vec::new()
    } else {
        scan_checkout(cx, &checkout).await?
    };
    let totals = totals(&cx.pool, session).await?;
    let expired = checkout.purchase_id.is_none() && checkout.expires_at < Utc::now();
    if totals.counted() < offer.min_deposit
        && let Some(failure) = failures.into_iter().next()
    {
        return Err(failure.into());
    }
    let explorer = explorer_link(cx, &checkout);
    let pending_note = if totals.pending.0 > 0 {
        format!(
            " {} USD more is waiting for block confirmations.",
            totals.pending
        )
    } else {
        String::new()
    };
    let (success, message) = if checkout.purchase_id.is_some() {
        (
            true,
            format!(
                "This checkout is already finalized. {} USD was confirmed on its deposit address; new deposits are credited to the purchase automatically.{pending_note}",
                totals.counted()
            ),
        )
    } else if totals.counted() >= offer.min_deposit {
        (
            true,
            format!(
                "Payment verified successfully. You currently have {} USD confirmed on your deposit address (minimum {} USD); you can finalize now.{pending_note}",
                totals.counted(),
                offer.min_deposit
            ),
        )
    } else {
        (
            false,
            format!(
                "Insufficient funds. Found: {} USD confirmed, Required: {} USD.{pending_note} Verify this on chain explorer: {explorer}{}",
                totals.counted(),
                offer.min_deposit,
                if expired {
                    " This checkout has expired for display, but payments to its address are still detected and finalize stays possible."
                } else {
                    ""
                }
            ),
        )
    };
    Ok(Validation {
        success,
        message,
        totals,
        minimum: offer.min_deposit,
        expired,
        checkout: Some(checkout),
    })
}

/// `<explorer>/address/<deposit address>` on the checkout's chain (or the bare address).
pub fn explorer_link(cx: &Checkouts, checkout: &Checkout) -> String {
    match cx.chains.get(&checkout.chain_name) {
        Some(chain) if !chain.config.explorer_url.is_empty() => format!(
            "{}/address/{}",
            chain.config.explorer_url, checkout.deposit_address
        ),
        _ => checkout.deposit_address.clone(),
    }
}

/// What a topup did.
#[derive(Debug, Clone)]
pub struct TopupReport {
    pub credited: Vec<credit::Credited>,
    pub balance: UsdMicros,
    pub pending: UsdMicros,
    pub checkout: Checkout,
}

impl TopupReport {
    pub fn credited_total(&self) -> UsdMicros {
        UsdMicros(self.credited.iter().map(|c| c.amount.0).sum())
    }
}

/// Scans a finalized checkout's address and credits every new confirmed deposit exactly once.
#[tracing::instrument(skip_all, fields(session = %checkout.session), err(level = "info"))]
pub async fn topup(cx: &Checkouts, checkout: Checkout) -> Result<TopupReport, CheckoutError> {
    let purchase_id = checkout.purchase_id.ok_or(CheckoutError::Unauthorized)?;
    let failures = scan_checkout(cx, &checkout).await?;
    let credited = credit::credit_checkout(cx, checkout.session, purchase_id).await?;
    if credited.is_empty()
        && let Some(failure) = failures.into_iter().next()
    {
        return Err(failure.into());
    }
    watcher::update_pending_markers(&cx.pool).await?;
    let balance = sqlx::query_scalar!(
        "select balance_micros from purchase where purchase_id = $1",
        purchase_id.0
    )
    .fetch_one(&cx.pool)
    .await?;
    let totals = totals(&cx.pool, checkout.session).await?;
    Ok(TopupReport {
        credited,
        balance: UsdMicros(balance),
        pending: totals.pending,
        checkout,
    })
}

/// Parses a session id from the wire.
pub fn parse_session(text: &str) -> Result<CheckoutSessionId, CheckoutError> {
    text.trim().parse().map_err(|_| {
        CheckoutError::Invalid("checkout_session_id must look like CheckoutSessionID_<uuid>".into())
    })
}
