//! Several replicas on one database: three real server processes (the built binary, jobs on) on one
//! PostgreSQL database and one anvil, driven through checkouts, deposits, top-ups and metering; and the
//! daily cost import scheduled on three replicas. Nothing is done twice, nothing is lost.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::primitives::{Address, U256};
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::chain::{Anvil, Wallets, chain_vars};
use crate::checkout::GEMINI_USDC;
use crate::fixtures::database_url;
use crate::helpers::ROOT;

/// One `vendor-server serve` process, killed on drop.
struct Replica {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Replica {
    async fn start(db: &str, chain: &[(String, String)], webhook: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let dir = std::env::temp_dir().join(format!("vendor-replica-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("server.log");
        let mut vars: Vec<(String, String)> = chain.to_vec();
        vars.extend(
            [
                ("PATH", std::env::var("PATH").unwrap_or_default().as_str()),
                ("DATABASE_URL", db),
                ("HOST", "127.0.0.1"),
                ("PORT", &port.to_string()),
                ("PUBLIC_BASE_URL", &url),
                ("OFFERS_FILE", &format!("{ROOT}/config/offers.toml")),
                ("JOBS_ENABLED", "true"),
                ("GEMINI_API_KEY", "AIza-replica-test"),
                ("VENDOR_WEBHOOK_URL", webhook),
                ("VENDOR_WEBHOOK_SECRET", "replica-secret"),
                ("RUST_LOG", "warn"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
        let child = Command::new(env!("CARGO_BIN_EXE_vendor-server"))
            .arg("serve")
            .current_dir(&dir)
            .env_clear()
            .envs(vars)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let replica = Self { child, url, log };
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = client.get(format!("{}/health", replica.url)).send().await
                && r.status() == StatusCode::OK
            {
                return replica;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("replica did not start: {}", replica.logs());
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Webhook deliveries received, by event id.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<HashMap<String, (usize, String)>>>);

async fn hook(State(received): State<Received>, headers: HeaderMap, body: String) -> StatusCode {
    let id = headers
        .get("x-vendor-event-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let event: Value = serde_json::from_str(&body).unwrap_or_default();
    let kind = event["type"].as_str().unwrap_or_default().to_owned();
    received.0.lock().unwrap().entry(id).or_insert((0, kind)).0 += 1;
    StatusCode::OK
}

async fn send(client: &reqwest::Client, url: String, token: Option<&str>, body: &Value) -> Value {
    let mut request = client.post(url).json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn scalar(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap()
}

const PURCHASES: usize = 6;
const TOPUPS: usize = 3;
const METER_CALLS: usize = 20;
/// $0.21 per metering call.
const METER_MICROS: i64 = 210_000;

#[sqlx::test]
async fn three_server_processes_on_one_database_do_each_unit_once(pool: PgPool) {
    let anvil = Anvil::start().await;
    let wallets = Wallets::random();
    anvil
        .set_eth(
            wallets.gas.address(),
            U256::from(10u64).pow(U256::from(19u64)),
        )
        .await;
    let received = Received::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let webhook = format!("http://{}/hook", listener.local_addr().unwrap());
    let receiver = Router::new()
        .route("/hook", post(hook))
        .with_state(received.clone());
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let db = database_url(&pool);
    let chain = chain_vars(&anvil, &wallets);
    let replicas = [
        Replica::start(&db, &chain, &webhook).await,
        Replica::start(&db, &chain, &webhook).await,
        Replica::start(&db, &chain, &webhook).await,
    ];
    // Blocks keep coming (deposits count at head - 2).
    let miner = {
        let url = anvil.url.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                let _ = client
                    .post(&url)
                    .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "anvil_mine", "params": ["0x1"]}))
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let out = Command::new(env!("CARGO_BIN_EXE_vendor-server"))
        .args(["tokens", "create", "--label", "replicas"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let client = reqwest::Client::new();

    // Checkouts: initiate on one replica, pay, finalize on another.
    let mut minted = 0u64;
    let mut bought: Vec<(uuid::Uuid, Address)> = Vec::new();
    for i in 0..PURCHASES {
        let a = &replicas[i % 3];
        let b = &replicas[(i + 1) % 3];
        let started = send(
            &client,
            format!("{}/v1/checkout/initiate", a.url),
            None,
            &json!({"checkout_flow_id": GEMINI_USDC, "email": "c@example.com"}),
        )
        .await;
        let session = started["checkout_session_id"].as_str().unwrap().to_owned();
        let address: Address = started["crypto_checkout"]["receiving_address"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let amount = 5_000_000 + i as u64;
        anvil.mint(anvil.usdc, address, amount).await;
        minted += amount;
        let body = json!({
            "checkout_flow_id": GEMINI_USDC,
            "checkout_session_id": session,
            "officex_purchase_id": format!("PurchaseID_{}", uuid::Uuid::new_v4()),
            "proxy_buyer_data": {"org_id": "DriveID_abc", "org_endpoint": "https://abc.icp0.io", "user_id": "UserID_u"},
            "sweep_tokens": []
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let f = send(
                &client,
                format!("{}/v1/checkout/finalize", b.url),
                None,
                &body,
            )
            .await;
            if f["success"] == true {
                break;
            }
            assert!(Instant::now() < deadline, "finalize never succeeded: {f}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let purchase: uuid::Uuid = sqlx::query_scalar(
            "select purchase_id from checkout where checkout_session_id = $1::uuid",
        )
        .bind(session.trim_start_matches("CheckoutSessionID_"))
        .fetch_one(&pool)
        .await
        .unwrap();
        bought.push((purchase, address));
    }

    // Metering through every replica at once: $4.20 per purchase crosses into `low` once.
    let calls = bought
        .iter()
        .flat_map(|(purchase, _)| (0..METER_CALLS).map(move |n| (*purchase, n)));
    let metered = futures::future::join_all(calls.map(|(purchase, n)| {
        let url = format!(
            "{}/v1/purchase/{}/meter-usage",
            replicas[n % 3].url,
            vendor_server::domain::ids::PurchaseId(purchase)
        );
        let client = client.clone();
        let token = token.clone();
        async move {
            send(
                &client,
                url,
                Some(&token),
                &json!({"usage_amount": 1, "usage_unit": "calls", "billed_amount": "0.21"}),
            )
            .await
        }
    }))
    .await;
    assert_eq!(metered.len(), PURCHASES * METER_CALLS);

    // Top-ups after finalize: the replicas' watchers credit them, their sweepers sweep them.
    for (_, address) in bought.iter().take(TOPUPS) {
        anvil.mint(anvil.usdc, *address, 3_000_000).await;
        minted += 3_000_000;
    }

    // Until every deposit is credited and swept and every notification is out.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let deposits = scalar(
            &pool,
            "select count(*) from deposit where status = 'credited'",
        )
        .await;
        let unswept = scalar(
            &pool,
            "select count(*) from deposit where sweep_id is null
                or sweep_id in (select sweep_id from sweep where status <> 'confirmed')",
        )
        .await;
        let open = scalar(
            &pool,
            "select count(*) from sweep where status <> 'confirmed'",
        )
        .await;
        let pending = scalar(
            &pool,
            "select count(*) from outbox where status = 'pending'",
        )
        .await;
        let treasury = anvil.token_balance(anvil.usdc, wallets.treasury).await;
        if deposits == (PURCHASES + TOPUPS) as i64
            && unswept == 0
            && open == 0
            && pending == 0
            && treasury == U256::from(minted)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not settled: {deposits} credited, {unswept} unswept, {open} open sweeps, {pending} pending \
             notifications, treasury {treasury}/{minted}\n{}",
            replicas[0].logs()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    miner.abort();

    // Ledger: every balance is its ledger, and the ledger is credits minus debits, exactly.
    let mismatched = scalar(
        &pool,
        "select count(*) from purchase p
         where p.balance_micros <> (select coalesce(sum(amount_micros), 0) from ledger_entry l
                                    where l.purchase_id = p.purchase_id)",
    )
    .await;
    assert_eq!(mismatched, 0);
    let ledger = scalar(
        &pool,
        "select coalesce(sum(amount_micros), 0)::bigint from ledger_entry",
    )
    .await;
    let credits = scalar(
        &pool,
        "select coalesce(sum(amount_micros), 0)::bigint from deposit where status = 'credited'",
    )
    .await;
    assert_eq!(
        credits,
        i64::try_from(minted).unwrap(),
        "rate 1: micro-USD = units"
    );
    let debits = (PURCHASES * METER_CALLS) as i64 * METER_MICROS;
    assert_eq!(ledger, credits - debits);
    assert_eq!(
        scalar(
            &pool,
            "select count(*) from ledger_entry where kind = 'usage'"
        )
        .await,
        (PURCHASES * METER_CALLS) as i64
    );

    // Nonces: gap-free, each handed out once and used once.
    let gas = wallets.gas.address();
    let next_nonce = scalar(&pool, "select next_nonce from gas_wallet").await;
    let sweeps = scalar(&pool, "select count(*) from sweep").await;
    assert_eq!(next_nonce, sweeps);
    assert_eq!(anvil.nonce(gas).await, u64::try_from(sweeps).unwrap());
    let nonces: Vec<i64> = sqlx::query_scalar("select nonce from sweep order by nonce")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(nonces, (0..sweeps).collect::<Vec<_>>());

    // One sweep per deposit set: every sweep moved exactly its deposits.
    let wrong = scalar(
        &pool,
        "select count(*) from sweep s
         where s.amount_units <> (select sum(amount_units) from deposit d where d.sweep_id = s.sweep_id)",
    )
    .await;
    assert_eq!(wrong, 0, "a sweep that moved other than its deposits");
    for (_, address) in &bought {
        assert_eq!(anvil.token_balance(anvil.usdc, *address).await, U256::ZERO);
    }

    // Notifications: each event delivered once; one per crossing.
    let outbox_webhooks = scalar(
        &pool,
        "select count(*) from outbox where channel = 'webhook' and status = 'delivered'",
    )
    .await;
    let received = received.0.lock().unwrap().clone();
    assert_eq!(received.len() as i64, outbox_webhooks);
    let twice: Vec<_> = received.iter().filter(|(_, (n, _))| *n != 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    let count = |kind: &str| received.values().filter(|(_, k)| k == kind).count();
    assert_eq!(count("deposit.credited"), PURCHASES + TOPUPS);
    let low_crossings = scalar(
        &pool,
        "select count(*) from outbox where channel = 'webhook' and event_type = 'purchase.status_changed'
           and payload->>'status' = 'low'",
    )
    .await;
    assert_eq!(
        low_crossings, PURCHASES as i64,
        "one `low` crossing per purchase"
    );
    // Each status version (one crossing) has one webhook, of one shape.
    let extra = scalar(
        &pool,
        "select count(*) - count(distinct (purchase_id, payload->>'status_version')) from outbox
         where channel = 'webhook' and event_type = 'purchase.status_changed'",
    )
    .await;
    assert_eq!(
        extra, 0,
        "a crossing notified twice (or in a second payload shape)"
    );
}

/// The daily cost import scheduled on three replicas (their crons fire seconds apart, after one
/// another's run finished): it runs once that day.
#[sqlx::test]
async fn the_daily_cost_import_runs_once_per_day_across_replicas(pool: PgPool) {
    use crate::cost_import::{day, env, part, purchase, row};
    let mut env = env(pool, &[]).await;
    let p = purchase(&env.app.state.pool, 10).await;
    let tag = p.to_string();
    env.deliver("2026-03", &[part(&[row(day(2026, 3, 1), "1", Some(&tag))])])
        .await;
    let today = day(2026, 3, 20);
    let mut ran = 0;
    for _ in 0..3 {
        // Each replica's own state (own pool) on the same database.
        let replica = vendor_server::state::AppState::new(
            sqlx::postgres::PgPoolOptions::new()
                .connect_with(env.app.state.pool.connect_options().as_ref().clone())
                .await
                .unwrap(),
            env.app.state.config.clone(),
        )
        .unwrap();
        if vendor_server::jobs::cost_import::run_daily(&replica, today)
            .await
            .unwrap()
            .is_some()
        {
            ran += 1;
        }
    }
    assert_eq!(ran, 1);
    let runs = scalar(&env.app.state.pool, "select count(*) from cost_import_run").await;
    assert_eq!(runs, 1, "one period imported once");
    // The next day runs again.
    assert!(
        vendor_server::jobs::cost_import::run_daily(&env.app.state, day(2026, 3, 21))
            .await
            .unwrap()
            .is_some()
    );
}
