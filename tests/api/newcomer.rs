//! What a newcomer does, word for word: a fresh copy of the repository with no `.env`, the README's first
//! command (`scripts/dev-server.sh`) in the background, then `dev checkout` for the S3 offer (the gift
//! card's credentials put and get an object in their bucket on the local AWS), a second purchase paid in
//! USDT, and a meter-usage call with a token from `tokens create`. Everything the script started stops
//! with it. The build cache is shared (SPEC §9: this tests the flow, not a cold build).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use serde_json::{Value, json};
use vendor_server::providers::s3::{DiskAuth, GiftCard};

use crate::helpers::ROOT;
use crate::moto::{Moto, find_tool, free_port};

const BIN: &str = env!("CARGO_BIN_EXE_vendor-server");

/// The repository as a fresh clone would have it (tracked and new files, nothing ignored: no `.env`,
/// no `target/`).
fn fresh_copy() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vendor-newcomer-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(files.status.success(), "git ls-files failed");
    for name in files.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let name = std::str::from_utf8(name).unwrap();
        let from = Path::new(ROOT).join(name);
        if !from.is_file() {
            continue; // deleted in the working tree
        }
        let to = dir.join(name);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
    }
    assert!(!dir.join(".env").exists());
    dir
}

/// The dev-server script and what it started; stopped (SIGTERM, as Ctrl-C would) on drop.
struct DevServer {
    child: Child,
    dir: PathBuf,
    ports: [u16; 3],
}

impl DevServer {
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run_in(dir: &Path, args: &[&str], envs: &[(String, String)]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vendor-server {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The receipt `dev checkout` printed.
fn printed_receipt(out: &Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text.find("receipt\n").expect("a receipt") + "receipt\n".len();
    let end = text[start..]
        .find("\n\ncustomer page:")
        .expect("a customer link")
        + start;
    serde_json::from_str(&text[start..end]).unwrap()
}

fn port_is_closed(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(300),
    )
    .is_err()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newcomer_runs_the_main_job_with_the_readme_s_first_command() {
    let dir = fresh_copy();
    let [port, anvil_port, moto_port] = [free_port(), free_port(), free_port()];
    let admin_url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let database = format!("vs_newcomer_{}", uuid::Uuid::new_v4().simple());
    let database_url = format!("{}/{database}", admin_url.rsplit_once('/').unwrap().0);
    let tools = find_tool("moto_server");
    let tools_dir = tools.parent().unwrap().parent().unwrap().parent().unwrap();
    let envs: Vec<(String, String)> = vec![
        ("HOME".into(), std::env::var("HOME").unwrap_or_default()),
        ("TOOLS_DIR".into(), tools_dir.display().to_string()),
    ];
    let log = std::fs::File::create(dir.join("dev-server.log")).unwrap();
    let child = Command::new("bash")
        .arg("scripts/dev-server.sh")
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(envs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("PORT", port.to_string())
        .env("DEV_ANVIL_PORT", anvil_port.to_string())
        .env("DEV_MOTO_PORT", moto_port.to_string())
        .env("DATABASE_URL", &database_url)
        .env("VENDOR_SERVER_BIN", BIN)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut server = DevServer {
        child,
        dir: dir.clone(),
        ports: [port, anvil_port, moto_port],
    };
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(r) = http.get(format!("{base}/health")).send().await
            && r.status().is_success()
        {
            break;
        }
        let log = std::fs::read_to_string(dir.join("dev-server.log")).unwrap_or_default();
        assert!(
            Instant::now() < deadline && server.child.try_wait().unwrap().is_none(),
            "the dev server did not come up:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let env_file = std::fs::read_to_string(dir.join(".env")).unwrap();
    assert!(env_file.contains("development settings"), "{env_file}");

    // The S3 offer, paid in USDC: its gift card opens its own bucket on the local AWS.
    let out = run_in(
        &dir,
        &["dev", "checkout", "--offer", "aws-s3-storage-giftcard"],
        &envs,
    );
    let receipt = printed_receipt(&out);
    assert_eq!(receipt["status"], "RUNNING", "{receipt}");
    let card =
        GiftCard::from_redeem_url(receipt["skip_to_final_redirect"].as_str().unwrap()).unwrap();
    let auth: DiskAuth = serde_json::from_str(&card.auth_json).unwrap();
    let moto = Moto::attach(&format!("http://127.0.0.1:{moto_port}"));
    let s3 = moto.s3(&auth.region, &auth.access_key, &auth.secret_key);
    s3.put_object()
        .bucket(&auth.bucket)
        .key("hello.txt")
        .body(ByteStream::from_static(b"hello from a newcomer"))
        .send()
        .await
        .unwrap();
    let got = s3
        .get_object()
        .bucket(&auth.bucket)
        .key("hello.txt")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().as_ref(),
        b"hello from a newcomer"
    );

    // A second purchase, paid in USDT, metered with a vendor-wide billing token.
    let out = run_in(&dir, &["dev", "checkout", "--token", "usdt"], &envs);
    let receipt = printed_receipt(&out);
    assert_eq!(receipt["status"], "RUNNING", "{receipt}");
    let purchase = receipt["vendor_purchase_id"].as_str().unwrap().to_owned();
    let out = run_in(&dir, &["tokens", "create", "--label", "newcomer"], &envs);
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let metered: Value = http
        .post(format!("{base}/v1/purchase/{purchase}/meter-usage"))
        .bearer_auth(&token)
        .json(&json!({"usage_amount": "2", "usage_unit": "gb", "billed_amount": "0.5", "description": "newcomer"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(metered["balance_usd"], "4.500000", "{metered}");

    // Ctrl-C (SIGTERM here) stops everything the script started.
    server.stop();
    for p in server.ports {
        assert!(
            port_is_closed(p),
            "port {p} is still open after the script stopped"
        );
    }
    drop(server);
    let pool = sqlx::PgPool::connect(&admin_url).await.unwrap();
    sqlx::query(&format!(
        "drop database if exists \"{database}\" with (force)"
    ))
    .execute(&pool)
    .await
    .unwrap();
}
