//! Batched sweeps on anvil (issue 26): many EIP-3009 relays in one Multicall3 `aggregate3`
//! transaction, each sweep settled by its own `authorizationState`, with the sweeper's exactly-once
//! discipline on the batch (crash between sign and broadcast, replacement when stuck).

use alloy::consensus::Transaction as _;
use alloy::eips::eip2718::Decodable2718;
use alloy::primitives::{Address, U256};
use alloy::sol_types::SolCall;
use serde_json::json;
use sqlx::PgPool;
use vendor_server::chain::erc20::{IERC20, IMulticall3};
use vendor_server::chain::sweeper;

use crate::checkout::{GEMINI_USDC, Pay, setup_with};

const ADMIN: &str = "admin-token-for-batch-tests-0123456789";

/// Many checkouts in a row from one test client.
const FAST: (&str, &str) = ("CHECKOUT_RATE_LIMIT_PER_MINUTE", "100000");

/// `n` checkouts paid (not finalized: detected deposits are swept all the same), amounts
/// 1,000,000 + i units; detected by the watcher. Returns the deposit addresses and amounts.
async fn deposits(p: &Pay, n: u64) -> Vec<(Address, u64)> {
    let mut out = Vec::new();
    for i in 0..n {
        let (_, address) = p.initiate(GEMINI_USDC).await;
        let amount = 1_000_000 + i;
        p.anvil.mint(p.anvil.usdc, address, amount).await;
        out.push((address, amount));
    }
    p.anvil.mine(3).await;
    p.watch().await;
    let found: i64 = p.scalar_i64("select count(*) from deposit").await;
    assert_eq!(found, i64::try_from(n).unwrap());
    out
}

async fn pass(p: &Pay) {
    sweeper::run_once(&p.app.state.pool, &p.app.state.chains)
        .await
        .unwrap();
}

#[derive(Debug, sqlx::FromRow)]
struct Batch {
    batch_id: i64,
    status: String,
    nonce: i64,
    tx_hash: String,
    raw_tx: Option<Vec<u8>>,
    size: i32,
    replacements: i32,
    replaced_tx_hashes: Vec<String>,
    gas_used: Option<i64>,
}

async fn batches(p: &Pay) -> Vec<Batch> {
    sqlx::query_as(
        "select batch_id, status, nonce, tx_hash, raw_tx, size, replacements, replaced_tx_hashes, gas_used
         from sweep_batch order by batch_id",
    )
    .fetch_all(&p.app.state.pool)
    .await
    .unwrap()
}

/// (sweep_id, deposit address, status, tx_hash, batch_id) of every sweep.
async fn sweeps(p: &Pay) -> Vec<(i64, String, String, Option<String>, Option<i64>)> {
    sqlx::query_as(
        "select sweep_id, deposit_address, status, tx_hash, batch_id from sweep order by sweep_id",
    )
    .fetch_all(&p.app.state.pool)
    .await
    .unwrap()
}

async fn treasury(p: &Pay) -> U256 {
    p.anvil
        .token_balance(p.anvil.usdc, p.wallets.treasury)
        .await
}

#[sqlx::test]
async fn twenty_deposits_are_swept_in_one_transaction_each_exactly_once(pool: PgPool) {
    let p = setup_with(pool, &[("SWEEP_BATCH_SIZE", "20"), FAST], 0, false).await;
    let paid = deposits(&p, 20).await;
    p.sweep_all().await;
    let b = batches(&p).await;
    assert_eq!(b.len(), 1, "one batch: {b:?}");
    assert_eq!((b[0].status.as_str(), b[0].size), ("confirmed", 20));
    let rows = sweeps(&p).await;
    assert_eq!(rows.len(), 20, "one sweep per deposit address");
    for (id, _, status, hash, batch) in &rows {
        assert_eq!(status, "confirmed", "sweep {id}: {rows:?}");
        assert_eq!(hash.as_deref(), Some(b[0].tx_hash.as_str()));
        assert_eq!(*batch, Some(b[0].batch_id));
    }
    assert_eq!(
        p.anvil.nonce(p.wallets.gas.address()).await,
        1,
        "one transaction from the gas wallet"
    );
    for (address, _) in &paid {
        assert_eq!(
            p.anvil.token_balance(p.anvil.usdc, *address).await,
            U256::ZERO
        );
    }
    let total: u64 = paid.iter().map(|(_, a)| a).sum();
    assert_eq!(treasury(&p).await, U256::from(total));
    // Each sweep carries its share of the batch's gas; the goal is ≤ 40,000 gas per deposit.
    let gas = b[0].gas_used.unwrap();
    eprintln!("batch of 20: {gas} gas, {} per deposit", gas / 20);
    assert!(gas / 20 <= 40_000, "{} gas per deposit", gas / 20);
    let shares: i64 = p
        .scalar_i64("select sum(gas_used)::bigint from sweep")
        .await;
    assert!(shares <= gas && shares > gas - 20);
    // Nothing more happens on later passes.
    pass(&p).await;
    p.anvil.mine(3).await;
    pass(&p).await;
    assert_eq!(p.anvil.nonce(p.wallets.gas.address()).await, 1);
    assert_eq!(batches(&p).await.len(), 1);
}

/// The calldata of `address`'s relay inside a signed batch.
fn relay_of(raw: &[u8], address: Address) -> Vec<u8> {
    let envelope = alloy::consensus::TxEnvelope::decode_2718(&mut &raw[..]).unwrap();
    let calls = IMulticall3::aggregate3Call::abi_decode(envelope.input())
        .unwrap()
        .calls;
    calls
        .into_iter()
        .map(|c| c.callData.to_vec())
        .find(|data| {
            IERC20::transferWithAuthorizationCall::abi_decode(data)
                .unwrap()
                .from
                == address
        })
        .unwrap()
}

/// In one batch: one deposit's balance moved away after signing (its call fails: that sweep fails
/// alone, with one `sweep.failed` webhook and alert, and is swept after the operator's retry), one
/// deposit's authorization relayed first by a third party (used: confirmed), the others swept.
#[sqlx::test]
async fn a_deposit_failing_in_a_batch_fails_alone_and_the_others_are_swept(pool: PgPool) {
    let p = setup_with(
        pool,
        &[("SWEEP_BATCH_SIZE", "20"), FAST, ("ADMIN_TOKEN", ADMIN)],
        0,
        false,
    )
    .await;
    let paid = deposits(&p, 5).await;
    pass(&p).await;
    let b = batches(&p).await;
    assert_eq!((b.len(), b[0].status.as_str()), (1, "signed"), "{b:?}");
    let raw = b[0].raw_tx.clone().unwrap();
    let (moved, moved_amount) = paid[1];
    let (front_run, _) = paid[3];
    // The balance of one deposit address moves away before the batch is sent.
    p.anvil
        .rpc("anvil_impersonateAccount", json!([format!("{moved:#x}")]))
        .await;
    p.anvil
        .set_eth(moved, U256::from(10u64).pow(U256::from(17u64)))
        .await;
    let elsewhere = alloy::signers::local::PrivateKeySigner::random().address();
    let away = p
        .anvil
        .rpc(
            "eth_sendTransaction",
            json!([{
                "from": format!("{moved:#x}"),
                "to": format!("{:#x}", p.anvil.usdc),
                "data": format!("0x{}", hex::encode(IERC20::transferCall { to: elsewhere, value: U256::from(moved_amount) }.abi_encode())),
                "gas": "0x30d40",
            }]),
        )
        .await;
    assert_eq!(p.anvil.receipt(&away).await["status"], "0x1");
    // A third party relays another deposit's signed authorization first.
    let front = p
        .anvil
        .rpc(
            "eth_sendTransaction",
            json!([{
                "from": crate::chain::DEV,
                "to": format!("{:#x}", p.anvil.usdc),
                "data": format!("0x{}", hex::encode(relay_of(&raw, front_run))),
                "gas": "0x30d40",
            }]),
        )
        .await;
    assert_eq!(p.anvil.receipt(&front).await["status"], "0x1");

    p.sweep_all().await;
    let rows = sweeps(&p).await;
    let moved_key = format!("{moved:#x}");
    for (id, address, status, _, _) in &rows {
        if *address == moved_key {
            assert_eq!(status, "failed", "sweep {id}: {rows:?}");
        } else {
            assert_eq!(status, "confirmed", "sweep {id}: {rows:?}");
        }
    }
    assert_eq!(p.outbox("webhook", "sweep.failed").await, 1);
    assert_eq!(p.outbox("alert", "sweep.failed").await, 1);
    let b = batches(&p).await;
    assert_eq!((b.len(), b[0].status.as_str()), (1, "confirmed"));
    let receipt = p.anvil.receipt(&json!(b[0].tx_hash)).await;
    assert_eq!(receipt["status"], "0x1", "the batch itself succeeded");
    let swept: u64 = paid
        .iter()
        .filter(|(a, _)| *a != moved)
        .map(|(_, v)| v)
        .sum();
    assert_eq!(treasury(&p).await, U256::from(swept));
    // The console shows each sweep's batch and the batch's transaction, the failed one's too.
    let (status, listed) = p.app.get_auth("/v1/admin/sweeps", ADMIN).await;
    assert_eq!(status, reqwest::StatusCode::OK, "{listed}");
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 5, "{listed}");
    for item in items {
        assert_eq!(item["batch_id"], b[0].batch_id, "{item}");
        assert_eq!(item["batch_tx_hash"], b[0].tx_hash.as_str(), "{item}");
        assert_eq!(item["batch_size"], 5, "{item}");
        assert_eq!(item["batch_status"], "confirmed", "{item}");
    }

    // The operator retries after new funds arrived: swept as any retried sweep.
    let failed = rows.iter().find(|r| r.1 == moved_key).unwrap().0;
    p.anvil.mint(p.anvil.usdc, moved, 700_000).await;
    p.anvil.mine(3).await;
    sweeper::retry(&p.app.state.pool, failed).await.unwrap();
    p.sweep_all().await;
    let status: String = sqlx::query_scalar("select status from sweep where sweep_id = $1")
        .bind(failed)
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap();
    assert_eq!(status, "confirmed");
    assert_eq!(p.anvil.token_balance(p.anvil.usdc, moved).await, U256::ZERO);
    assert_eq!(treasury(&p).await, U256::from(swept + 700_000));
    assert_eq!(p.outbox("webhook", "sweep.failed").await, 1);
}

/// The process dies after the batch's intent and nonce are committed, before anything is sent: a
/// restarted sweeper sends the stored bytes once; and bytes that reached the node before a crash
/// are recognised by hash, never sent as a second transaction.
#[sqlx::test]
async fn a_crash_between_sign_and_broadcast_never_sweeps_a_batch_twice(pool: PgPool) {
    let vars = [("SWEEP_BATCH_SIZE", "20"), FAST];
    let p = setup_with(pool, &vars, 0, false).await;
    let paid = deposits(&p, 4).await;
    pass(&p).await;
    let b = batches(&p).await;
    assert_eq!((b.len(), b[0].status.as_str()), (1, "signed"), "{b:?}");
    let gas = p.wallets.gas.address();
    assert_eq!(
        p.anvil.nonce(gas).await,
        0,
        "nothing broadcast before the commit"
    );
    let signed: i64 = p
        .scalar_i64("select count(*) from sweep where status = 'signed' and batch_id is not null")
        .await;
    assert_eq!(signed, 4);
    assert_eq!(p.scalar_i64("select next_nonce from gas_wallet").await, 1);

    // "Restart": a new process on the same database.
    let restarted = crate::chain::spawn_pay_app(
        p.app.state.pool.clone(),
        &p.anvil,
        &p.wallets,
        std::slice::from_ref(&p.gemini),
        &vars,
    )
    .await;
    for _ in 0..4 {
        sweeper::run_once(&restarted.state.pool, &restarted.state.chains)
            .await
            .unwrap();
        p.anvil.mine(2).await;
    }
    let b = batches(&p).await;
    assert_eq!((b.len(), b[0].status.as_str()), (1, "confirmed"), "{b:?}");
    assert!(sweeps(&p).await.iter().all(|r| r.2 == "confirmed"));
    assert_eq!(p.anvil.nonce(gas).await, 1, "exactly one transaction");
    let total: u64 = paid.iter().map(|(_, a)| a).sum();
    assert_eq!(treasury(&p).await, U256::from(total));

    // Second batch: the broadcast reached the node, the process died before recording it.
    let more = deposits_more(&p, 3).await;
    pass(&p).await;
    let b = batches(&p).await;
    assert_eq!((b.len(), b[1].status.as_str()), (2, "signed"), "{b:?}");
    let sent = p
        .anvil
        .rpc(
            "eth_sendRawTransaction",
            json!([format!("0x{}", hex::encode(b[1].raw_tx.clone().unwrap()))]),
        )
        .await;
    assert_eq!(sent.as_str(), Some(b[1].tx_hash.as_str()));
    p.anvil.mine(2).await;
    p.sweep_all().await;
    let b = batches(&p).await;
    assert_eq!(b[1].status, "confirmed");
    assert_eq!(p.anvil.nonce(gas).await, 2);
    let more_total: u64 = more.iter().map(|(_, a)| a).sum();
    assert_eq!(treasury(&p).await, U256::from(total + more_total));
}

/// `n` more paid checkouts after earlier ones (amounts 2,000,000 + i).
async fn deposits_more(p: &Pay, n: u64) -> Vec<(Address, u64)> {
    let before: i64 = p.scalar_i64("select count(*) from deposit").await;
    let mut out = Vec::new();
    for i in 0..n {
        let (_, address) = p.initiate(GEMINI_USDC).await;
        let amount = 2_000_000 + i;
        p.anvil.mint(p.anvil.usdc, address, amount).await;
        out.push((address, amount));
    }
    p.anvil.mine(3).await;
    p.watch().await;
    let after: i64 = p.scalar_i64("select count(*) from deposit").await;
    assert_eq!(after - before, i64::try_from(n).unwrap());
    out
}

/// A broadcast batch the node holds but does not mine (it does not fit the block gas limit) is
/// replaced at the same nonce with both fees raised; the replacement is mined and every member
/// settles on its hash.
#[sqlx::test]
async fn a_stuck_batch_is_replaced_at_the_same_nonce_and_settles_on_the_mined_hash(pool: PgPool) {
    let p = setup_with(
        pool,
        &[
            ("SWEEP_BATCH_SIZE", "20"),
            ("REPLACE_AFTER_BLOCKS", "3"),
            FAST,
        ],
        0,
        false,
    )
    .await;
    let paid = deposits(&p, 3).await;
    p.anvil.rpc("evm_setAutomine", json!([false])).await;
    pass(&p).await;
    pass(&p).await;
    let sent = batches(&p).await;
    assert_eq!(sent[0].status, "broadcast", "{sent:?}");
    p.anvil
        .rpc("evm_setBlockGasLimit", json!([format!("{:#x}", 60_000)]))
        .await;
    p.anvil.mine(3).await;
    p.anvil
        .rpc(
            "evm_setBlockGasLimit",
            json!([format!("{:#x}", 30_000_000)]),
        )
        .await;
    pass(&p).await;
    let replaced = batches(&p).await;
    assert_eq!(replaced[0].replacements, 1, "{replaced:?}");
    assert_eq!(
        replaced[0].replaced_tx_hashes,
        vec![sent[0].tx_hash.clone()]
    );
    let (old, new) = (
        vendor_server::chain::replace::decode(sent[0].raw_tx.as_deref().unwrap()).unwrap(),
        vendor_server::chain::replace::decode(replaced[0].raw_tx.as_deref().unwrap()).unwrap(),
    );
    assert!(new.max_fee_per_gas >= old.max_fee_per_gas * 125 / 100);
    assert_eq!((new.nonce, replaced[0].nonce), (old.nonce, 0));
    p.anvil.mine(3).await;
    pass(&p).await;
    let done = batches(&p).await;
    assert_eq!(done[0].status, "confirmed", "{done:?}");
    assert_eq!(done[0].tx_hash, replaced[0].tx_hash);
    for (id, _, status, hash, _) in sweeps(&p).await {
        assert_eq!(status, "confirmed", "sweep {id}");
        assert_eq!(hash.as_deref(), Some(done[0].tx_hash.as_str()));
    }
    assert_eq!(p.anvil.nonce(p.wallets.gas.address()).await, 1);
    let total: u64 = paid.iter().map(|(_, a)| a).sum();
    assert_eq!(treasury(&p).await, U256::from(total));
    assert_eq!(p.outbox("webhook", "tx.stuck").await, 0);
}

/// Gas per deposit at batch sizes 1, 5, 20 and 50 (a benchmark, not a timed test; gas is
/// deterministic): `scripts/bench-sweep-batch.sh`, or `cargo nextest run --test api --run-ignored
/// only -E 'test(sweep_batch_gas_benchmark)' --no-capture`.
#[ignore = "benchmark; run explicitly"]
#[sqlx::test]
async fn sweep_batch_gas_benchmark(pool: PgPool) {
    let p = setup_with(pool, &[FAST], 0, false).await;
    let mut lines = Vec::new();
    for size in [1u64, 5, 20, 50] {
        let vars = [
            ("SWEEP_BATCH_SIZE", size.to_string()),
            ("SWEEP_BATCH_GAS_CAP", "10000000".to_owned()),
            (FAST.0, FAST.1.to_owned()),
        ];
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let app = crate::chain::spawn_pay_app(
            p.app.state.pool.clone(),
            &p.anvil,
            &p.wallets,
            std::slice::from_ref(&p.gemini),
            &vars,
        )
        .await;
        let first: i64 = p
            .scalar_i64("select coalesce(max(sweep_id), 0) from sweep")
            .await;
        deposits_more(&p, size).await;
        for _ in 0..12 {
            sweeper::run_once(&app.state.pool, &app.state.chains)
                .await
                .unwrap();
            p.anvil.mine(2).await;
            let open: i64 = p
                .scalar_i64(
                    "select count(*) from sweep where status not in ('confirmed', 'failed')",
                )
                .await;
            if open == 0 {
                break;
            }
        }
        let (n, txs, gas): (i64, i64, i64) = sqlx::query_as(
            "select count(*), count(distinct tx_hash), sum(gas_used)::bigint from sweep
             where sweep_id > $1 and status = 'confirmed'",
        )
        .bind(first)
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap();
        assert_eq!(n, i64::try_from(size).unwrap());
        // The batch's own gas (the members' shares round down).
        let total: i64 = if size == 1 {
            gas
        } else {
            sqlx::query_scalar(
                "select sum(gas_used)::bigint from sweep_batch where batch_id in
                     (select batch_id from sweep where sweep_id > $1)",
            )
            .bind(first)
            .fetch_one(&p.app.state.pool)
            .await
            .unwrap()
        };
        lines.push(format!(
            "batch size {size:>2}: {txs} transaction(s), {total} gas, {} gas per deposit",
            total / n
        ));
    }
    println!("EIP-3009 sweeps through Multicall3 aggregate3 (TestUSDC on anvil):");
    for line in lines {
        println!("{line}");
    }
}
