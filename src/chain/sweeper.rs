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

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, B256, Bytes, TxKind, U256};
use alloy::providers::Provider;
use alloy::rpc::types::{BlockId, TransactionInput, TransactionRequest};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use serde_json::json;
use sqlx::PgPool;

use super::erc20::{self, IERC20, TransferWithAuthorization};
use super::{ChainClient, ChainError, addr_key, from_numeric, to_numeric};
use crate::domain::Outcome;
use crate::notify::{self, Channel};
use crate::state::AppState;

/// Gas limit margin over the node's estimate, in percent.
const GAS_MARGIN_PCT: u64 = 20;
/// Gas of a plain ETH transfer.
const TRANSFER_GAS: u64 = 21_000;
/// How long an EIP-3009 authorization stays valid.
const AUTHORIZATION_VALID_SECS: u64 = 86_400;

/// One sweeper pass over every chain: plan sweeps for confirmed deposits, advance every unfinished one.
pub async fn run_once(state: &AppState) -> anyhow::Result<Outcome> {
    let (Some(_), Some(_), Ok(_)) = (
        state.chains.gas(),
        state.chains.treasury(),
        state.chains.keys(),
    ) else {
        return Ok(Outcome::Idle);
    };
    let mut work = 0;
    let mut db_error = None;
    // One chain's trouble never stops the others.
    for chain in state.chains.iter() {
        match pass(state, chain).await {
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

async fn pass(state: &AppState, chain: &ChainClient) -> Result<usize, ChainError> {
    let head = chain.head().await?;
    let safe = chain.safe_block(head);
    let mut work = plan_claimed(state, chain, safe).await?;
    let chain_id = i64::try_from(chain.id()).unwrap_or(i64::MAX);
    let due = sqlx::query_scalar!(
        "select sweep_id from sweep where chain_id = $1 and status in ('planned', 'signed', 'broadcast')
             and next_attempt_at <= now()
         order by sweep_id",
        chain_id
    )
    .fetch_all(&state.pool)
    .await?;
    for id in due {
        // Another replica is on it: its turn, not ours.
        let Some(claim) = Claim::try_take(&state.pool, "vendor_server.sweep", id).await? else {
            continue;
        };
        let result = advance(state, chain, id, safe).await;
        match result {
            Ok(true) => work += 1,
            Ok(false) => {}
            Err(ChainError::Db(e)) => return Err(ChainError::Db(e)),
            // A fault of this sweep only: retried with backoff, then failed with an alert.
            Err(e) => setback(state, chain, id, &e.to_string()).await?,
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
    state: &AppState,
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
    .fetch_optional(&state.pool)
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
            state,
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
        let mut conn = state.pool.acquire().await?;
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
async fn plan_claimed(
    state: &AppState,
    chain: &ChainClient,
    safe: u64,
) -> Result<usize, ChainError> {
    let chain_id = i64::try_from(chain.id()).unwrap_or(i64::MAX);
    let Some(claim) = Claim::try_take(&state.pool, "vendor_server.sweep_plan", chain_id).await?
    else {
        return Ok(0);
    };
    let planned = plan(state, chain, safe).await;
    claim.release().await;
    planned
}

/// Plans one sweep per (token, address) with confirmed deposits not yet covered by a sweep.
async fn plan(state: &AppState, chain: &ChainClient, safe: u64) -> Result<usize, ChainError> {
    let Some(treasury) = state.chains.treasury() else {
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
    .fetch_all(&state.pool)
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
        let mut tx = state.pool.begin().await?;
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
}

async fn load(pool: &PgPool, sweep_id: i64) -> Result<SweepRow, ChainError> {
    let r = sqlx::query!(
        r#"select sweep_id, token_address, deposit_address, deposit_index, treasury_address, amount_units, method,
                step, status, from_address, nonce, tx_hash, raw_tx, authorization_nonce,
                next_attempt_at <= now() as "due!"
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
    })
}

/// Moves one sweep one step on. Returns whether anything changed.
async fn advance(
    state: &AppState,
    chain: &ChainClient,
    sweep_id: i64,
    safe: u64,
) -> Result<bool, ChainError> {
    let sweep = load(&state.pool, sweep_id).await?;
    if !sweep.due {
        // Another replica advanced or postponed it since the list was read.
        return Ok(false);
    }
    match sweep.status.as_str() {
        "planned" => sign(state, chain, &sweep).await,
        "signed" => broadcast(state, chain, &sweep).await,
        "broadcast" => settle(state, chain, &sweep, safe).await,
        _ => Ok(false),
    }
}

/// A signed EIP-1559 transaction: raw bytes and hash.
struct SignedTx {
    raw: Vec<u8>,
    hash: B256,
}

#[allow(clippy::too_many_arguments)]
fn sign_tx(
    signer: &PrivateKeySigner,
    chain_id: u64,
    nonce: u64,
    to: Address,
    value: U256,
    input: Bytes,
    gas_limit: u64,
    fees: (u128, u128),
) -> Result<SignedTx, ChainError> {
    let mut tx = TxEip1559 {
        chain_id,
        nonce,
        gas_limit,
        max_fee_per_gas: fees.0,
        max_priority_fee_per_gas: fees.1.min(fees.0),
        to: TxKind::Call(to),
        value,
        access_list: Default::default(),
        input,
    };
    let signature = signer
        .sign_transaction_sync(&mut tx)
        .map_err(|e| ChainError::Wallet(format!("signing failed: {e}")))?;
    let envelope = TxEnvelope::from(tx.into_signed(signature));
    Ok(SignedTx {
        raw: envelope.encoded_2718(),
        hash: *envelope.tx_hash(),
    })
}

/// (max fee per gas, priority fee per gas).
async fn fees(chain: &ChainClient) -> Result<(u128, u128), ChainError> {
    let estimate = chain
        .provider
        .estimate_eip1559_fees()
        .await
        .map_err(|e| chain.rpc_error(e))?;
    Ok((estimate.max_fee_per_gas, estimate.max_priority_fee_per_gas))
}

async fn estimate(
    chain: &ChainClient,
    from: Address,
    to: Address,
    input: &Bytes,
    value: U256,
) -> Result<u64, ChainError> {
    let request = TransactionRequest::default()
        .from(from)
        .to(to)
        .value(value)
        .input(TransactionInput::new(input.clone()));
    let gas = chain
        .provider
        .estimate_gas(request)
        .await
        .map_err(|e| chain.rpc_error(format!("gas estimate failed: {e}")))?;
    Ok(gas + gas * GAS_MARGIN_PCT / 100)
}

/// Signs the current step and stores it (nonce allocated under the signer's row lock).
async fn sign(state: &AppState, chain: &ChainClient, sweep: &SweepRow) -> Result<bool, ChainError> {
    let keys = state.chains.keys()?;
    let gas = state.chains.gas().ok_or_else(|| {
        ChainError::NotConfigured("VENDOR_GAS_TANK_PRIVATE_KEY is not set".into())
    })?;
    let depositor = keys.signer(sweep.deposit_index)?;
    if depositor.address() != sweep.deposit {
        return Err(ChainError::Wallet(format!(
            "sweep {}: deposit index {} does not derive {} (was DEPOSIT_MNEMONIC changed?)",
            sweep.sweep_id, sweep.deposit_index, sweep.deposit
        )));
    }
    let (max_fee, priority) = fees(chain).await?;
    match (sweep.method.as_str(), sweep.step.as_str()) {
        ("eip3009", _) => {
            let token = chain.token_by_address(sweep.token).ok_or_else(|| {
                ChainError::Invalid(format!(
                    "sweep {}: token no longer configured",
                    sweep.sweep_id
                ))
            })?;
            let domain = erc20::eip712_domain(chain, token).await?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default();
            let mut nonce = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut nonce);
            let nonce = B256::from(nonce);
            let message = TransferWithAuthorization {
                from: sweep.deposit,
                to: sweep.treasury,
                value: sweep.amount,
                validAfter: U256::ZERO,
                validBefore: U256::from(now + AUTHORIZATION_VALID_SECS),
                nonce,
            };
            let signature = depositor
                .sign_typed_data_sync(&message, &domain)
                .map_err(|e| ChainError::Wallet(format!("authorization signing failed: {e}")))?;
            let input: Bytes = IERC20::transferWithAuthorizationCall {
                from: message.from,
                to: message.to,
                value: message.value,
                validAfter: message.validAfter,
                validBefore: message.validBefore,
                nonce,
                v: if signature.v() { 28 } else { 27 },
                r: signature.r().into(),
                s: signature.s().into(),
            }
            .abi_encode()
            .into();
            let gas_limit = estimate(chain, gas.address(), sweep.token, &input, U256::ZERO).await?;
            let cost = U256::from(gas_limit) * U256::from(max_fee);
            if !gas_available(state, chain, gas.address(), cost).await? {
                return Ok(false);
            }
            store_gas_wallet_tx(state, chain, sweep, &gas.signer, Some(nonce), |tx_nonce| {
                sign_tx(
                    &gas.signer,
                    chain.id(),
                    tx_nonce,
                    sweep.token,
                    U256::ZERO,
                    input.clone(),
                    gas_limit,
                    (max_fee, priority),
                )
            })
            .await
        }
        (_, "topup") => {
            let input: Bytes = IERC20::transferCall {
                to: sweep.treasury,
                value: sweep.amount,
            }
            .abi_encode()
            .into();
            let gas_limit = estimate(chain, sweep.deposit, sweep.token, &input, U256::ZERO).await?;
            let need = U256::from(gas_limit) * U256::from(max_fee);
            let have = chain
                .provider
                .get_balance(sweep.deposit)
                .await
                .map_err(|e| chain.rpc_error(e))?;
            if have >= need {
                // Enough ETH is already there (an earlier top-up's dust): no top-up.
                sqlx::query!(
                    "update sweep set step = 'sweep' where sweep_id = $1 and status = 'planned'",
                    sweep.sweep_id
                )
                .execute(&state.pool)
                .await?;
                return Ok(true);
            }
            let value = need - have;
            let cost = value + U256::from(TRANSFER_GAS) * U256::from(max_fee);
            if !gas_available(state, chain, gas.address(), cost).await? {
                return Ok(false);
            }
            sqlx::query!(
                "update sweep set topup_wei = $2 where sweep_id = $1",
                sweep.sweep_id,
                to_numeric(value)
            )
            .execute(&state.pool)
            .await?;
            store_gas_wallet_tx(state, chain, sweep, &gas.signer, None, |nonce| {
                sign_tx(
                    &gas.signer,
                    chain.id(),
                    nonce,
                    sweep.deposit,
                    value,
                    Bytes::new(),
                    TRANSFER_GAS,
                    (max_fee, priority),
                )
            })
            .await
        }
        _ => {
            // transfer() signed by the deposit key, paid with the ETH the top-up left there.
            let input: Bytes = IERC20::transferCall {
                to: sweep.treasury,
                value: sweep.amount,
            }
            .abi_encode()
            .into();
            let gas_limit = estimate(chain, sweep.deposit, sweep.token, &input, U256::ZERO).await?;
            let have = chain
                .provider
                .get_balance(sweep.deposit)
                .await
                .map_err(|e| chain.rpc_error(e))?;
            // Never ask for more than the address holds (the fee market may have moved).
            let affordable =
                u128::try_from(have / U256::from(gas_limit.max(1))).unwrap_or(u128::MAX);
            if affordable == 0 {
                sqlx::query!(
                    "update sweep set step = 'topup' where sweep_id = $1 and status = 'planned'",
                    sweep.sweep_id
                )
                .execute(&state.pool)
                .await?;
                return Ok(true);
            }
            let max_fee = max_fee.min(affordable);
            let chain_nonce = chain
                .provider
                .get_transaction_count(sweep.deposit)
                .pending()
                .await
                .map_err(|e| chain.rpc_error(e))?;
            let signed = sign_tx(
                &depositor,
                chain.id(),
                chain_nonce,
                sweep.token,
                U256::ZERO,
                input,
                gas_limit,
                (max_fee, priority),
            )?;
            let mut tx = state.pool.begin().await?;
            // One signer per deposit address at a time (two tokens on one address).
            sqlx::query!(
                "select pg_advisory_xact_lock(hashtext('vendor_server.signer:' || $1))",
                addr_key(sweep.deposit)
            )
            .execute(&mut *tx)
            .await?;
            let stored = store_signed(
                &mut tx,
                sweep.sweep_id,
                sweep.deposit,
                chain_nonce,
                &signed,
                None,
            )
            .await?;
            if stored {
                tx.commit().await?;
            }
            Ok(stored)
        }
    }
}

/// Allocates the gas wallet's next nonce under its row lock, signs with it and stores the signed
/// transaction, all in one database transaction. Broadcasting happens after the commit.
async fn store_gas_wallet_tx(
    state: &AppState,
    chain: &ChainClient,
    sweep: &SweepRow,
    signer: &PrivateKeySigner,
    authorization: Option<B256>,
    build: impl FnOnce(u64) -> Result<SignedTx, ChainError>,
) -> Result<bool, ChainError> {
    let address = signer.address();
    let chain_nonce = chain
        .provider
        .get_transaction_count(address)
        .pending()
        .await
        .map_err(|e| chain.rpc_error(e))?;
    let chain_id = i64::try_from(chain.id()).unwrap_or(i64::MAX);
    let mut tx = state.pool.begin().await?;
    sqlx::query!(
        "insert into gas_wallet (chain_id, address, next_nonce) values ($1, $2, $3) on conflict do nothing",
        chain_id,
        addr_key(address),
        i64::try_from(chain_nonce).unwrap_or(i64::MAX)
    )
    .execute(&mut *tx)
    .await?;
    let next: i64 = sqlx::query_scalar!(
        "select next_nonce from gas_wallet where chain_id = $1 and address = $2 for update",
        chain_id,
        addr_key(address)
    )
    .fetch_one(&mut *tx)
    .await?;
    // Under the gas wallet's lock: the sweep must still be at the step this replica read. If another
    // replica signed it meanwhile, roll back; no nonce is consumed.
    let current = sqlx::query!(
        "select status, step from sweep where sweep_id = $1 for update",
        sweep.sweep_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if current.status != "planned" || current.step != sweep.step {
        tracing::info!(
            sweep_id = sweep.sweep_id,
            status = current.status,
            "sweep signed elsewhere; nothing done"
        );
        return Ok(false);
    }
    let nonce = u64::try_from(next).unwrap_or_default().max(chain_nonce);
    let signed = build(nonce)?;
    sqlx::query!(
        "update gas_wallet set next_nonce = $3 where chain_id = $1 and address = $2",
        chain_id,
        addr_key(address),
        i64::try_from(nonce + 1).unwrap_or(i64::MAX)
    )
    .execute(&mut *tx)
    .await?;
    let stored = store_signed(
        &mut tx,
        sweep.sweep_id,
        address,
        nonce,
        &signed,
        authorization,
    )
    .await?;
    if stored {
        tx.commit().await?;
    }
    // Not stored: the transaction rolls back with the nonce.
    Ok(stored)
}

async fn store_signed(
    conn: &mut sqlx::PgConnection,
    sweep_id: i64,
    from: Address,
    nonce: u64,
    signed: &SignedTx,
    authorization: Option<B256>,
) -> Result<bool, ChainError> {
    let updated = sqlx::query!(
        "update sweep set status = 'signed', from_address = $2, nonce = $3, tx_hash = $4, raw_tx = $5,
             authorization_nonce = $6, last_error = null, attempts = 0, next_attempt_at = now()
         where sweep_id = $1 and status = 'planned'",
        sweep_id,
        addr_key(from),
        i64::try_from(nonce).unwrap_or(i64::MAX),
        format!("{:#x}", signed.hash),
        signed.raw,
        authorization.map(|a| format!("{a:#x}"))
    )
    .execute(conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Ok(false);
    }
    tracing::info!(sweep_id, tx_hash = %signed.hash, nonce, "sweep transaction signed");
    Ok(true)
}

/// Whether the gas wallet can pay `cost`; if not, raises `gas.low` once per episode and the sweep waits.
async fn gas_available(
    state: &AppState,
    chain: &ChainClient,
    gas: Address,
    cost: U256,
) -> Result<bool, ChainError> {
    let balance = chain
        .provider
        .get_balance(gas)
        .await
        .map_err(|e| chain.rpc_error(e))?;
    let chain_id = i64::try_from(chain.id()).unwrap_or(i64::MAX);
    let mut tx = state.pool.begin().await?;
    let nonce = chain
        .provider
        .get_transaction_count(gas)
        .pending()
        .await
        .map_err(|e| chain.rpc_error(e))?;
    sqlx::query!(
        "insert into gas_wallet (chain_id, address, next_nonce) values ($1, $2, $3) on conflict do nothing",
        chain_id,
        addr_key(gas),
        i64::try_from(nonce).unwrap_or(i64::MAX)
    )
    .execute(&mut *tx)
    .await?;
    if balance >= cost {
        sqlx::query!(
            "update gas_wallet set low_since = null where chain_id = $1 and address = $2 and low_since is not null",
            chain_id,
            addr_key(gas)
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        return Ok(true);
    }
    let started = sqlx::query_scalar!(
        "update gas_wallet set low_since = now() where chain_id = $1 and address = $2 and low_since is null
         returning low_since",
        chain_id,
        addr_key(gas)
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(since) = started.flatten() {
        let data = json!({
            "chain_id": chain.id(),
            "chain": chain.name(),
            "address": addr_key(gas),
            "balance_wei": balance.to_string(),
            "required_wei": cost.to_string(),
            "message": format!(
                "The gas wallet {gas} on {} holds {balance} wei but the next sweep needs {cost} wei. Sweeps wait until it is funded; customer credits are not affected.",
                chain.name()
            ),
        });
        let key = format!("gas.low:{}:{}", chain.id(), since.timestamp());
        tell_vendor(&mut tx, "gas.low", &data, &key).await?;
        tracing::error!(chain = chain.name(), %gas, %balance, %cost, "gas wallet too low; sweeps wait");
    }
    tx.commit().await?;
    Ok(false)
}

/// Sends a signed transaction: reconciles by hash, then by nonce, then sends the stored bytes.
async fn broadcast(
    state: &AppState,
    chain: &ChainClient,
    sweep: &SweepRow,
) -> Result<bool, ChainError> {
    let (Some(hash), Some(raw), Some(from), Some(nonce)) = (
        sweep.tx_hash,
        sweep.raw_tx.as_ref(),
        sweep.from_address,
        sweep.nonce,
    ) else {
        return Err(ChainError::Invalid(format!(
            "sweep {} is signed without a transaction",
            sweep.sweep_id
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
            fail(state, chain, sweep.sweep_id, &format!("nonce {nonce} of {from} was used by another transaction; {hash} can never be mined")).await?;
            return Ok(true);
        }
        if let Err(e) = chain.provider.send_raw_transaction(raw).await {
            let message = chain.rpc_error(e).to_string();
            // The node may already have it (a send whose answer was lost).
            let again = chain
                .provider
                .get_transaction_by_hash(hash)
                .await
                .map_err(|e| chain.rpc_error(e))?;
            if again.is_none() {
                setback(state, chain, sweep.sweep_id, &message).await?;
                return Ok(false);
            }
        }
    }
    sqlx::query!(
        "update sweep set status = 'broadcast', broadcast_at = coalesce(broadcast_at, now()), last_error = null
         where sweep_id = $1 and status = 'signed'",
        sweep.sweep_id
    )
    .execute(&state.pool)
    .await?;
    tracing::info!(sweep_id = sweep.sweep_id, tx_hash = %hash, "sweep transaction broadcast");
    Ok(true)
}

/// Waits for the receipt at `head - confirmations`; finishes the step or fails the sweep.
async fn settle(
    state: &AppState,
    chain: &ChainClient,
    sweep: &SweepRow,
    safe: u64,
) -> Result<bool, ChainError> {
    let Some(hash) = sweep.tx_hash else {
        return Err(ChainError::Invalid(format!(
            "sweep {} is broadcast without a hash",
            sweep.sweep_id
        )));
    };
    let receipt = chain
        .provider
        .get_transaction_receipt(hash)
        .await
        .map_err(|e| chain.rpc_error(e))?;
    let Some(receipt) = receipt else {
        // Pending, or dropped by the node (e.g. after a reorg): reconcile like a signed one.
        let known = chain
            .provider
            .get_transaction_by_hash(hash)
            .await
            .map_err(|e| chain.rpc_error(e))?;
        if known.is_none() {
            sqlx::query!(
                "update sweep set status = 'signed' where sweep_id = $1 and status = 'broadcast'",
                sweep.sweep_id
            )
            .execute(&state.pool)
            .await?;
            return Ok(true);
        }
        return Ok(false);
    };
    let Some(block) = receipt.block_number else {
        return Ok(false);
    };
    if block > safe {
        return Ok(false);
    }
    let fee = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
    if !receipt.status() {
        // A relay that reverted because its authorization was already used (someone else relayed the
        // same signed authorization first) moved the funds all the same: the sweep is done.
        let relayed = match (sweep.method.as_str(), sweep.authorization) {
            ("eip3009", Some(nonce)) => {
                erc20::authorization_state(
                    chain,
                    sweep.token,
                    sweep.deposit,
                    nonce,
                    BlockId::number(safe),
                )
                .await?
            }
            _ => false,
        };
        if !relayed {
            fail(
                state,
                chain,
                sweep.sweep_id,
                &format!("transaction {hash} reverted"),
            )
            .await?;
            return Ok(true);
        }
        tracing::warn!(sweep_id = sweep.sweep_id, tx_hash = %hash,
            "relay reverted but its authorization was used: the funds reached the treasury");
    }
    if sweep.step == "topup" {
        sqlx::query!(
            "update sweep set step = 'sweep', status = 'planned', topup_tx_hash = tx_hash, from_address = null,
                 nonce = null, tx_hash = null, raw_tx = null, broadcast_at = null, next_attempt_at = now()
             where sweep_id = $1 and status = 'broadcast'",
            sweep.sweep_id
        )
        .execute(&state.pool)
        .await?;
        tracing::info!(sweep_id = sweep.sweep_id, tx_hash = %hash, "gas top-up confirmed");
        return Ok(true);
    }
    let dust = if sweep.method == "transfer" {
        Some(
            chain
                .provider
                .get_balance(sweep.deposit)
                .await
                .map_err(|e| chain.rpc_error(e))?,
        )
    } else {
        None
    };
    let mut tx = state.pool.begin().await?;
    let updated = sqlx::query!(
        "update sweep set status = 'confirmed', confirmed_at = now(), block_number = $2, gas_used = $3,
             fee_wei = $4, dust_wei = $5, raw_tx = null
         where sweep_id = $1 and status = 'broadcast'",
        sweep.sweep_id,
        i64::try_from(block).unwrap_or(i64::MAX),
        i64::try_from(receipt.gas_used).unwrap_or(i64::MAX),
        to_numeric(fee),
        dust.map(to_numeric)
    )
    .execute(&mut *tx)
    .await?;
    if updated.rows_affected() == 1 {
        let purchase = sqlx::query_scalar!(
            "select purchase_id from checkout where deposit_address = $1",
            addr_key(sweep.deposit)
        )
        .fetch_one(&mut *tx)
        .await?;
        if let Some(purchase) = purchase {
            crate::checkout::credit::charge_sweep_fees(
                &mut tx,
                state,
                crate::domain::ids::PurchaseId(purchase),
            )
            .await
            .map_err(|e| ChainError::Invalid(e.to_string()))?;
        }
    }
    tx.commit().await?;
    if let Some(dust) = dust.filter(|d| !d.is_zero()) {
        tracing::info!(sweep_id = sweep.sweep_id, dust_wei = %dust, "ETH dust left on the deposit address");
    }
    tracing::info!(sweep_id = sweep.sweep_id, tx_hash = %hash, gas_used = receipt.gas_used, "sweep confirmed");
    Ok(true)
}

/// Marks a sweep failed and tells the vendor (webhook and alert). The funds stay on the deposit
/// address; `vendor-server sweeps retry ID` plans it again.
async fn fail(
    state: &AppState,
    chain: &ChainClient,
    sweep_id: i64,
    error: &str,
) -> Result<(), ChainError> {
    let mut tx = state.pool.begin().await?;
    let row = sqlx::query!(
        "update sweep set status = 'failed', last_error = $2
         where sweep_id = $1 and status not in ('confirmed', 'failed')
         returning token_address, deposit_address, tx_hash",
        sweep_id,
        error
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(());
    };
    let data = json!({
        "sweep_id": sweep_id,
        "chain_id": chain.id(),
        "chain": chain.name(),
        "token_address": row.token_address,
        "deposit_address": row.deposit_address,
        "tx_hash": row.tx_hash,
        "error": error,
        "message": format!("Sweep {sweep_id} from {} failed: {error}. The funds stay on the deposit address; run `vendor-server sweeps retry {sweep_id}` after fixing the cause.", row.deposit_address),
    });
    let key = format!(
        "sweep.failed:{sweep_id}:{}",
        row.tx_hash.as_deref().unwrap_or_default()
    );
    tell_vendor(&mut tx, "sweep.failed", &data, &key).await?;
    tx.commit().await?;
    tracing::error!(sweep_id, error, "sweep failed");
    Ok(())
}

/// A vendor-side event: the signed webhook and an operator alert, each once per `key`.
async fn tell_vendor(
    conn: &mut sqlx::PgConnection,
    event_type: &str,
    data: &serde_json::Value,
    key: &str,
) -> Result<(), sqlx::Error> {
    for (channel, prefix) in [(Channel::Webhook, "webhook"), (Channel::Alert, "alert")] {
        let dedupe = format!("{prefix}:{key}");
        notify::enqueue(&mut *conn, channel, event_type, None, data, Some(&dedupe)).await?;
    }
    Ok(())
}

/// A sweep as listed by the CLI.
#[derive(Debug, Clone)]
pub struct SweepSummary {
    pub sweep_id: i64,
    pub chain_id: i64,
    pub token_symbol: String,
    pub deposit_address: String,
    pub amount_units: String,
    pub method: String,
    pub step: String,
    pub status: String,
    pub tx_hash: Option<String>,
    pub dust_wei: Option<String>,
    pub last_error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Sweeps, newest first (only unfinished ones with `pending`).
pub async fn list(
    pool: &PgPool,
    pending: bool,
    limit: i64,
) -> Result<Vec<SweepSummary>, sqlx::Error> {
    let rows = sqlx::query!(
        "select sweep_id, chain_id, token_symbol, deposit_address, amount_units, method, step, status, tx_hash,
                dust_wei, last_error, created_at
         from sweep where not $1 or status not in ('confirmed', 'failed')
         order by sweep_id desc limit $2",
        pending,
        limit
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| SweepSummary {
            sweep_id: r.sweep_id,
            chain_id: r.chain_id,
            token_symbol: r.token_symbol,
            deposit_address: r.deposit_address,
            amount_units: r.amount_units.to_string(),
            method: r.method,
            step: r.step,
            status: r.status,
            tx_hash: r.tx_hash,
            dust_wei: r.dust_wei.map(|d| d.to_string()),
            last_error: r.last_error,
            created_at: r.created_at,
        })
        .collect())
}

/// Plans a failed sweep again (the operator fixed the cause). Only failed sweeps: a signed or
/// broadcast one may still be mined, and retrying it could send twice.
pub async fn retry(pool: &PgPool, sweep_id: i64) -> Result<(), ChainError> {
    retry_in(&mut *pool.acquire().await?, sweep_id).await
}

/// [`retry`] inside the caller's transaction (the admin API writes its audit row with it).
pub async fn retry_in(conn: &mut sqlx::PgConnection, sweep_id: i64) -> Result<(), ChainError> {
    let status = sqlx::query_scalar!(
        "select status from sweep where sweep_id = $1 for update",
        sweep_id
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| ChainError::Invalid(format!("no sweep {sweep_id}")))?;
    if status != "failed" {
        return Err(ChainError::Invalid(format!(
            "sweep {sweep_id} is {status}; only failed sweeps can be retried"
        )));
    }
    sqlx::query!(
        "update sweep set status = 'planned', step = case when method = 'transfer' then 'topup' else 'sweep' end,
             from_address = null, nonce = null, tx_hash = null, raw_tx = null, broadcast_at = null,
             attempts = 0, next_attempt_at = now(), last_error = null
         where sweep_id = $1 and status = 'failed'",
        sweep_id
    )
    .execute(&mut *conn)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => ChainError::Invalid(format!(
            "another sweep of the same token and address is already running; sweep {sweep_id} is not needed"
        )),
        _ => ChainError::Db(e),
    })?;
    Ok(())
}

/// The gas wallet's balance on one chain (the `gas` CLI command).
pub async fn gas_balance(chain: &ChainClient, gas: Address) -> Result<U256, ChainError> {
    chain
        .provider
        .get_balance(gas)
        .await
        .map_err(|e| chain.rpc_error(e))
}

/// A failed sweep's transaction hash may be `None` before signing.
pub fn explorer_tx(chain: &ChainClient, hash: &str) -> String {
    if chain.config.explorer_url.is_empty() {
        hash.to_owned()
    } else {
        format!("{}/tx/{hash}", chain.config.explorer_url)
    }
}
