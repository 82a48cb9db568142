//! meter-usage throughput at 64 concurrent clients (HTTP, keep-alive, unique idempotency keys) on
//! one purchase and spread over 1,000 purchases, next to `pgbench` running the naive debit
//! transaction (lock the balance row, insert a ledger row, update the balance, commit) on 1 and
//! 1,000 rows at the same client count.
//!
//! Run: `DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench meter`
//! (env: `BENCH_SECS` per scenario, default 10; `BENCH_CLIENTS`, default 64). It creates and drops
//! its own databases `vs_bench_meter` and `vs_bench_pgbench` on that server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret;
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vendor_server::billing::ledger::{self, EntryKind, NewEntry};
use vendor_server::billing::purchases::{self, NewPurchase};
use vendor_server::config::Config;
use vendor_server::domain::money::UsdMicros;
use vendor_server::startup::Application;

const PURCHASES: usize = 1000;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn server_url() -> String {
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL (any database on the server)");
    url.rsplit_once('/').map(|(s, _)| s.to_owned()).unwrap()
}

async fn recreate(db: &str) -> String {
    let admin = format!("{}/postgres", server_url());
    let mut conn = PgConnection::connect(&admin).await.unwrap();
    sqlx::query(&format!("drop database if exists {db} with (force)"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!("create database {db}"))
        .execute(&mut conn)
        .await
        .unwrap();
    format!("{}/{db}", server_url())
}

struct Run {
    ok: u64,
    failed: HashMap<u16, u64>,
    latencies: Vec<Duration>,
    elapsed: Duration,
}

impl Run {
    fn report(&self, name: &str) -> f64 {
        let mut l = self.latencies.clone();
        l.sort_unstable();
        let pct = |p: f64| {
            l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        let rps = self.ok as f64 / self.elapsed.as_secs_f64();
        println!(
            "{name:<34} {rps:>8.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   ok {}   non-200 {:?}",
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            self.ok,
            self.failed
        );
        rps
    }
}

async fn load(
    base: &str,
    targets: Arc<Vec<(String, String)>>,
    clients: usize,
    secs: u64,
    tag: &str,
) -> Run {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let client = client.clone();
            let targets = targets.clone();
            let base = base.to_owned();
            let tag = tag.to_owned();
            tokio::spawn(async move {
                let mut ok = 0u64;
                let mut failed: HashMap<u16, u64> = HashMap::new();
                let mut latencies = Vec::new();
                let mut i = 0usize;
                let body =
                    r#"{"usage_amount":"1","usage_unit":"tokens","billed_amount":"0.000001"}"#;
                while Instant::now() < deadline {
                    let (id, key) = &targets[(c + i * clients) % targets.len()];
                    let t = Instant::now();
                    let response = client
                        .post(format!("{base}/v1/purchase/{id}/meter-usage"))
                        .bearer_auth(key)
                        .header("content-type", "application/json")
                        .header("idempotency-key", format!("{tag}-{c}-{i}"))
                        .body(body)
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status().is_success() => {
                            let _ = r.bytes().await;
                            ok += 1;
                            latencies.push(t.elapsed());
                        }
                        Ok(r) => *failed.entry(r.status().as_u16()).or_default() += 1,
                        Err(_) => *failed.entry(0).or_default() += 1,
                    }
                    i += 1;
                }
                (ok, failed, latencies)
            })
        })
        .collect();
    let mut run = Run {
        ok: 0,
        failed: HashMap::new(),
        latencies: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for t in tasks {
        let (ok, failed, latencies) = t.await.unwrap();
        run.ok += ok;
        for (k, v) in failed {
            *run.failed.entry(k).or_default() += v;
        }
        run.latencies.extend(latencies);
    }
    run.elapsed = started.elapsed();
    run
}

fn pgbench(url: &str, rows: u32, clients: u64, secs: u64) -> f64 {
    let dir = std::env::temp_dir().join(format!("pgbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("debit.sql");
    std::fs::write(
        &script,
        format!(
            "\\set aid random(1, {rows})\n\
             BEGIN;\n\
             SELECT balance FROM bench_balance WHERE id = :aid FOR UPDATE;\n\
             INSERT INTO bench_ledger (account, amount, balance_after) SELECT :aid, -1, balance - 1 FROM bench_balance WHERE id = :aid;\n\
             UPDATE bench_balance SET balance = balance - 1 WHERE id = :aid;\n\
             COMMIT;\n"
        ),
    )
    .unwrap();
    let out = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &clients.to_string(),
            "-j",
            "2",
            "-T",
            &secs.to_string(),
            "-f",
        ])
        .arg(&script)
        .arg(url)
        .output()
        .expect("pgbench (PostgreSQL client tools) on PATH");
    let text = String::from_utf8_lossy(&out.stdout);
    let tps = text
        .lines()
        .find(|l| l.starts_with("tps ="))
        .and_then(|l| l.split_whitespace().nth(2))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or_else(|| {
            panic!(
                "pgbench failed: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let latency = text
        .lines()
        .find(|l| l.starts_with("latency average"))
        .unwrap_or("")
        .to_owned();
    println!(
        "{:<34} {tps:>8.0} tps     ({latency})",
        format!("pgbench naive debit, {rows} row(s)")
    );
    tps
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test`/nextest (listing or running every target) must
    // not start a load test.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let secs = env_or("BENCH_SECS", 10);
    let clients = env_or("BENCH_CLIENTS", 64) as usize;

    // The server on its own runtime (2 workers: this machine's cores), the clients on another.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();

    let db = client_rt.block_on(recreate("vs_bench_meter"));
    let (base, targets, shutdown) = server_rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let vars: HashMap<String, String> = [
            ("DATABASE_URL", db.as_str()),
            ("PUBLIC_BASE_URL", base.as_str()),
            (
                "OFFERS_FILE",
                concat!(env!("CARGO_MANIFEST_DIR"), "/config/offers.toml"),
            ),
            ("JOBS_ENABLED", "false"),
            ("RUST_LOG", "warn"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let config = Config::from_vars(&vars).unwrap();
        let pool = PgPoolOptions::new()
            .max_connections(config.database.max_connections)
            .acquire_timeout(config.database.acquire_timeout)
            .connect(&db)
            .await
            .unwrap();
        let app = Application::build_with(config, pool.clone(), listener)
            .await
            .unwrap();
        let (_, token) = vendor_server::billing::tokens::create(&pool, "bench")
            .await
            .unwrap();
        let token = token.expose_secret().to_owned();
        let mut targets = Vec::new();
        for _ in 0..PURCHASES {
            let mut tx = pool.begin().await.unwrap();
            let created = purchases::create(
                &mut tx,
                &NewPurchase {
                    offer_id: "gemini-api-gateway".into(),
                    title: "bench".into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
            ledger::post(
                &mut tx,
                created.id,
                &NewEntry::new(EntryKind::Deposit, UsdMicros(1_000_000_000_000)).reference("seed"),
            )
            .await
            .unwrap();
            ledger::activate(&mut tx, created.id).await.unwrap();
            tx.commit().await.unwrap();
            targets.push((created.id.to_string(), token.clone()));
        }
        let shutdown = CancellationToken::new();
        tokio::spawn(app.run_until_stopped(shutdown.clone()));
        (base, targets, shutdown)
    });

    println!(
        "meter-usage: {clients} clients, {secs} s per scenario, release build, this machine ({} cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let one = Arc::new(vec![targets[0].clone()]);
    let spread = Arc::new(targets);
    // Warm-up (connections, caches).
    client_rt.block_on(load(&base, spread.clone(), clients, 2, "warm"));
    let hot = client_rt.block_on(load(&base, one, clients, secs, "one"));
    let hot_rps = hot.report("meter-usage, one purchase");
    let wide = client_rt.block_on(load(&base, spread, clients, secs, "spread"));
    let wide_rps = wide.report("meter-usage, 1000 purchases");
    shutdown.cancel();
    drop(server_rt);

    // pgbench: the naive transaction at the same client count.
    let pg_db = client_rt.block_on(recreate("vs_bench_pgbench"));
    client_rt.block_on(async {
        let mut conn = PgConnection::connect(&pg_db).await.unwrap();
        sqlx::raw_sql(
            "create table bench_balance (id int primary key, balance bigint not null);
             insert into bench_balance select g, 1000000000 from generate_series(1, 1000) g;
             create table bench_ledger (id bigserial primary key, account int not null, amount bigint not null,
                 balance_after bigint not null, created_at timestamptz not null default now());",
        )
        .execute(&mut conn)
        .await
        .unwrap();
    });
    let pg_one = pgbench(&pg_db, 1, clients as u64, secs);
    let pg_wide = pgbench(&pg_db, 1000, clients as u64, secs);
    println!(
        "ratio: one purchase {:.2}x pgbench(1 row) ({:.0} vs {:.0}); spread {:.0}% of pgbench(1000 rows) ({:.0} vs {:.0})",
        hot_rps / pg_one,
        hot_rps,
        pg_one,
        100.0 * wide_rps / pg_wide,
        wide_rps,
        pg_wide
    );
    client_rt.block_on(async {
        let admin = format!("{}/postgres", server_url());
        let mut conn = PgConnection::connect(&admin).await.unwrap();
        for db in ["vs_bench_meter", "vs_bench_pgbench"] {
            let _ = sqlx::query(&format!("drop database if exists {db} with (force)"))
                .execute(&mut conn)
                .await;
        }
    });
}
