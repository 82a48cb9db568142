//! Signing: the planned sweep's transaction (an EIP-3009 relay for USDC, a gas top-up then `transfer`
//! for tokens without it), fees and gas estimates, the nonce taken under the gas wallet's row lock in
//! the same transaction that stores the signed bytes, and the low-gas wait.

use super::*;

pub(super) use crate::chain::replace::SignedTx;

#[allow(clippy::too_many_arguments)]
pub(super) fn sign_tx(
    signer: &PrivateKeySigner,
    chain_id: u64,
    nonce: u64,
    to: Address,
    value: U256,
    input: Bytes,
    gas_limit: u64,
    fees: (u128, u128),
) -> Result<SignedTx, ChainError> {
    let tx = TxEip1559 {
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
    replace::sign(signer, tx)
}

/// The node's (max fee per gas, priority fee per gas), unbounded.
pub(super) async fn estimated_fees(chain: &ChainClient) -> Result<(u128, u128), ChainError> {
    let estimate = chain
        .provider
        .estimate_eip1559_fees()
        .await
        .map_err(|e| chain.rpc_error(e))?;
    Ok((estimate.max_fee_per_gas, estimate.max_priority_fee_per_gas))
}

/// (max fee per gas, priority fee per gas) for a new transaction, never above `max_fee_gwei`.
pub(super) async fn fees(chain: &ChainClient) -> Result<(u128, u128), ChainError> {
    Ok(replace::capped(chain, estimated_fees(chain).await?))
}

pub(super) async fn estimate(
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

/// A fresh EIP-3009 authorization moving the sweep's amount from its deposit address to the
/// treasury, signed (EIP-712) by the deposit key: its random nonce and the
/// `transferWithAuthorization` calldata anyone may relay.
pub(super) fn authorize(
    depositor: &PrivateKeySigner,
    sweep: &SweepRow,
    domain: &alloy::sol_types::Eip712Domain,
) -> Result<(B256, Bytes), ChainError> {
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
        .sign_typed_data_sync(&message, domain)
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
    Ok((nonce, input))
}

/// Signs the current step and stores it (nonce allocated under the signer's row lock).
pub(super) async fn sign(
    cx: &Ctx<'_>,
    chain: &ChainClient,
    sweep: &SweepRow,
) -> Result<bool, ChainError> {
    let keys = cx.chains.keys()?;
    let gas = cx.chains.gas().ok_or_else(|| {
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
            let (nonce, input) = authorize(&depositor, sweep, &domain)?;
            let gas_limit = estimate(chain, gas.address(), sweep.token, &input, U256::ZERO).await?;
            let cost = U256::from(gas_limit) * U256::from(max_fee);
            if !gas_available(cx, chain, gas.address(), cost).await? {
                return Ok(false);
            }
            store_gas_wallet_tx(cx, chain, sweep, &gas.signer, Some(nonce), |tx_nonce| {
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
            let have = spendable(cx, chain, sweep.deposit).await?;
            if have >= need {
                // Enough ETH is already there (an earlier top-up's dust): no top-up.
                sqlx::query!(
                    "update sweep set step = 'sweep' where sweep_id = $1 and status = 'planned'",
                    sweep.sweep_id
                )
                .execute(cx.pool)
                .await?;
                return Ok(true);
            }
            let value = need - have;
            let cost = value + U256::from(TRANSFER_GAS) * U256::from(max_fee);
            if !gas_available(cx, chain, gas.address(), cost).await? {
                return Ok(false);
            }
            sqlx::query!(
                "update sweep set topup_wei = $2 where sweep_id = $1",
                sweep.sweep_id,
                to_numeric(value)
            )
            .execute(cx.pool)
            .await?;
            store_gas_wallet_tx(cx, chain, sweep, &gas.signer, None, |nonce| {
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
            let have = spendable(cx, chain, sweep.deposit).await?;
            // Never ask for more than the address holds (the fee market may have moved).
            let affordable =
                u128::try_from(have / U256::from(gas_limit.max(1))).unwrap_or(u128::MAX);
            if affordable == 0 {
                sqlx::query!(
                    "update sweep set step = 'topup' where sweep_id = $1 and status = 'planned'",
                    sweep.sweep_id
                )
                .execute(cx.pool)
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
            let mut tx = cx.pool.begin().await?;
            // One signer per deposit address at a time (two tokens on one address), and past every
            // nonce this address has signed and not yet sent or seen mined: the node's pending count
            // does not know a transaction that is signed but not broadcast.
            sqlx::query!(
                "select pg_advisory_xact_lock(hashtext('vendor_server.signer:' || $1))",
                addr_key(sweep.deposit)
            )
            .execute(&mut *tx)
            .await?;
            let taken = sqlx::query_scalar!(
                "select max(nonce) + 1 from sweep
                 where chain_id = $1 and from_address = $2 and status in ('signed', 'broadcast')",
                i64::try_from(chain.id()).unwrap_or(i64::MAX),
                addr_key(sweep.deposit)
            )
            .fetch_one(&mut *tx)
            .await?;
            let nonce = taken
                .and_then(|n| u64::try_from(n).ok())
                .unwrap_or_default()
                .max(chain_nonce);
            let signed = sign_tx(
                &depositor,
                chain.id(),
                nonce,
                sweep.token,
                U256::ZERO,
                input,
                gas_limit,
                (max_fee, priority),
            )?;
            let stored =
                store_signed(&mut tx, sweep.sweep_id, sweep.deposit, nonce, &signed, None).await?;
            if stored {
                tx.commit().await?;
            }
            Ok(stored)
        }
    }
}

/// A deposit address's ETH less what its own transactions in flight (another token's transfer) may
/// still cost.
async fn spendable(cx: &Ctx<'_>, chain: &ChainClient, owner: Address) -> Result<U256, ChainError> {
    let balance = chain
        .provider
        .get_balance(owner)
        .await
        .map_err(|e| chain.rpc_error(e))?;
    let mined = chain
        .provider
        .get_transaction_count(owner)
        .latest()
        .await
        .map_err(|e| chain.rpc_error(e))?;
    let chain_id = i64::try_from(chain.id()).unwrap_or(i64::MAX);
    let in_flight = in_flight_cost(cx.pool, chain_id, owner, mined).await?;
    Ok(balance.saturating_sub(in_flight))
}

/// Allocates the gas wallet's next nonce under its row lock, signs with it and stores the signed
/// transaction, all in one database transaction. Broadcasting happens after the commit.
pub(super) async fn store_gas_wallet_tx(
    cx: &Ctx<'_>,
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

pub(super) async fn store_signed(
    conn: &mut sqlx::PgConnection,
    sweep_id: i64,
    from: Address,
    nonce: u64,
    signed: &SignedTx,
    authorization: Option<B256>,
) -> Result<bool, ChainError> {
    let updated = sqlx::query!(
        "update sweep set status = 'signed', from_address = $2, nonce = $3, tx_hash = $4, raw_tx = $5,
             authorization_nonce = $6, last_error = null, attempts = 0, next_attempt_at = now(),
             max_cost_wei = $7, broadcast_block = null, replaced_tx_hashes = '{}', cancel_tx_hashes = '{}',
             cancelled = false, replacements = 0, stuck_at = null, operator_action = null, replan = false
         where sweep_id = $1 and status = 'planned'",
        sweep_id,
        addr_key(from),
        i64::try_from(nonce).unwrap_or(i64::MAX),
        format!("{:#x}", signed.hash),
        signed.raw,
        authorization.map(|a| format!("{a:#x}")),
        to_numeric(signed.max_cost)
    )
    .execute(conn)
    .await?;
    if updated.rows_affected() != 1 {
        return Ok(false);
    }
    tracing::info!(sweep_id, tx_hash = %signed.hash, nonce, "sweep transaction signed");
    Ok(true)
}

/// Whether the gas wallet can pay `cost` on top of every transaction it has in flight (signed or
/// broadcast, not yet mined: each at its maximum cost, gas limit × max fee + value); if not, raises
/// `gas.low` once per episode and the sweep waits.
pub(super) async fn gas_available(
    cx: &Ctx<'_>,
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
    let mined = chain
        .provider
        .get_transaction_count(gas)
        .latest()
        .await
        .map_err(|e| chain.rpc_error(e))?;
    let in_flight = in_flight_cost(cx.pool, chain_id, gas, mined).await?;
    let need = cost.saturating_add(in_flight);
    let mut tx = cx.pool.begin().await?;
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
    if balance >= need {
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
            "required_wei": need.to_string(),
            "in_flight_wei": in_flight.to_string(),
            "message": format!(
                "The gas wallet {gas} on {} holds {balance} wei but the next sweep needs {cost} wei on top of {in_flight} wei its transactions in flight may still cost. Sweeps wait until it is funded; customer credits are not affected.",
                chain.name()
            ),
        });
        let key = format!("gas.low:{}:{}", chain.id(), since.timestamp());
        tell_vendor(&mut tx, "gas.low", &data, &key).await?;
        tracing::error!(chain = chain.name(), %gas, %balance, %cost, %in_flight, "gas wallet too low; sweeps wait");
    }
    tx.commit().await?;
    Ok(false)
}

/// The most the transactions `from` has signed and not yet seen mined (nonce at or above `mined`,
/// the node's latest nonce) can still cost it: its sweeps and gas top-ups, and its refund payouts
/// (the payout wallet may be the gas wallet), each at gas limit × max fee + value.
pub async fn in_flight_cost(
    pool: &PgPool,
    chain_id: i64,
    from: Address,
    mined: u64,
) -> Result<U256, ChainError> {
    // Batched sweeps carry no cost of their own: their batch's transaction does.
    let total = sqlx::query_scalar!(
        r#"select coalesce((select sum(max_cost_wei) from sweep
                            where chain_id = $1 and from_address = $2 and status in ('signed', 'broadcast')
                              and nonce >= $3 and batch_id is null), 0)
                + coalesce((select sum(max_cost_wei) from sweep_batch
                            where chain_id = $1 and from_address = $2 and status in ('signed', 'broadcast')
                              and nonce >= $3), 0)
                + coalesce((select sum(gas_limit::numeric * max_fee_per_gas) from refund
                            where chain_id = $1 and from_address = $2 and status = 'paying'
                              and nonce >= $3), 0) as "total!""#,
        chain_id,
        addr_key(from),
        i64::try_from(mined).unwrap_or(i64::MAX)
    )
    .fetch_one(pool)
    .await?;
    Ok(from_numeric(&total).unwrap_or(U256::MAX))
}
