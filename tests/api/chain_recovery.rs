//! Chains that recover by themselves (SPEC §9), on anvil: stuck sweeps are replaced at the same
//! nonce (and at the cap the operator bumps or cancels them), gas in flight is counted, a reorged
//! credit is reversed, a retried sweep re-plans its amount, a log a node omitted is found (the
//! checkout's own scan, reconcile, rescan), an endpoint on another chain is never used.

use std::time::Instant;

use alloy::primitives::{Address, U256};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use vendor_server::chain::{replace, sweeper};
use vendor_server::checkout::deposits;

use crate::chain::{Anvil, PROXY_FORWARD, RpcProxy, TestProvider, Wallets, spawn_pay_app};
use crate::checkout::{GEMINI_USDC, GEMINI_USDT, Pay, setup_with};
use crate::fixtures::database_url;
use crate::helpers::ROOT;

const TOKEN: &str = "admin-token-0123456789abcdef";

/// A finalized checkout on `flow` paid with `amount` units; returns its deposit address.
async fn paid(p: &Pay, flow: &str, amount: u64) -> Address {
    let (session, address) = p.initiate(flow).await;
    let token = if flow == GEMINI_USDT {
        p.anvil.usdt
    } else {
        p.anvil.usdc
    };
    p.anvil.mint(token, address, amount).await;
    p.anvil.mine(2).await;
    p.finalized(flow, &session).await;
    address
}

async fn pass(p: &Pay) {
    sweeper::run_once(&p.app.state.pool, &p.app.state.chains)
        .await
        .unwrap();
}

/// Every backoff is over (time passes).
async fn due_now(p: &Pay) {
    sqlx::query("update sweep set next_attempt_at = now()")
        .execute(&p.app.state.pool)
        .await
        .unwrap();
}

#[derive(Debug, sqlx::FromRow)]
struct Row {
    sweep_id: i64,
    status: String,
    nonce: Option<i64>,
    tx_hash: Option<String>,
    raw_tx: Option<Vec<u8>>,
    replaced_tx_hashes: Vec<String>,
    cancel_tx_hashes: Vec<String>,
    replacements: i32,
    stuck_at: Option<chrono::DateTime<chrono::Utc>>,
    last_error: Option<String>,
}

async fn sweep(p: &Pay, id: i64) -> Row {
    sqlx::query_as(
        "select sweep_id, status, nonce, tx_hash, raw_tx, replaced_tx_hashes, cancel_tx_hashes, replacements,
                stuck_at, last_error
         from sweep where sweep_id = $1",
    )
    .bind(id)
    .fetch_one(&p.app.state.pool)
    .await
    .unwrap()
}

async fn only_sweep(p: &Pay) -> Row {
    let id: i64 = p.scalar_i64("select max(sweep_id) from sweep").await;
    sweep(p, id).await
}

fn max_fee(row: &Row) -> u128 {
    replace::decode(row.raw_tx.as_deref().unwrap())
        .unwrap()
        .max_fee_per_gas
}

/// Mines `blocks` blocks, each at `base_fee` wei per gas.
async fn mine_at(p: &Pay, blocks: u64, base_fee: u128) {
    for _ in 0..blocks {
        p.anvil
            .rpc(
                "anvil_setNextBlockBaseFeePerGas",
                json!([format!("{base_fee:#x}")]),
            )
            .await;
        p.anvil.rpc("evm_mine", json!([])).await;
    }
}

async fn block_gas_limit(p: &Pay, gas: u64) {
    p.anvil
        .rpc("evm_setBlockGasLimit", json!([format!("{gas:#x}")]))
        .await;
}

async fn admin(p: &Pay, path: &str, key: &str) -> (StatusCode, Value) {
    let response = p
        .app
        .client
        .post(p.app.url(path))
        .bearer_auth(TOKEN)
        .header("idempotency-key", key)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The base fee rises above a signed sweep's max fee: anvil refuses its bytes (and drops such a
/// transaction from its pool). After `replace_after_blocks` the sweeper re-signs it at the same
/// nonce with higher fees; the replacement is mined, the sweep confirmed, and later sweeps follow.
#[sqlx::test]
async fn a_sweep_priced_out_by_the_base_fee_is_replaced_at_the_same_nonce_and_later_sweeps_follow(
    pool: PgPool,
) {
    let p = setup_with(pool, &[("REPLACE_AFTER_BLOCKS", "3")], 0, false).await;
    let gas = p.wallets.gas.address();
    let first = paid(&p, GEMINI_USDC, 2_000_000).await;
    pass(&p).await;
    let signed = only_sweep(&p).await;
    assert_eq!(signed.status, "signed");
    let original = signed.tx_hash.clone().unwrap();
    let high = max_fee(&signed) * 2;
    mine_at(&p, 1, high).await;

    let stuck_since = Instant::now();
    pass(&p).await;
    let refused = sweep(&p, signed.sweep_id).await;
    assert_eq!(refused.status, "signed", "{refused:?}");
    assert!(refused.last_error.is_some(), "the node refused it");
    assert_eq!(refused.replacements, 0, "not due yet");
    assert_eq!(p.anvil.nonce(gas).await, 0);

    mine_at(&p, 3, high).await;
    due_now(&p).await;
    pass(&p).await;
    let replaced = sweep(&p, signed.sweep_id).await;
    assert_eq!(replaced.status, "broadcast", "{replaced:?}");
    assert_eq!(replaced.replacements, 1);
    assert_eq!(replaced.nonce, signed.nonce, "same nonce");
    assert_eq!(replaced.replaced_tx_hashes, vec![original.clone()]);
    assert!(max_fee(&replaced) >= max_fee(&signed) * 125 / 100);
    assert!(max_fee(&replaced) > high, "at least the node's estimate");
    p.anvil.mine(2).await;
    pass(&p).await;
    let done = sweep(&p, signed.sweep_id).await;
    eprintln!(
        "stuck sweep to its replacement mined and confirmed: {:?} (replace_after_blocks = 3)",
        stuck_since.elapsed()
    );
    assert_eq!(done.status, "confirmed", "{done:?}");
    assert_ne!(done.tx_hash.as_deref(), Some(original.as_str()));
    assert_eq!(p.anvil.nonce(gas).await, 1, "one transaction at that nonce");
    assert_eq!(p.anvil.token_balance(p.anvil.usdc, first).await, U256::ZERO);

    // Later sweeps follow on the next nonce.
    let second = paid(&p, GEMINI_USDC, 1_000_000).await;
    p.sweep_all().await;
    assert_eq!(p.anvil.nonce(gas).await, 2);
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, second).await,
        U256::ZERO
    );
    assert_eq!(
        p.anvil
            .token_balance(p.anvil.usdc, p.wallets.treasury)
            .await,
        U256::from(3_000_000u64)
    );
    assert_eq!(p.outbox("webhook", "tx.stuck").await, 0);
}

/// A broadcast sweep the node holds but does not mine (here: it does not fit anvil's block gas
/// limit) is replaced in the pool at the same nonce with both fees +25 %; the replacement is the one
/// mined and the sweep settles on its hash.
#[sqlx::test]
async fn a_broadcast_sweep_held_in_the_pool_is_replaced_and_settles_on_the_mined_hash(
    pool: PgPool,
) {
    let p = setup_with(pool, &[("REPLACE_AFTER_BLOCKS", "3")], 0, false).await;
    paid(&p, GEMINI_USDC, 2_000_000).await;
    p.anvil.rpc("evm_setAutomine", json!([false])).await;
    pass(&p).await;
    pass(&p).await;
    let sent = only_sweep(&p).await;
    assert_eq!(sent.status, "broadcast", "{sent:?}");
    block_gas_limit(&p, 30_000).await;
    p.anvil.mine(3).await;
    // Still in the pool; blocks big enough again, but nothing mined before the sweeper's pass.
    block_gas_limit(&p, 30_000_000).await;
    pass(&p).await;
    let replaced = sweep(&p, sent.sweep_id).await;
    assert_eq!(replaced.replacements, 1, "{replaced:?}");
    assert_eq!(
        replaced.replaced_tx_hashes,
        vec![sent.tx_hash.clone().unwrap()]
    );
    let (old, new) = (
        replace::decode(sent.raw_tx.as_deref().unwrap()).unwrap(),
        replace::decode(replaced.raw_tx.as_deref().unwrap()).unwrap(),
    );
    assert!(new.max_fee_per_gas >= old.max_fee_per_gas * 125 / 100);
    assert!(new.max_priority_fee_per_gas >= old.max_priority_fee_per_gas * 125 / 100);
    assert_eq!(new.nonce, old.nonce);

    p.anvil.mine(3).await;
    pass(&p).await;
    let done = sweep(&p, sent.sweep_id).await;
    assert_eq!(done.status, "confirmed", "{done:?}");
    assert_eq!(done.tx_hash, replaced.tx_hash);
    assert_eq!(p.anvil.nonce(p.wallets.gas.address()).await, 1);
    assert_eq!(
        p.anvil
            .token_balance(p.anvil.usdc, p.wallets.treasury)
            .await,
        U256::from(2_000_000u64)
    );
}

/// At the chain's `max_fee_gwei` the sweeper stops raising: one `tx.stuck` webhook and alert. The
/// operator bumps it past the cap through the admin API (audited, idempotent) and it is mined.
#[sqlx::test]
async fn at_the_fee_cap_one_tx_stuck_alert_then_the_operator_bump_is_mined(pool: PgPool) {
    let p = setup_with(
        pool,
        &[
            ("REPLACE_AFTER_BLOCKS", "3"),
            ("MAX_FEE_GWEI", "1"),
            ("ADMIN_TOKEN", TOKEN),
        ],
        0,
        false,
    )
    .await;
    paid(&p, GEMINI_USDC, 2_000_000).await;
    p.anvil.rpc("evm_setAutomine", json!([false])).await;
    pass(&p).await;
    pass(&p).await;
    let sent = only_sweep(&p).await;
    assert_eq!(sent.status, "broadcast", "{sent:?}");
    assert!(max_fee(&sent) <= 1_000_000_000, "signed within the cap");
    block_gas_limit(&p, 30_000).await;
    for _ in 0..3 {
        p.anvil.mine(3).await;
        pass(&p).await;
    }
    let stuck = sweep(&p, sent.sweep_id).await;
    assert!(stuck.stuck_at.is_some(), "{stuck:?}");
    assert_eq!(stuck.tx_hash, sent.tx_hash, "not replaced above the cap");
    assert_eq!(p.outbox("webhook", "tx.stuck").await, 1);
    assert_eq!(p.outbox("alert", "tx.stuck").await, 1);

    let listed = p
        .app
        .client
        .get(p.app.url("/v1/admin/sweeps?status=waiting"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(listed["items"][0]["replaceable"], true, "{listed}");
    assert!(listed["items"][0]["stuck_at"].is_string(), "{listed}");

    let path = format!("/v1/admin/sweeps/{}/bump", sent.sweep_id);
    let (status, body) = admin(&p, &path, "bump-1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "requested");
    let (status, again) = admin(&p, &path, "bump-1").await;
    assert_eq!((status, &again), (StatusCode::OK, &body), "replayed");
    block_gas_limit(&p, 30_000_000).await;
    pass(&p).await;
    let bumped = sweep(&p, sent.sweep_id).await;
    assert_eq!(bumped.replacements, 1, "{bumped:?}");
    assert!(
        max_fee(&bumped) > 1_000_000_000,
        "the operator goes past the cap"
    );
    assert!(bumped.stuck_at.is_none());
    p.anvil.mine(3).await;
    pass(&p).await;
    let done = sweep(&p, sent.sweep_id).await;
    assert_eq!(done.status, "confirmed", "{done:?}");
    assert_eq!(done.tx_hash, bumped.tx_hash);
    let audited: i64 = p
        .scalar_i64("select count(*) from admin_audit where action = 'sweep.bump'")
        .await;
    assert_eq!(audited, 1);
    assert_eq!(p.outbox("webhook", "tx.stuck").await, 1, "still one alert");
}

/// The operator cancels a stuck sweep: a 0-value self-transfer at its nonce is mined instead, the
/// sweep fails (nothing moved), and a retry sweeps the funds on the next nonce.
#[sqlx::test]
async fn a_cancelled_sweep_fails_with_the_funds_in_place_and_a_retry_sweeps_them(pool: PgPool) {
    let p = setup_with(pool, &[("ADMIN_TOKEN", TOKEN)], 0, false).await;
    let address = paid(&p, GEMINI_USDC, 2_000_000).await;
    p.anvil.rpc("evm_setAutomine", json!([false])).await;
    pass(&p).await;
    pass(&p).await;
    let sent = only_sweep(&p).await;
    assert_eq!(sent.status, "broadcast", "{sent:?}");
    block_gas_limit(&p, 30_000).await;
    let (status, body) = admin(
        &p,
        &format!("/v1/admin/sweeps/{}/cancel", sent.sweep_id),
        "cancel-1",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    pass(&p).await;
    let cancelling = sweep(&p, sent.sweep_id).await;
    let cancel = replace::decode(cancelling.raw_tx.as_deref().unwrap()).unwrap();
    assert_eq!(cancel.to.to(), Some(&p.wallets.gas.address()));
    assert_eq!(cancel.value, U256::ZERO);
    // 21,000 gas fits where the relay did not: the cancellation is mined.
    p.anvil.mine(3).await;
    pass(&p).await;
    let failed = sweep(&p, sent.sweep_id).await;
    assert_eq!(failed.status, "failed", "{failed:?}");
    assert!(failed.last_error.unwrap().contains("cancelled"));
    assert!(failed.cancel_tx_hashes.is_empty());
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, address).await,
        U256::from(2_000_000u64),
        "nothing moved"
    );
    assert_eq!(p.anvil.nonce(p.wallets.gas.address()).await, 1);

    block_gas_limit(&p, 30_000_000).await;
    p.anvil.rpc("evm_setAutomine", json!([true])).await;
    sweeper::retry(&p.app.state.pool, sent.sweep_id)
        .await
        .unwrap();
    p.sweep_all().await;
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, address).await,
        U256::ZERO
    );
    assert_eq!(p.anvil.nonce(p.wallets.gas.address()).await, 2);
}

/// Five USDT sweeps against a gas wallet that covers two: the sweeper signs only what the balance
/// pays for counting every transaction in flight at its maximum cost; the rest wait with one
/// `gas.low`, and all five finish once the wallet is funded.
#[sqlx::test]
async fn gas_in_flight_is_counted_so_five_sweeps_never_outrun_a_wallet_that_covers_two(
    pool: PgPool,
) {
    let p = setup_with(pool, &[], 0, true).await;
    let gas = p.wallets.gas.address();
    let mut addresses = Vec::new();
    for _ in 0..5 {
        addresses.push(paid(&p, GEMINI_USDT, 1_000_000).await);
    }
    // Fees such that one top-up costs between a third and a half of 0.01 ETH.
    let wallet = U256::from(10u64).pow(U256::from(16u64));
    p.anvil.set_eth(gas, wallet).await;
    p.anvil.rpc("evm_setAutomine", json!([false])).await;
    mine_at(&p, 1, 30_000_000_000).await;
    for _ in 0..3 {
        pass(&p).await;
    }
    let costs: Vec<(String, bigdecimal::BigDecimal)> = sqlx::query_as(
        "select status, max_cost_wei from sweep where status in ('signed', 'broadcast') order by sweep_id",
    )
    .fetch_all(&p.app.state.pool)
    .await
    .unwrap();
    let total: bigdecimal::BigDecimal = costs.iter().map(|(_, c)| c.clone()).sum();
    let wallet_dec: bigdecimal::BigDecimal = wallet.to_string().parse().unwrap();
    assert!(
        total <= wallet_dec,
        "signed more than the wallet holds: {costs:?}"
    );
    assert!(
        (1..5).contains(&costs.len()),
        "some wait, some go: {costs:?}"
    );
    let planned = p
        .scalar_i64("select count(*) from sweep where status = 'planned'")
        .await;
    assert_eq!(planned as usize, 5 - costs.len());
    assert_eq!(p.outbox("webhook", "gas.low").await, 1);
    assert_eq!(p.outbox("alert", "gas.low").await, 1);

    p.anvil.rpc("evm_setAutomine", json!([true])).await;
    p.anvil
        .set_eth(gas, U256::from(10u64).pow(U256::from(19u64)))
        .await;
    for _ in 0..30 {
        due_now(&p).await;
        pass(&p).await;
        p.anvil.mine(2).await;
    }
    let open = p
        .scalar_i64("select count(*) from sweep where status <> 'confirmed'")
        .await;
    assert_eq!(open, 0);
    for a in addresses {
        assert_eq!(p.anvil.token_balance(p.anvil.usdt, a).await, U256::ZERO);
    }
}

/// A credited deposit whose block a reorg removes is reversed by exactly one `reversal` entry (the
/// balance is back, `deposit.reversed` sent); when the same transfer is re-included it is credited
/// again, once.
#[sqlx::test]
async fn a_reorged_credit_is_reversed_once_and_credited_again_once_when_reincluded(pool: PgPool) {
    let p = setup_with(pool, &[], 0, false).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    let snapshot = p.anvil.snapshot().await;
    let tx = p.anvil.mint(p.anvil.usdc, address, 3_000_000).await;
    let raw = p
        .anvil
        .rpc("eth_getRawTransactionByHash", json!([tx]))
        .await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_reorg").await;
    assert_eq!(f["success"], true, "{f}");
    assert_eq!(p.balance().await, 3_000_000);

    p.anvil.revert(snapshot).await;
    p.anvil.mine(6).await;
    p.watch().await;
    p.watch().await;
    assert_eq!(p.balance().await, 0, "the balance is back");
    let reversal = "select count(*) from ledger_entry where kind = 'reversal'";
    assert_eq!(p.scalar_i64(reversal).await, 1);
    assert_eq!(p.outbox("webhook", "deposit.reversed").await, 1);
    let (sum, balance): (i64, i64) = sqlx::query_as(
        "select (select sum(amount_micros) from ledger_entry)::bigint, (select balance_micros from purchase)",
    )
    .fetch_one(&p.app.state.pool)
    .await
    .unwrap();
    assert_eq!(sum, balance, "the ledger adds up");

    // The same transfer comes back in a later block: credited again, once.
    p.anvil.rpc("eth_sendRawTransaction", json!([raw])).await;
    p.anvil.mine(3).await;
    p.watch().await;
    p.watch().await;
    assert_eq!(p.balance().await, 3_000_000);
    assert_eq!(
        p.scalar_i64("select count(*) from ledger_entry where kind = 'deposit'")
            .await,
        2
    );
    assert_eq!(p.scalar_i64(reversal).await, 1);
    assert_eq!(
        p.scalar_i64("select count(*) from deposit where status = 'credited'")
            .await,
        1
    );
}

/// `finality = "finalized"`: deposits count only at or below the node's finalized block, however
/// deep they are (anvil finalizes 64 blocks below its head).
#[sqlx::test]
async fn with_finalized_finality_only_finalized_blocks_count(pool: PgPool) {
    let p = setup_with(pool, &[("CHAIN_FINALITY", "finalized")], 0, false).await;
    let (_, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 1_000_000).await;
    p.anvil.mine(10).await;
    p.watch().await;
    let status = "select status from deposit";
    let pending: String = sqlx::query_scalar(status)
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap();
    assert_eq!(pending, "pending", "10 blocks deep but not finalized");
    p.anvil.mine(64).await;
    p.watch().await;
    let confirmed: String = sqlx::query_scalar(status)
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap();
    assert_eq!(confirmed, "confirmed", "finalized now");
}

/// A failed sweep retried after a reorg lowered the deposit address's balance is re-planned from the
/// chain's balance (signing the old amount would revert on every retry).
#[sqlx::test]
async fn a_retried_sweep_is_replanned_from_the_current_balance(pool: PgPool) {
    let p = setup_with(pool, &[], 0, false).await;
    let address = paid(&p, GEMINI_USDC, 2_000_000).await;
    // The planned amount is more than the address holds now (a reorg took a deposit away).
    sqlx::query(
        "insert into sweep (chain_id, token_address, token_symbol, deposit_address, deposit_index,
             treasury_address, amount_units, method, step, status, last_error)
         select 31337, lower($1), 'usdc', deposit_address, deposit_index, lower($2), 5000000, 'eip3009', 'sweep',
                'failed', 'transaction reverted'
         from checkout where deposit_address = lower($3)",
    )
    .bind(p.anvil.usdc.to_string())
    .bind(p.wallets.treasury.to_string())
    .bind(address.to_string())
    .execute(&p.app.state.pool)
    .await
    .unwrap();
    sqlx::query("update deposit set sweep_id = (select max(sweep_id) from sweep)")
        .execute(&p.app.state.pool)
        .await
        .unwrap();
    let id = p.scalar_i64("select max(sweep_id) from sweep").await;
    sweeper::retry(&p.app.state.pool, id).await.unwrap();
    p.sweep_all().await;
    let (status, amount): (String, String) =
        sqlx::query_as("select status, amount_units::text from sweep where sweep_id = $1")
            .bind(id)
            .fetch_one(&p.app.state.pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), amount.as_str()), ("confirmed", "2000000"));
    assert_eq!(
        p.anvil
            .token_balance(p.anvil.usdc, p.wallets.treasury)
            .await,
        U256::from(2_000_000u64)
    );
}

/// Two tokens without EIP-3009 on one deposit address: their `transfer`s, both signed by the deposit
/// key before either is sent, get consecutive nonces (never the same one).
#[sqlx::test]
async fn two_transfer_tokens_on_one_address_never_share_a_deposit_nonce(pool: PgPool) {
    let p = setup_with(pool, &[], 0, false).await;
    let (_, address) = p.initiate(GEMINI_USDT).await;
    p.anvil.mint(p.anvil.usdt, address, 1_000_000).await;
    p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
    p.anvil.mine(2).await;
    // Both swept by `transfer` from the deposit key (a token's method is fixed on its sweep row).
    for (token, symbol, amount) in [
        (p.anvil.usdt, "usdt", 1_000_000u64),
        (p.anvil.usdc, "usdc", 2_000_000),
    ] {
        sqlx::query(
            "insert into sweep (chain_id, token_address, token_symbol, deposit_address, deposit_index,
                 treasury_address, amount_units, method, step)
             select 31337, lower($1), $2, deposit_address, deposit_index, lower($3), $4, 'transfer', 'topup'
             from checkout where deposit_address = lower($5)",
        )
        .bind(token.to_string())
        .bind(symbol)
        .bind(p.wallets.treasury.to_string())
        .bind(bigdecimal::BigDecimal::from(amount))
        .bind(address.to_string())
        .execute(&p.app.state.pool)
        .await
        .unwrap();
    }
    p.anvil.rpc("evm_setAutomine", json!([false])).await;
    // Top-ups signed, sent and mined; then both transfers are signed before either is sent.
    for _ in 0..6 {
        pass(&p).await;
        p.anvil.mine(3).await;
        let signed = p
            .scalar_i64(
                "select count(*) from sweep where step = 'sweep' and status in ('signed', 'broadcast')",
            )
            .await;
        if signed == 2 {
            break;
        }
    }
    let nonces: Vec<(String, Option<i64>)> =
        sqlx::query_as("select from_address, nonce from sweep where step = 'sweep' order by nonce")
            .fetch_all(&p.app.state.pool)
            .await
            .unwrap();
    assert_eq!(nonces.len(), 2, "{nonces:?}");
    assert_eq!(nonces[0].0, nonces[1].0, "both from the deposit address");
    assert_eq!((nonces[0].1, nonces[1].1), (Some(0), Some(1)), "{nonces:?}");
    p.anvil.rpc("evm_setAutomine", json!([true])).await;
    for _ in 0..6 {
        due_now(&p).await;
        pass(&p).await;
        p.anvil.mine(3).await;
    }
    let open = p
        .scalar_i64("select count(*) from sweep where status <> 'confirmed'")
        .await;
    assert_eq!(open, 0);
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdt, address).await,
        U256::ZERO
    );
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, address).await,
        U256::ZERO
    );
}

/// anvil behind a proxy (which can hide a transaction's logs), and an app on the proxy.
async fn behind_proxy(pool: PgPool, extra: &[(&str, &str)]) -> (Pay, RpcProxy) {
    let anvil = Anvil::start().await;
    let wallets = Wallets::random();
    anvil
        .set_eth(
            wallets.gas.address(),
            U256::from(10u64).pow(U256::from(19u64)),
        )
        .await;
    let proxy = RpcProxy::start(&anvil.url, PROXY_FORWARD).await;
    let mut vars: Vec<(&str, &str)> = vec![("RPC_ENDPOINT", &proxy.url)];
    vars.extend_from_slice(extra);
    let gemini = TestProvider::new("gemini", 0);
    let s3 = TestProvider::new("s3", 0);
    let app = spawn_pay_app(pool, &anvil, &wallets, &[gemini.clone(), s3.clone()], &vars).await;
    (
        Pay {
            anvil,
            wallets,
            app,
            gemini,
            s3,
        },
        proxy,
    )
}

/// The node leaves `tx`'s logs out of every `eth_getLogs` for 130 blocks (more than the watcher's
/// 128-block reorg window) while the watcher keeps passing, then serves them again.
async fn hide_for_130_blocks(p: &Pay, proxy: &RpcProxy, tx: &str) {
    *proxy.rules.hidden_tx.lock().unwrap() = Some(tx.to_owned());
    for _ in 0..13 {
        p.anvil.mine(10).await;
        p.watch().await;
    }
    *proxy.rules.hidden_tx.lock().unwrap() = None;
    p.watch().await;
}

async fn deposits_to(p: &Pay, address: Address) -> i64 {
    sqlx::query_scalar("select count(*) from deposit where deposit_address = $1")
        .bind(format!("{address:#x}"))
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap()
}

/// A payment whose log the node omits for 130 blocks is past every watcher pass's window, but the
/// checkout's own scan reads from the block its checkout began at: finalize finds it.
#[sqlx::test]
async fn a_log_hidden_past_the_reorg_window_is_found_by_the_checkouts_own_scan(pool: PgPool) {
    let (p, proxy) = behind_proxy(pool, &[]).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.watch().await;
    let tx = p.anvil.mint(p.anvil.usdc, address, 3_000_000).await;
    hide_for_130_blocks(&p, &proxy, &tx).await;
    assert_eq!(deposits_to(&p, address).await, 0, "the watcher missed it");
    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_hidden").await;
    assert_eq!(f["success"], true, "{f}");
    assert_eq!(p.balance().await, 3_000_000);
}

async fn admin_get(p: &Pay, path: &str) -> (StatusCode, Value) {
    let response = p
        .app
        .client
        .get(p.app.url(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The binary against the test's database and chain (through `rpc`), run off the test's runtime (it
/// serves the proxy the binary talks to).
async fn cli(p: &Pay, rpc: &str, args: &[&str]) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!("vendor-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut vars = crate::chain::chain_vars(&p.anvil, &p.wallets);
    vars.retain(|(k, _)| k != "RPC_ENDPOINT");
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_vendor-server"));
    command
        .args(args)
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars)
        .env("RPC_ENDPOINT", rpc)
        .env("DATABASE_URL", database_url(&p.app.state.pool))
        .env("OFFERS_FILE", format!("{ROOT}/config/offers.toml"));
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// The node omits a top-up's log for 130 blocks: the watcher never credits it. Reconcile sees the
/// deposit address hold more than its records (one `reconcile.mismatch` alert however often it
/// runs); a rescan (admin API, then again on the command line) records and credits it exactly once;
/// reconcile is clean after.
#[sqlx::test]
async fn reconcile_flags_a_deposit_the_watcher_never_saw_and_a_rescan_credits_it_once(
    pool: PgPool,
) {
    let (p, proxy) = behind_proxy(pool, &[("ADMIN_TOKEN", TOKEN)]).await;
    let address = paid(&p, GEMINI_USDC, 2_000_000).await;
    p.watch().await;
    let (status, clean) = admin_get(&p, "/v1/admin/reconcile").await;
    assert_eq!(status, StatusCode::OK, "{clean}");
    assert_eq!(clean["clean"], true, "{clean}");

    let from = p.anvil.head().await;
    let tx = p.anvil.mint(p.anvil.usdc, address, 3_000_000).await;
    hide_for_130_blocks(&p, &proxy, &tx).await;
    assert_eq!(p.balance().await, 2_000_000, "not credited");

    let (status, report) = admin_get(&p, "/v1/admin/reconcile").await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["clean"], false, "{report}");
    let m = &report["mismatches"][0];
    assert_eq!(m["deposit_address"], format!("{address:#x}"), "{report}");
    assert_eq!(m["token"], "usdc");
    assert_eq!(m["on_chain_units"], "5000000");
    assert_eq!(m["recorded_units"], "2000000");
    assert_eq!(m["difference_units"], "3000000");
    assert_eq!(report["mismatches"].as_array().unwrap().len(), 1);
    admin_get(&p, "/v1/admin/reconcile").await;
    assert_eq!(p.outbox("alert", "reconcile.mismatch").await, 1, "once");

    let rescan = "/v1/admin/chains/31337/rescan".to_owned();
    let body = json!({"from_block": from});
    let post = |key: &'static str| {
        p.app
            .client
            .post(p.app.url(&rescan))
            .bearer_auth(TOKEN)
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };
    let response = post("rescan-1").await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let first: Value = response.json().await.unwrap();
    assert_eq!(first["new_deposits"], 1, "{first}");
    assert_eq!(first["credited"], 1, "{first}");
    assert_eq!(first["from_block"], from);
    let replay = post("rescan-1").await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap(), first);
    assert_eq!(p.balance().await, 5_000_000, "credited");

    // Again, on the command line: found, already recorded, not credited again.
    let out = cli(
        &p,
        &proxy.url,
        &[
            "deposits",
            "rescan",
            "--chain",
            "31337",
            "--from-block",
            &from.to_string(),
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 to watched addresses, 0 new deposit(s) recorded, 0 credited"),
        "{stdout}"
    );
    assert_eq!(p.balance().await, 5_000_000, "credited once");
    assert_eq!(
        p.scalar_i64("select count(*) from ledger_entry where kind = 'deposit'")
            .await,
        2
    );
    let actors: Vec<String> = sqlx::query_scalar(
        "select actor from admin_audit where action = 'chain.rescan' order by audit_id",
    )
    .fetch_all(&p.app.state.pool)
    .await
    .unwrap();
    assert_eq!(actors, ["admin", "cli"]);

    let (_, after) = admin_get(&p, "/v1/admin/reconcile").await;
    assert_eq!(after["clean"], true, "{after}");
    let out = cli(&p, &proxy.url, &["reconcile"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("clean"), "{stdout}");
    assert_eq!(p.outbox("alert", "reconcile.mismatch").await, 1);
}

/// A node of another chain listed first among the chain's endpoints: its chain id is checked before
/// it is used, it is marked down (`chain_id_mismatch`, in `/health`) and never used; deposits are
/// detected through the right endpoint. An endpoint that comes back on another chain is checked
/// again and stays unused.
#[sqlx::test]
async fn an_endpoint_on_another_chain_is_marked_down_and_never_used(pool: PgPool) {
    let anvil = Anvil::start().await;
    let other = Anvil::start_with_chain_id(84532).await;
    let wallets = Wallets::random();
    anvil
        .set_eth(
            wallets.gas.address(),
            U256::from(10u64).pow(U256::from(19u64)),
        )
        .await;
    let wrong = RpcProxy::start(&other.url, PROXY_FORWARD).await;
    let right = RpcProxy::start(&anvil.url, PROXY_FORWARD).await;
    let endpoints = format!("{},{}", wrong.url, right.url);
    let gemini = TestProvider::new("gemini", 0);
    let s3 = TestProvider::new("s3", 0);
    let app = spawn_pay_app(
        pool,
        &anvil,
        &wallets,
        &[gemini.clone(), s3.clone()],
        &[("RPC_ENDPOINT", &endpoints)],
    )
    .await;
    let p = Pay {
        anvil,
        wallets,
        app,
        gemini,
        s3,
    };
    let (_, health) = p.app.get("/health").await;
    let eps = &health["chains"]["anvil"]["endpoints"];
    assert_eq!(eps[0]["state"], "down", "{health}");
    assert_eq!(eps[0]["reason"], "chain_id_mismatch", "{health}");
    assert_eq!(eps[0]["chain_id"], 84532, "{health}");
    assert!(eps[1]["reason"].is_null(), "{health}");
    assert_eq!(health["chains"]["anvil"]["status"], "ok", "{health}");

    let address = paid(&p, GEMINI_USDC, 3_000_000).await;
    p.anvil.mint(p.anvil.usdc, address, 1_000_000).await;
    p.anvil.mine(2).await;
    p.watch().await;
    p.watch().await;
    assert_eq!(
        p.balance().await,
        4_000_000,
        "detected through the right endpoint"
    );
    p.sweep_all().await;
    assert_eq!(
        wrong.rules.used.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "never used"
    );
    let (_, health) = p.app.get("/health").await;
    let eps = &health["chains"]["anvil"]["endpoints"];
    assert_eq!(eps[0]["reason"], "chain_id_mismatch", "{health}");
    assert_eq!(eps[1]["state"], "up", "{health}");

    // The right endpoint goes away and comes back in front of the other chain: checked again,
    // marked down, not used; the chain has no usable endpoint.
    let port = right.kill().await;
    let _ = deposits::run_once(&p.app.state.checkouts()).await;
    let back = RpcProxy::start_at(&other.url, PROXY_FORWARD, port).await;
    for _ in 0..2 {
        let _ = deposits::run_once(&p.app.state.checkouts()).await;
    }
    let (_, health) = p.app.get("/health").await;
    let eps = &health["chains"]["anvil"]["endpoints"];
    assert_eq!(eps[1]["reason"], "chain_id_mismatch", "{health}");
    assert_eq!(health["chains"]["anvil"]["status"], "down", "{health}");
    assert_eq!(
        back.rules.used.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "never used"
    );
    assert_eq!(
        wrong.rules.used.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}
