//! Sweeps: moves confirmed deposits from deposit addresses to the treasury, exactly once.
//!
//! Each sweep is a persisted state machine (`planned → signed → broadcast → confirmed / failed`):
//! - **planned**: the amount is the token balance at `head - confirmations`.
//! - **signed**: in ONE database transaction the signer's row is locked (`gas_wallet … FOR UPDATE` for
//!   the gas wallet), the nonce allocated, the transaction signed and its raw bytes and hash stored.
//! - **broadcast**: the stored bytes are sent after the commit. On restart, a `signed` sweep is
//!   reconciled by hash first (already known → broadcast, nothing sent) and by nonce (used by another
//!   transaction → failed); otherwise the same bytes are sent again, which can never execute twice.
//! - **confirmed / failed**: from the receipt at `head - confirmations`.
//!
//! USDC-like tokens (EIP-3009) are swept with one `transferWithAuthorization` signed (EIP-712) by the
//! deposit key and relayed by the gas wallet: no gas ever goes to a deposit address. Other tokens get
//! an estimated gas top-up from the gas wallet (step `topup`), then `transfer` signed by the deposit key
//! (step `sweep`); the ETH left over is reported as dust. When the gas wallet cannot pay, sweeps wait
//! and one `gas.low` alert is raised per episode. Customer credit never depends on a sweep.
//!
//! On a chain with `sweep_batch_size` > 1, planned EIP-3009 sweeps are relayed together through
//! Multicall3 instead, with the same discipline on the batch's own row ([`batch`]).

use alloy::consensus::TxEip1559;
use alloy::primitives::{Address, B256, Bytes, TxKind, U256};
use alloy::providers::Provider;
use alloy::rpc::types::{BlockId, TransactionInput, TransactionRequest};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use serde_json::json;
use sqlx::PgPool;

use super::erc20::{self, IERC20, TransferWithAuthorization};
use super::replace;
use super::{ChainClient, ChainError, Chains, addr_key, from_numeric, to_numeric};
use crate::domain::Outcome;
use crate::notify::{self, Channel};

mod batch;
mod ops;
mod settle;
mod sign;
mod stuck;

pub use ops::*;
use settle::*;
pub use sign::in_flight_cost;
use sign::*;
use stuck::*;

/// Gas limit margin over the node's estimate, in percent.
const GAS_MARGIN_PCT: u64 = 20;
/// Gas of a plain ETH transfer.
const TRANSFER_GAS: u64 = 21_000;
/// How long an EIP-3009 authorization stays valid.
const AUTHORIZATION_VALID_SECS: u64 = 86_400;

/// What a sweeper pass works with.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    pool: &'a PgPool,
    chains: &'a Chains,
}

/// One sweeper pass over every chain: plan sweeps for confirmed deposits, advance every unfinished one.
pub async fn run_once(pool: &PgPool, chains: &Chains) -> anyhow::Result<Outcome> {
    let cx = &Ctx { pool, chains };
    let (Some(_), Some(_), Ok(_)) = (cx.chains.gas(), cx.chains.treasury(), cx.chains.keys())
    else {
        return Ok(Outcome::Idle);
    };
    let mut work = 0;
    let mut db_error = None;
    // One chain's trouble never stops the others.
    for chain in cx.chains.iter() {
        match pass(cx, chain).await {
            Ok(n) => work += n,
            Err(ChainError::Db(e)) => {
                tracing::error!(chain = chain.name(), error = %e, "sweep pass failed (database)");
                db_error.get_or_insert(e);
            }
            Err(e) => {
                tracing::warn!(chain = chain.name(), error = %e, "sweep pass failed; retrying next pass");
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

async fn pass(cx: &Ctx<'_>, chain: &ChainClient) -> Result<usize, ChainError> {
    let head = chain.head().await?;
    let safe = chain.safe_block(head);
    let mut work = plan_claimed(cx, chain, safe).await?;
    // Batches in flight first (whatever the configuration is now), then new ones from the planned
    // EIP-3009 sweeps; their members never go through the single-sweep steps below.
    work += batch::advance_batches(cx, chain, head, safe).await?;
    let batching = batch::batching(chain);
    if batching {
        work += batch::sign_batches(cx, chain).await?;
    }
    let chain_id = i64::try_from(chain.id()).unwrap_or(i64::MAX);
    let due = sqlx::query_scalar!(
        "select sweep_id from sweep where chain_id = $1 and status in ('planned', 'signed', 'broadcast')
             and next_attempt_at <= now() and batch_id is null
             and not ($2 and status = 'planned' and method = 'eip3009' and not replan)
         order by sweep_id",
        chain_id,
        batching
    )
    .fetch_all(cx.pool)
    .await?;
    for id in due {
        // Another replica is on it: its turn, not ours.
        let Some(claim) = Claim::try_take(cx.pool, "vendor_server.sweep", id).await? else {
            continue;
        };
        let result = advance(cx, chain, id, head, safe).await;
        match result {
            Ok(true) => work += 1,
            Ok(false) => {}
            Err(ChainError::Db(e)) => return Err(ChainError::Db(e)),
            // A fault of this sweep only: retried with backoff, then failed with an alert.
            Err(e) => setback(cx, chain, id, &e.to_string()).await?,
        }
        claim.release().await;
    }
    Ok(work)
}

/// Per-unit claim across replicas: a transaction-scoped advisory lock on a dedicated connection, held
/// while the unit is worked on. Dropped (error, cancellation) or released, the transaction ends and
/// the lock with it; a database restart frees it too, which is why every write that must not happen
/// twice (the nonce transaction) re-checks the sweep's state under its row lock as well.
struct Claim {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
}

impl Claim {
    async fn try_take(pool: &PgPool, space: &str, unit: i64) -> Result<Option<Self>, sqlx::Error> {
        let mut tx = pool.begin().await?;
        let key = i32::try_from(unit.rem_euclid(i64::from(i32::MAX))).unwrap_or_default();
        let locked = sqlx::query_scalar!(
            "select pg_try_advisory_xact_lock(hashtext($1), $2)",
            space,
            key
        )
        .fetch_one(&mut *tx)
        .await?;
        Ok(locked.unwrap_or(false).then_some(Self { tx }))
    }

    async fn release(self) {
        if let Err(e) = self.tx.rollback().await {
            tracing::warn!(error = %e, "releasing a sweeper claim failed; its session ends it");
        }
    }
}

/// Attempts of a planned sweep (no nonce taken yet) before it fails with an alert.
pub const MAX_ATTEMPTS: i32 = 8;

/// Records a fault of one sweep: backs off (5 s, 15 s, 45 s, … up to 30 minutes); a `planned` sweep
/// that has failed `MAX_ATTEMPTS` times in a row becomes `failed` with a `sweep.failed` webhook and
/// alert. A signed or broadcast one keeps its transaction (its nonce must be used or the gas wallet
/// stalls) and is retried with backoff; after `MAX_ATTEMPTS` the operator gets one `sweep.stuck` alert.
async fn setback(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    sweep_id: i64,
    error: &str,
) -> Result<(), ChainError> {
    let row = sqlx::query!(
        "update sweep set attempts = attempts + 1, last_error = $2,
             next_attempt_at = now() + make_interval(secs => least(5 * power(3, attempts), 1800))
         where sweep_id = $1 and status in ('planned', 'signed', 'broadcast')
         returning attempts, status",
        sweep_id,
        error
    )
    .fetch_optional(cx.pool)
    .await?;
    let Some(row) = row else {
        return Ok(());
    };
    tracing::warn!(
        sweep_id,
        error,
        attempts = row.attempts,
        "sweep step failed; retrying later"
    );
    if row.status == "planned" && row.attempts >= MAX_ATTEMPTS {
        fail(
            cx,
            chain,
            sweep_id,
            &format!("gave up after {} attempts: {error}", row.attempts),
        )
        .await?;
    } else if row.status != "planned" && row.attempts == MAX_ATTEMPTS {
        let alert = notify::events::Alert {
            subject: format!("Sweep {sweep_id} on {} is stuck", chain.name()),
            text: format!(
                "Sweep {sweep_id} on {} holds a signed transaction that could not be sent or settled after \
                 {MAX_ATTEMPTS} attempts; it keeps being retried (its gas-wallet nonce must be used, or later \
                 sweeps on this chain wait behind it).\nLast error: {error}\n",
                chain.name()
            ),
        };
        let mut conn = cx.pool.acquire().await?;
        notify::events::alert(
            &mut conn,
            "sweep.stuck",
            None,
            &alert,
            Some(&format!("alert:sweep.stuck:{sweep_id}")),
        )
        .await?;
        tracing::error!(sweep_id, error, "sweep stuck; operator alerted");
    }
    Ok(())
}

/// Plans under a per-chain claim: one replica plans a chain at a time (the unique index on unfinished
/// sweeps keeps it exact anyway; the claim saves the duplicate balance reads).
async fn plan_claimed(cx: &Ctx<'_>, chain: &ChainClient, safe: u64) -> Result<usize, ChainError> {
    let chain_id = i64::try_from(chain.id()).unwrap_or(i64::MAX);
    let Some(claim) = Claim::try_take(cx.pool, "vendor_server.sweep_plan", chain_id).await? else {
        return Ok(0);
    };
    let planned = plan(cx, chain, safe).await;
    claim.release().await;
    planned
}

/// Plans one sweep per (token, address) with confirmed deposits not yet covered by a sweep.
async fn plan(cx: &Ctx<'_>, chain: &ChainClient, safe: u64) -> Result<usize, ChainError> {
    let Some(treasury) = cx.chains.treasury() else {
        return Ok(0);
    };
    let chain_id = i64::try_from(chain.id()).unwrap_or(i64::MAX);
    let groups = sqlx::query!(
        r#"select d.token_address, d.deposit_address, c.deposit_index, array_agg(d.deposit_id) as "ids!"
           from deposit d join checkout c using (checkout_session_id)
           where d.chain_id = $1 and d.status in ('confirmed', 'credited') and d.sweep_id is null
             and d.block_number <= $2
             and not exists (select 1 from sweep s where s.chain_id = d.chain_id and s.token_address = d.token_address
                             and s.deposit_address = d.deposit_address and s.status not in ('confirmed', 'failed'))
           group by d.token_address, d.deposit_address, c.deposit_index"#,
        chain_id,
        i64::try_from(safe).unwrap_or(i64::MAX)
    )
    .fetch_all(cx.pool)
    .await?;
    let mut planned = 0;
    for g in groups {
        let (Ok(token_address), Ok(owner)) = (
            g.token_address.parse::<Address>(),
            g.deposit_address.parse::<Address>(),
        ) else {
            continue;
        };
        let Some(token) = chain.token_by_address(token_address) else {
            continue;
        };
        let balance = match erc20::balance_of(chain, token_address, owner, BlockId::number(safe))
            .await
        {
            Ok(b) => b,
            Err(e @ ChainError::Db(_)) => return Err(e),
            Err(e) => {
                tracing::warn!(chain = chain.name(), %owner, error = %e, "cannot plan a sweep yet");
                continue;
            }
        };
        let mut tx = cx.pool.begin().await?;
        if balance.is_zero() {
            // Already swept together with an earlier deposit.
            sqlx::query!(
                "update deposit set sweep_id = (select max(sweep_id) from sweep where chain_id = $1 and token_address = $2
                                                 and deposit_address = $3 and status = 'confirmed')
                 where deposit_id = any($4)",
                chain_id,
                g.token_address,
                g.deposit_address,
                &g.ids
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            continue;
        }
        let method = if token.eip3009 { "eip3009" } else { "transfer" };
        let step = if token.eip3009 { "sweep" } else { "topup" };
        let sweep_id = sqlx::query_scalar!(
            "insert into sweep (chain_id, token_address, token_symbol, deposit_address, deposit_index,
                 treasury_address, amount_units, method, step)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             on conflict (chain_id, token_address, deposit_address) where status not in ('confirmed', 'failed')
             do nothing
             returning sweep_id",
            chain_id,
            g.token_address,
            token.symbol,
            g.deposit_address,
            g.deposit_index,
            addr_key(treasury),
            to_numeric(balance),
            method,
            step
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(sweep_id) = sweep_id {
            sqlx::query!(
                "update deposit set sweep_id = $1 where deposit_id = any($2)",
                sweep_id,
                &g.ids
            )
            .execute(&mut *tx)
            .await?;
            planned += 1;
            tracing::info!(sweep_id, chain = chain.name(), token = token.symbol, %owner, "sweep planned");
        }
        tx.commit().await?;
    }
    Ok(planned)
}

#[derive(Clone)]
struct SweepRow {
    sweep_id: i64,
    token: Address,
    deposit: Address,
    deposit_index: u32,
    treasury: Address,
    amount: U256,
    method: String,
    step: String,
    status: String,
    from_address: Option<Address>,
    nonce: Option<u64>,
    tx_hash: Option<B256>,
    raw_tx: Option<Vec<u8>>,
    /// The EIP-3009 authorization nonce of the signed relay.
    authorization: Option<B256>,
    /// Whether its next attempt is due (read under the claim).
    due: bool,
    /// The head when the current transaction was (re)sent.
    broadcast_block: Option<u64>,
    /// Earlier hashes at this nonce: replaced ones, then the operator's cancellations.
    replaced: Vec<B256>,
    cancels: Vec<B256>,
    /// The current transaction is a cancellation.
    cancelled: bool,
    stuck: bool,
    operator_action: Option<String>,
    /// Read the amount from the chain again before signing (after a retry).
    replan: bool,
}

impl SweepRow {
    /// Every hash signed at the current nonce: the current one first.
    fn hashes(&self) -> Vec<B256> {
        self.tx_hash
            .iter()
            .chain(&self.replaced)
            .chain(&self.cancels)
            .copied()
            .collect()
    }
}

async fn load(pool: &PgPool, sweep_id: i64) -> Result<SweepRow, ChainError> {
    let r = sqlx::query!(
        r#"select sweep_id, token_address, deposit_address, deposit_index, treasury_address, amount_units, method,
                step, status, from_address, nonce, tx_hash, raw_tx, authorization_nonce,
                next_attempt_at <= now() as "due!", broadcast_block, replaced_tx_hashes, cancel_tx_hashes,
                cancelled, stuck_at is not null as "stuck!", operator_action, replan
         from sweep where sweep_id = $1"#,
        sweep_id
    )
    .fetch_one(pool)
    .await?;
    let bad = |what: &str| ChainError::Invalid(format!("sweep {sweep_id}: bad {what}"));
    Ok(SweepRow {
        sweep_id: r.sweep_id,
        token: r.token_address.parse().map_err(|_| bad("token"))?,
        deposit: r
            .deposit_address
            .parse()
            .map_err(|_| bad("deposit address"))?,
        deposit_index: u32::try_from(r.deposit_index).map_err(|_| bad("index"))?,
        treasury: r.treasury_address.parse().map_err(|_| bad("treasury"))?,
        amount: from_numeric(&r.amount_units).ok_or_else(|| bad("amount"))?,
        method: r.method,
        step: r.step,
        status: r.status,
        from_address: r.from_address.and_then(|a| a.parse().ok()),
        nonce: r.nonce.and_then(|n| u64::try_from(n).ok()),
        tx_hash: r.tx_hash.and_then(|h| h.parse().ok()),
        raw_tx: r.raw_tx,
        authorization: r.authorization_nonce.and_then(|h| h.parse().ok()),
        due: r.due,
        broadcast_block: r.broadcast_block.and_then(|b| u64::try_from(b).ok()),
        replaced: r
            .replaced_tx_hashes
            .iter()
            .filter_map(|h| h.parse().ok())
            .collect(),
        cancels: r
            .cancel_tx_hashes
            .iter()
            .filter_map(|h| h.parse().ok())
            .collect(),
        cancelled: r.cancelled,
        stuck: r.stuck,
        operator_action: r.operator_action,
        replan: r.replan,
    })
}

/// Moves one sweep one step on. Returns whether anything changed.
async fn advance(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    sweep_id: i64,
    head: u64,
    safe: u64,
) -> Result<bool, ChainError> {
    let sweep = load(cx.pool, sweep_id).await?;
    if !sweep.due {
        // Another replica advanced or postponed it since the list was read.
        return Ok(false);
    }
    match sweep.status.as_str() {
        "planned" if sweep.replan => replan(cx, chain, &sweep, safe).await,
        "planned" => sign(cx, chain, &sweep).await,
        "signed" => broadcast(cx, chain, &sweep, head).await,
        "broadcast" => settle(cx, chain, &sweep, head, safe).await,
        _ => Ok(false),
    }
}

/// A retried sweep's amount, read again from the chain at `safe` (a reorg may have lowered the
/// balance since it was planned; signing the old amount would revert on every retry).
async fn replan(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    sweep: &SweepRow,
    safe: u64,
) -> Result<bool, ChainError> {
    let balance =
        erc20::balance_of(chain, sweep.token, sweep.deposit, BlockId::number(safe)).await?;
    if balance.is_zero() {
        fail(
            cx,
            chain,
            sweep.sweep_id,
            &format!(
                "{} holds none of the token at block {safe}: nothing to sweep (a reorg may have removed its deposits)",
                sweep.deposit
            ),
        )
        .await?;
        sqlx::query!(
            "update sweep set replan = false where sweep_id = $1",
            sweep.sweep_id
        )
        .execute(cx.pool)
        .await?;
        return Ok(true);
    }
    sqlx::query!(
        "update sweep set amount_units = $2, replan = false where sweep_id = $1 and status = 'planned'",
        sweep.sweep_id,
        to_numeric(balance)
    )
    .execute(cx.pool)
    .await?;
    if balance != sweep.amount {
        tracing::warn!(sweep_id = sweep.sweep_id, planned = %sweep.amount, now = %balance, "retried sweep re-planned from the chain's balance");
    }
    Ok(true)
}
