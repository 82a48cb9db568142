//! Backups that restore: `scripts/backup.sh` dumps a database holding purchases, ledger entries,
//! deposits and an unfinished sweep; `scripts/restore.sh` restores it into a new database; a server
//! started on the copy shows every balance as it was and finishes the pending sweep.

use std::path::Path;
use std::process::Command;

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use vendor_server::chain::sweeper;

use crate::chain::spawn_pay_app;
use crate::checkout::{GEMINI_USDC, GEMINI_USDT, setup};
use crate::helpers::ROOT;

fn url_of(database: &str) -> String {
    let admin = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    format!("{}/{database}", admin.rsplit_once('/').unwrap().0)
}

fn script(name: &str, args: &[&str], database_url: &str) -> String {
    let out = Command::new("sh")
        .arg(Path::new(ROOT).join("scripts").join(name))
        .args(args)
        .env("DATABASE_URL", database_url)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{name} {args:?} failed: {text}");
    text
}

async fn balances(pool: &PgPool) -> Vec<(uuid::Uuid, i64, String)> {
    sqlx::query_as("select purchase_id, balance_micros, status from purchase order by purchase_id")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[sqlx::test]
async fn a_backup_restores_into_a_new_database_with_every_balance_and_pending_sweep(pool: PgPool) {
    let p = setup(pool.clone()).await;
    // Two paid purchases (USDC and USDT), one debit, and sweeps left unfinished.
    let mut keys = Vec::new();
    for (flow, id) in [
        (GEMINI_USDC, "PurchaseID_b1"),
        (GEMINI_USDT, "PurchaseID_b2"),
    ] {
        let (session, address) = p.initiate(flow).await;
        let token = if flow == GEMINI_USDC {
            p.anvil.usdc
        } else {
            p.anvil.usdt
        };
        p.anvil.mint(token, address, 7_250_000).await;
        p.anvil.mine(2).await;
        let f = p.finalize(flow, &session, id).await;
        assert_eq!(f["receipt"]["status"], "RUNNING", "{f}");
        keys.push((
            f["receipt"]["vendor_purchase_id"]
                .as_str()
                .unwrap()
                .to_owned(),
            f["receipt"]["customer_billing_api_key"]
                .as_str()
                .unwrap()
                .to_owned(),
        ));
    }
    // One sweeper pass plans and signs; nothing is confirmed yet.
    sweeper::run_once(&p.app.state.pool, &p.app.state.chains)
        .await
        .unwrap();
    let pending = count(
        &pool,
        "select count(*) from sweep where status not in ('confirmed', 'failed')",
    )
    .await;
    assert!(pending > 0, "the test needs an unfinished sweep");
    let before = balances(&pool).await;
    let ledger_before = count(&pool, "select count(*) from ledger_entry").await;
    let deposits_before = count(&pool, "select count(*) from deposit").await;

    let source = pool.connect_options().get_database().unwrap().to_owned();
    let dir = std::env::temp_dir().join(format!("vendor-backup-{}", uuid::Uuid::new_v4()));
    let dir_s = dir.display().to_string();
    script("backup.sh", &[&dir_s], &url_of(&source));
    // Retention keeps the newest BACKUP_KEEP dumps.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    script("backup.sh", &[&dir_s], &url_of(&source));
    let dumps: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(dumps.len(), 2, "{dumps:?}");
    let newest = dumps.iter().max().unwrap().display().to_string();

    let target = format!("vs_restored_{}", uuid::Uuid::new_v4().simple());
    let restored_url = url_of(&target);
    let said = script("restore.sh", &[&newest, &restored_url], &restored_url);
    assert!(said.contains("2 purchases"), "{said}");
    // A second restore into the same database is refused (never clobbers).
    let again = Command::new("sh")
        .arg(Path::new(ROOT).join("scripts/restore.sh"))
        .args([&newest, &restored_url])
        .output()
        .unwrap();
    assert!(!again.status.success());

    let restored = PgPoolOptions::new()
        .max_connections(5)
        .connect(&restored_url)
        .await
        .unwrap();
    assert_eq!(balances(&restored).await, before);
    assert_eq!(
        count(&restored, "select count(*) from ledger_entry").await,
        ledger_before
    );
    assert_eq!(
        count(&restored, "select count(*) from deposit").await,
        deposits_before
    );
    assert_eq!(
        count(
            &restored,
            "select count(*) from sweep where status not in ('confirmed', 'failed')"
        )
        .await,
        pending
    );

    // A server on the restored database: customers see their balances, and the sweeps finish.
    let app = spawn_pay_app(
        restored.clone(),
        &p.anvil,
        &p.wallets,
        &[p.gemini.clone(), p.s3.clone()],
        &[],
    )
    .await;
    for (id, key) in &keys {
        let uuid: uuid::Uuid = id
            .trim_start_matches("CustomerPurchaseID_")
            .parse()
            .unwrap();
        let micros = before.iter().find(|b| b.0 == uuid).unwrap().1;
        let (status, view) = app.get_auth(&format!("/v1/purchase/{id}"), key).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{view}");
        let shown = vendor_server::domain::money::UsdMicros::parse_decimal(
            view["purchase"]["balance_usd"].as_str().unwrap(),
        )
        .unwrap();
        assert_eq!(shown.0, micros, "{view}");
    }
    for _ in 0..12 {
        sweeper::run_once(&app.state.pool, &app.state.chains)
            .await
            .unwrap();
        p.anvil.mine(2).await;
    }
    assert_eq!(
        count(
            &restored,
            "select count(*) from sweep where status not in ('confirmed', 'failed')"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &restored,
            "select count(*) from sweep where status = 'failed'"
        )
        .await,
        0
    );
    restored.close().await;
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
    sqlx::query(&format!(
        "drop database if exists \"{target}\" with (force)"
    ))
    .execute(&pool)
    .await
    .unwrap();
}
