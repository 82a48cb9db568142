//! A database restart: the server stays up, answers 503 JSON quickly while PostgreSQL is down and
//! recovers by itself. Uses its own throwaway cluster (initdb in a temp dir), never the shared one.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vendor_server::config::Config;
use vendor_server::startup::Application;

use crate::helpers::{assert_error, test_vars};

struct TempCluster {
    dir: PathBuf,
    port: u16,
}

fn pg_bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    versions.sort();
    versions
        .last()
        .expect("a PostgreSQL version")
        .join("bin")
        .join(name)
}

/// Runs a PostgreSQL tool as the `postgres` user when we are root (the server refuses root).
fn pg(tool: &str, args: &[&str]) {
    let bin = pg_bin(tool);
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    let mut command = if is_root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    let out = command
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TempCluster {
    fn init() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("vs-pg-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("chown")
            .args(["postgres:postgres", dir.to_str().unwrap()])
            .status();
        let data = dir.join("data");
        pg(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let cluster = Self { dir, port };
        cluster.start();
        cluster
    }

    fn start(&self) {
        let data = self.dir.join("data");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log");
        pg(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }

    fn stop(&self) {
        let data = self.dir.join("data");
        pg(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "fast", "-w", "stop"],
        );
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for TempCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin("pg_ctl"))
            .args([
                "-D",
                data.to_str().unwrap_or_default(),
                "-m",
                "immediate",
                "stop",
            ])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn database_restart_gives_503_then_recovers() {
    let cluster = tokio::task::spawn_blocking(TempCluster::init)
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let vars = test_vars(
        &base_url,
        &[
            ("DATABASE_URL", &cluster.url()),
            ("DATABASE_ACQUIRE_TIMEOUT_SECS", "2"),
            // The Gemini offer is sold (its provider configured).
            ("GEMINI_API_KEY", "test-upstream-key"),
        ],
    );
    let config = Config::from_vars(&vars).unwrap();
    let pool = vendor_server::db::connect(&config.database).await.unwrap();
    let app = Application::build_with(config, pool, listener)
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let _guard = shutdown.clone().drop_guard();
    tokio::spawn(app.run_until_stopped(shutdown));
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let client = client.clone();
        let url = format!("{base_url}{path}");
        async move {
            let response = client.get(url).send().await.unwrap();
            let status = response.status();
            (
                status,
                response
                    .json::<serde_json::Value>()
                    .await
                    .unwrap_or_default(),
            )
        }
    };
    assert_eq!(get("/v1/offer/gemini-api-gateway").await.0, StatusCode::OK);
    assert_eq!(get("/health").await.0, StatusCode::OK);

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.stop();
        cluster
    })
    .await
    .unwrap();
    let started = Instant::now();
    // The offers and lists are served from memory while the database is down; liveness answers.
    assert_eq!(get("/v1/offer/gemini-api-gateway").await.0, StatusCode::OK);
    let (status, suggested) = get("/v1/appstore/suggest").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!suggested.as_array().unwrap().is_empty(), "{suggested}");
    assert_eq!(get("/health/live").await.0, StatusCode::OK);
    // /health's cached database check turns 503 within about a second.
    loop {
        let got = get("/health").await;
        if got.0 == StatusCode::SERVICE_UNAVAILABLE {
            assert_error(
                &got,
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
            );
            break;
        }
        assert_eq!(got.0, StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "/health still 200 {:?} after the outage",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A route that needs the database answers 503 quickly.
    let purchase_url = format!(
        "{base_url}/v1/purchase/{}",
        vendor_server::domain::ids::PurchaseId::new()
    );
    let purchase = || {
        let client = client.clone();
        let url = purchase_url.clone();
        async move {
            let response = client
                .get(url)
                .bearer_auth("some-key")
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (status, body)
        }
    };
    assert_error(
        &purchase().await,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "503s must come quickly, took {:?}",
        started.elapsed()
    );

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.start();
        cluster
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    // Pooled connections broken by the restart are replaced (no ping before acquire).
    loop {
        let (status, _) = purchase().await;
        if status != StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "did not recover after the database came back: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let recovered = Instant::now();
    while get("/health").await.0 != StatusCode::OK {
        assert!(
            recovered.elapsed() < Duration::from_secs(3),
            "/health stays 503"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get("/v1/offer/gemini-api-gateway").await.0, StatusCode::OK);
    drop(cluster);
}
