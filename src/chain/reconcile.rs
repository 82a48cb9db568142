//! Reconciliation (SPEC §9 "Chains that recover by themselves"): each deposit address's token
//! balance on chain against what the database says it holds, on every configured chain and token.
//!
//! Both sides are taken at one block per chain: the lower of `head - confirmations` and the watcher's
//! cursor (every block up to it was scanned for every address). On chain: `balanceOf` through
//! Multicall3 `aggregate3` ([`BALANCES_PER_CALL`] per `eth_call`, sent in JSON-RPC batches within
//! `RPC_MAX_BATCH` and `RPC_MAX_BODY_BYTES`). Recorded: the address's deposits in blocks up to there
//! (pending, confirmed or credited; not reorged ones) less its sweeps confirmed in blocks up to
//! there. An address with a sweep in flight is skipped (its transaction may be mined before the
//! database knows). Balances are read before the database, so a deposit or sweep recorded meanwhile
//! is on both sides.
//!
//! A difference means the watcher missed a deposit (a node omitted its log: `vendor-server deposits
//! rescan` finds it), tokens left the address without a recorded sweep, or a sweep's outcome is not
//! recorded. Each difference raises one `reconcile.mismatch` alert (per address, token and amounts:
//! the daily job does not repeat it).

use std::collections::HashMap;

use alloy::primitives::{Address, Bytes, U256};
use alloy::rpc::types::{BlockId, TransactionInput, TransactionRequest};
use alloy::sol_types::SolCall;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::batch::call_many;
use super::erc20::{IERC20, IMulticall3};
use super::{ChainClient, ChainError, Chains, addr_key, from_numeric};

/// `balanceOf` calls per Multicall3 `eth_call`.
pub const BALANCES_PER_CALL: usize = 500;
/// Deposit addresses read from the database per page.
const PAGE: i64 = 10_000;
/// Mismatches listed in one report (all are alerted).
const LISTED: usize = 1_000;

/// One address whose on-chain balance is not what the database records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Mismatch {
    pub chain_id: u64,
    pub chain: String,
    /// The token's symbol (`usdc`).
    pub token: String,
    pub token_address: String,
    pub deposit_address: String,
    /// `balanceOf` at `block`, in the token's smallest unit.
    pub on_chain_units: String,
    /// Deposits less confirmed sweeps recorded up to `block`, in the token's smallest unit (negative
    /// when more was swept than recorded as deposited).
    pub recorded_units: String,
    /// `on_chain_units - recorded_units`: positive when the chain holds more than recorded (a missed
    /// deposit: rescan).
    pub difference_units: String,
    pub block: u64,
}

/// One chain's reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChainReconcile {
    pub chain_id: u64,
    pub chain: String,
    /// The block both sides were taken at (`null` when the chain could not be read).
    pub block: Option<u64>,
    /// Deposit addresses compared (per token).
    pub addresses: usize,
    /// Addresses skipped because a sweep of theirs is in flight.
    pub skipped: usize,
    pub mismatches: usize,
    /// Why the chain could not be reconciled (its RPC failed); retried by the next run.
    pub error: Option<String>,
}

/// What a reconciliation found (`vendor-server reconcile`, `GET /v1/admin/reconcile`, the daily job).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReconcileReport {
    #[schema(value_type = String, format = DateTime)]
    pub checked_at: DateTime<Utc>,
    pub chains: Vec<ChainReconcile>,
    /// Every difference found (at most 1,000 listed; each chain's `mismatches` counts them all).
    pub mismatches: Vec<Mismatch>,
    /// No chain failed and nothing differs.
    pub clean: bool,
}

/// Compares every deposit address on every chain; alerts each new difference once.
pub async fn run(pool: &PgPool, chains: &Chains) -> Result<ReconcileReport, ChainError> {
    let addresses = deposit_addresses(pool).await?;
    let mut report = ReconcileReport {
        checked_at: Utc::now(),
        chains: Vec::new(),
        mismatches: Vec::new(),
        clean: true,
    };
    for chain in chains.iter() {
        let mut row = ChainReconcile {
            chain_id: chain.id(),
            chain: chain.name().to_owned(),
            block: None,
            addresses: addresses.len(),
            skipped: 0,
            mismatches: 0,
            error: None,
        };
        match reconcile_chain(pool, chain, &addresses, &mut row).await {
            Ok(found) => {
                row.mismatches = found.len();
                for m in found {
                    alert(pool, &m).await?;
                    if report.mismatches.len() < LISTED {
                        report.mismatches.push(m);
                    }
                }
            }
            Err(e @ ChainError::Rpc { .. }) => {
                tracing::warn!(chain = chain.name(), error = %e, "reconciliation failed on this chain; the next run retries");
                row.error = Some(e.to_string());
            }
            Err(e) => return Err(e),
        }
        report.clean &= row.error.is_none() && row.mismatches == 0;
        report.chains.push(row);
    }
    Ok(report)
}

/// Every checkout's deposit address (the same on every EVM chain), by pages.
async fn deposit_addresses(pool: &PgPool) -> Result<Vec<Address>, ChainError> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let rows = sqlx::query_scalar!(
            "select deposit_address from checkout where deposit_address > $1
             order by deposit_address limit $2",
            after,
            PAGE
        )
        .fetch_all(pool)
        .await?;
        let n = rows.len();
        for address in rows {
            out.extend(address.parse::<Address>().ok());
            after = address;
        }
        if n < usize::try_from(PAGE).unwrap_or(usize::MAX) {
            break;
        }
    }
    Ok(out)
}

async fn reconcile_chain(
    pool: &PgPool,
    chain: &ChainClient,
    addresses: &[Address],
    row: &mut ChainReconcile,
) -> Result<Vec<Mismatch>, ChainError> {
    let head = chain.head().await?;
    let chain_id = i64::try_from(chain.id()).map_err(|_| ChainError::Invalid("chain id".into()))?;
    let cursor = sqlx::query_scalar!(
        "select scanned_to from chain_cursor where chain_id = $1",
        chain_id
    )
    .fetch_optional(pool)
    .await?
    .and_then(|c| u64::try_from(c).ok());
    let block = cursor.map_or(chain.safe_block(head), |c| c.min(chain.safe_block(head)));
    row.block = Some(block);
    // On chain first, then the database (see the module docs).
    let mut on_chain: HashMap<(Address, Address), U256> = HashMap::new();
    for token in &chain.config.tokens {
        let balances = balances(chain, token.address, addresses, block).await?;
        for (owner, balance) in addresses.iter().zip(balances) {
            on_chain.insert((token.address, *owner), balance);
        }
    }
    let block_i64 = i64::try_from(block).unwrap_or(i64::MAX);
    let recorded_rows = sqlx::query!(
        r#"select deposit_address as "deposit_address!", token_address as "token_address!",
                  sum(amount)::text as "amount!"
           from (select deposit_address, token_address, amount_units as amount from deposit
                 where chain_id = $1 and block_number <= $2 and status in ('pending', 'confirmed', 'credited')
                 union all
                 select deposit_address, token_address, -amount_units from sweep
                 where chain_id = $1 and status = 'confirmed' and block_number <= $2) moves
           group by deposit_address, token_address"#,
        chain_id,
        block_i64
    )
    .fetch_all(pool)
    .await?;
    let in_flight: std::collections::HashSet<(String, String)> = sqlx::query!(
        "select deposit_address, token_address from sweep
         where chain_id = $1 and status in ('signed', 'broadcast')",
        chain_id
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| (r.deposit_address, r.token_address))
    .collect();
    // Recorded amounts as signed integers (a negative one cannot be a U256).
    let mut recorded: HashMap<(Address, Address), (bool, U256)> = HashMap::new();
    for r in recorded_rows {
        let (Ok(owner), Ok(token)) = (
            r.deposit_address.parse::<Address>(),
            r.token_address.parse::<Address>(),
        ) else {
            continue;
        };
        let (negative, digits) = match r.amount.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, r.amount.as_str()),
        };
        let amount = digits
            .parse::<bigdecimal::BigDecimal>()
            .ok()
            .and_then(|d| from_numeric(&d))
            .ok_or_else(|| {
                ChainError::Invalid(format!("recorded amount {} unreadable", r.amount))
            })?;
        recorded.insert((token, owner), (negative && !amount.is_zero(), amount));
    }
    let mut out = Vec::new();
    for token in &chain.config.tokens {
        for owner in addresses {
            let key = (token.address, *owner);
            if in_flight.contains(&(addr_key(*owner), addr_key(token.address))) {
                row.skipped += 1;
                continue;
            }
            let held = on_chain.get(&key).copied().unwrap_or_default();
            let (negative, amount) = recorded.get(&key).copied().unwrap_or_default();
            if !negative && amount == held {
                continue;
            }
            let (recorded_text, difference) = if negative {
                (
                    format!("-{amount}"),
                    held.saturating_add(amount).to_string(),
                )
            } else if held >= amount {
                (amount.to_string(), (held - amount).to_string())
            } else {
                (amount.to_string(), format!("-{}", amount - held))
            };
            out.push(Mismatch {
                chain_id: chain.id(),
                chain: chain.name().to_owned(),
                token: token.symbol.clone(),
                token_address: addr_key(token.address),
                deposit_address: addr_key(*owner),
                on_chain_units: held.to_string(),
                recorded_units: recorded_text,
                difference_units: difference,
                block,
            });
        }
    }
    Ok(out)
}

/// `balanceOf` of every owner at `block`: Multicall3 `aggregate3` calls in bounded JSON-RPC batches.
/// A call that fails fails the chain's run (never read as zero).
async fn balances(
    chain: &ChainClient,
    token: Address,
    owners: &[Address],
    block: u64,
) -> Result<Vec<U256>, ChainError> {
    let params: Vec<(TransactionRequest, BlockId)> = owners
        .chunks(BALANCES_PER_CALL)
        .map(|part| {
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
            (request, BlockId::number(block))
        })
        .collect();
    let answers = call_many::<_, Bytes>(chain, "eth_call", &params).await;
    let mut out = Vec::with_capacity(owners.len());
    for answer in answers {
        let bytes =
            answer.map_err(|e| chain.rpc_error(format!("balanceOf via Multicall3: {e}")))?;
        let results = IMulticall3::aggregate3Call::abi_decode_returns(&bytes)
            .map_err(|e| chain.rpc_error(format!("aggregate3 returned garbage: {e}")))?;
        for result in results {
            if !result.success {
                return Err(chain.rpc_error("a balanceOf call failed inside aggregate3"));
            }
            let balance = IERC20::balanceOfCall::abi_decode_returns(&result.returnData)
                .map_err(|e| chain.rpc_error(format!("balanceOf returned garbage: {e}")))?;
            out.push(balance);
        }
    }
    if out.len() != owners.len() {
        return Err(chain.rpc_error("aggregate3 answered a different number of balances"));
    }
    Ok(out)
}

/// One `reconcile.mismatch` alert per (chain, token, address, amounts): a difference that stays is
/// not repeated by the next run; one that changes is told again.
async fn alert(pool: &PgPool, m: &Mismatch) -> Result<(), ChainError> {
    let key = format!(
        "reconcile.mismatch:{}:{}:{}:{}:{}",
        m.chain_id, m.token_address, m.deposit_address, m.on_chain_units, m.recorded_units
    );
    let alert = crate::notify::events::Alert {
        subject: format!(
            "Deposit address {} on {} holds {} {} units, the records say {}",
            m.deposit_address,
            m.chain,
            m.on_chain_units,
            m.token.to_uppercase(),
            m.recorded_units
        ),
        text: format!(
            "Reconciliation at block {} of chain {} ({}): {} {} units of {} ({}) on chain, {} recorded (deposits less confirmed sweeps); difference {}. A positive difference is usually a deposit the watcher never saw (an RPC node omitted its log): run `vendor-server deposits rescan --chain {} --from-block <a block before the payment>` (or POST /v1/admin/chains/{}/rescan); it is credited once. A negative one means tokens left the address without a recorded sweep: check the address on the explorer.",
            m.block,
            m.chain,
            m.chain_id,
            m.deposit_address,
            m.on_chain_units,
            m.token.to_uppercase(),
            m.token_address,
            m.recorded_units,
            m.difference_units,
            m.chain_id,
            m.chain_id,
        ),
    };
    let mut conn = pool.acquire().await?;
    let new =
        crate::notify::events::alert(&mut conn, "reconcile.mismatch", None, &alert, Some(&key))
            .await?;
    if new {
        tracing::error!(
            chain = m.chain,
            deposit_address = m.deposit_address,
            token = m.token,
            on_chain = m.on_chain_units,
            recorded = m.recorded_units,
            "reconciliation: the chain and the records differ"
        );
    }
    Ok(())
}
