//! Sweeps on anvil: exactly once across crashes, waiting (with one alert) when the gas wallet is low,
//! the CLI, and the detection-scale benchmark.

use std::time::Instant;

use alloy::primitives::{Address, U256};
use serde_json::json;
use sqlx::PgPool;
use vendor_server::chain::{Chains, sweeper};
use vendor_server::checkout::deposits;
use vendor_server::jobs::Outcome;

use crate::checkout::{GEMINI_USDC, Pay, setup, setup_with};

/// A finalized USDC checkout of `amount` units; returns its deposit address.
async fn paid(p: &Pay, amount: u64) -> Address {
    p.paid_usdc(amount).await.address
}

async fn sweep_row(p: &Pay) -> (String, Option<String>, Option<Vec<u8>>) {
    sqlx::query_as("select status, tx_hash, raw_tx from sweep")
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap()
}

#[sqlx::test]
async fn a_crash_after_the_intent_commit_is_reconciled_without_a_second_send(pool: PgPool) {
    let p = setup(pool).await;
    let address = paid(&p, 2_000_000).await;
    // Pass 1 plans and signs (intent and nonce committed); the "crash" is that nothing else runs.
    sweeper::run_once(&p.app.state.pool, &p.app.state.chains)
        .await
        .unwrap();
    let (status, hash, raw) = sweep_row(&p).await;
    assert_eq!(status, "signed");
    let hash = hash.unwrap();
    let gas = p.wallets.gas.address();
    assert_eq!(
        p.anvil.nonce(gas).await,
        0,
        "nothing broadcast before the commit"
    );
    let nonce: i64 = sqlx::query_scalar("select next_nonce from gas_wallet")
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap();
    assert_eq!(nonce, 1);

    // "Restart": a new process on the same database reconciles and sends the stored bytes once.
    drop(raw);
    let restarted = crate::chain::spawn_pay_app(
        p.app.state.pool.clone(),
        &p.anvil,
        &p.wallets,
        std::slice::from_ref(&p.gemini),
        &[],
    )
    .await;
    for _ in 0..4 {
        sweeper::run_once(&restarted.state.pool, &restarted.state.chains)
            .await
            .unwrap();
        p.anvil.mine(2).await;
    }
    let (status, after_hash, _) = sweep_row(&p).await;
    assert_eq!(
        (status.as_str(), after_hash.as_deref()),
        ("confirmed", Some(hash.as_str()))
    );
    assert_eq!(
        p.anvil.nonce(gas).await,
        1,
        "exactly one transaction from the gas wallet"
    );
    assert_eq!(
        p.anvil
            .token_balance(p.anvil.usdc, p.wallets.treasury)
            .await,
        U256::from(2_000_000u64)
    );
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, address).await,
        U256::ZERO
    );
}

#[sqlx::test]
async fn a_crash_between_broadcast_and_record_does_not_send_again(pool: PgPool) {
    let p = setup(pool).await;
    paid(&p, 3_000_000).await;
    sweeper::run_once(&p.app.state.pool, &p.app.state.chains)
        .await
        .unwrap();
    let (status, hash, raw) = sweep_row(&p).await;
    assert_eq!(status, "signed");
    // The broadcast reached the node but the process died before recording it.
    let sent = p
        .anvil
        .rpc(
            "eth_sendRawTransaction",
            json!([format!("0x{}", hex::encode(raw.unwrap()))]),
        )
        .await;
    assert_eq!(sent.as_str(), hash.as_deref());
    p.anvil.mine(2).await;
    for _ in 0..3 {
        sweeper::run_once(&p.app.state.pool, &p.app.state.chains)
            .await
            .unwrap();
        p.anvil.mine(2).await;
    }
    let (status, after, _) = sweep_row(&p).await;
    assert_eq!((status.as_str(), after), ("confirmed", hash));
    assert_eq!(p.anvil.nonce(p.wallets.gas.address()).await, 1);
    assert_eq!(
        p.anvil
            .token_balance(p.anvil.usdc, p.wallets.treasury)
            .await,
        U256::from(3_000_000u64)
    );
    let last_error: Option<String> = sqlx::query_scalar("select last_error from sweep")
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap();
    assert_eq!(last_error, None);
}

#[sqlx::test]
async fn low_gas_makes_sweeps_wait_with_one_alert_then_they_proceed(pool: PgPool) {
    let p = setup_with(pool, &[], 0, true).await;
    let address = paid(&p, 2_000_000).await;
    for _ in 0..3 {
        sweeper::run_once(&p.app.state.pool, &p.app.state.chains)
            .await
            .unwrap();
    }
    let (status, _, _) = sweep_row(&p).await;
    assert_eq!(status, "planned", "waits instead of failing");
    assert_eq!(p.outbox("webhook", "gas.low").await, 1);
    assert_eq!(p.outbox("alert", "gas.low").await, 1);
    // The customer was credited all the same.
    assert_eq!(p.balance().await, 2_000_000);

    p.anvil
        .set_eth(
            p.wallets.gas.address(),
            U256::from(10u64).pow(U256::from(18u64)),
        )
        .await;
    p.sweep_all().await;
    let (status, _, _) = sweep_row(&p).await;
    assert_eq!(status, "confirmed");
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, address).await,
        U256::ZERO
    );
    let low: i64 =
        sqlx::query_scalar("select count(*) from gas_wallet where low_since is not null")
            .fetch_one(&p.app.state.pool)
            .await
            .unwrap();
    assert_eq!(low, 0);
}

#[sqlx::test]
async fn a_sweep_fee_is_its_own_ledger_row(pool: PgPool) {
    let p = setup_with(pool, &[("SWEEP_FEE_USD", "0.05")], 0, false).await;
    paid(&p, 2_000_000).await;
    p.sweep_all().await;
    p.watch().await;
    let fees: Vec<(i64, String)> = sqlx::query_as(
        "select amount_micros, reference from ledger_entry where kind = 'sweep_fee'",
    )
    .fetch_all(&p.app.state.pool)
    .await
    .unwrap();
    assert_eq!(fees.len(), 1, "{fees:?}");
    assert_eq!(fees[0].0, -50_000);
    assert_eq!(p.balance().await, 1_950_000);
}

#[sqlx::test]
async fn cli_lists_sweeps_prints_gas_and_derives_addresses(pool: PgPool) {
    let p = setup(pool).await;
    paid(&p, 1_000_000).await;
    p.sweep_all().await;
    let db_url = {
        let options = p.app.state.pool.connect_options();
        format!(
            "postgres://{}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().unwrap_or_default()
        )
    };
    let vars: Vec<(String, String)> = crate::chain::chain_vars(&p.anvil, &p.wallets)
        .into_iter()
        .chain([("DATABASE_URL".to_owned(), db_url)])
        .collect();
    let run = |args: &[&str]| {
        let dir = std::env::temp_dir().join(format!("vendor-cli-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_vendor-server"))
            .args(args)
            .current_dir(&dir)
            .env_clear()
            .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .unwrap()
    };
    let out = run(&["sweeps"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("confirmed") && stdout.contains("eip3009"),
        "{stdout}"
    );
    let out = run(&["sweeps", "--pending"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no pending sweeps"));
    let out = run(&["sweeps", "retry", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only failed sweeps can be retried"));
    // A failed sweep retried from the CLI is planned again and audited with actor `cli` (SPEC §9).
    sqlx::query("update sweep set status = 'failed', last_error = 'test' where sweep_id = 1")
        .execute(&p.app.state.pool)
        .await
        .unwrap();
    let out = run(&["sweeps", "retry", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audited: Vec<(String, String)> = sqlx::query_as(
        "select action, actor from admin_audit where target_type = 'sweep' and target_id = '1'",
    )
    .fetch_all(&p.app.state.pool)
    .await
    .unwrap();
    assert_eq!(audited, vec![("sweep.retry".to_owned(), "cli".to_owned())]);
    let out = run(&["gas"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&p.wallets.gas.address().to_checksum(None)) && stdout.contains("ETH"),
        "{stdout}"
    );
    let out = run(&["address", "0"]);
    let expected = vendor_server::chain::wallet::derive_address(&p.wallets.mnemonic, 0).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        expected.to_checksum(None)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(&p.wallets.mnemonic));
}

/// Detection at scale (a benchmark, not a timed test): `cargo nextest run --run-ignored only -E
/// 'test(detection_scale_benchmark)' --no-capture`. Watches 10,000 addresses, pays 20 of them, and
/// compares one watcher pass (Transfer-log scan, batched) with Multicall3 balance reads and a JSON-RPC
/// batch of `balanceOf` calls.
#[ignore = "benchmark; run explicitly"]
#[sqlx::test]
async fn detection_scale_benchmark(pool: PgPool) {
    const N: usize = 10_000;
    let p = setup(pool).await;
    let (_, first) = p.initiate(GEMINI_USDC).await;
    let offer = "gemini-api-gateway";
    let mut addresses = vec![first];
    addresses.extend((1..N).map(|_| alloy::signers::local::PrivateKeySigner::random().address()));
    sqlx::query(
        "insert into checkout (checkout_session_id, checkout_wallet_id, checkout_flow_id, offer_id, chain_name,
             token_symbol, deposit_index, deposit_address, expires_at, watch_until)
         select gen_random_uuid(), gen_random_uuid(), $1, $2, 'anvil', 'usdc', 1000 + i, a, now() + interval '1 day',
                now() + interval '30 days'
         from unnest($3::text[]) with ordinality as t(a, i)",
    )
    .bind(GEMINI_USDC)
    .bind(offer)
    .bind(addresses[1..].iter().map(|a| format!("{a:#x}")).collect::<Vec<_>>())
    .execute(&p.app.state.pool)
    .await
    .unwrap();
    for (i, a) in addresses.iter().step_by(N / 20).enumerate() {
        p.anvil
            .mint(
                if i % 2 == 0 {
                    p.anvil.usdc
                } else {
                    p.anvil.usdt
                },
                *a,
                1_000_000,
            )
            .await;
    }
    p.anvil.mine(2).await;
    let chains: &Chains = &p.app.state.chains;
    let chain = chains.iter().next().unwrap();

    let before = chain.rpc_requests();
    let started = Instant::now();
    let outcome = deposits::run_once(&p.app.state.checkouts()).await.unwrap();
    let logs_time = started.elapsed();
    let logs_requests = chain.rpc_requests() - before;
    let found: i64 = sqlx::query_scalar("select count(*) from deposit")
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap();
    assert_eq!(found, 20);
    assert!(matches!(outcome, Outcome::Processed(_)));

    let before = chain.rpc_requests();
    let started = Instant::now();
    let again = deposits::run_once(&p.app.state.checkouts()).await.unwrap();
    let idle_time = started.elapsed();
    let idle_requests = chain.rpc_requests() - before;
    assert_eq!(again, Outcome::Idle);

    let before = chain.rpc_requests();
    let started = Instant::now();
    let mut funded = 0;
    for token in [p.anvil.usdc, p.anvil.usdt] {
        let balances = vendor_server::chain::erc20::multicall_balances(
            chain,
            token,
            &addresses,
            alloy::rpc::types::BlockId::latest(),
            1_000,
        )
        .await
        .unwrap();
        funded += balances.iter().filter(|b| !b.is_zero()).count();
    }
    let multicall_time = started.elapsed();
    let multicall_requests = chain.rpc_requests() - before;
    assert_eq!(funded, 20);

    let before = chain.rpc_requests();
    let started = Instant::now();
    let mut batch = chain.rpc().new_batch();
    let mut waiters = Vec::new();
    for a in &addresses {
        let data = alloy::sol_types::SolCall::abi_encode(
            &vendor_server::chain::erc20::IERC20::balanceOfCall { owner: *a },
        );
        let request = alloy::rpc::types::TransactionRequest::default()
            .to(p.anvil.usdc)
            .input(alloy::rpc::types::TransactionInput::new(data.into()));
        waiters.push(
            batch
                .add_call::<_, alloy::primitives::Bytes>(
                    "eth_call",
                    &(request, alloy::rpc::types::BlockId::latest()),
                )
                .unwrap(),
        );
    }
    batch.send().await.unwrap();
    for w in waiters {
        w.await.unwrap();
    }
    let batch_time = started.elapsed();
    let batch_requests = chain.rpc_requests() - before;

    println!(
        "detection of {N} watched addresses on anvil (2 tokens):\n\
         - Transfer-log scan (watcher pass, {N}/1000 filters batched): {logs_requests} HTTP round trips, {logs_time:?} (found 20 deposits)\n\
         - same, idle pass: {idle_requests} round trips, {idle_time:?}\n\
         - Multicall3 aggregate3 balanceOf, 1000 per call, batches of 4 calls, 2 tokens: {multicall_requests} round trips, {multicall_time:?}\n\
         - JSON-RPC batch of {N} eth_call balanceOf (one token): {batch_requests} round trip, {batch_time:?}"
    );
    assert!(logs_requests <= 20, "{logs_requests} requests");
}

/// Three sweeper replicas on one database: each sweep is signed once, the gas wallet's nonces are
/// gap-free (what the database hands out is what the chain used), and every sweep confirms.
#[sqlx::test]
async fn three_sweepers_on_one_database_sign_each_sweep_once_without_a_nonce_gap(pool: PgPool) {
    const SWEEPS: usize = 6;
    let p = setup(pool).await;
    for i in 0..SWEEPS {
        paid(&p, 1_000_000 + i as u64).await;
    }
    let replicas = [
        p.app.state.clone(),
        p.app.state.clone(),
        p.app.state.clone(),
    ];
    for _ in 0..8 {
        let passes = replicas.iter().map(|state| async move {
            sweeper::run_once(&state.pool, &state.chains).await.unwrap()
        });
        futures::future::join_all(passes).await;
        p.anvil.mine(2).await;
    }
    let statuses: Vec<(i64, String, Option<String>)> =
        sqlx::query_as("select sweep_id, status, last_error from sweep order by sweep_id")
            .fetch_all(&p.app.state.pool)
            .await
            .unwrap();
    assert_eq!(statuses.len(), SWEEPS, "one sweep per deposit set");
    assert!(
        statuses.iter().all(|(_, s, _)| s == "confirmed"),
        "{statuses:?}"
    );
    let next_nonce: i64 = sqlx::query_scalar("select next_nonce from gas_wallet")
        .fetch_one(&p.app.state.pool)
        .await
        .unwrap();
    let used = p.anvil.nonce(p.wallets.gas.address()).await;
    assert_eq!(
        (next_nonce, used),
        (SWEEPS as i64, SWEEPS as u64),
        "every nonce handed out was used, once"
    );
    let nonces: Vec<i64> = sqlx::query_scalar("select nonce from sweep order by nonce")
        .fetch_all(&p.app.state.pool)
        .await
        .unwrap();
    assert_eq!(nonces, (0..SWEEPS as i64).collect::<Vec<_>>());
    assert_eq!(
        p.anvil
            .token_balance(p.anvil.usdc, p.wallets.treasury)
            .await,
        U256::from((0..SWEEPS as u64).map(|i| 1_000_000 + i).sum::<u64>())
    );
}

/// A checkout address and its derivation index, without any deposit.
async fn empty_checkout(p: &Pay) -> (Address, i64) {
    let (_, address) = p.initiate(GEMINI_USDC).await;
    let index: i64 =
        sqlx::query_scalar("select deposit_index from checkout where deposit_address = $1")
            .bind(format!("{address:#x}"))
            .fetch_one(&p.app.state.pool)
            .await
            .unwrap();
    (address, index)
}

async fn insert_sweep(p: &Pay, token: Address, address: Address, index: i64, amount: u64) -> i64 {
    sqlx::query_scalar(
        "insert into sweep (chain_id, token_address, token_symbol, deposit_address, deposit_index,
             treasury_address, amount_units, method, step)
         values (31337, $1, 'USDC', $2, $3, $4, $5, 'eip3009', 'sweep') returning sweep_id",
    )
    .bind(format!("{token:#x}"))
    .bind(format!("{address:#x}"))
    .bind(index)
    .bind(format!("{:#x}", p.wallets.treasury))
    .bind(bigdecimal::BigDecimal::from(amount))
    .fetch_one(&p.app.state.pool)
    .await
    .unwrap()
}

/// Bad sweeps (token no longer configured, deposit index that does not derive the address, a gas
/// estimate that always fails) each fail after bounded retries with one webhook and one alert, and
/// never stop the good sweep behind them nor the pass.
#[sqlx::test]
async fn bad_sweeps_fail_alone_after_bounded_retries_and_never_block_the_others(pool: PgPool) {
    let p = setup(pool).await;
    let (removed, i1) = empty_checkout(&p).await;
    let (mismatch, i2) = empty_checkout(&p).await;
    let (empty, i3) = empty_checkout(&p).await;
    let gone_token = alloy::signers::local::PrivateKeySigner::random().address();
    let bad = [
        insert_sweep(&p, gone_token, removed, i1, 1_000_000).await,
        insert_sweep(&p, p.anvil.usdc, mismatch, i2 + 1000, 1_000_000).await,
        insert_sweep(&p, p.anvil.usdc, empty, i3, 5_000_000).await,
    ];
    let good_address = paid(&p, 2_000_000).await;
    let mut errors = Vec::new();
    for _ in 0..(sweeper::MAX_ATTEMPTS + 4) {
        if let Err(e) = sweeper::run_once(&p.app.state.pool, &p.app.state.chains).await {
            errors.push(e.to_string());
        }
        // Time passes: every backoff is over.
        sqlx::query("update sweep set next_attempt_at = now()")
            .execute(&p.app.state.pool)
            .await
            .unwrap();
        p.anvil.mine(2).await;
    }
    assert!(
        errors.is_empty(),
        "a bad sweep stopped the pass: {errors:?}"
    );
    let rows: Vec<(i64, String, i32, Option<String>)> = sqlx::query_as(
        "select sweep_id, status, attempts, last_error from sweep order by sweep_id",
    )
    .fetch_all(&p.app.state.pool)
    .await
    .unwrap();
    for (id, status, attempts, error) in &rows {
        if bad.contains(id) {
            assert_eq!(status, "failed", "{rows:?}");
            assert_eq!(*attempts, sweeper::MAX_ATTEMPTS, "bounded: {rows:?}");
            assert!(error.is_some());
        } else {
            assert_eq!(status, "confirmed", "{rows:?}");
        }
    }
    assert_eq!(rows.len(), 4);
    assert_eq!(p.outbox("webhook", "sweep.failed").await, 3);
    assert_eq!(p.outbox("alert", "sweep.failed").await, 3);
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, good_address).await,
        U256::ZERO
    );
}

/// Someone relays our signed EIP-3009 authorization before we do: our relay reverts, but the
/// authorization is used and the funds are in the treasury, so the sweep is confirmed, not failed.
#[sqlx::test]
async fn a_reverted_relay_whose_authorization_was_used_is_confirmed(pool: PgPool) {
    use alloy::consensus::Transaction as _;
    use alloy::eips::eip2718::Decodable2718;
    let p = setup(pool).await;
    let address = paid(&p, 2_000_000).await;
    sweeper::run_once(&p.app.state.pool, &p.app.state.chains)
        .await
        .unwrap();
    let (status, _, raw) = sweep_row(&p).await;
    assert_eq!(status, "signed");
    let envelope = alloy::consensus::TxEnvelope::decode_2718(&mut raw.unwrap().as_slice()).unwrap();
    // A third party front-runs with the same calldata.
    let front = p
        .anvil
        .rpc(
            "eth_sendTransaction",
            json!([{
                "from": crate::chain::DEV,
                "to": format!("{:#x}", p.anvil.usdc),
                "data": format!("0x{}", hex::encode(envelope.input())),
                "gas": "0x30d40",
            }]),
        )
        .await;
    assert_eq!(p.anvil.receipt(&front).await["status"], "0x1");
    p.sweep_all().await;
    let (status, _, _) = sweep_row(&p).await;
    let reverted = p
        .anvil
        .rpc(
            "eth_getTransactionReceipt",
            json!([format!("{:#x}", envelope.tx_hash())]),
        )
        .await;
    assert_eq!(reverted["status"], "0x0", "our relay reverted");
    assert_eq!(status, "confirmed");
    assert_eq!(p.outbox("webhook", "sweep.failed").await, 0);
    assert_eq!(
        p.anvil
            .token_balance(p.anvil.usdc, p.wallets.treasury)
            .await,
        U256::from(2_000_000u64)
    );
    assert_eq!(
        p.anvil.token_balance(p.anvil.usdc, address).await,
        U256::ZERO
    );
}

/// The sweeper's hot paths at scale (a benchmark, not a timed test): `cargo nextest run --run-ignored
/// only -E 'test(sweeper_scale_benchmark)' --no-capture`. 100,000 historical deposits, each swept
/// (confirmed), plus one live purchase: times an idle sweeper pass (planner included) and charging
/// the live purchase's sweep fees, with this change's indexes and without them (the old schema).
#[ignore = "benchmark; run explicitly"]
#[sqlx::test]
async fn sweeper_scale_benchmark(pool: PgPool) {
    const N: i64 = 100_000;
    const PASSES: u32 = 20;
    let p = setup(pool).await;
    paid(&p, 1_000_000).await;
    p.sweep_all().await;
    let db = &p.app.state.pool;
    let purchase: uuid::Uuid = sqlx::query_scalar("select purchase_id from purchase")
        .fetch_one(db)
        .await
        .unwrap();
    let started = Instant::now();
    sqlx::query(
        "insert into checkout (checkout_session_id, checkout_wallet_id, checkout_flow_id, offer_id, chain_name,
             token_symbol, deposit_index, deposit_address, expires_at, watch_until)
         select gen_random_uuid(), gen_random_uuid(), $1, 'gemini-api-gateway', 'anvil', 'usdc', 1000000 + i,
                '0x' || lpad(to_hex(i), 40, '0'), now() - interval '60 days', now() - interval '30 days'
         from generate_series(1, $2::bigint) i",
    )
    .bind(GEMINI_USDC)
    .bind(N)
    .execute(db)
    .await
    .unwrap();
    sqlx::query(
        "insert into sweep (chain_id, token_address, token_symbol, deposit_address, deposit_index,
             treasury_address, amount_units, method, step, status, confirmed_at)
         select 31337, $1, 'USDC', deposit_address, deposit_index, $2, 1000000, 'eip3009', 'sweep',
                'confirmed', now()
         from checkout where deposit_index >= 1000000",
    )
    .bind(format!("{:#x}", p.anvil.usdc))
    .bind(format!("{:#x}", p.wallets.treasury))
    .execute(db)
    .await
    .unwrap();
    sqlx::query(
        "insert into deposit (chain_id, tx_hash, log_index, block_number, block_hash, token_address, token_symbol,
             from_address, deposit_address, checkout_session_id, amount_units, amount_micros, status, reference,
             sweep_id)
         select 31337, '0x' || lpad(to_hex(c.deposit_index), 64, '0'), 0, 1, '0x00', s.token_address, 'USDC',
                '0x00', c.deposit_address, c.checkout_session_id, 1000000, 1000000, 'credited',
                'deposit:bench:' || c.deposit_index, s.sweep_id
         from checkout c join sweep s using (deposit_address) where c.deposit_index >= 1000000",
    )
    .execute(db)
    .await
    .unwrap();
    sqlx::query("analyze").execute(db).await.unwrap();
    println!(
        "history: {N} checkouts, deposits and sweeps inserted in {:?}",
        started.elapsed()
    );

    async fn measure(p: &Pay, purchase: uuid::Uuid) -> (std::time::Duration, std::time::Duration) {
        // Warm up.
        assert_eq!(
            sweeper::run_once(&p.app.state.pool, &p.app.state.chains)
                .await
                .unwrap(),
            Outcome::Idle
        );
        let started = Instant::now();
        for _ in 0..PASSES {
            assert_eq!(
                sweeper::run_once(&p.app.state.pool, &p.app.state.chains)
                    .await
                    .unwrap(),
                Outcome::Idle
            );
        }
        let pass = started.elapsed() / PASSES;
        let mut tx = p.app.state.pool.begin().await.unwrap();
        let started = Instant::now();
        for _ in 0..PASSES {
            vendor_server::billing::ledger::charge_sweep_fees(
                &mut tx,
                vendor_server::domain::ids::PurchaseId(purchase),
                |c| p.app.state.chains.sweep_fee(c),
            )
            .await
            .unwrap();
        }
        let fees = started.elapsed() / PASSES;
        tx.rollback().await.unwrap();
        (pass, fees)
    }
    let (pass_after, fees_after) = measure(&p, purchase).await;
    sqlx::query("drop index deposit_unswept_idx")
        .execute(db)
        .await
        .unwrap();
    sqlx::query("drop index sweep_deposit_address_idx")
        .execute(db)
        .await
        .unwrap();
    sqlx::query("analyze").execute(db).await.unwrap();
    let (pass_before, fees_before) = measure(&p, purchase).await;
    println!(
        "sweeper at {N} historical deposits/sweeps (mean of {PASSES}):\n\
         - idle sweeper pass (planner + due sweeps, one RPC head call): before {pass_before:?}, after {pass_after:?}\n\
         - charging one purchase's sweep fees: before {fees_before:?}, after {fees_after:?}"
    );
}

/// A signed sweep whose transaction the node keeps refusing keeps its nonce (dropping it would stall
/// the gas wallet) and is retried with backoff, but the operator hears about it once.
#[sqlx::test]
async fn a_signed_sweep_that_cannot_be_broadcast_alerts_the_operator_once(pool: PgPool) {
    let p = setup(pool).await;
    paid(&p, 2_000_000).await;
    sweeper::run_once(&p.app.state.pool, &p.app.state.chains)
        .await
        .unwrap();
    let (status, _, _) = sweep_row(&p).await;
    assert_eq!(status, "signed");
    sqlx::query("update sweep set raw_tx = '\\x02c0'::bytea")
        .execute(&p.app.state.pool)
        .await
        .unwrap();
    for _ in 0..(sweeper::MAX_ATTEMPTS + 3) {
        sweeper::run_once(&p.app.state.pool, &p.app.state.chains)
            .await
            .unwrap();
        sqlx::query("update sweep set next_attempt_at = now()")
            .execute(&p.app.state.pool)
            .await
            .unwrap();
    }
    let (status, _, _) = sweep_row(&p).await;
    assert_eq!(status, "signed", "keeps its nonce");
    assert_eq!(p.outbox("alert", "sweep.stuck").await, 1);
    assert_eq!(p.outbox("webhook", "sweep.failed").await, 0);
}

#[sqlx::test]
async fn a_sweep_confirmed_before_finalize_is_charged_its_fee_at_finalize(pool: PgPool) {
    let p = setup_with(pool, &[("SWEEP_FEE_USD", "0.05")], 0, false).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
    p.anvil.mine(2).await;
    p.watch().await;
    p.sweep_all().await;
    let (status, _, _) = sweep_row(&p).await;
    assert_eq!(status, "confirmed", "swept before the customer finalized");
    p.finalized(GEMINI_USDC, &session).await;
    let fees: i64 =
        sqlx::query_scalar("select count(*) from ledger_entry where kind = 'sweep_fee'")
            .fetch_one(&p.app.state.pool)
            .await
            .unwrap();
    assert_eq!(fees, 1, "the sweep fee is charged at finalize");
    assert_eq!(p.balance().await, 1_950_000);
}
