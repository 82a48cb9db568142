//! Batched sweeps (chains with `sweep_batch_size` > 1): up to that many EIP-3009 relays in ONE
//! transaction of the gas wallet, a Multicall3 `aggregate3` whose calls may each fail alone.
//!
//! The batch transaction keeps the sweeper's discipline on its own row (`sweep_batch`): its nonce is
//! taken under the gas wallet's row lock in the database transaction that stores its signed bytes
//! and moves every member sweep to `signed`; the bytes are broadcast after the commit, reconciled by
//! hash then by nonce after a crash, and replaced at the same nonce when stuck ([`replace`]). Each
//! member keeps its own row and is settled on its own: once the batch is mined at the chain's depth,
//! `authorizationState(deposit address, its authorization nonce)` says whether its relay happened
//! (confirmed) or not (failed, with the usual `sweep.failed` webhook and alert, retried by the
//! operator as any failed sweep). A relay that would fail already in simulation is left out of the
//! batch and backed off like a failing single sweep.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use super::*;
use crate::chain::erc20::IMulticall3;
use crate::chain::replace::{Mode, Replacement};

/// Batches signed per chain and pass at most (the rest waits for the next pass).
const MAX_BATCHES_PER_PASS: usize = 4;

/// Whether this chain relays its EIP-3009 sweeps in batches.
pub(super) fn batching(chain: &ChainClient) -> bool {
    chain.config.sweep_batch_size > 1
}

/// A planned sweep and its signed authorization, ready to go into a batch.
struct Member {
    sweep: SweepRow,
    authorization: B256,
    call: IMulticall3::Call3,
}

/// The `aggregate3` calldata of the members' relays. Signed with every call allowed to fail alone;
/// estimated with none allowed to fail (else the node's estimate is the gas at which every relay runs
/// out of gas and the batch still succeeds).
fn aggregate(members: &[Member], allow_failure: bool) -> Bytes {
    IMulticall3::aggregate3Call {
        calls: members
            .iter()
            .map(|m| IMulticall3::Call3 {
                allowFailure: allow_failure,
                ..m.call.clone()
            })
            .collect(),
    }
    .abi_encode()
    .into()
}

/// Signs new batches of this chain's planned EIP-3009 sweeps, under a per-chain claim. A lone
/// planned sweep is signed on its own (a batch of one costs more than a plain relay). Faults of one
/// sweep back that sweep off; an RPC fault ends this chain's batching for the pass.
pub(super) async fn sign_batches(cx: &Ctx<'_>, chain: &ChainClient) -> Result<usize, ChainError> {
    let chain_id = i64::try_from(chain.id()).unwrap_or(i64::MAX);
    let Some(claim) = Claim::try_take(cx.pool, "vendor_server.sweep_batch_sign", chain_id).await?
    else {
        return Ok(0);
    };
    let mut work = 0;
    let mut result = Ok(());
    for _ in 0..MAX_BATCHES_PER_PASS {
        match sign_one_batch(cx, chain).await {
            Ok(0) => break,
            Ok(n) => work += n,
            Err(e @ ChainError::Db(_)) => {
                result = Err(e);
                break;
            }
            Err(e) => {
                tracing::warn!(chain = chain.name(), error = %e, "batching sweeps failed; retrying next pass");
                break;
            }
        }
    }
    claim.release().await;
    result.map(|()| work)
}

/// Candidates: planned EIP-3009 sweeps that are due and need no re-planning, oldest first.
async fn candidates(cx: &Ctx<'_>, chain: &ChainClient) -> Result<Vec<i64>, ChainError> {
    let chain_id = i64::try_from(chain.id()).unwrap_or(i64::MAX);
    let limit = i64::try_from(chain.config.sweep_batch_size).unwrap_or(i64::MAX);
    Ok(sqlx::query_scalar!(
        "select sweep_id from sweep
         where chain_id = $1 and status = 'planned' and method = 'eip3009' and not replan and batch_id is null
           and next_attempt_at <= now()
         order by sweep_id limit $2",
        chain_id,
        limit
    )
    .fetch_all(cx.pool)
    .await?)
}

/// Signs and stores one batch (or one lone sweep). Returns the number of sweeps signed.
async fn sign_one_batch(cx: &Ctx<'_>, chain: &ChainClient) -> Result<usize, ChainError> {
    let ids = candidates(cx, chain).await?;
    if ids.len() == 1 {
        return sign_alone(cx, chain, ids[0]).await;
    }
    if ids.is_empty() {
        return Ok(0);
    }
    let keys = cx.chains.keys()?;
    let gas = cx.chains.gas().ok_or_else(|| {
        ChainError::NotConfigured("VENDOR_GAS_TANK_PRIVATE_KEY is not set".into())
    })?;
    let mut domains = HashMap::new();
    let mut members = Vec::with_capacity(ids.len());
    for id in ids {
        let sweep = load(cx.pool, id).await?;
        // The same checks as a single sweep's signing: a fault is this sweep's, not the batch's.
        let prepared = async {
            let depositor = keys.signer(sweep.deposit_index)?;
            if depositor.address() != sweep.deposit {
                return Err(ChainError::Wallet(format!(
                    "sweep {}: deposit index {} does not derive {} (was DEPOSIT_MNEMONIC changed?)",
                    sweep.sweep_id, sweep.deposit_index, sweep.deposit
                )));
            }
            let token = chain.token_by_address(sweep.token).ok_or_else(|| {
                ChainError::Invalid(format!(
                    "sweep {}: token no longer configured",
                    sweep.sweep_id
                ))
            })?;
            let domain = match domains.entry(sweep.token) {
                Entry::Occupied(known) => known.into_mut(),
                Entry::Vacant(new) => new.insert(erc20::eip712_domain(chain, token).await?),
            };
            authorize(&depositor, &sweep, domain)
        }
        .await;
        match prepared {
            Ok((authorization, input)) => members.push(Member {
                call: IMulticall3::Call3 {
                    target: sweep.token,
                    allowFailure: true,
                    callData: input,
                },
                sweep,
                authorization,
            }),
            Err(e @ ChainError::Db(_)) => return Err(e),
            Err(e) => setback(cx, chain, id, &e.to_string()).await?,
        }
    }
    // Relays that would fail now stay out (backed off like a failing single sweep).
    let simulated = simulate(chain, gas.address(), &members).await?;
    let mut kept = Vec::with_capacity(members.len());
    for (member, outcome) in members.into_iter().zip(simulated) {
        match outcome {
            Ok(()) => kept.push(member),
            Err(reason) => {
                setback(
                    cx,
                    chain,
                    member.sweep.sweep_id,
                    &format!("its relay would fail: {reason}"),
                )
                .await?;
            }
        }
    }
    let mut members = kept;
    if members.len() < 2 {
        return match members.pop() {
            Some(m) => sign_alone(cx, chain, m.sweep.sweep_id).await,
            None => Ok(0),
        };
    }
    // Within the chain's gas cap: shrink the batch until its estimate fits.
    let cap = chain.config.sweep_batch_gas_cap;
    let (input, gas_limit) = loop {
        let all_or_nothing = aggregate(&members, false);
        let gas_limit = estimate(
            chain,
            gas.address(),
            chain.config.multicall3,
            &all_or_nothing,
            U256::ZERO,
        )
        .await?;
        if gas_limit <= cap || members.len() == 1 {
            break (aggregate(&members, true), gas_limit);
        }
        let n = u64::try_from(members.len()).unwrap_or(u64::MAX);
        let fits = usize::try_from(cap.saturating_mul(n) / gas_limit.max(1))
            .unwrap_or(1)
            .clamp(1, members.len() - 1);
        members.truncate(fits);
    };
    if members.len() == 1 {
        return sign_alone(cx, chain, members[0].sweep.sweep_id).await;
    }
    let (max_fee, priority) = fees(chain).await?;
    let cost = U256::from(gas_limit) * U256::from(max_fee);
    if !gas_available(cx, chain, gas.address(), cost).await? {
        return Ok(0);
    }
    store_batch(cx, chain, &gas.signer, &members, |nonce| {
        sign_tx(
            &gas.signer,
            chain.id(),
            nonce,
            chain.config.multicall3,
            U256::ZERO,
            input.clone(),
            gas_limit,
            (max_fee, priority),
        )
    })
    .await
}

/// One planned sweep signed as a plain relay (the single-sweep path), under its claim.
async fn sign_alone(cx: &Ctx<'_>, chain: &ChainClient, sweep_id: i64) -> Result<usize, ChainError> {
    let Some(claim) = Claim::try_take(cx.pool, "vendor_server.sweep", sweep_id).await? else {
        return Ok(0);
    };
    let sweep = load(cx.pool, sweep_id).await;
    let result = match sweep {
        Ok(sweep) if sweep.due && sweep.status == "planned" => sign(cx, chain, &sweep).await,
        Ok(_) => Ok(false),
        Err(e) => Err(e),
    };
    claim.release().await;
    match result {
        Ok(signed) => Ok(usize::from(signed)),
        Err(e @ ChainError::Db(_)) => Err(e),
        Err(e) => {
            setback(cx, chain, sweep_id, &e.to_string()).await?;
            Ok(0)
        }
    }
}

/// Each member's relay simulated in one `aggregate3` call at the latest block: `Ok` when it would
/// succeed, else the reason (the revert string when there is one).
async fn simulate(
    chain: &ChainClient,
    from: Address,
    members: &[Member],
) -> Result<Vec<Result<(), String>>, ChainError> {
    let request = TransactionRequest::default()
        .from(from)
        .to(chain.config.multicall3)
        .input(TransactionInput::new(aggregate(members, true)));
    let out = chain
        .provider
        .call(request)
        .block(BlockId::latest())
        .await
        .map_err(|e| chain.rpc_error(format!("simulating a sweep batch failed: {e}")))?;
    let results = IMulticall3::aggregate3Call::abi_decode_returns(&out)
        .map_err(|e| chain.rpc_error(format!("aggregate3 returned garbage: {e}")))?;
    if results.len() != members.len() {
        return Err(chain.rpc_error(format!(
            "aggregate3 answered {} results for {} calls (is Multicall3 at {}?)",
            results.len(),
            members.len(),
            chain.config.multicall3
        )));
    }
    Ok(results
        .into_iter()
        .map(|r| {
            if r.success {
                Ok(())
            } else {
                Err(revert_reason(&r.returnData))
            }
        })
        .collect())
}

/// `Error(string)`'s message, else the raw bytes in hex.
fn revert_reason(data: &[u8]) -> String {
    use alloy::sol_types::{Revert, SolError};
    Revert::abi_decode(data).map_or_else(
        |_| format!("reverted (0x{})", hex::encode(data)),
        |r| r.reason,
    )
}

/// Allocates the gas wallet's next nonce under its row lock, signs the batch with it and stores it,
/// moving every member to `signed`, all in one database transaction. If any member was signed
/// elsewhere meanwhile, nothing is stored and no nonce is consumed.
async fn store_batch(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    signer: &PrivateKeySigner,
    members: &[Member],
    build: impl FnOnce(u64) -> Result<SignedTx, ChainError>,
) -> Result<usize, ChainError> {
    let address = signer.address();
    let chain_nonce = chain
        .provider
        .get_transaction_count(address)
        .pending()
        .await
        .map_err(|e| chain.rpc_error(e))?;
    let chain_id = i64::try_from(chain.id()).unwrap_or(i64::MAX);
    let ids: Vec<i64> = members.iter().map(|m| m.sweep.sweep_id).collect();
    let authorizations: Vec<String> = members
        .iter()
        .map(|m| format!("{:#x}", m.authorization))
        .collect();
    let mut tx = cx.pool.begin().await?;
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
    // Under the gas wallet's lock: every member must still be planned and in no batch.
    let still: i64 = sqlx::query_scalar!(
        r#"select count(*) as "n!" from (
               select 1 from sweep where sweep_id = any($1) and status = 'planned' and batch_id is null
                   and not replan
               for update) s"#,
        &ids
    )
    .fetch_one(&mut *tx)
    .await?;
    if usize::try_from(still).ok() != Some(ids.len()) {
        tracing::info!(
            chain = chain.name(),
            "sweeps of this batch were signed elsewhere; nothing done"
        );
        return Ok(0);
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
    let batch_id = sqlx::query_scalar!(
        "insert into sweep_batch (chain_id, from_address, nonce, tx_hash, raw_tx, max_cost_wei, size)
         values ($1, $2, $3, $4, $5, $6, $7) returning batch_id",
        chain_id,
        addr_key(address),
        i64::try_from(nonce).unwrap_or(i64::MAX),
        format!("{:#x}", signed.hash),
        signed.raw,
        to_numeric(signed.max_cost),
        i32::try_from(members.len()).unwrap_or(i32::MAX)
    )
    .fetch_one(&mut *tx)
    .await?;
    let updated = sqlx::query!(
        "update sweep s set status = 'signed', batch_id = $2, from_address = $3, nonce = $4, tx_hash = $5,
             raw_tx = null, authorization_nonce = m.auth_nonce, last_error = null, attempts = 0,
             next_attempt_at = now(), max_cost_wei = null, broadcast_block = null, replaced_tx_hashes = '{}',
             cancel_tx_hashes = '{}', cancelled = false, replacements = 0, stuck_at = null,
             operator_action = null, replan = false
         from unnest($1::bigint[], $6::text[]) as m(sweep_id, auth_nonce)
         where s.sweep_id = m.sweep_id and s.status = 'planned'",
        &ids,
        batch_id,
        addr_key(address),
        i64::try_from(nonce).unwrap_or(i64::MAX),
        format!("{:#x}", signed.hash),
        &authorizations
    )
    .execute(&mut *tx)
    .await?;
    if usize::try_from(updated.rows_affected()).ok() != Some(ids.len()) {
        // Rolled back with the nonce.
        return Ok(0);
    }
    tx.commit().await?;
    tracing::info!(batch_id, chain = chain.name(), sweeps = ids.len(), tx_hash = %signed.hash, nonce,
        "sweep batch signed");
    Ok(ids.len())
}

/// A batch row as the sweeper works on it.
#[derive(Clone)]
struct BatchRow {
    batch_id: i64,
    status: String,
    from: Address,
    nonce: u64,
    tx_hash: B256,
    raw_tx: Option<Vec<u8>>,
    due: bool,
    broadcast_block: Option<u64>,
    replaced: Vec<B256>,
    cancels: Vec<B256>,
    cancelled: bool,
    stuck: bool,
    operator_action: Option<String>,
    size: i32,
}

impl BatchRow {
    fn hashes(&self) -> Vec<B256> {
        std::iter::once(self.tx_hash)
            .chain(self.replaced.iter().copied())
            .chain(self.cancels.iter().copied())
            .collect()
    }
}

async fn load_batch(pool: &PgPool, batch_id: i64) -> Result<BatchRow, ChainError> {
    let r = sqlx::query!(
        r#"select batch_id, status, from_address, nonce, tx_hash, raw_tx, next_attempt_at <= now() as "due!",
                  broadcast_block, replaced_tx_hashes, cancel_tx_hashes, cancelled,
                  stuck_at is not null as "stuck!", operator_action, size
           from sweep_batch where batch_id = $1"#,
        batch_id
    )
    .fetch_one(pool)
    .await?;
    let bad = |what: &str| ChainError::Invalid(format!("sweep batch {batch_id}: bad {what}"));
    let hashes = |v: Vec<String>| v.iter().filter_map(|h| h.parse().ok()).collect();
    Ok(BatchRow {
        batch_id: r.batch_id,
        status: r.status,
        from: r.from_address.parse().map_err(|_| bad("from address"))?,
        nonce: u64::try_from(r.nonce).map_err(|_| bad("nonce"))?,
        tx_hash: r.tx_hash.parse().map_err(|_| bad("hash"))?,
        raw_tx: r.raw_tx,
        due: r.due,
        broadcast_block: r.broadcast_block.and_then(|b| u64::try_from(b).ok()),
        replaced: hashes(r.replaced_tx_hashes),
        cancels: hashes(r.cancel_tx_hashes),
        cancelled: r.cancelled,
        stuck: r.stuck,
        operator_action: r.operator_action,
        size: r.size,
    })
}

/// Moves every due unfinished batch of this chain one step on, each under its claim.
pub(super) async fn advance_batches(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    head: u64,
    safe: u64,
) -> Result<usize, ChainError> {
    let chain_id = i64::try_from(chain.id()).unwrap_or(i64::MAX);
    let due = sqlx::query_scalar!(
        "select batch_id from sweep_batch where chain_id = $1 and status in ('signed', 'broadcast')
             and next_attempt_at <= now()
         order by batch_id",
        chain_id
    )
    .fetch_all(cx.pool)
    .await?;
    let mut work = 0;
    for id in due {
        let Some(claim) = Claim::try_take(cx.pool, "vendor_server.sweep_batch", id).await? else {
            continue;
        };
        let result = advance_batch(cx, chain, id, head, safe).await;
        claim.release().await;
        match result {
            Ok(true) => work += 1,
            Ok(false) => {}
            Err(ChainError::Db(e)) => return Err(ChainError::Db(e)),
            Err(e) => batch_setback(cx, chain, id, &e.to_string()).await?,
        }
    }
    Ok(work)
}

async fn advance_batch(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    batch_id: i64,
    head: u64,
    safe: u64,
) -> Result<bool, ChainError> {
    let batch = load_batch(cx.pool, batch_id).await?;
    if !batch.due {
        return Ok(false);
    }
    match batch.status.as_str() {
        "signed" => broadcast_batch(cx, chain, &batch, head).await,
        "broadcast" => settle_batch(cx, chain, &batch, head, safe).await,
        _ => Ok(false),
    }
}

/// Marks the batch and its members broadcast.
async fn mark_broadcast(cx: &Ctx<'_>, batch: &BatchRow, head: u64) -> Result<(), ChainError> {
    let mut tx = cx.pool.begin().await?;
    sqlx::query!(
        "update sweep_batch set status = 'broadcast', broadcast_at = coalesce(broadcast_at, now()),
             last_error = null, broadcast_block = coalesce(broadcast_block, $2)
         where batch_id = $1 and status = 'signed'",
        batch.batch_id,
        i64::try_from(head).unwrap_or(i64::MAX)
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "update sweep set status = 'broadcast', broadcast_at = coalesce(broadcast_at, now()), last_error = null
         where batch_id = $1 and status = 'signed'",
        batch.batch_id
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Sends the batch's stored bytes: reconciles by hash, then by nonce, then sends.
async fn broadcast_batch(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    batch: &BatchRow,
    head: u64,
) -> Result<bool, ChainError> {
    let Some(raw) = batch.raw_tx.as_ref() else {
        return Err(ChainError::Invalid(format!(
            "sweep batch {} is signed without a transaction",
            batch.batch_id
        )));
    };
    let known = chain
        .provider
        .get_transaction_by_hash(batch.tx_hash)
        .await
        .map_err(|e| chain.rpc_error(e))?;
    if known.is_none() {
        let used = chain
            .provider
            .get_transaction_count(batch.from)
            .latest()
            .await
            .map_err(|e| chain.rpc_error(e))?;
        if used > batch.nonce {
            if replace::mined_among(chain, &batch.hashes())
                .await?
                .is_some()
            {
                mark_broadcast(cx, batch, head).await?;
                return Ok(true);
            }
            let why = format!(
                "nonce {} of {} was used by another transaction; batch transaction {} can never be mined",
                batch.nonce, batch.from, batch.tx_hash
            );
            fail_batch(cx, chain, batch.batch_id, &why).await?;
            return Ok(true);
        }
        let first_attempt = sqlx::query_scalar!(
            "update sweep_batch set broadcast_block = coalesce(broadcast_block, $2) where batch_id = $1
             returning broadcast_block",
            batch.batch_id,
            i64::try_from(head).unwrap_or(i64::MAX)
        )
        .fetch_one(cx.pool)
        .await?;
        if let Err(e) = chain.provider.send_raw_transaction(raw).await {
            let message = chain.rpc_error(e).to_string();
            let again = chain
                .provider
                .get_transaction_by_hash(batch.tx_hash)
                .await
                .map_err(|e| chain.rpc_error(e))?;
            if again.is_none() {
                let batch = BatchRow {
                    broadcast_block: first_attempt.and_then(|b| u64::try_from(b).ok()),
                    ..batch.clone()
                };
                if replace_batch_if_stuck(cx, chain, &batch, head).await? {
                    return Ok(true);
                }
                batch_setback(cx, chain, batch.batch_id, &message).await?;
                return Ok(false);
            }
        }
    }
    mark_broadcast(cx, batch, head).await?;
    tracing::info!(batch_id = batch.batch_id, tx_hash = %batch.tx_hash, "sweep batch broadcast");
    Ok(true)
}

/// A member sweep as settlement reads it.
struct Settling {
    sweep_id: i64,
    token: Address,
    deposit: Address,
    authorization: Option<B256>,
}

/// Once the batch (or one of its replacements) is mined at the chain's depth, settles each member by
/// its own `authorizationState`: used → confirmed (with its share of the gas); not used → failed.
async fn settle_batch(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    batch: &BatchRow,
    head: u64,
    safe: u64,
) -> Result<bool, ChainError> {
    let Some((hash, receipt)) = replace::mined_among(chain, &batch.hashes()).await? else {
        let known = chain
            .provider
            .get_transaction_by_hash(batch.tx_hash)
            .await
            .map_err(|e| chain.rpc_error(e))?;
        if known.is_none() {
            // Dropped by the node: reconciled and sent again like a signed one.
            let mut tx = cx.pool.begin().await?;
            sqlx::query!(
                "update sweep_batch set status = 'signed' where batch_id = $1 and status = 'broadcast'",
                batch.batch_id
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query!(
                "update sweep set status = 'signed' where batch_id = $1 and status = 'broadcast'",
                batch.batch_id
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            return Ok(true);
        }
        return replace_batch_if_stuck(cx, chain, batch, head).await;
    };
    let Some(block) = receipt.block_number else {
        return Ok(false);
    };
    if block > safe {
        return Ok(false);
    }
    let hash_text = format!("{hash:#x}");
    if batch.cancels.contains(&hash) || (hash == batch.tx_hash && batch.cancelled) {
        let why = format!(
            "cancelled by the operator: {hash} (a 0-value transfer at the same nonce) was mined; nothing moved"
        );
        sqlx::query!(
            "update sweep_batch set tx_hash = $2 where batch_id = $1",
            batch.batch_id,
            hash_text
        )
        .execute(cx.pool)
        .await?;
        fail_batch(cx, chain, batch.batch_id, &why).await?;
        return Ok(true);
    }
    let size = u64::try_from(batch.size).unwrap_or(1).max(1);
    let fee = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
    let gas_share = receipt.gas_used / size;
    let fee_share = fee / U256::from(size);
    let members = sqlx::query!(
        "select sweep_id, token_address, deposit_address, authorization_nonce from sweep
         where batch_id = $1 and status = 'broadcast' order by sweep_id",
        batch.batch_id
    )
    .fetch_all(cx.pool)
    .await?
    .into_iter()
    .map(|r| {
        let bad = || ChainError::Invalid(format!("sweep {}: bad address", r.sweep_id));
        Ok(Settling {
            sweep_id: r.sweep_id,
            token: r.token_address.parse().map_err(|_| bad())?,
            deposit: r.deposit_address.parse().map_err(|_| bad())?,
            authorization: r.authorization_nonce.and_then(|a| a.parse().ok()),
        })
    })
    .collect::<Result<Vec<_>, ChainError>>()?;
    let (mut confirmed, mut failed) = (0, 0);
    for m in members {
        let used = match m.authorization {
            Some(nonce) => {
                erc20::authorization_state(chain, m.token, m.deposit, nonce, BlockId::number(safe))
                    .await?
            }
            None => false,
        };
        if !used {
            let why = format!(
                "its transferWithAuthorization did not happen in batch transaction {hash} ({}): the funds stay on {}",
                if receipt.status() {
                    "its call failed"
                } else {
                    "the whole transaction reverted"
                },
                m.deposit
            );
            sqlx::query!(
                "update sweep set tx_hash = $2 where sweep_id = $1",
                m.sweep_id,
                hash_text
            )
            .execute(cx.pool)
            .await?;
            fail(cx, chain, m.sweep_id, &why).await?;
            failed += 1;
            continue;
        }
        let mut tx = cx.pool.begin().await?;
        let updated = sqlx::query!(
            "update sweep set status = 'confirmed', confirmed_at = now(), block_number = $2, gas_used = $3,
                 fee_wei = $4, raw_tx = null, tx_hash = $5, stuck_at = null, operator_action = null
             where sweep_id = $1 and status = 'broadcast'",
            m.sweep_id,
            i64::try_from(block).unwrap_or(i64::MAX),
            i64::try_from(gas_share).unwrap_or(i64::MAX),
            to_numeric(fee_share),
            hash_text
        )
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 1 {
            let purchase = sqlx::query_scalar!(
                "select purchase_id from checkout where deposit_address = $1",
                addr_key(m.deposit)
            )
            .fetch_one(&mut *tx)
            .await?;
            if let Some(purchase) = purchase {
                crate::billing::ledger::charge_sweep_fees(
                    &mut tx,
                    crate::domain::ids::PurchaseId(purchase),
                    |c| cx.chains.sweep_fee(c),
                )
                .await?;
            }
        }
        tx.commit().await?;
        confirmed += 1;
    }
    sqlx::query!(
        "update sweep_batch set status = 'confirmed', confirmed_at = now(), block_number = $2, gas_used = $3,
             fee_wei = $4, raw_tx = null, tx_hash = $5, stuck_at = null, operator_action = null
         where batch_id = $1 and status = 'broadcast'",
        batch.batch_id,
        i64::try_from(block).unwrap_or(i64::MAX),
        i64::try_from(receipt.gas_used).unwrap_or(i64::MAX),
        to_numeric(fee),
        hash_text
    )
    .execute(cx.pool)
    .await?;
    tracing::info!(batch_id = batch.batch_id, tx_hash = %hash, gas_used = receipt.gas_used, confirmed, failed,
        "sweep batch settled");
    Ok(true)
}

/// Fails the batch and every unfinished member (each with its `sweep.failed` webhook and alert).
async fn fail_batch(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    batch_id: i64,
    error: &str,
) -> Result<(), ChainError> {
    let members = sqlx::query_scalar!(
        "select sweep_id from sweep where batch_id = $1 and status in ('signed', 'broadcast')
         order by sweep_id",
        batch_id
    )
    .fetch_all(cx.pool)
    .await?;
    for id in members {
        fail(cx, chain, id, error).await?;
    }
    sqlx::query!(
        "update sweep_batch set status = 'failed', last_error = $2
         where batch_id = $1 and status in ('signed', 'broadcast')",
        batch_id,
        error
    )
    .execute(cx.pool)
    .await?;
    tracing::error!(batch_id, error, "sweep batch failed");
    Ok(())
}

/// A fault of the batch transaction (it keeps its nonce): retried with backoff, at most
/// [`REFUSED_RETRY_SECS`] apart (a replacement is due after blocks, not attempts); after
/// `MAX_ATTEMPTS` the operator gets one `sweep.stuck` alert.
async fn batch_setback(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    batch_id: i64,
    error: &str,
) -> Result<(), ChainError> {
    let attempts = sqlx::query_scalar!(
        "update sweep_batch set attempts = attempts + 1, last_error = $2,
             next_attempt_at = now() + make_interval(secs => least(5 * power(3, attempts), $3))
         where batch_id = $1 and status in ('signed', 'broadcast')
         returning attempts",
        batch_id,
        error,
        REFUSED_RETRY_SECS
    )
    .fetch_optional(cx.pool)
    .await?;
    let Some(attempts) = attempts else {
        return Ok(());
    };
    tracing::warn!(
        batch_id,
        error,
        attempts,
        "sweep batch step failed; retrying later"
    );
    if attempts == MAX_ATTEMPTS {
        let alert = notify::events::Alert {
            subject: format!("Sweep batch {batch_id} on {} is stuck", chain.name()),
            text: format!(
                "Sweep batch {batch_id} on {} holds a signed transaction that could not be sent or settled after \
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
            Some(&format!("alert:sweep.stuck:batch:{batch_id}")),
        )
        .await?;
        tracing::error!(batch_id, error, "sweep batch stuck; operator alerted");
    }
    Ok(())
}

/// Longest wait before a batch whose bytes the node refused is looked at again.
const REFUSED_RETRY_SECS: f64 = 30.0;

/// The batch's transaction is not mined: replaced at the same nonce once due (or at the operator's
/// request on one of its sweeps), or marked stuck at the chain's cap. Returns whether anything changed.
async fn replace_batch_if_stuck(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    batch: &BatchRow,
    head: u64,
) -> Result<bool, ChainError> {
    let mode = match batch.operator_action.as_deref() {
        Some("bump") => Mode::Bump,
        Some("cancel") => Mode::Cancel,
        _ => Mode::Auto,
    };
    let Some(raw) = batch.raw_tx.as_deref() else {
        return Ok(false);
    };
    let Some(sent_at) = batch.broadcast_block else {
        sqlx::query!(
            "update sweep_batch set broadcast_block = $2 where batch_id = $1 and broadcast_block is null",
            batch.batch_id,
            i64::try_from(head).unwrap_or(i64::MAX)
        )
        .execute(cx.pool)
        .await?;
        return Ok(false);
    };
    if mode == Mode::Auto && batch.stuck {
        return Ok(false);
    }
    let gas = cx.chains.gas().ok_or_else(|| {
        ChainError::NotConfigured("VENDOR_GAS_TANK_PRIVATE_KEY is not set".into())
    })?;
    if gas.address() != batch.from {
        return Err(ChainError::Wallet(format!(
            "sweep batch {}: no key for {} (was the gas key changed?)",
            batch.batch_id, batch.from
        )));
    }
    let estimate = estimated_fees(chain).await?;
    let new = match replace::replacement(
        chain,
        &gas.signer,
        raw,
        sent_at,
        head,
        estimate,
        mode,
        None,
    )? {
        Replacement::NotDue => return Ok(false),
        Replacement::AtCap { max_fee_per_gas } => {
            let why = format!(
                "its max fee of {max_fee_per_gas} wei per gas reached the chain's max_fee_gwei ({})",
                chain.config.max_fee_gwei
            );
            mark_batch_stuck(cx, chain, batch, batch.tx_hash, &why).await?;
            return Ok(true);
        }
        Replacement::Signed(new) => new,
    };
    // Stored before it is sent: the row knows every hash at this nonce.
    let mut tx = cx.pool.begin().await?;
    let stored = sqlx::query!(
        "update sweep_batch set
             replaced_tx_hashes = case when cancelled then replaced_tx_hashes else replaced_tx_hashes || tx_hash end,
             cancel_tx_hashes = case when cancelled then cancel_tx_hashes || tx_hash else cancel_tx_hashes end,
             tx_hash = $3, raw_tx = $4, max_cost_wei = $5, broadcast_block = $6, replacements = replacements + 1,
             cancelled = cancelled or $7, operator_action = null,
             stuck_at = case when $8 then stuck_at else null end
         where batch_id = $1 and tx_hash = $2 and status in ('signed', 'broadcast')",
        batch.batch_id,
        format!("{:#x}", batch.tx_hash),
        format!("{:#x}", new.hash),
        new.raw,
        to_numeric(new.max_cost),
        i64::try_from(head).unwrap_or(i64::MAX),
        mode == Mode::Cancel,
        mode == Mode::Auto,
    )
    .execute(&mut *tx)
    .await?;
    if stored.rows_affected() != 1 {
        return Ok(false);
    }
    sqlx::query!(
        "update sweep set tx_hash = $2, replacements = replacements + 1, operator_action = null
         where batch_id = $1 and status in ('signed', 'broadcast')",
        batch.batch_id,
        format!("{:#x}", new.hash)
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if let Err(e) = chain.provider.send_raw_transaction(&new.raw).await {
        let message = chain.rpc_error(e).to_string();
        let known = chain
            .provider
            .get_transaction_by_hash(new.hash)
            .await
            .map_err(|e| chain.rpc_error(e))?;
        if known.is_none() {
            // Refused: the old transaction stays current; the refused hash is kept among the
            // earlier ones (a lost answer may hide a send that worked).
            let new_is_cancel = batch.cancelled || mode == Mode::Cancel;
            let mut tx = cx.pool.begin().await?;
            sqlx::query!(
                "update sweep_batch set tx_hash = $2, raw_tx = $3, max_cost_wei = $4, cancelled = $5,
                     replacements = replacements - 1,
                     replaced_tx_hashes = array_remove(replaced_tx_hashes, $2)
                         || case when $7 then '{}'::text[] else array[$6] end,
                     cancel_tx_hashes = array_remove(cancel_tx_hashes, $2)
                         || case when $7 then array[$6] else '{}'::text[] end
                 where batch_id = $1 and tx_hash = $6",
                batch.batch_id,
                format!("{:#x}", batch.tx_hash),
                raw,
                to_numeric(replace::max_cost(&replace::decode(raw)?)),
                batch.cancelled,
                format!("{:#x}", new.hash),
                new_is_cancel,
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query!(
                "update sweep set tx_hash = $2, replacements = greatest(replacements - 1, 0)
                 where batch_id = $1 and status in ('signed', 'broadcast')",
                batch.batch_id,
                format!("{:#x}", batch.tx_hash)
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            let why = format!("the node refused its replacement: {message}");
            mark_batch_stuck(cx, chain, batch, batch.tx_hash, &why).await?;
            return Ok(true);
        }
    }
    mark_broadcast(cx, batch, head).await?;
    tracing::warn!(batch_id = batch.batch_id, nonce = batch.nonce, old = %batch.tx_hash, new = %new.hash,
        max_fee_per_gas = new.max_fee_per_gas, ?mode, "stuck sweep batch transaction replaced at the same nonce");
    Ok(true)
}

/// Marks the batch's transaction stuck and tells the vendor once per (batch, nonce): `tx.stuck`.
async fn mark_batch_stuck(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    batch: &BatchRow,
    hash: B256,
    why: &str,
) -> Result<(), ChainError> {
    let mut tx = cx.pool.begin().await?;
    let members = sqlx::query_scalar!(
        "update sweep set stuck_at = coalesce(stuck_at, now()), operator_action = null
         where batch_id = $1 and status in ('signed', 'broadcast') returning sweep_id",
        batch.batch_id
    )
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query!(
        "update sweep_batch set stuck_at = coalesce(stuck_at, now()), operator_action = null, last_error = $2
         where batch_id = $1",
        batch.batch_id,
        format!("transaction {hash:#x} is not mined: {why}")
    )
    .execute(&mut *tx)
    .await?;
    let nonce = batch.nonce;
    let data = json!({
        "kind": "sweep_batch",
        "batch_id": batch.batch_id,
        "sweep_ids": members,
        "chain_id": chain.id(),
        "chain": chain.name(),
        "from_address": addr_key(batch.from),
        "nonce": nonce,
        "tx_hash": format!("{hash:#x}"),
        "reason": why,
        "message": format!(
            "Sweep batch {} on {} ({} sweeps): transaction {hash:#x} (nonce {nonce}) is not mined and {why}. Later transactions of the gas wallet wait behind it. Bump or cancel it through any of its sweeps (POST /v1/admin/sweeps/{{id}}/bump or /cancel), or wait for fees to fall.",
            batch.batch_id,
            chain.name(),
            batch.size,
        ),
    });
    let key = format!("tx.stuck:sweep_batch:{}:{nonce}", batch.batch_id);
    tell_vendor(&mut tx, "tx.stuck", &data, &key).await?;
    tx.commit().await?;
    tracing::error!(batch_id = batch.batch_id, nonce, %hash, why, "sweep batch transaction stuck; operator alerted");
    Ok(())
}
