//! The refund payout job: pays approved refunds from `VENDOR_PAYOUT_PRIVATE_KEY` with the sweeps'
//! discipline, or, without a payout key, recognises the vendor's own payment on chain.
//!
//! With a payout key, each approved refund moves one step per pass:
//! - **sign** (`approved → paying`): in ONE database transaction the payout wallet's `gas_wallet` row
//!   is locked (`FOR UPDATE`; the same row the sweeper uses when the payout and gas keys are the same
//!   wallet), the refund row locked and re-checked, the nonce allocated, the `transfer` signed and its
//!   raw bytes, hash, nonce and fees stored. Nothing is sent before the commit.
//! - **broadcast**: the stored bytes are sent. After a crash the refund is reconciled by hash first
//!   (known to the node: broadcast, nothing sent) and by nonce (used by another transaction: the
//!   stored one can never be mined → `failed`); otherwise the same bytes are sent again, which can
//!   never pay twice.
//! - **settle**: the receipt at `head - confirmations`: success → `paid` (announced; `"all"` closes
//!   the purchase), reverted → `failed` (alert; the operator retries).
//!
//! A payout wallet short of the token or of gas leaves the refund `approved` (one alert per refund)
//! until it is funded. Every refund is claimed by one replica at a time (advisory lock per refund), and
//! every write that must not happen twice re-checks the refund's state under its row lock.
//!
//! Without a payout key, an approved refund is paid by the vendor by hand (the console's EIP-681
//! link); this job scans the token's Transfer logs to the refund's address from the block of the
//! approval and marks the refund paid by the first one of at least the amount (each transfer pays
//! one refund).

use std::str::FromStr;

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, B256, Bytes, TxKind, U256};
use alloy::providers::Provider;
use alloy::rpc::types::{BlockId, Filter, TransactionInput, TransactionRequest};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use uuid::Uuid;

use super::stuck::{self, Attempts};
use super::{Ctx, Payment, RefundError, RefundStatus, Row, lock, record_failed, record_paid};
use crate::chain::erc20::{self, IERC20, TRANSFER_TOPIC};
use crate::chain::replace;
use crate::chain::sweeper;
use crate::chain::wallet::{DEV_ADDRESSES, DEV_CHAIN_IDS};
use crate::chain::{ChainClient, ChainError, Chains, addr_key, to_numeric};
use crate::config::RefundConfig;
use crate::domain::Outcome;
use crate::domain::ids::RefundId;
use crate::notify;

/// Gas limit margin over the node's estimate, in percent.
const GAS_MARGIN_PCT: u64 = 20;
/// Attempts of an unsigned step before the refund fails with an alert; a signed one keeps its
/// transaction and is retried with one alert.
pub const MAX_ATTEMPTS: i32 = 8;
/// Blocks a vendor-payment scan reads per call.
const SCAN_BLOCKS: u64 = 5_000;

/// The payout wallet from `VENDOR_PAYOUT_PRIVATE_KEY`.
pub fn payout_signer(config: &RefundConfig) -> Result<Option<PrivateKeySigner>, ChainError> {
    let Some(key) = &config.payout_private_key else {
        return Ok(None);
    };
    PrivateKeySigner::from_str(key.expose_secret().trim())
        .map(Some)
        .map_err(|_| ChainError::Wallet("VENDOR_PAYOUT_PRIVATE_KEY is not a valid key".into()))
}

/// One pass over every chain: advances each due refund one step (with a payout key), or looks for
/// the vendor's own payments (without).
pub async fn run_once(
    pool: &PgPool,
    chains: &Chains,
    config: &RefundConfig,
) -> anyhow::Result<Outcome> {
    let signer = payout_signer(config)?;
    let cx = &Ctx {
        pool,
        chains,
        config,
    };
    let mut work = 0;
    let mut db_error = None;
    for chain in chains.iter() {
        let result = match &signer {
            Some(signer) => pay_chain(cx, chain, signer).await,
            None => scan_chain(cx, chain).await,
        };
        match result {
            Ok(n) => work += n,
            Err(RefundError::Db(e)) => {
                tracing::error!(chain = chain.name(), error = %e, "refund payout pass failed (database)");
                db_error.get_or_insert(e);
            }
            Err(e) => {
                tracing::warn!(chain = chain.name(), error = %e, "refund payout pass failed; retrying next pass");
            }
        }
    }
    if let Some(e) = db_error {
        return Err(e.into());
    }
    Ok(if work > 0 {
        Outcome::Processed(work)
    } else {
        Outcome::Idle
    })
}

/// A per-refund claim across replicas: a transaction-scoped advisory lock on its own connection.
struct Claim {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
}

impl Claim {
    async fn try_take(pool: &PgPool, id: Uuid) -> Result<Option<Self>, sqlx::Error> {
        let mut tx = pool.begin().await?;
        let key = format!("vendor_server.refund:{id}");
        let locked = sqlx::query_scalar!("select pg_try_advisory_xact_lock(hashtext($1))", key)
            .fetch_one(&mut *tx)
            .await?;
        Ok(locked.unwrap_or(false).then_some(Self { tx }))
    }

    async fn release(self) {
        if let Err(e) = self.tx.rollback().await {
            tracing::warn!(error = %e, "releasing a refund claim failed; its session ends it");
        }
    }
}

async fn due(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    statuses: &[&str],
) -> Result<Vec<Uuid>, sqlx::Error> {
    let statuses: Vec<String> = statuses.iter().map(|s| (*s).to_owned()).collect();
    sqlx::query_scalar!(
        "select refund_id from refund where chain_id = $1 and status = any($2) and next_attempt_at <= now()
         order by seq limit 100",
        i64::try_from(chain.id()).unwrap_or(i64::MAX),
        &statuses
    )
    .fetch_all(cx.pool)
    .await
}

async fn pay_chain(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    signer: &PrivateKeySigner,
) -> Result<usize, RefundError> {
    let ids = due(cx, chain, &["approved", "paying"]).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    if DEV_ADDRESSES.contains(&signer.address()) && !DEV_CHAIN_IDS.contains(&chain.id()) {
        return Err(ChainError::Wallet(format!(
            "VENDOR_PAYOUT_PRIVATE_KEY is a public development key; refusing to pay refunds on chain {}",
            chain.id()
        ))
        .into());
    }
    let head = chain.head().await?;
    let safe = chain.safe_block(head);
    let mut work = 0;
    for id in ids {
        let Some(claim) = Claim::try_take(cx.pool, id).await? else {
            continue;
        };
        let result = advance(cx, chain, signer, id, head, safe).await;
        claim.release().await;
        match result {
            Ok(true) => work += 1,
            Ok(false) => {}
            Err(RefundError::Db(e)) => return Err(RefundError::Db(e)),
            Err(e) => setback(cx, id, &e.to_string()).await?,
        }
    }
    Ok(work)
}

async fn advance(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    signer: &PrivateKeySigner,
    id: Uuid,
    head: u64,
    safe: u64,
) -> Result<bool, RefundError> {
    let row = super::load(&mut *cx.pool.acquire().await?, id).await?;
    if row.next_attempt_at > chrono::Utc::now() {
        // Another replica advanced or postponed it since the list was read.
        return Ok(false);
    }
    match (row.status(), row.broadcast_at.is_some()) {
        (RefundStatus::Approved, _) => sign(cx, chain, signer, &row).await,
        (RefundStatus::Paying, false) => broadcast(cx, chain, signer, &row, head).await,
        (RefundStatus::Paying, true) => settle(cx, chain, signer, &row, head, safe).await,
        _ => Ok(false),
    }
}

/// Records a fault: backs off (5 s, 15 s, 45 s … up to 30 minutes). An unsigned refund fails after
/// [`MAX_ATTEMPTS`]; a signed one keeps its transaction (its nonce must be used) and the operator is
/// alerted once.
async fn setback(cx: &Ctx<'_>, id: Uuid, error: &str) -> Result<(), RefundError> {
    let row = sqlx::query!(
        "update refund set attempts = attempts + 1, last_error = $2,
             next_attempt_at = now() + make_interval(secs => least(5 * power(3, attempts), 1800))
         where refund_id = $1 and status in ('approved', 'paying')
         returning attempts, status",
        id,
        error
    )
    .fetch_optional(cx.pool)
    .await?;
    let Some(row) = row else {
        return Ok(());
    };
    tracing::warn!(refund_id = %RefundId(id), error, attempts = row.attempts, "refund payout step failed; retrying later");
    let mut tx = cx.pool.begin().await?;
    if row.status == "approved" && row.attempts >= MAX_ATTEMPTS {
        record_failed(
            &mut tx,
            cx,
            id,
            &format!("gave up after {} attempts: {error}", row.attempts),
        )
        .await?;
    } else if row.status == "paying" && row.attempts == MAX_ATTEMPTS {
        let alert = notify::events::Alert {
            subject: format!("Refund {} is stuck", RefundId(id)),
            text: format!(
                "Refund {} holds a signed payout transaction that could not be sent or settled after {MAX_ATTEMPTS} attempts; it keeps being retried (its nonce must be used, or later payouts wait behind it).\nLast error: {error}\n",
                RefundId(id)
            ),
        };
        notify::events::alert(
            &mut tx,
            "refund.stuck",
            None,
            &alert,
            Some(&format!("alert:refund.stuck:{id}")),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The payout wallet cannot pay yet: the refund waits (approved), one alert per refund.
async fn wait_for_funds(cx: &Ctx<'_>, row: &Row, message: String) -> Result<bool, RefundError> {
    let mut tx = cx.pool.begin().await?;
    sqlx::query!(
        "update refund set last_error = $2, next_attempt_at = now() + interval '30 seconds'
         where refund_id = $1 and status = 'approved'",
        row.refund_id,
        message
    )
    .execute(&mut *tx)
    .await?;
    let alert = notify::events::Alert {
        subject: format!(
            "Refund {} waits for the payout wallet",
            RefundId(row.refund_id)
        ),
        text: format!("{message}\nThe refund is paid as soon as the wallet is funded.\n"),
    };
    notify::events::alert(
        &mut tx,
        "refund.payout_wallet_low",
        row.purchase_id.map(crate::domain::ids::PurchaseId),
        &alert,
        Some(&format!("alert:refund.payout_wallet_low:{}", row.refund_id)),
    )
    .await?;
    tx.commit().await?;
    tracing::error!(refund_id = %RefundId(row.refund_id), "{message}");
    Ok(false)
}

fn addresses(row: &Row) -> Result<(Address, Address), RefundError> {
    let bad = |what: &str| {
        RefundError::InvalidState(format!("refund {}: bad {what}", RefundId(row.refund_id)))
    };
    Ok((
        row.token_address.parse().map_err(|_| bad("token"))?,
        row.to_address.parse().map_err(|_| bad("address"))?,
    ))
}

/// Signs the payout and stores it (nonce allocated under the payout wallet's row lock).
async fn sign(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    signer: &PrivateKeySigner,
    row: &Row,
) -> Result<bool, RefundError> {
    let (token, to) = addresses(row)?;
    let amount = row.amount_units();
    let from = signer.address();
    let held = erc20::balance_of(chain, token, from, BlockId::latest()).await?;
    if held < amount {
        return wait_for_funds(
            cx,
            row,
            format!(
                "The payout wallet {from} holds {held} units of {} on chain {}; refund {} needs {amount}.",
                row.token_symbol.to_uppercase(),
                chain.id(),
                RefundId(row.refund_id)
            ),
        )
        .await;
    }
    let input: Bytes = IERC20::transferCall { to, value: amount }
        .abi_encode()
        .into();
    let request = TransactionRequest::default()
        .from(from)
        .to(token)
        .input(TransactionInput::new(input.clone()));
    let estimate = chain
        .provider
        .estimate_gas(request)
        .await
        .map_err(|e| chain.rpc_error(format!("gas estimate failed: {e}")))?;
    let gas_limit = estimate + estimate * GAS_MARGIN_PCT / 100;
    let fees = chain
        .provider
        .estimate_eip1559_fees()
        .await
        .map_err(|e| chain.rpc_error(e))?;
    let (max_fee, priority) =
        replace::capped(chain, (fees.max_fee_per_gas, fees.max_priority_fee_per_gas));
    let gas = chain
        .provider
        .get_balance(from)
        .await
        .map_err(|e| chain.rpc_error(e))?;
    // Less what its transactions in flight may still cost (its other payouts, and the sweeps when
    // the payout wallet is the gas wallet).
    let mined = chain
        .provider
        .get_transaction_count(from)
        .latest()
        .await
        .map_err(|e| chain.rpc_error(e))?;
    let chain_id = i64::try_from(chain.id()).unwrap_or(i64::MAX);
    let in_flight = sweeper::in_flight_cost(cx.pool, chain_id, from, mined).await?;
    let spendable = gas.saturating_sub(in_flight);
    let cost = U256::from(gas_limit) * U256::from(max_fee);
    if spendable < cost {
        return wait_for_funds(
            cx,
            row,
            format!(
                "The payout wallet {from} holds {gas} wei on chain {} ({in_flight} of it held by its transactions in flight); the payout of refund {} needs up to {cost} wei of gas.",
                chain.id(),
                RefundId(row.refund_id)
            ),
        )
        .await;
    }
    let chain_nonce = chain
        .provider
        .get_transaction_count(from)
        .pending()
        .await
        .map_err(|e| chain.rpc_error(e))?;
    let mut tx = cx.pool.begin().await?;
    sqlx::query!(
        "insert into gas_wallet (chain_id, address, next_nonce) values ($1, $2, $3) on conflict do nothing",
        chain_id,
        addr_key(from),
        i64::try_from(chain_nonce).unwrap_or(i64::MAX)
    )
    .execute(&mut *tx)
    .await?;
    let next: i64 = sqlx::query_scalar!(
        "select next_nonce from gas_wallet where chain_id = $1 and address = $2 for update",
        chain_id,
        addr_key(from)
    )
    .fetch_one(&mut *tx)
    .await?;
    // Under the wallet's lock: still approved and unsigned? (another replica, an operator's reject)
    let current = lock(&mut tx, row.refund_id).await?;
    if current.status() != RefundStatus::Approved || current.nonce.is_some() {
        tracing::info!(refund_id = %RefundId(row.refund_id), status = current.status, "refund moved on elsewhere; nothing signed");
        return Ok(false);
    }
    let nonce = u64::try_from(next).unwrap_or_default().max(chain_nonce);
    let mut unsigned = TxEip1559 {
        chain_id: chain.id(),
        nonce,
        gas_limit,
        max_fee_per_gas: max_fee,
        max_priority_fee_per_gas: priority,
        to: TxKind::Call(token),
        value: U256::ZERO,
        access_list: Default::default(),
        input,
    };
    let signature = signer
        .sign_transaction_sync(&mut unsigned)
        .map_err(|e| ChainError::Wallet(format!("signing failed: {e}")))?;
    let envelope = TxEnvelope::from(unsigned.into_signed(signature));
    let raw = envelope.encoded_2718();
    let hash: B256 = *envelope.tx_hash();
    sqlx::query!(
        "update gas_wallet set next_nonce = $3 where chain_id = $1 and address = $2",
        chain_id,
        addr_key(from),
        i64::try_from(nonce + 1).unwrap_or(i64::MAX)
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "update refund set status = 'paying', from_address = $2, nonce = $3, tx_hash = $4, raw_tx = $5,
             gas_limit = $6, max_fee_per_gas = $7, max_priority_fee_per_gas = $8, broadcast_at = null,
             broadcast_block = null, attempts = 0, next_attempt_at = now(), last_error = null
         where refund_id = $1 and status = 'approved'",
        row.refund_id,
        addr_key(from),
        i64::try_from(nonce).unwrap_or(i64::MAX),
        format!("{hash:#x}"),
        raw,
        i64::try_from(gas_limit).unwrap_or(i64::MAX),
        to_numeric(U256::from(max_fee)),
        to_numeric(U256::from(priority)),
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(refund_id = %RefundId(row.refund_id), tx_hash = %hash, nonce, "refund payout signed");
    Ok(true)
}

/// Sends the stored bytes: reconciles by hash, then by nonce, then sends. Bytes the node refuses
/// (e.g. priced out by the base fee) are replaced once due ([`stuck::replace_if_stuck`]).
async fn broadcast(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    signer: &PrivateKeySigner,
    row: &Row,
    head: u64,
) -> Result<bool, RefundError> {
    let (Some(hash), Some(raw), Some(from), Some(nonce)) = (
        row.tx_hash.as_deref().and_then(|h| h.parse::<B256>().ok()),
        row.raw_tx.as_ref(),
        row.from_address
            .as_deref()
            .and_then(|a| a.parse::<Address>().ok()),
        row.nonce.and_then(|n| u64::try_from(n).ok()),
    ) else {
        return Err(RefundError::InvalidState(format!(
            "refund {} is paying without a transaction",
            RefundId(row.refund_id)
        )));
    };
    let known = chain
        .provider
        .get_transaction_by_hash(hash)
        .await
        .map_err(|e| chain.rpc_error(e))?;
    if known.is_none() {
        let used = chain
            .provider
            .get_transaction_count(from)
            .latest()
            .await
            .map_err(|e| chain.rpc_error(e))?;
        if used > nonce {
            // Used by one of this payout's own transactions (settled next), or by another one.
            let attempts = Attempts::load(cx, row).await?;
            if stuck::mined_hash(chain, &attempts, hash).await?.is_none() {
                let mut tx = cx.pool.begin().await?;
                record_failed(
                    &mut tx,
                    cx,
                    row.refund_id,
                    &format!("nonce {nonce} of {from} was used by another transaction; {hash:#x} can never be mined"),
                )
                .await?;
                tx.commit().await?;
                return Ok(true);
            }
        } else if let Err(e) = chain.provider.send_raw_transaction(raw).await {
            let message = chain.rpc_error(e).to_string();
            // The node may already have it (a send whose answer was lost).
            let again = chain
                .provider
                .get_transaction_by_hash(hash)
                .await
                .map_err(|e| chain.rpc_error(e))?;
            if again.is_none() {
                if stuck::replace_if_stuck(cx, chain, signer, row, head).await? {
                    return Ok(true);
                }
                return Err(RefundError::Chain(ChainError::Rpc {
                    chain: chain.name().to_owned(),
                    detail: message,
                }));
            }
        }
    }
    sqlx::query!(
        "update refund set broadcast_at = coalesce(broadcast_at, now()), broadcast_block = coalesce(broadcast_block, $2),
             last_error = null
         where refund_id = $1 and status = 'paying'",
        row.refund_id,
        i64::try_from(head).unwrap_or(i64::MAX)
    )
    .execute(cx.pool)
    .await?;
    tracing::info!(refund_id = %RefundId(row.refund_id), tx_hash = %hash, "refund payout broadcast");
    Ok(true)
}

/// Waits for whichever transaction at the payout's nonce is mined, at `head - confirmations`:
/// paid, or failed when it reverted or was the operator's cancellation. Not mined: sent again when
/// the node dropped it, replaced once due when it holds it.
async fn settle(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    signer: &PrivateKeySigner,
    row: &Row,
    head: u64,
    safe: u64,
) -> Result<bool, RefundError> {
    let Some(current) = row.tx_hash.as_deref().and_then(|h| h.parse::<B256>().ok()) else {
        return Err(RefundError::InvalidState(format!(
            "refund {} is broadcast without a hash",
            RefundId(row.refund_id)
        )));
    };
    let attempts = Attempts::load(cx, row).await?;
    let Some((hash, receipt)) = stuck::mined_hash(chain, &attempts, current).await? else {
        let known = chain
            .provider
            .get_transaction_by_hash(current)
            .await
            .map_err(|e| chain.rpc_error(e))?;
        if known.is_none() {
            // Dropped by the node (e.g. after a reorg): send the same bytes again.
            sqlx::query!(
                "update refund set broadcast_at = null where refund_id = $1 and status = 'paying'",
                row.refund_id
            )
            .execute(cx.pool)
            .await?;
            return Ok(true);
        }
        return stuck::replace_if_stuck(cx, chain, signer, row, head).await;
    };
    let Some(block) = receipt.block_number else {
        return Ok(false);
    };
    if block > safe {
        return Ok(false);
    }
    let mut tx = cx.pool.begin().await?;
    let locked = super::lock_both(&mut tx, row.refund_id).await?;
    if locked.status() != RefundStatus::Paying {
        return Ok(false);
    }
    // Mined, whatever it did: its gas left the payout wallet (the console's gas runway counts it).
    let fee = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
    sqlx::query!(
        "update refund set payout_fee_wei = coalesce(payout_fee_wei, 0) + $2, payout_mined_at = now()
         where refund_id = $1",
        row.refund_id,
        to_numeric(fee)
    )
    .execute(&mut *tx)
    .await?;
    if attempts.is_cancel(hash, current) {
        record_failed(
            &mut tx,
            cx,
            row.refund_id,
            &format!("the operator cancelled the payout: {hash:#x} (a 0-value transfer at its nonce) was mined; nothing was paid"),
        )
        .await?;
        tx.commit().await?;
        return Ok(true);
    }
    let (token, to) = addresses(row)?;
    let paid = receipt.status().then(|| {
        receipt
            .inner
            .logs()
            .iter()
            .find_map(|log| super::transfer_paying(log, token, to, row.amount_units()))
    });
    match paid.flatten() {
        Some(log_index) => {
            let payment = Payment {
                tx_hash: format!("{hash:#x}"),
                log_index,
                block,
            };
            record_paid(&mut tx, cx, &locked, &payment, "payout").await?;
        }
        None => {
            record_failed(
                &mut tx,
                cx,
                row.refund_id,
                &format!("transaction {hash:#x} reverted (or paid nothing): nothing was paid"),
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(true)
}

/// Without a payout key: looks for the vendor's own payment of each approved refund.
async fn scan_chain(cx: &Ctx<'_>, chain: &ChainClient) -> Result<usize, RefundError> {
    let ids = due(cx, chain, &["approved"]).await?;
    if ids.is_empty() {
        return Ok(0);
    }
    let head = chain.head().await?;
    let safe = chain.safe_block(head);
    let mut work = 0;
    for id in ids {
        let Some(claim) = Claim::try_take(cx.pool, id).await? else {
            continue;
        };
        let result = scan_one(cx, chain, id, head, safe).await;
        claim.release().await;
        match result {
            Ok(true) => work += 1,
            Ok(false) => {}
            Err(RefundError::Db(e)) => return Err(RefundError::Db(e)),
            Err(e) => {
                tracing::warn!(refund_id = %RefundId(id), error = %e, "scan for the vendor's payment failed; retrying next pass");
            }
        }
    }
    Ok(work)
}

async fn scan_one(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    id: Uuid,
    head: u64,
    safe: u64,
) -> Result<bool, RefundError> {
    let row = super::load(&mut *cx.pool.acquire().await?, id).await?;
    if row.status() != RefundStatus::Approved {
        return Ok(false);
    }
    let Some(approved) = row.approved_block.and_then(|b| u64::try_from(b).ok()) else {
        // Approved while the chain did not answer: payments count from now on.
        sqlx::query!(
            "update refund set approved_block = $2 where refund_id = $1 and approved_block is null",
            id,
            i64::try_from(head).unwrap_or(i64::MAX)
        )
        .execute(cx.pool)
        .await?;
        return Ok(false);
    };
    let from = row
        .scanned_block
        .and_then(|b| u64::try_from(b).ok())
        .map_or(approved, |b| b + 1)
        .max(approved);
    if from > safe {
        return Ok(false);
    }
    let to = safe.min(from + SCAN_BLOCKS - 1);
    let (token, recipient) = addresses(&row)?;
    let filter = Filter::new()
        .address(token)
        .event_signature(TRANSFER_TOPIC)
        .topic2(recipient.into_word())
        .from_block(from)
        .to_block(to);
    let logs = chain
        .provider
        .get_logs(&filter)
        .await
        .map_err(|e| chain.rpc_error(e))?;
    for log in logs {
        let Some(log_index) = super::transfer_paying(&log, token, recipient, row.amount_units())
        else {
            continue;
        };
        let (Some(hash), Some(block)) = (log.transaction_hash, log.block_number) else {
            continue;
        };
        let payment = Payment {
            tx_hash: format!("{hash:#x}"),
            log_index,
            block,
        };
        let mut tx = cx.pool.begin().await?;
        let current = super::lock_both(&mut tx, id).await?;
        if current.status() != RefundStatus::Approved {
            return Ok(false);
        }
        match record_paid(&mut tx, cx, &current, &payment, "scan").await {
            Ok(()) => {
                tx.commit().await?;
                return Ok(true);
            }
            // That transfer already pays another refund: look further.
            Err(RefundError::InvalidState(_)) => {
                tx.rollback().await?;
            }
            Err(e) => return Err(e),
        }
    }
    sqlx::query!(
        "update refund set scanned_block = $2 where refund_id = $1 and status = 'approved'",
        id,
        i64::try_from(to).unwrap_or(i64::MAX)
    )
    .execute(cx.pool)
    .await?;
    Ok(false)
}
