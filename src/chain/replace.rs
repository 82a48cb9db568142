//! Replacing stuck transactions (SPEC §9 "Chains that recover by themselves"). A broadcast EIP-1559
//! transaction that is still not mined `replace_after_blocks` after it was sent is re-signed with the
//! same nonce and both fees raised 25 % (to at least the node's current estimate), up to the chain's
//! `max_fee_gwei`. At the cap the caller raises one `tx.stuck` alert; the operator may then bump past
//! the cap or cancel (a 0-value transfer to the signer itself at that nonce).
//!
//! These functions work on any stored transaction row, whoever keeps it (sweeps, gas top-ups, refund
//! payouts): its signed bytes, the block it was broadcast at and its signer. The nonce never changes,
//! so a transaction and its replacements can never both be mined; the row keeps every hash it signed
//! at that nonce and settles on whichever one [`mined_among`] finds.

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::{Decodable2718, Encodable2718};
use alloy::network::TxSignerSync;
use alloy::primitives::{B256, Bytes, TxKind, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;

use super::{ChainClient, ChainError};

/// Raise of both fees per replacement, in percent.
pub const BUMP_PCT: u128 = 25;
/// The smallest raise a node accepts for a replacement (geth's price bump), in percent.
const MIN_RAISE_PCT: u128 = 10;
/// Gas of a plain ETH transfer (a cancellation).
const TRANSFER_GAS: u64 = 21_000;
const GWEI: u128 = 1_000_000_000;

/// A signed EIP-1559 transaction as stored on its row.
#[derive(Debug, Clone)]
pub struct SignedTx {
    pub raw: Vec<u8>,
    pub hash: B256,
    pub nonce: u64,
    pub max_fee_per_gas: u128,
    /// The most it can cost its signer: gas limit × max fee + value.
    pub max_cost: U256,
}

/// What replacing asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The server's own replacement: only once due, never above the chain's `max_fee_gwei`.
    Auto,
    /// The operator's bump: now, past the cap if need be.
    Bump,
    /// The operator's cancellation: a 0-value transfer to the signer at the same nonce, now.
    Cancel,
}

/// The outcome of [`replacement`].
#[derive(Debug)]
pub enum Replacement {
    /// Broadcast fewer than `replace_after_blocks` ago.
    NotDue,
    /// The fees cannot be raised enough (the chain's cap, or what the signer can pay).
    AtCap { max_fee_per_gas: u128 },
    /// Sign-ready: store it (keeping the old hash), then send it.
    Signed(SignedTx),
}

/// The chain's cap on the max fee per gas, in wei.
pub fn max_fee_cap(chain: &ChainClient) -> u128 {
    u128::from(chain.config.max_fee_gwei).saturating_mul(GWEI)
}

/// Whether a transaction at `max_fee_per_gas` is at the chain's cap: the smallest raise a node
/// accepts for a replacement would pass `max_fee_gwei`, so only an operator's bump replaces it.
pub fn at_fee_cap(chain: &ChainClient, max_fee_per_gas: u128) -> bool {
    raised(max_fee_per_gas, MIN_RAISE_PCT) > max_fee_cap(chain)
}

/// Fees for a new transaction: the node's estimate, never above the chain's cap.
pub fn capped(chain: &ChainClient, (max_fee, priority): (u128, u128)) -> (u128, u128) {
    let max_fee = max_fee.min(max_fee_cap(chain));
    (max_fee, priority.min(max_fee))
}

/// The EIP-1559 transaction inside stored signed bytes.
pub fn decode(raw: &[u8]) -> Result<TxEip1559, ChainError> {
    let envelope = TxEnvelope::decode_2718(&mut &raw[..])
        .map_err(|e| ChainError::Invalid(format!("stored transaction does not decode: {e}")))?;
    match envelope {
        TxEnvelope::Eip1559(signed) => Ok(signed.tx().clone()),
        other => Err(ChainError::Invalid(format!(
            "stored transaction is of type {:?}, not EIP-1559",
            other.tx_type()
        ))),
    }
}

/// The most a transaction can cost its signer.
pub fn max_cost(tx: &TxEip1559) -> U256 {
    U256::from(tx.gas_limit) * U256::from(tx.max_fee_per_gas) + tx.value
}

/// Signs an EIP-1559 transaction.
pub fn sign(signer: &PrivateKeySigner, mut tx: TxEip1559) -> Result<SignedTx, ChainError> {
    let signature = signer
        .sign_transaction_sync(&mut tx)
        .map_err(|e| ChainError::Wallet(format!("signing failed: {e}")))?;
    let cost = max_cost(&tx);
    let (nonce, max_fee) = (tx.nonce, tx.max_fee_per_gas);
    let envelope = TxEnvelope::from(tx.into_signed(signature));
    Ok(SignedTx {
        raw: envelope.encoded_2718(),
        hash: *envelope.tx_hash(),
        nonce,
        max_fee_per_gas: max_fee,
        max_cost: cost,
    })
}

fn raised(fee: u128, pct: u128) -> u128 {
    fee.saturating_mul(100 + pct).div_ceil(100)
}

/// The replacement of a broadcast transaction (`raw`, sent at `broadcast_block`), or why not.
/// `estimate` is the node's current (max fee, priority fee); `affordable` what the signer can pay
/// in all (a deposit address's ETH), `None` for the gas wallet.
#[allow(clippy::too_many_arguments)]
pub fn replacement(
    chain: &ChainClient,
    signer: &PrivateKeySigner,
    raw: &[u8],
    broadcast_block: u64,
    head: u64,
    estimate: (u128, u128),
    mode: Mode,
    affordable: Option<U256>,
) -> Result<Replacement, ChainError> {
    let old = decode(raw)?;
    if mode == Mode::Auto
        && head < broadcast_block.saturating_add(chain.config.replace_after_blocks)
    {
        return Ok(Replacement::NotDue);
    }
    let mut tx = old.clone();
    if mode == Mode::Cancel {
        tx.to = TxKind::Call(signer.address());
        tx.value = U256::ZERO;
        tx.input = Bytes::new();
        tx.gas_limit = TRANSFER_GAS;
        tx.access_list = Default::default();
    }
    let mut max_fee = raised(old.max_fee_per_gas, BUMP_PCT).max(estimate.0);
    if mode == Mode::Auto {
        max_fee = max_fee.min(max_fee_cap(chain));
    }
    if let Some(have) = affordable {
        let per_gas = have.saturating_sub(tx.value) / U256::from(tx.gas_limit.max(1));
        max_fee = max_fee.min(u128::try_from(per_gas).unwrap_or(u128::MAX));
    }
    let priority = raised(old.max_priority_fee_per_gas, BUMP_PCT)
        .max(estimate.1)
        .min(max_fee);
    if max_fee < raised(old.max_fee_per_gas, MIN_RAISE_PCT)
        || priority < raised(old.max_priority_fee_per_gas, MIN_RAISE_PCT)
    {
        return Ok(Replacement::AtCap {
            max_fee_per_gas: old.max_fee_per_gas,
        });
    }
    tx.max_fee_per_gas = max_fee;
    tx.max_priority_fee_per_gas = priority;
    Ok(Replacement::Signed(sign(signer, tx)?))
}

/// The first of `hashes` the node has a receipt for (a transaction and its replacements share one
/// nonce: at most one of them is ever mined).
pub async fn mined_among(
    chain: &ChainClient,
    hashes: &[B256],
) -> Result<Option<(B256, TransactionReceipt)>, ChainError> {
    for hash in hashes {
        let receipt = chain
            .provider
            .get_transaction_receipt(*hash)
            .await
            .map_err(|e| chain.rpc_error(e))?;
        if let Some(receipt) = receipt.filter(|r| r.block_number.is_some()) {
            return Ok(Some((*hash, receipt)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_round_up() {
        assert_eq!(raised(100, 25), 125);
        assert_eq!(raised(1, 25), 2);
        assert_eq!(raised(0, 25), 0);
        assert_eq!(raised(1_000_000_001, 10), 1_100_000_002);
    }
}
