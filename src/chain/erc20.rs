//! Solidity bindings: ERC-20, EIP-3009 `transferWithAuthorization` (EIP-712 typed data) and Multicall3.

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::Provider;
use alloy::rpc::types::{BlockId, TransactionInput, TransactionRequest};
use alloy::sol;
use alloy::sol_types::{Eip712Domain, SolCall, SolEvent};

use super::{ChainClient, ChainError};

sol! {
    /// ERC-20 plus the EIP-3009 and EIP-712 metadata calls USDC has.
    interface IERC20 {
        event Transfer(address indexed from, address indexed to, uint256 value);
        function balanceOf(address owner) external view returns (uint256);
        function transfer(address to, uint256 value) external returns (bool);
        function name() external view returns (string);
        function version() external view returns (string);
        function transferWithAuthorization(
            address from,
            address to,
            uint256 value,
            uint256 validAfter,
            uint256 validBefore,
            bytes32 nonce,
            uint8 v,
            bytes32 r,
            bytes32 s
        ) external;
        function authorizationState(address authorizer, bytes32 nonce) external view returns (bool);
    }

    /// The EIP-3009 typed-data message.
    struct TransferWithAuthorization {
        address from;
        address to;
        uint256 value;
        uint256 validAfter;
        uint256 validBefore;
        bytes32 nonce;
    }

    interface IMulticall3 {
        struct Call3 {
            address target;
            bool allowFailure;
            bytes callData;
        }
        struct Result {
            bool success;
            bytes returnData;
        }
        function aggregate3(Call3[] calldata calls) external payable returns (Result[] memory returnData);
    }
}

/// `keccak256("Transfer(address,address,uint256)")`.
pub const TRANSFER_TOPIC: B256 = IERC20::Transfer::SIGNATURE_HASH;

/// A read-only call at a block.
pub async fn call(
    chain: &ChainClient,
    to: Address,
    data: Vec<u8>,
    block: BlockId,
) -> Result<Bytes, ChainError> {
    let request = TransactionRequest::default()
        .to(to)
        .input(TransactionInput::new(data.into()));
    chain
        .provider
        .call(request)
        .block(block)
        .await
        .map_err(|e| chain.rpc_error(e))
}

/// EIP-3009 `authorizationState(authorizer, nonce)` at a block: whether that authorization was used
/// (or canceled).
pub async fn authorization_state(
    chain: &ChainClient,
    token: Address,
    authorizer: Address,
    nonce: B256,
    block: BlockId,
) -> Result<bool, ChainError> {
    let data = IERC20::authorizationStateCall { authorizer, nonce }.abi_encode();
    let out = call(chain, token, data, block).await?;
    IERC20::authorizationStateCall::abi_decode_returns(&out)
        .map_err(|e| chain.rpc_error(format!("authorizationState: bad answer: {e}")))
}

/// `balanceOf(owner)` at a block.
pub async fn balance_of(
    chain: &ChainClient,
    token: Address,
    owner: Address,
    block: BlockId,
) -> Result<U256, ChainError> {
    let out = call(
        chain,
        token,
        IERC20::balanceOfCall { owner }.abi_encode(),
        block,
    )
    .await?;
    IERC20::balanceOfCall::abi_decode_returns(&out)
        .map_err(|e| chain.rpc_error(format!("balanceOf returned garbage: {e}")))
}

/// The token's EIP-712 domain: name/version from configuration, else read from the token.
pub async fn eip712_domain(
    chain: &ChainClient,
    token: &crate::config::TokenConfig,
) -> Result<Eip712Domain, ChainError> {
    let name = match &token.eip712_name {
        Some(name) => name.clone(),
        None => {
            let out = call(
                chain,
                token.address,
                IERC20::nameCall {}.abi_encode(),
                BlockId::latest(),
            )
            .await?;
            IERC20::nameCall::abi_decode_returns(&out)
                .map_err(|e| chain.rpc_error(format!("name() returned garbage: {e}")))?
        }
    };
    let version = match &token.eip712_version {
        Some(version) => version.clone(),
        None => {
            let out = call(
                chain,
                token.address,
                IERC20::versionCall {}.abi_encode(),
                BlockId::latest(),
            )
            .await?;
            IERC20::versionCall::abi_decode_returns(&out)
                .map_err(|e| chain.rpc_error(format!("version() returned garbage: {e}")))?
        }
    };
    Ok(Eip712Domain::new(
        Some(name.into()),
        Some(version.into()),
        Some(U256::from(chain.id())),
        Some(token.address),
        None,
    ))
}

/// Token balances of many owners in few round trips: Multicall3 `aggregate3` of `balanceOf`, `chunk`
/// calls per `eth_call`, sent in JSON-RPC batches of four. Used to pre-filter
/// and to measure; deposits themselves are only ever taken from Transfer logs.
pub async fn multicall_balances(
    chain: &ChainClient,
    token: Address,
    owners: &[Address],
    block: BlockId,
    chunk: usize,
) -> Result<Vec<U256>, ChainError> {
    // Large eth_call payloads: at most 4 per HTTP batch (nodes cap request bodies).
    let parts: Vec<&[Address]> = owners.chunks(chunk.max(1)).collect();
    let mut replies = Vec::with_capacity(parts.len());
    for group in parts.chunks(4) {
        let mut batch = chain.rpc().new_batch();
        let mut waiters = Vec::new();
        for part in group {
            let calls = part
                .iter()
                .map(|owner| IMulticall3::Call3 {
                    target: token,
                    allowFailure: true,
                    callData: IERC20::balanceOfCall { owner: *owner }.abi_encode().into(),
                })
                .collect();
            let data = IMulticall3::aggregate3Call { calls }.abi_encode();
            let request = TransactionRequest::default()
                .to(chain.config.multicall3)
                .input(TransactionInput::new(data.into()));
            let waiter = batch
                .add_call::<_, Bytes>("eth_call", &(request, block))
                .map_err(|e| chain.rpc_error(e))?;
            waiters.push(waiter);
        }
        batch.send().await.map_err(|e| chain.rpc_error(e))?;
        for waiter in waiters {
            replies.push(waiter.await.map_err(|e| chain.rpc_error(e))?);
        }
    }
    let mut out = Vec::with_capacity(owners.len());
    for bytes in replies {
        let results = IMulticall3::aggregate3Call::abi_decode_returns(&bytes)
            .map_err(|e| chain.rpc_error(format!("aggregate3 returned garbage: {e}")))?;
        for result in results {
            let balance = if result.success {
                IERC20::balanceOfCall::abi_decode_returns(&result.returnData).unwrap_or_default()
            } else {
                U256::ZERO
            };
            out.push(balance);
        }
    }
    Ok(out)
}
