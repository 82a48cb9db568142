//! Refunds: a customer's unused balance, or money nobody can use (a payment to a deleted purchase, or
//! to a checkout never finalized), goes back to an address the customer names (SPEC §9 "Customers get
//! what they paid for, or their money back").
//!
//! - **requested**: the amount leaves the balance at once (ledger kind `refund`, in the request's
//!   transaction, under the purchase's row lock), so it cannot be spent meanwhile. The customer may
//!   cancel (credited back, kind `refund_reversal`). Small refunds to an address that paid into the
//!   purchase before are approved at once (`REFUND_AUTO_APPROVE_USD`).
//! - **approved**: an operator approved it. With `VENDOR_PAYOUT_PRIVATE_KEY` the payout job pays it
//!   ([`payout`]); without, it waits for the vendor's own payment (EIP-681 link in the console), which
//!   the job recognises on chain (a Transfer of the token, of at least the amount, to the address,
//!   after the approval), or which an operator records with `mark-paid` (checked on chain).
//! - **paying → paid**: the payout transaction was signed (nonce allocated under the payout wallet's
//!   row lock, bytes stored before the broadcast), then mined. A refund of `"all"` closes the purchase
//!   once paid (`deleted`; the lifecycle job removes the resource; OfficeX shows `CANCELED`).
//! - **rejected / canceled** credit the balance back; **failed** (the payout reverted, or its nonce
//!   was used by another transaction: it can never be paid by that transaction) alerts the operator,
//!   who retries.
//!
//! Every step is announced through the outbox: `refund.requested|approved|paid|rejected|failed`
//! webhooks and customer emails.

pub mod payout;
mod stuck;

pub use stuck::{PayoutTx, payouts};

use std::str::FromStr;

use alloy::primitives::{Address, U256};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::billing::ledger::{self, EntryKind, NewEntry};
use crate::billing::{BillingError, PurchaseStatus};
use crate::chain::{ChainError, Chains, addr_key, format_units, from_numeric, to_numeric};
use crate::checkout::Checkout;
use crate::config::{RefundConfig, TokenConfig};
use crate::domain::ids::{CheckoutSessionId, PurchaseId, RefundId};
use crate::domain::money::UsdMicros;
use crate::domain::page::Page;
use crate::notify::{self, Channel};

/// Refund failures, mapped to HTTP at the edge.
#[derive(Debug, thiserror::Error)]
pub enum RefundError {
    #[error("refund not found")]
    NotFound,
    #[error("checkout not found")]
    CheckoutNotFound,
    /// More than the balance less running holds (or nothing left to refund).
    #[error("{0}")]
    Insufficient(String),
    /// The refund's state does not allow the action.
    #[error("{0}")]
    InvalidState(String),
    /// A bad input, with its stable code.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    #[error("the idempotency key {0:?} was already used with a different request")]
    IdempotencyConflict(String),
    /// `mark-paid` with a transaction that does not pay the refund.
    #[error("{0}")]
    NotPaid(String),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error(transparent)]
    Billing(#[from] BillingError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl RefundError {
    fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }
}

/// Where a refund stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Requested,
    Approved,
    Paying,
    Paid,
    Rejected,
    Canceled,
    Failed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Approved => "approved",
            Self::Paying => "paying",
            Self::Paid => "paid",
            Self::Rejected => "rejected",
            Self::Canceled => "canceled",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "requested" => Self::Requested,
            "approved" => Self::Approved,
            "paying" => Self::Paying,
            "paid" => Self::Paid,
            "rejected" => Self::Rejected,
            "canceled" => Self::Canceled,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// A refund on the wire (customer and console).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(as = Refund)]
pub struct RefundOut {
    pub refund_id: RefundId,
    /// The purchase refunded (`null` for a checkout never finalized).
    pub purchase_id: Option<PurchaseId>,
    /// The checkout whose unclaimed deposits are refunded (only for a checkout never finalized).
    pub checkout_session_id: Option<CheckoutSessionId>,
    /// `balance` (unused balance), `unclaimed` (payments to a deleted purchase) or `checkout`
    /// (payments to a checkout never finalized).
    pub source: String,
    pub status: RefundStatus,
    pub amount_usd: UsdMicros,
    /// The token amount paid, a decimal in token units (`"12.5"`), at the token's USD rate.
    pub token_amount: String,
    pub token_symbol: String,
    pub token_decimals: u8,
    pub chain_id: u64,
    pub token_address: String,
    pub to_address: String,
    /// `amount_usd` was `"all"`: the purchase is closed once the refund is paid.
    pub closes_purchase: bool,
    pub auto_approved: bool,
    /// Why it was rejected.
    pub reason: Option<String>,
    /// The payout transaction (or the vendor's own payment, once recognised).
    pub tx_hash: Option<String>,
    pub explorer_url: Option<String>,
    /// While approved and not being paid by this server: an EIP-681 link paying it from any wallet.
    pub payment_uri: Option<String>,
    pub last_error: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub approved_at: Option<DateTime<Utc>>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub paid_at: Option<DateTime<Utc>>,
    /// Console answers only (never the customer's): the payout transaction this server signed,
    /// with its replacements and stuck state; absent until one is signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payout: Option<PayoutTx>,
}

/// One refund row as stored.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub refund_id: Uuid,
    pub seq: i64,
    pub purchase_id: Option<Uuid>,
    pub checkout_session_id: Option<Uuid>,
    pub source: String,
    pub amount_micros: i64,
    pub balance_micros: i64,
    pub closes_purchase: bool,
    pub chain_id: i64,
    pub token_address: String,
    pub token_symbol: String,
    pub token_decimals: i32,
    pub token_amount: bigdecimal::BigDecimal,
    pub to_address: String,
    pub status: String,
    #[allow(dead_code)]
    pub idempotency_key: Option<String>,
    pub request_hash: Option<Vec<u8>>,
    pub auto_approved: bool,
    pub reason: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
    pub approved_block: Option<i64>,
    pub scanned_block: Option<i64>,
    pub from_address: Option<String>,
    pub nonce: Option<i64>,
    pub tx_hash: Option<String>,
    pub raw_tx: Option<Vec<u8>>,
    pub broadcast_at: Option<DateTime<Utc>>,
    pub paid_at: Option<DateTime<Utc>>,
    #[allow(dead_code)]
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Row {
    pub(crate) fn status(&self) -> RefundStatus {
        RefundStatus::parse(&self.status).unwrap_or(RefundStatus::Failed)
    }

    pub(crate) fn amount_units(&self) -> U256 {
        from_numeric(&self.token_amount).unwrap_or_default()
    }

    fn decimals(&self) -> u8 {
        u8::try_from(self.token_decimals).unwrap_or_default()
    }

    /// The wire form; `payout` says whether this server pays approved refunds itself.
    pub(crate) fn out(&self, chains: &Chains, payout: bool) -> RefundOut {
        let chain = u64::try_from(self.chain_id)
            .ok()
            .and_then(|id| chains.by_id(id));
        let status = self.status();
        let payment_uri = (!payout && matches!(status, RefundStatus::Approved)).then(|| {
            eip681(
                &self.token_address,
                self.chain_id,
                &self.to_address,
                self.amount_units(),
            )
        });
        RefundOut {
            refund_id: RefundId(self.refund_id),
            purchase_id: self.purchase_id.map(PurchaseId),
            checkout_session_id: self.checkout_session_id.map(CheckoutSessionId),
            source: self.source.clone(),
            status,
            amount_usd: UsdMicros(self.amount_micros),
            token_amount: format_units(self.amount_units(), self.decimals()),
            token_symbol: self.token_symbol.to_uppercase(),
            token_decimals: self.decimals(),
            chain_id: u64::try_from(self.chain_id).unwrap_or_default(),
            token_address: self.token_address.clone(),
            to_address: self.to_address.clone(),
            closes_purchase: self.closes_purchase,
            auto_approved: self.auto_approved,
            reason: self.reason.clone(),
            explorer_url: self.tx_hash.as_deref().and_then(|h| {
                chain
                    .filter(|c| !c.config.explorer_url.is_empty())
                    .map(|c| crate::chain::sweeper::explorer_tx(c, h))
            }),
            tx_hash: self.tx_hash.clone(),
            payment_uri,
            last_error: self.last_error.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            approved_at: self.approved_at,
            paid_at: self.paid_at,
            payout: None,
        }
    }
}

/// `ethereum:<token>@<chain id>/transfer?address=<to>&uint256=<units>` (EIP-681).
pub fn eip681(token: &str, chain_id: i64, to: &str, units: U256) -> String {
    format!("ethereum:{token}@{chain_id}/transfer?address={to}&uint256={units}")
}

macro_rules! select_refund {
    ($tail:literal, $($arg:expr),*) => {
        sqlx::query_as!(
            Row,
            "select refund_id, seq, purchase_id, checkout_session_id, source, amount_micros, balance_micros,
                    closes_purchase, chain_id, token_address, token_symbol, token_decimals, token_amount, to_address,
                    status, idempotency_key, request_hash, auto_approved, reason, approved_at, approved_block,
                    scanned_block, from_address, nonce, tx_hash, raw_tx, broadcast_at, paid_at, attempts,
                    next_attempt_at, last_error, created_at, updated_at
             from refund " + $tail,
            $($arg),*
        )
    };
}

/// The refund, locked (`FOR UPDATE`) for the rest of the caller's transaction.
pub(crate) async fn lock(conn: &mut PgConnection, id: Uuid) -> Result<Row, RefundError> {
    select_refund!("where refund_id = $1 for update", id)
        .fetch_optional(conn)
        .await?
        .ok_or(RefundError::NotFound)
}

pub(crate) async fn load(conn: &mut PgConnection, id: Uuid) -> Result<Row, RefundError> {
    select_refund!("where refund_id = $1", id)
        .fetch_optional(conn)
        .await?
        .ok_or(RefundError::NotFound)
}

/// What to refund: a USD amount or everything available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Amount {
    All,
    Usd(UsdMicros),
}

/// What is refunded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A purchase's unused balance (or, once deleted, its unclaimed deposits).
    Purchase(PurchaseId),
    /// The confirmed deposits of a checkout never finalized (`checkout_flow_id` must match).
    Checkout(CheckoutSessionId),
}

/// A refund request as the customer sends it.
#[derive(Debug, Clone)]
pub struct NewRefund {
    pub amount: Amount,
    /// Required for a purchase; a checkout refund defaults to the chain of its deposits.
    pub chain_id: Option<u64>,
    /// `usdc`, `usdt` (a configured symbol) or a token address; defaults as `chain_id`.
    pub token: Option<String>,
    pub to_address: String,
    /// For a checkout: the flow it was started with.
    pub flow_id: Option<String>,
}

/// A customer's idempotency key with the fingerprint of its request.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub request_hash: Vec<u8>,
}

/// What the services need.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub pool: &'a PgPool,
    pub chains: &'a Chains,
    pub config: &'a RefundConfig,
}

impl Ctx<'_> {
    /// Whether approved refunds are paid by this server.
    pub fn pays(&self) -> bool {
        self.config.payout_private_key.is_some()
    }
}

/// `floor(micros × 10^decimals / rate)` token units.
pub fn usd_to_units(amount: UsdMicros, decimals: u8, rate: UsdMicros) -> Option<U256> {
    let amount = U256::from(u64::try_from(amount.0).ok()?);
    let rate = U256::from(u64::try_from(rate.0).ok().filter(|r| *r > 0)?);
    let scale = U256::from(10u8).checked_pow(U256::from(decimals))?;
    Some(amount.checked_mul(scale)? / rate)
}

fn parse_address(text: &str) -> Result<Address, RefundError> {
    let address = Address::from_str(text.trim()).map_err(|_| {
        RefundError::invalid(
            "invalid_address",
            "to_address must be a 0x-hex EVM address (40 hex digits)",
        )
    })?;
    if address.is_zero() {
        return Err(RefundError::invalid(
            "invalid_address",
            "to_address must not be the zero address",
        ));
    }
    Ok(address)
}

/// The configured token a refund is paid in.
fn resolve_token<'c>(
    chains: &'c Chains,
    chain_id: u64,
    token: &str,
) -> Result<&'c TokenConfig, RefundError> {
    let chain = chains.by_id(chain_id).ok_or_else(|| {
        RefundError::invalid(
            "invalid_chain",
            format!("chain_id {chain_id} is not a chain this server pays on"),
        )
    })?;
    let token = token.trim();
    let found = match Address::from_str(token) {
        Ok(address) => chain.token_by_address(address),
        Err(_) => chain.token(&token.to_lowercase()),
    };
    found.ok_or_else(|| {
        RefundError::invalid(
            "invalid_token",
            format!(
                "token {token:?} is not configured on chain {chain_id} (one of: {})",
                chain
                    .config
                    .tokens
                    .iter()
                    .map(|t| t.symbol.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    })
}

/// What running Gemini gateway calls hold against the balance.
async fn running_holds(conn: &mut PgConnection, id: PurchaseId) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select coalesce(sum(amount_micros), 0)::bigint as "held!" from gateway_reservation
           where purchase_id = $1 and expires_at > now()"#,
        id.0
    )
    .fetch_one(conn)
    .await
}

/// Payments to a deleted purchase not yet refunded (confirmed, credited to nothing), in USD.
pub async fn unclaimed_of_purchase(
    conn: &mut PgConnection,
    id: PurchaseId,
) -> Result<UsdMicros, sqlx::Error> {
    let total = sqlx::query_scalar!(
        r#"select (coalesce((select sum(d.amount_micros) from deposit d join checkout c using (checkout_session_id)
                             where c.purchase_id = $1 and d.status = 'confirmed' and d.unclaimed_at is not null), 0)
                 - coalesce((select sum(amount_micros - balance_micros) from refund
                             where purchase_id = $1 and source = 'unclaimed'
                               and status not in ('rejected', 'canceled')), 0))::bigint as "total!""#,
        id.0
    )
    .fetch_one(conn)
    .await?;
    Ok(UsdMicros(total.max(0)))
}

/// The money at a checkout's address that no purchase uses and no refund covers yet: the confirmed
/// deposits of a checkout never finalized, or those that reached its purchase after it was deleted.
/// From the checkout the caller loaded (validate, verify-topup): it is not read again.
pub async fn unclaimed_of_checkout(
    pool: &PgPool,
    checkout: &Checkout,
) -> Result<UsdMicros, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let Some(purchase_id) = checkout.purchase_id else {
        let total = sqlx::query_scalar!(
            r#"select coalesce(sum(amount_micros), 0)::bigint as "total!" from deposit
               where checkout_session_id = $1 and status = 'confirmed' and refund_id is null"#,
            checkout.session.0
        )
        .fetch_one(&mut *conn)
        .await?;
        return Ok(UsdMicros(total));
    };
    let status = sqlx::query_scalar!(
        "select status from purchase where purchase_id = $1",
        purchase_id.0
    )
    .fetch_optional(&mut *conn)
    .await?;
    if status.as_deref() == Some("deleted") {
        unclaimed_of_purchase(&mut conn, purchase_id).await
    } else {
        Ok(UsdMicros::ZERO)
    }
}

/// Replays the refund already made with this idempotency key, or refuses a different request.
async fn replay(
    conn: &mut PgConnection,
    scope: Uuid,
    idem: Option<&IdempotencyKey>,
) -> Result<Option<Row>, RefundError> {
    let Some(idem) = idem else {
        return Ok(None);
    };
    let found = select_refund!(
        "where coalesce(purchase_id, checkout_session_id) = $1 and idempotency_key = $2",
        scope,
        idem.key
    )
    .fetch_optional(conn)
    .await?;
    match found {
        Some(row) if row.request_hash.as_deref() == Some(idem.request_hash.as_slice()) => {
            Ok(Some(row))
        }
        Some(_) => Err(RefundError::IdempotencyConflict(idem.key.clone())),
        None => Ok(None),
    }
}

/// Requests a refund; returns it and whether it replays an earlier request with the same key.
pub async fn request(
    cx: &Ctx<'_>,
    target: Target,
    new: &NewRefund,
    idem: Option<&IdempotencyKey>,
) -> Result<(RefundOut, bool), RefundError> {
    let to = parse_address(&new.to_address)?;
    match new.amount {
        Amount::Usd(a) if a.0 <= 0 => {
            return Err(RefundError::invalid(
                "invalid_amount",
                "amount_usd must be more than 0 (or \"all\")",
            ));
        }
        _ => {}
    }
    let mut tx = cx.pool.begin().await?;
    let row = match target {
        Target::Purchase(id) => request_purchase(cx, &mut tx, id, new, to, idem).await?,
        Target::Checkout(session) => request_checkout(cx, &mut tx, session, new, to, idem).await?,
    };
    let (row, replayed) = row;
    tx.commit().await?;
    Ok((row.out(cx.chains, cx.pays()), replayed))
}

struct Insert<'a> {
    id: Uuid,
    purchase: Option<Uuid>,
    session: Option<Uuid>,
    source: &'static str,
    amount: UsdMicros,
    balance_part: UsdMicros,
    closes: bool,
    chain_id: u64,
    token: &'a TokenConfig,
    units: U256,
    to: Address,
    idem: Option<&'a IdempotencyKey>,
}

async fn insert(conn: &mut PgConnection, i: &Insert<'_>) -> Result<(), RefundError> {
    sqlx::query!(
        "insert into refund (refund_id, purchase_id, checkout_session_id, source, amount_micros, balance_micros,
             closes_purchase, chain_id, token_address, token_symbol, token_decimals, token_amount, to_address,
             idempotency_key, request_hash)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        i.id,
        i.purchase,
        i.session,
        i.source,
        i.amount.0,
        i.balance_part.0,
        i.closes,
        i64::try_from(i.chain_id).unwrap_or(i64::MAX),
        addr_key(i.token.address),
        i.token.symbol,
        i32::from(i.token.decimals),
        to_numeric(i.units),
        addr_key(i.to),
        i.idem.map(|k| k.key.clone()),
        i.idem.map(|k| k.request_hash.clone()),
    )
    .execute(conn)
    .await?;
    Ok(())
}

fn units_of(amount: UsdMicros, token: &TokenConfig) -> Result<U256, RefundError> {
    let rate = UsdMicros::parse_decimal(&token.usd_rate).unwrap_or(UsdMicros(1_000_000));
    usd_to_units(amount, token.decimals, rate)
        .filter(|u| !u.is_zero())
        .ok_or_else(|| {
            RefundError::invalid(
                "invalid_amount",
                format!("{amount} USD is less than one unit of the token"),
            )
        })
}

async fn request_purchase(
    cx: &Ctx<'_>,
    tx: &mut PgConnection,
    id: PurchaseId,
    new: &NewRefund,
    to: Address,
    idem: Option<&IdempotencyKey>,
) -> Result<(Row, bool), RefundError> {
    let (Some(chain_id), Some(token)) = (new.chain_id, new.token.as_deref()) else {
        return Err(RefundError::invalid(
            "missing_field",
            "chain_id and token are required",
        ));
    };
    let token = resolve_token(cx.chains, chain_id, token)?;
    // The purchase's row lock serialises its refunds, debits and credits.
    let locked = ledger::lock(tx, id).await?;
    if let Some(row) = replay(tx, id.0, idem).await? {
        return Ok((row, true));
    }
    let deleted = locked.status == PurchaseStatus::Deleted;
    let balance = UsdMicros(locked.balance.0.max(0));
    let (available, unclaimed) = if deleted {
        let unclaimed = unclaimed_of_purchase(tx, id).await?;
        (UsdMicros(balance.0.saturating_add(unclaimed.0)), unclaimed)
    } else {
        let held = running_holds(tx, id).await?;
        (
            UsdMicros(locked.balance.0.saturating_sub(held)),
            UsdMicros::ZERO,
        )
    };
    let amount = match new.amount {
        Amount::All => available,
        Amount::Usd(a) => a,
    };
    if amount.0 <= 0 || amount > available {
        let holds = if deleted {
            format!(" ({unclaimed} USD of it unclaimed payments)")
        } else {
            " (the balance less what running gateway calls hold)".to_owned()
        };
        return Err(RefundError::Insufficient(format!(
            "{} USD can be refunded{holds}; {} USD was asked",
            UsdMicros(available.0.max(0)),
            match new.amount {
                Amount::All => "everything".to_owned(),
                Amount::Usd(a) => a.to_string(),
            }
        )));
    }
    let units = units_of(amount, token)?;
    let balance_part = if deleted {
        UsdMicros(amount.0.min(balance.0))
    } else {
        amount
    };
    let refund_id = Uuid::new_v4();
    insert(
        tx,
        &Insert {
            id: refund_id,
            purchase: Some(id.0),
            session: None,
            source: if deleted { "unclaimed" } else { "balance" },
            amount,
            balance_part,
            closes: !deleted && new.amount == Amount::All,
            chain_id,
            token,
            units,
            to,
            idem,
        },
    )
    .await?;
    if balance_part.0 > 0 {
        let entry = NewEntry::new(EntryKind::Refund, UsdMicros(-balance_part.0))
            .reference(format!("refund:{refund_id}"))
            .description(format!(
                "Refund {} of {amount} USD to {}",
                RefundId(refund_id),
                addr_key(to)
            ));
        let posted = ledger::post(tx, id, &entry).await?;
        sqlx::query!(
            "update refund set ledger_entry_id = $2 where refund_id = $1",
            refund_id,
            posted.entry_id
        )
        .execute(&mut *tx)
        .await?;
    }
    let row = load(tx, refund_id).await?;
    announce(tx, cx, &row, "refund.requested").await?;
    // Small refunds to an address that paid into this purchase before need no operator.
    if cx.config.auto_approve.0 > 0 && amount <= cx.config.auto_approve {
        let paid_before = sqlx::query_scalar!(
            r#"select exists (select 1 from deposit d join checkout c using (checkout_session_id)
                              where c.purchase_id = $1 and d.from_address = $2
                                and d.status in ('confirmed', 'credited')) as "yes!""#,
            id.0,
            addr_key(to)
        )
        .fetch_one(&mut *tx)
        .await?;
        if paid_before {
            let row = approve_locked(tx, cx, row, None, true).await?;
            return Ok((row, false));
        }
    }
    Ok((row, false))
}

async fn request_checkout(
    cx: &Ctx<'_>,
    tx: &mut PgConnection,
    session: CheckoutSessionId,
    new: &NewRefund,
    to: Address,
    idem: Option<&IdempotencyKey>,
) -> Result<(Row, bool), RefundError> {
    let checkout = sqlx::query!(
        "select checkout_flow_id, purchase_id from checkout where checkout_session_id = $1 for update",
        session.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(RefundError::CheckoutNotFound)?;
    if new
        .flow_id
        .as_deref()
        .is_some_and(|f| f.trim() != checkout.checkout_flow_id)
    {
        return Err(RefundError::CheckoutNotFound);
    }
    if let Some(row) = replay(tx, session.0, idem).await? {
        return Ok((row, true));
    }
    if checkout.purchase_id.is_some() {
        return Err(RefundError::InvalidState(
            "this checkout was finalized: refund through its purchase (POST /v1/purchase/{id}/refunds with its customer key)".into(),
        ));
    }
    let deposits = sqlx::query!(
        "select deposit_id, amount_micros, chain_id, token_address from deposit
         where checkout_session_id = $1 and status = 'confirmed' and refund_id is null
         order by amount_micros desc, deposit_id
         for update",
        session.0
    )
    .fetch_all(&mut *tx)
    .await?;
    let amount = UsdMicros(deposits.iter().map(|d| d.amount_micros).sum());
    let Some(largest) = deposits.first() else {
        return Err(RefundError::Insufficient(
            "no confirmed payment on this checkout is waiting for a refund".into(),
        ));
    };
    if amount.0 <= 0 {
        return Err(RefundError::Insufficient(
            "no confirmed payment on this checkout is waiting for a refund".into(),
        ));
    }
    let chain_id = new
        .chain_id
        .unwrap_or_else(|| u64::try_from(largest.chain_id).unwrap_or_default());
    let token = match new.token.as_deref() {
        Some(t) => resolve_token(cx.chains, chain_id, t)?,
        None => resolve_token(cx.chains, chain_id, &largest.token_address)?,
    };
    let units = units_of(amount, token)?;
    let refund_id = Uuid::new_v4();
    insert(
        tx,
        &Insert {
            id: refund_id,
            purchase: None,
            session: Some(session.0),
            source: "checkout",
            amount,
            balance_part: UsdMicros::ZERO,
            closes: false,
            chain_id,
            token,
            units,
            to,
            idem,
        },
    )
    .await?;
    let ids: Vec<i64> = deposits.iter().map(|d| d.deposit_id).collect();
    sqlx::query!(
        "update deposit set refund_id = $1 where deposit_id = any($2)",
        refund_id,
        &ids
    )
    .execute(&mut *tx)
    .await?;
    let row = load(tx, refund_id).await?;
    announce(tx, cx, &row, "refund.requested").await?;
    Ok((row, false))
}

/// A purchase's refunds, newest first (at most 100).
pub async fn list_for_purchase(
    cx: &Ctx<'_>,
    id: PurchaseId,
) -> Result<Vec<RefundOut>, RefundError> {
    let rows = select_refund!("where purchase_id = $1 order by seq desc limit 100", id.0)
        .fetch_all(cx.pool)
        .await?;
    Ok(rows.iter().map(|r| r.out(cx.chains, cx.pays())).collect())
}

/// Every refund, newest first, one page at a time (`status`: one status, or `open` for requested,
/// approved, paying and failed).
pub async fn list(
    cx: &Ctx<'_>,
    status: Option<&str>,
    before: Option<i64>,
    limit: i64,
) -> Result<Page<RefundOut>, RefundError> {
    let statuses: Option<Vec<String>> = match status {
        None => None,
        Some("open") => Some(
            ["requested", "approved", "paying", "failed"]
                .map(str::to_owned)
                .to_vec(),
        ),
        Some(s) if RefundStatus::parse(s).is_some() => Some(vec![s.to_owned()]),
        Some(other) => {
            return Err(RefundError::invalid(
                "invalid_status",
                format!(
                    "status {other:?} is not one of open, requested, approved, paying, paid, rejected, canceled, failed"
                ),
            ));
        }
    };
    let rows = select_refund!(
        "where ($1::bigint is null or seq < $1) and ($2::text[] is null or status = any($2))
         order by seq desc limit $3",
        before,
        statuses.as_deref(),
        limit + 1
    )
    .fetch_all(cx.pool)
    .await?;
    let page = Page::from_rows(rows, limit, |r| r.seq.to_string());
    Ok(page.map(|r| r.out(cx.chains, cx.pays())))
}

/// The refund's purchase locked first (the order every path takes), then the refund.
async fn lock_both(conn: &mut PgConnection, id: Uuid) -> Result<Row, RefundError> {
    let purchase = sqlx::query_scalar!("select purchase_id from refund where refund_id = $1", id)
        .fetch_optional(&mut *conn)
        .await?
        .ok_or(RefundError::NotFound)?;
    if let Some(p) = purchase {
        ledger::lock(conn, PurchaseId(p)).await?;
    }
    lock(conn, id).await
}

/// Credits back what the refund took from the balance and frees the deposits it covered.
async fn give_back(conn: &mut PgConnection, row: &Row, why: &str) -> Result<(), RefundError> {
    if let (Some(p), true) = (row.purchase_id, row.balance_micros > 0) {
        let entry = NewEntry::new(EntryKind::RefundReversal, UsdMicros(row.balance_micros))
            .reference(format!("refund_reversal:{}", row.refund_id))
            .description(format!(
                "Refund {} {why}: {} USD credited back",
                RefundId(row.refund_id),
                UsdMicros(row.balance_micros)
            ));
        ledger::post(conn, PurchaseId(p), &entry).await?;
    }
    sqlx::query!(
        "update deposit set refund_id = null where refund_id = $1",
        row.refund_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The customer cancels a refund still `requested`: the amount is credited back.
pub async fn cancel(
    cx: &Ctx<'_>,
    purchase: PurchaseId,
    id: RefundId,
) -> Result<RefundOut, RefundError> {
    let mut tx = cx.pool.begin().await?;
    ledger::lock(&mut tx, purchase).await?;
    let row = lock(&mut tx, id.0).await?;
    if row.purchase_id != Some(purchase.0) {
        return Err(RefundError::NotFound);
    }
    if row.status() == RefundStatus::Canceled {
        // A retried cancel.
        tx.rollback().await?;
        return Ok(row.out(cx.chains, cx.pays()));
    }
    if row.status() != RefundStatus::Requested {
        return Err(RefundError::InvalidState(format!(
            "the refund is {}; only a requested refund can be canceled",
            row.status
        )));
    }
    sqlx::query!(
        "update refund set status = 'canceled' where refund_id = $1",
        row.refund_id
    )
    .execute(&mut *tx)
    .await?;
    give_back(&mut tx, &row, "canceled").await?;
    let row = load(&mut tx, id.0).await?;
    tx.commit().await?;
    tracing::info!(refund_id = %id, "refund canceled by the customer");
    Ok(row.out(cx.chains, cx.pays()))
}

async fn approve_locked(
    conn: &mut PgConnection,
    cx: &Ctx<'_>,
    row: Row,
    head: Option<u64>,
    auto: bool,
) -> Result<Row, RefundError> {
    sqlx::query!(
        "update refund set status = 'approved', approved_at = now(), approved_block = $2, auto_approved = $3,
             next_attempt_at = now(), attempts = 0, last_error = null
         where refund_id = $1",
        row.refund_id,
        head.and_then(|h| i64::try_from(h).ok()),
        auto
    )
    .execute(&mut *conn)
    .await?;
    let row = load(conn, row.refund_id).await?;
    announce(conn, cx, &row, "refund.approved").await?;
    tracing::info!(refund_id = %RefundId(row.refund_id), auto, "refund approved");
    Ok(row)
}

/// An operator approves a requested refund (inside the caller's transaction). `head` is the chain's
/// head now, from which the vendor's own payment counts when this server does not pay.
pub async fn approve(
    conn: &mut PgConnection,
    cx: &Ctx<'_>,
    id: RefundId,
    head: Option<u64>,
) -> Result<RefundOut, RefundError> {
    let row = lock_both(conn, id.0).await?;
    if row.status() != RefundStatus::Requested {
        return Err(RefundError::InvalidState(format!(
            "the refund is {}; only a requested refund can be approved",
            row.status
        )));
    }
    let row = approve_locked(conn, cx, row, head, false).await?;
    Ok(row.out(cx.chains, cx.pays()))
}

/// An operator rejects a refund not being paid (requested, approved or failed): the amount is
/// credited back.
pub async fn reject(
    conn: &mut PgConnection,
    cx: &Ctx<'_>,
    id: RefundId,
    reason: &str,
) -> Result<RefundOut, RefundError> {
    let row = lock_both(conn, id.0).await?;
    if !matches!(
        row.status(),
        RefundStatus::Requested | RefundStatus::Approved | RefundStatus::Failed
    ) {
        return Err(RefundError::InvalidState(format!(
            "the refund is {}; only a requested, approved or failed refund can be rejected",
            row.status
        )));
    }
    sqlx::query!(
        "update refund set status = 'rejected', reason = $2, raw_tx = null where refund_id = $1",
        row.refund_id,
        reason
    )
    .execute(&mut *conn)
    .await?;
    give_back(conn, &row, "rejected").await?;
    let row = load(conn, id.0).await?;
    announce(conn, cx, &row, "refund.rejected").await?;
    Ok(row.out(cx.chains, cx.pays()))
}

/// An operator retries a failed refund: approved again, a new payout transaction will be signed.
/// Only failed refunds: their transaction can never be mined (it reverted, or its nonce was used).
pub async fn retry(
    conn: &mut PgConnection,
    cx: &Ctx<'_>,
    id: RefundId,
) -> Result<RefundOut, RefundError> {
    let row = lock_both(conn, id.0).await?;
    if row.status() != RefundStatus::Failed {
        return Err(RefundError::InvalidState(format!(
            "the refund is {}; only a failed refund can be retried",
            row.status
        )));
    }
    sqlx::query!(
        "update refund set status = 'approved', from_address = null, nonce = null, tx_hash = null, raw_tx = null,
             gas_limit = null, max_fee_per_gas = null, max_priority_fee_per_gas = null, broadcast_at = null,
             broadcast_block = null, attempts = 0, next_attempt_at = now(), last_error = null,
             replaced_tx_hashes = '{}', cancel_tx_hashes = '{}', cancelled = false, replacements = 0,
             stuck_at = null, operator_action = null
         where refund_id = $1",
        row.refund_id
    )
    .execute(&mut *conn)
    .await?;
    let row = load(conn, id.0).await?;
    Ok(row.out(cx.chains, cx.pays()))
}

/// What an operator asks of a payout not mined yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayoutAction {
    /// Re-sign it at the same nonce with both fees raised 25 %, past the chain's cap if need be.
    Bump,
    /// Replace it with a 0-value transfer of the payout wallet to itself at that nonce: once that
    /// is mined the refund fails (nothing paid) and may be retried or rejected.
    Cancel,
}

impl PayoutAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bump => "bump",
            Self::Cancel => "cancel",
        }
    }
}

/// An operator asks the payout job to bump or cancel a refund's payout (carried out on its next
/// pass, under its claim). Only a payout signed and not settled can be.
pub async fn request_payout_action(
    conn: &mut PgConnection,
    cx: &Ctx<'_>,
    id: RefundId,
    action: PayoutAction,
) -> Result<RefundOut, RefundError> {
    let row = lock(conn, id.0).await?;
    if row.status() != RefundStatus::Paying || row.raw_tx.is_none() {
        return Err(RefundError::InvalidState(format!(
            "the refund is {}; only a payout being paid (signed, not mined) can be bumped or cancelled",
            row.status
        )));
    }
    sqlx::query!(
        "update refund set operator_action = $2, next_attempt_at = now() where refund_id = $1",
        row.refund_id,
        action.as_str()
    )
    .execute(&mut *conn)
    .await?;
    let row = load(conn, id.0).await?;
    Ok(row.out(cx.chains, cx.pays()))
}

/// A Transfer that pays a refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub tx_hash: String,
    pub log_index: u64,
    pub block: u64,
}

/// Finds, in a mined transaction, a Transfer of the refund's token, of at least its amount, to its
/// address. Anything else is [`RefundError::NotPaid`].
pub async fn find_payment(
    cx: &Ctx<'_>,
    id: RefundId,
    tx_hash: &str,
) -> Result<Payment, RefundError> {
    let hash = alloy::primitives::B256::from_str(tx_hash.trim()).map_err(|_| {
        RefundError::invalid(
            "invalid_tx_hash",
            "tx_hash must be a 0x-hex transaction hash (64 hex digits)",
        )
    })?;
    let row = load(&mut *cx.pool.acquire().await?, id.0).await?;
    let chain = u64::try_from(row.chain_id)
        .ok()
        .and_then(|c| cx.chains.by_id(c))
        .ok_or_else(|| {
            RefundError::InvalidState(format!("chain {} is not configured", row.chain_id))
        })?;
    use alloy::providers::Provider;
    let receipt = chain
        .provider
        .get_transaction_receipt(hash)
        .await
        .map_err(|e| chain.rpc_error(e))?
        .ok_or_else(|| {
            RefundError::NotPaid(format!(
                "transaction {hash:#x} is not mined on chain {}",
                row.chain_id
            ))
        })?;
    if !receipt.status() {
        return Err(RefundError::NotPaid(format!(
            "transaction {hash:#x} reverted: it paid nothing"
        )));
    }
    let token: Address = row
        .token_address
        .parse()
        .map_err(|_| RefundError::InvalidState("bad token address".into()))?;
    let to: Address = row
        .to_address
        .parse()
        .map_err(|_| RefundError::InvalidState("bad address".into()))?;
    let need = row.amount_units();
    let block = receipt.block_number.unwrap_or_default();
    for log in receipt.inner.logs() {
        if let Some(index) = transfer_paying(log, token, to, need) {
            return Ok(Payment {
                tx_hash: format!("{hash:#x}"),
                log_index: index,
                block,
            });
        }
    }
    Err(RefundError::NotPaid(format!(
        "transaction {hash:#x} has no Transfer of {} {} to {} (the refund's token, amount and address)",
        format_units(need, row.decimals()),
        row.token_symbol.to_uppercase(),
        row.to_address
    )))
}

/// The log index when `log` is a Transfer of `token` to `to` of at least `need`.
pub(crate) fn transfer_paying(
    log: &alloy::rpc::types::Log,
    token: Address,
    to: Address,
    need: U256,
) -> Option<u64> {
    let topics = log.topics();
    if log.address() != token
        || topics.len() != 3
        || topics[0] != crate::chain::erc20::TRANSFER_TOPIC
        || topics[2] != to.into_word()
    {
        return None;
    }
    let data = &log.data().data;
    if data.len() != 32 {
        return None;
    }
    let value = U256::from_be_slice(data);
    (value >= need).then(|| log.log_index.unwrap_or_default())
}

/// An operator records the vendor's own payment (found by [`find_payment`]) inside the caller's
/// transaction.
pub async fn mark_paid(
    conn: &mut PgConnection,
    cx: &Ctx<'_>,
    id: RefundId,
    payment: &Payment,
) -> Result<RefundOut, RefundError> {
    let row = lock_both(conn, id.0).await?;
    if !matches!(row.status(), RefundStatus::Approved | RefundStatus::Failed) {
        return Err(RefundError::InvalidState(format!(
            "the refund is {}; only an approved or failed refund can be marked paid",
            row.status
        )));
    }
    record_paid(conn, cx, &row, payment, "mark_paid").await?;
    let row = load(conn, id.0).await?;
    Ok(row.out(cx.chains, cx.pays()))
}

/// Records a refund paid by `payment` (the refund locked by the caller, its purchase first), announces
/// it and, for `"all"`, closes the purchase.
pub(crate) async fn record_paid(
    conn: &mut PgConnection,
    cx: &Ctx<'_>,
    row: &Row,
    payment: &Payment,
    how: &str,
) -> Result<(), RefundError> {
    let updated = sqlx::query!(
        "update refund set status = 'paid', paid_by = $2, tx_hash = $3, paid_log_index = $4, paid_block = $5,
             paid_at = now(), raw_tx = null, last_error = null
         where refund_id = $1 and status in ('approved', 'paying', 'failed')",
        row.refund_id,
        how,
        payment.tx_hash,
        i64::try_from(payment.log_index).unwrap_or(i64::MAX),
        i64::try_from(payment.block).unwrap_or(i64::MAX)
    )
    .execute(&mut *conn)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => RefundError::InvalidState(
            format!(
                "the transfer {} (log {}) already pays another refund",
                payment.tx_hash, payment.log_index
            ),
        ),
        _ => RefundError::Db(e),
    })?;
    if updated.rows_affected() != 1 {
        return Ok(());
    }
    let paid = load(conn, row.refund_id).await?;
    announce(conn, cx, &paid, "refund.paid").await?;
    if let (true, Some(p)) = (row.closes_purchase, row.purchase_id) {
        match crate::billing::purchases::delete(conn, PurchaseId(p)).await {
            Ok(_) | Err(BillingError::InvalidState(_)) => {}
            Err(e) => return Err(e.into()),
        }
        tracing::info!(purchase_id = %PurchaseId(p), "full refund paid: purchase closed");
    }
    tracing::info!(refund_id = %RefundId(row.refund_id), tx_hash = payment.tx_hash, how, "refund paid");
    Ok(())
}

/// Marks a refund failed (its transaction can never pay it) and alerts the operator.
pub(crate) async fn record_failed(
    conn: &mut PgConnection,
    cx: &Ctx<'_>,
    id: Uuid,
    error: &str,
) -> Result<(), RefundError> {
    let updated = sqlx::query!(
        "update refund set status = 'failed', last_error = $2 where refund_id = $1 and status in ('approved', 'paying')",
        id,
        error
    )
    .execute(&mut *conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Ok(());
    }
    let row = load(conn, id).await?;
    announce(conn, cx, &row, "refund.failed").await?;
    let alert = notify::events::Alert {
        subject: format!("Refund {} failed", RefundId(id)),
        text: format!(
            "The payout of refund {} ({} USD to {} on chain {}) failed: {error}\nNothing was paid by it. Fix the cause (fund the payout wallet, check the token) and retry it from the console (POST /v1/admin/refunds/{}/retry), or reject it to credit the customer back.\n",
            RefundId(id),
            UsdMicros(row.amount_micros),
            row.to_address,
            row.chain_id,
            RefundId(id)
        ),
    };
    notify::events::alert(
        conn,
        "refund.failed",
        row.purchase_id.map(PurchaseId),
        &alert,
        Some(&format!(
            "alert:refund.failed:{id}:{}",
            row.tx_hash.as_deref().unwrap_or_default()
        )),
    )
    .await?;
    tracing::error!(refund_id = %RefundId(id), error, "refund failed");
    Ok(())
}

/// Webhook and customer email of a refund event, once per (refund, event, transaction).
async fn announce(
    conn: &mut PgConnection,
    cx: &Ctx<'_>,
    row: &Row,
    event: &str,
) -> Result<(), RefundError> {
    let out = row.out(cx.chains, cx.pays());
    let purchase = row.purchase_id.map(PurchaseId);
    let key = format!(
        "{event}:{}:{}",
        row.refund_id,
        row.tx_hash.as_deref().unwrap_or_default()
    );
    let data = serde_json::to_value(&out).unwrap_or_else(|_| json!({}));
    notify::enqueue(
        &mut *conn,
        Channel::Webhook,
        event,
        purchase,
        &data,
        Some(&format!("webhook:{key}")),
    )
    .await?;
    let email = sqlx::query_scalar!(
        "select coalesce((select customer_email from purchase where purchase_id = $1),
                         (select customer_email from checkout where checkout_session_id = $2))",
        row.purchase_id,
        row.checkout_session_id
    )
    .fetch_one(&mut *conn)
    .await?
    .filter(|e| !e.is_empty());
    if let Some(to) = email {
        let what = match event {
            "refund.requested" => "was requested; the vendor reviews it".to_owned(),
            "refund.approved" => "was approved and will be paid shortly".to_owned(),
            "refund.paid" => format!(
                "was paid (transaction {})",
                out.explorer_url
                    .clone()
                    .or(out.tx_hash.clone())
                    .unwrap_or_default()
            ),
            "refund.rejected" => format!(
                "was rejected ({}); the amount is back on your balance",
                row.reason.as_deref().unwrap_or("no reason given")
            ),
            _ => "could not be paid yet; the vendor has been told and will retry".to_owned(),
        };
        let email = notify::events::Email {
            to,
            subject: format!("Refund of {} USD: {}", out.amount_usd, out.status.as_str()),
            text: format!(
                "Your refund {} of {} USD ({} {} to {} on chain {}) {what}.\n",
                out.refund_id,
                out.amount_usd,
                out.token_amount,
                out.token_symbol,
                out.to_address,
                out.chain_id
            ),
        };
        notify::events::email(conn, event, purchase, &email, Some(&format!("email:{key}"))).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usd_converts_to_token_units_rounding_down() {
        let one = UsdMicros(1_000_000);
        assert_eq!(
            usd_to_units(UsdMicros(5_250_000), 6, one),
            Some(U256::from(5_250_000u64))
        );
        assert_eq!(
            usd_to_units(UsdMicros(1), 18, one),
            Some(U256::from(1_000_000_000_000u64))
        );
        // At 1.01 USD per token, 1 USD buys 0.990099 tokens.
        assert_eq!(
            usd_to_units(UsdMicros(1_000_000), 6, UsdMicros(1_010_000)),
            Some(U256::from(990_099u64))
        );
        assert_eq!(usd_to_units(UsdMicros(-1), 6, one), None);
        assert_eq!(usd_to_units(UsdMicros(1), 6, UsdMicros(0)), None);
    }

    #[test]
    fn eip681_links_name_the_token_chain_address_and_units() {
        assert_eq!(
            eip681("0xaa", 8453, "0xbb", U256::from(5u64)),
            "ethereum:0xaa@8453/transfer?address=0xbb&uint256=5"
        );
    }
}
