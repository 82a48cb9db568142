//! A real `moto_server` (AWS emulator) per test, on a free port, stopped when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    pub endpoint: String,
    child: Child,
}

/// `moto_server` from PATH, `$TOOLS_DIR/venv/bin` or `~/.cache/vendor-server-tools/venv/bin`.
fn find_moto() -> PathBuf {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("moto_server"))
                .collect()
        })
        .unwrap_or_default();
    if let Some(tools) = std::env::var_os("TOOLS_DIR") {
        candidates.push(PathBuf::from(tools).join("venv/bin/moto_server"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        candidates
            .push(PathBuf::from(home).join(".cache/vendor-server-tools/venv/bin/moto_server"));
    }
    candidates.into_iter().find(|p| p.is_file()).unwrap_or_else(|| {
        panic!(
            "moto_server not found on PATH, in $TOOLS_DIR/venv/bin or ~/.cache/vendor-server-tools/venv/bin: \
             run scripts/install-tools.sh"
        )
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Moto {
    pub async fn start() -> Self {
        let bin = find_moto();
        let port = free_port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let moto = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if client
                .get(format!("{}/moto-api/", moto.endpoint))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return moto;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not come up on port {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Forgets every resource and queued result (`/moto-api/reset`).
    pub async fn reset(&self) {
        let status = reqwest::Client::new()
            .post(format!("{}/moto-api/reset", self.endpoint))
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "reset: {status}");
    }

    /// Queues `GetCostAndUsage` answers (moto's configurable Cost Explorer results).
    pub async fn queue_cost_and_usage(&self, results: serde_json::Value) {
        let status = reqwest::Client::new()
            .post(format!(
                "{}/moto-api/static/ce/cost-and-usage-results",
                self.endpoint
            ))
            .json(&serde_json::json!({ "results": results }))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 201, "queueing Cost Explorer results");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
