//! Shared test harness: `spawn_app` starts the real `Application` on port 0 on a fresh database.
//! Every response it serves is checked against the OpenAPI document (`contract.rs`): a status or
//! body the document does not describe fails the test when its `TestApp` is dropped.
// Helpers are shared by every test module; not each uses all of them.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Once;

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vendor_server::config::Config;
use vendor_server::startup::Application;
use vendor_server::state::AppState;

use crate::contract::{self, Violations};

/// The repository root (for config files).
pub const ROOT: &str = env!("CARGO_MANIFEST_DIR");

static TRACING: Once = Once::new();

/// Logs to the test output only when `TEST_LOG` is set.
fn init_tracing() {
    TRACING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter("vendor_server=debug,info")
                .with_test_writer()
                .try_init();
        }
    });
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub base_url: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
    /// Responses that broke the OpenAPI document (checked on drop).
    pub violations: Violations,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
        contract::assert_none(&self.violations);
    }
}

/// The variables every test app gets; `extra` overrides or adds.
pub fn test_vars(base_url: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = [
        ("DATABASE_URL", "postgres://unused@127.0.0.1/unused"),
        ("PUBLIC_BASE_URL", base_url),
        ("OFFERS_FILE", &format!("{ROOT}/config/offers.toml")),
        ("JOBS_ENABLED", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    vars
}

/// Starts the application with default test configuration.
pub async fn spawn_app(pool: PgPool) -> TestApp {
    spawn_app_with(pool, &[]).await
}

/// Starts the application with extra configuration variables.
pub async fn spawn_app_with(pool: PgPool, extra: &[(&str, &str)]) -> TestApp {
    init_tracing();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    let base_url = format!("http://{addr}");
    let config = Config::from_vars(&test_vars(&base_url, extra)).expect("test config");
    let app = Application::build_with(config, pool, listener)
        .await
        .expect("build app");
    serve(app, addr)
}

/// Serves a built application (listening on `addr`) with every response checked against the
/// OpenAPI document.
pub fn serve(app: Application, addr: SocketAddr) -> TestApp {
    let state = app.state().clone();
    let shutdown = CancellationToken::new();
    let violations = Violations::default();
    let checked = violations.clone();
    let server = tokio::spawn(app.run_until_stopped_with(shutdown.clone(), move |router| {
        contract::checked(router, checked)
    }));
    TestApp {
        addr,
        base_url: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        state,
        shutdown,
        server,
        violations,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// GET, returning status and JSON body (Null when the body is not JSON).
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let response = self.client.get(self.url(path)).send().await.expect("GET");
        read(response).await
    }

    /// GET with a bearer key.
    pub async fn get_auth(&self, path: &str, key: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .expect("GET");
        read(response).await
    }

    /// POST a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("POST");
        read(response).await
    }

    /// POST a JSON body with a bearer key.
    pub async fn post_auth(&self, path: &str, key: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .expect("POST");
        read(response).await
    }

    /// POST raw bytes with a content type.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let response = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("POST");
        read(response).await
    }
}

async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let bytes = response.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Asserts the JSON error shape with a given status and code.
#[track_caller]
pub fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(got.0, status, "body: {}", got.1);
    assert_eq!(got.1["code"], code, "body: {}", got.1);
    assert!(
        got.1["error"].as_str().is_some_and(|m| !m.is_empty()),
        "no message: {}",
        got.1
    );
}
