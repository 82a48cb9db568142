//! Graceful shutdown under load: SIGTERM to a real server process while 32 clients post meter-usage.
//! Every debit acknowledged before the exit is in the ledger (with its idempotency record), nothing is
//! half-applied (the balance equals the ledger's sum; one usage row per idempotency record), and the
//! process exits cleanly.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use vendor_server::billing::{keys, tokens};

use crate::fixtures::buy;
use crate::helpers::ROOT;
use crate::moto::free_port;

#[sqlx::test]
async fn sigterm_under_meter_load_loses_no_acknowledged_debit(pool: PgPool) {
    let database = pool.connect_options().get_database().unwrap().to_owned();
    let admin = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let database_url = format!("{}/{database}", admin.rsplit_once('/').unwrap().0);
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("vendor-shutdown-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_vendor-server"))
        .arg("serve")
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &database_url)
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("OFFERS_FILE", format!("{ROOT}/config/offers.toml"))
        .env("JOBS_ENABLED", "false")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http
        .get(format!("{base}/health"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "the server did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The server synced the offers at start.
    let purchase = buy(&pool, "gemini-api-gateway", 1_000_000_000, None).await;
    let (_, token) = tokens::create(&pool, "shutdown-test").await.unwrap();
    let token = keys::reveal(&token).to_owned();

    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = format!("{base}/v1/purchase/{}/meter-usage", purchase.id);
    let mut clients = Vec::new();
    for c in 0..32 {
        let (http, url, token, acked, stop) = (
            http.clone(),
            url.clone(),
            token.clone(),
            acked.clone(),
            stop.clone(),
        );
        clients.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let key = format!("k-{c}-{n}");
                let response = http
                    .post(&url)
                    .bearer_auth(&token)
                    .header("Idempotency-Key", &key)
                    .json(&json!({"usage_amount": "1", "usage_unit": "requests", "billed_amount": "0.001", "description": key}))
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status() == reqwest::StatusCode::OK => acked.lock().unwrap().push(key),
                    // Refused or cut off by the shutdown: not acknowledged, may or may not be recorded.
                    Ok(_) | Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_signal = acked.lock().unwrap().len();
    assert!(before_signal > 50, "load did not start: {before_signal}");
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit_deadline = Instant::now() + Duration::from_secs(45);
    let status = loop {
        if let Some(status) = server.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < exit_deadline, "the server did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert!(status.success(), "the server exited with {status}");

    let acked: Vec<String> = acked.lock().unwrap().clone();
    let recorded: HashSet<String> =
        sqlx::query_scalar("select key from meter_idempotency where purchase_id = $1")
            .bind(purchase.id.0)
            .fetch_all(&pool)
            .await
            .unwrap()
            .into_iter()
            .collect();
    let usage_rows: Vec<String> = sqlx::query_scalar(
        "select description from ledger_entry where purchase_id = $1 and kind = 'usage'",
    )
    .bind(purchase.id.0)
    .fetch_all(&pool)
    .await
    .unwrap();
    let missing: Vec<&String> = acked.iter().filter(|k| !recorded.contains(*k)).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not recorded: {missing:?}"
    );
    // Nothing half-applied: one usage row per idempotency record, the balance is the ledger's sum.
    assert_eq!(usage_rows.len(), recorded.len());
    assert_eq!(usage_rows.iter().cloned().collect::<HashSet<_>>(), recorded);
    let (balance, sum): (i64, i64) = sqlx::query_as(
        "select p.balance_micros, (select sum(amount_micros)::bigint from ledger_entry l where l.purchase_id = p.purchase_id)
         from purchase p where purchase_id = $1",
    )
    .bind(purchase.id.0)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(balance, sum);
    assert_eq!(
        balance,
        1_000_000_000 - 1_000 * i64::try_from(recorded.len()).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
