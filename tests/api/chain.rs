//! Test chain: a real `anvil` per test on a free port, with TestUSDC (EIP-3009), TestUSDT and Multicall3
//! at its canonical address, plus an app wired to it with random wallets and an in-test provider.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use alloy::signers::local::PrivateKeySigner;
use alloy::signers::local::coins_bip39::{English, Mnemonic};
use alloy::sol;
use alloy::sol_types::SolCall;
use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vendor_server::chain::erc20::IERC20;
use vendor_server::config::{Config, MULTICALL3};
use vendor_server::domain::ids::PurchaseId;
use vendor_server::providers::{Delivered, ProviderError, ProvisionRequest, ResourceProvider};
use vendor_server::startup::Application;

use crate::helpers::{ROOT, TestApp, test_vars};

sol! {
    function mint(address to, uint256 amount) external returns (bool);
}

/// Anvil's first dev account (unlocked; deploys and mints).
pub const DEV: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

fn anvil_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ANVIL") {
        return PathBuf::from(path);
    }
    let tools = std::env::var_os("TOOLS_DIR").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/vendor-server-tools")
        },
        PathBuf::from,
    );
    let cached = tools.join("bin/anvil");
    if cached.is_file() {
        return cached;
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("anvil");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "anvil not found (looked at $ANVIL, {}, and PATH): run scripts/install-tools.sh",
        cached.display()
    );
}

/// A running anvil, killed on drop.
pub struct Anvil {
    child: Child,
    pub url: String,
    pub port: u16,
    http: reqwest::Client,
    pub usdc: Address,
    pub usdt: Address,
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn artifact(name: &str, field: &str) -> String {
    let text = std::fs::read_to_string(format!("{ROOT}/contracts/artifacts/{name}.json")).unwrap();
    let json: Value = serde_json::from_str(&text).unwrap();
    json[field].as_str().unwrap().to_owned()
}

impl Anvil {
    /// Starts anvil (chain id 31337), deploys the tokens and places Multicall3.
    pub async fn start() -> Self {
        Self::start_with_chain_id(31337).await
    }

    /// Starts anvil with its own chain id (another chain), tokens and Multicall3 as [`Self::start`].
    pub async fn start_with_chain_id(chain_id: u64) -> Self {
        let binary = anvil_binary();
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new(&binary)
                .args([
                    "--host",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--chain-id",
                    &chain_id.to_string(),
                    "--silent",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let mut anvil = Self {
                child,
                url: format!("http://127.0.0.1:{port}"),
                port,
                http: reqwest::Client::new(),
                usdc: Address::ZERO,
                usdt: Address::ZERO,
            };
            for _ in 0..100 {
                if anvil.try_rpc("eth_chainId", json!([])).await.is_ok() {
                    anvil.usdc = anvil.deploy("TestUSDC").await;
                    anvil.usdt = anvil.deploy("TestUSDT").await;
                    anvil
                        .rpc(
                            "anvil_setCode",
                            json!([MULTICALL3, artifact("Multicall3", "deployedBytecode")]),
                        )
                        .await;
                    return anvil;
                }
                if let Ok(Some(status)) = anvil.child.try_wait() {
                    last_error = format!("anvil exited with {status}");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("anvil did not start: {last_error}");
    }

    async fn try_rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        let response = self
            .http
            .post(&self.url)
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if let Some(error) = body.get("error") {
            return Err(error.to_string());
        }
        Ok(body["result"].clone())
    }

    /// A JSON-RPC call that must succeed.
    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        self.try_rpc(method, params.clone())
            .await
            .unwrap_or_else(|e| panic!("{method} {params}: {e}"))
    }

    async fn send_from_dev(&self, to: Option<Address>, data: Vec<u8>) -> Value {
        let mut tx = json!({"from": DEV, "data": format!("0x{}", hex::encode(data))});
        if let Some(to) = to {
            tx["to"] = json!(to);
        }
        let hash = self.rpc("eth_sendTransaction", json!([tx])).await;
        self.receipt(&hash).await
    }

    /// The receipt of a mined transaction (anvil mines right after the send returns).
    pub async fn receipt(&self, hash: &Value) -> Value {
        let mut receipt = Value::Null;
        for _ in 0..200 {
            receipt = self.rpc("eth_getTransactionReceipt", json!([hash])).await;
            if !receipt.is_null() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(receipt["status"], "0x1", "transaction failed: {receipt}");
        receipt
    }

    async fn deploy(&self, name: &str) -> Address {
        let code = artifact(name, "bytecode");
        let receipt = self
            .send_from_dev(None, hex::decode(code.trim_start_matches("0x")).unwrap())
            .await;
        receipt["contractAddress"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Mints `amount` token units to `to` (one block).
    pub async fn mint(&self, token: Address, to: Address, amount: u64) -> String {
        let receipt = self
            .send_from_dev(
                Some(token),
                mintCall {
                    to,
                    amount: U256::from(amount),
                }
                .abi_encode(),
            )
            .await;
        receipt["transactionHash"].as_str().unwrap().to_owned()
    }

    pub async fn mine(&self, blocks: u64) {
        self.rpc("anvil_mine", json!([format!("0x{blocks:x}")]))
            .await;
    }

    pub async fn head(&self) -> u64 {
        let head = self.rpc("eth_blockNumber", json!([])).await;
        u64::from_str_radix(head.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    }

    pub async fn snapshot(&self) -> Value {
        self.rpc("evm_snapshot", json!([])).await
    }

    pub async fn revert(&self, id: Value) {
        assert_eq!(self.rpc("evm_revert", json!([id])).await, json!(true));
    }

    pub async fn set_eth(&self, address: Address, wei: U256) {
        self.rpc("anvil_setBalance", json!([address, format!("{wei:#x}")]))
            .await;
    }

    pub async fn eth_balance(&self, address: Address) -> U256 {
        let v = self.rpc("eth_getBalance", json!([address, "latest"])).await;
        v.as_str().unwrap().parse().unwrap()
    }

    pub async fn nonce(&self, address: Address) -> u64 {
        let v = self
            .rpc("eth_getTransactionCount", json!([address, "latest"]))
            .await;
        u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    }

    pub async fn token_balance(&self, token: Address, owner: Address) -> U256 {
        let data = IERC20::balanceOfCall { owner }.abi_encode();
        let out = self
            .rpc(
                "eth_call",
                json!([{"to": token, "data": format!("0x{}", hex::encode(data))}, "latest"]),
            )
            .await;
        U256::from_str_radix(out.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    }
}

/// The wallets a test app uses: fresh per test.
pub struct Wallets {
    pub mnemonic: String,
    pub gas: PrivateKeySigner,
    pub treasury: Address,
    pub data_key: String,
}

impl Wallets {
    pub fn random() -> Self {
        let mnemonic = Mnemonic::<English>::new_with_count(&mut rand::thread_rng(), 12)
            .unwrap()
            .to_phrase();
        Self {
            mnemonic,
            gas: PrivateKeySigner::random(),
            treasury: PrivateKeySigner::random().address(),
            data_key: hex::encode(rand::random::<[u8; 32]>()),
        }
    }
}

/// A provider standing in for S3/Gemini: delivers at once, or fails its first `fail_first` calls.
pub struct TestProvider {
    pub kind: &'static str,
    pub fail_first: AtomicUsize,
    pub calls: AtomicUsize,
}

impl TestProvider {
    pub fn new(kind: &'static str, fail_first: usize) -> Arc<Self> {
        Arc::new(Self {
            kind,
            fail_first: AtomicUsize::new(fail_first),
            calls: AtomicUsize::new(0),
        })
    }
}

#[async_trait]
impl ResourceProvider for TestProvider {
    fn kind(&self) -> &'static str {
        self.kind
    }

    async fn provision(&self, request: &ProvisionRequest) -> Result<Delivered, ProviderError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self
            .fail_first
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(ProviderError::Retryable("upstream is down".into()));
        }
        let id = request.purchase_id;
        Ok(match self.kind {
            "s3" => Delivered {
                description: format!("S3 bucket for {id}"),
                redeem_url: Some(SecretString::from(format!(
                    "https://officex.app/org/current/redeem/disk-giftcard?redeem=secret-{id}"
                ))),
                redeem_code: None,
                state: json!({"bucket": format!("officex-{}", id.0)}),
            },
            _ => Delivered {
                description: format!("Gemini gateway key for {id}"),
                redeem_url: None,
                redeem_code: Some(SecretString::from(format!("gk_secret_{}", id.0.simple()))),
                state: json!({"key_id": id.0.to_string()}),
            },
        })
    }

    async fn suspend(&self, _: PurchaseId, _: &Value) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn resume(&self, _: PurchaseId, _: &Value) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn delete(&self, _: PurchaseId, _: &Value) -> Result<(), ProviderError> {
        Ok(())
    }
}

/// The chain settings of an app on `anvil`.
pub fn chain_vars(anvil: &Anvil, wallets: &Wallets) -> Vec<(String, String)> {
    vec![
        ("RPC_ENDPOINT".into(), anvil.url.clone()),
        ("CHAIN_ID_DEC".into(), "31337".into()),
        ("CHAIN_NAME".into(), "anvil".into()),
        ("CHAIN_EXPLORER_URL".into(), "https://explorer.test".into()),
        ("DEFAULT_BLOCK_CONFIRMATIONS".into(), "2".into()),
        ("USDC_ADDRESS".into(), anvil.usdc.to_string()),
        ("USDT_ADDRESS".into(), anvil.usdt.to_string()),
        ("DEPOSIT_MNEMONIC".into(), wallets.mnemonic.clone()),
        ("DATA_ENCRYPTION_KEY".into(), wallets.data_key.clone()),
        (
            "VENDOR_GAS_TANK_PRIVATE_KEY".into(),
            format!("0x{}", hex::encode(wallets.gas.to_bytes())),
        ),
        (
            "VENDOR_TREASURY_ADDRESS".into(),
            wallets.treasury.to_string(),
        ),
        ("FINALIZE_PROVISION_WAIT_SECS".into(), "10".into()),
    ]
}

/// An app paying on `anvil`, with in-test providers registered.
pub async fn spawn_pay_app(
    pool: PgPool,
    anvil: &Anvil,
    wallets: &Wallets,
    providers: &[Arc<TestProvider>],
    extra: &[(&str, &str)],
) -> TestApp {
    let mut vars: Vec<(String, String)> = chain_vars(anvil, wallets);
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    spawn_with_providers(pool, &pairs, providers).await
}

/// Like `helpers::spawn_app_with`, registering `providers` before serving.
pub async fn spawn_with_providers(
    pool: PgPool,
    vars: &[(&str, &str)],
    providers: &[Arc<TestProvider>],
) -> TestApp {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let base_url = format!("http://{addr}");
    let config = Config::from_vars(&test_vars(&base_url, vars)).expect("test config");
    let mut app = Application::build_with(config, pool, listener)
        .await
        .expect("build app");
    for provider in providers {
        app.providers_mut().insert(provider.clone());
    }
    crate::helpers::serve(app, addr)
}

/// How an [`RpcProxy`] treats requests.
pub const PROXY_FORWARD: u8 = 0;
/// Answers every `eth_getLogs` with no logs (a lagging or load-balanced node), forwards the rest.
pub const PROXY_OMIT_LOGS: u8 = 1;
/// Answers HTTP 502 (the node is unreachable).
pub const PROXY_DOWN: u8 = 2;

/// Limits a production provider puts on its callers, enforced by an [`RpcProxy`] (0 = none).
#[derive(Default)]
pub struct ProxyRules {
    /// Batches with more requests are refused whole (one `-32600` error object, as providers do).
    pub max_batch: std::sync::atomic::AtomicUsize,
    /// An `eth_getLogs` finding more logs answers `-32005 query returned more than N results`.
    pub max_logs: std::sync::atomic::AtomicUsize,
    /// An `eth_getLogs` whose range holds this block fails (a provider that cannot serve it).
    pub fail_block: std::sync::atomic::AtomicU64,
    /// Batches refused so far.
    pub refused_batches: AtomicUsize,
    /// The largest batch forwarded to the node.
    pub largest_batch: AtomicUsize,
    /// `eth_getLogs` requests forwarded, and how many carried an address (`topics[2]`) filter.
    pub get_logs: AtomicUsize,
    pub get_logs_with_addresses: AtomicUsize,
    /// Requests forwarded other than `eth_chainId` (what the endpoint was used for).
    pub used: AtomicUsize,
    /// Logs of this transaction are left out of every `eth_getLogs` answer (a load-balanced node
    /// that lost them) while set.
    pub hidden_tx: std::sync::Mutex<Option<String>>,
}

/// A JSON-RPC proxy in front of a real anvil that can misbehave like production nodes do.
pub struct RpcProxy {
    pub url: String,
    mode: Arc<std::sync::atomic::AtomicU8>,
    pub rules: Arc<ProxyRules>,
    stop: CancellationToken,
}

impl Drop for RpcProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl RpcProxy {
    pub async fn start(target: &str, mode: u8) -> Self {
        Self::start_at(target, mode, 0).await
    }

    /// Kills the proxy: its port refuses connections once this returns.
    pub async fn kill(self) -> u16 {
        let port: u16 = self.url.rsplit(':').next().unwrap().parse().unwrap();
        drop(self);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                return port;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the proxy on port {port} did not stop");
    }

    /// A proxy on `port` (0: any free port), e.g. to bring a killed one back on its old port.
    pub async fn start_at(target: &str, mode: u8, port: u16) -> Self {
        use axum::extract::State;
        let mode = Arc::new(std::sync::atomic::AtomicU8::new(mode));
        let rules = Arc::new(ProxyRules::default());
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = (
            mode.clone(),
            target.to_owned(),
            reqwest::Client::new(),
            rules.clone(),
        );
        type S = (
            Arc<std::sync::atomic::AtomicU8>,
            String,
            reqwest::Client,
            Arc<ProxyRules>,
        );
        async fn handle(
            State((mode, target, http, rules)): State<S>,
            body: axum::body::Bytes,
        ) -> axum::response::Response {
            use axum::response::IntoResponse;
            let mode = mode.load(Ordering::SeqCst);
            if mode == PROXY_DOWN {
                return (axum::http::StatusCode::BAD_GATEWAY, "down").into_response();
            }
            let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            if let Value::Array(items) = &request {
                let max = rules.max_batch.load(Ordering::SeqCst);
                if max > 0 && items.len() > max {
                    rules.refused_batches.fetch_add(1, Ordering::SeqCst);
                    return axum::Json(json!({"jsonrpc": "2.0", "id": null,
                        "error": {"code": -32600, "message": format!("batch of {} requests is over the limit of {max}", items.len())}}))
                    .into_response();
                }
                rules.largest_batch.fetch_max(items.len(), Ordering::SeqCst);
            }
            let requests: Vec<Value> = match &request {
                Value::Array(items) => items.clone(),
                single => vec![single.clone()],
            };
            rules.used.fetch_add(
                requests
                    .iter()
                    .filter(|r| r["method"] != "eth_chainId")
                    .count(),
                Ordering::SeqCst,
            );
            for r in requests.iter().filter(|r| r["method"] == "eth_getLogs") {
                rules.get_logs.fetch_add(1, Ordering::SeqCst);
                if r["params"][0]["topics"]
                    .get(2)
                    .is_some_and(|t| !t.is_null())
                {
                    rules.get_logs_with_addresses.fetch_add(1, Ordering::SeqCst);
                }
            }
            let answer: Value = http
                .post(&target)
                .header("content-type", "application/json")
                .body(body.to_vec())
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let mut answer = answer;
            let block = |v: &Value| {
                v.as_str()
                    .and_then(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok())
            };
            let fail_block = rules.fail_block.load(Ordering::SeqCst);
            let max_logs = rules.max_logs.load(Ordering::SeqCst);
            let limit = |r: &mut Value| {
                let Some(asked) = requests
                    .iter()
                    .find(|q| q["id"] == r["id"] && q["method"] == "eth_getLogs")
                else {
                    return;
                };
                let (from, to) = (
                    block(&asked["params"][0]["fromBlock"]),
                    block(&asked["params"][0]["toBlock"]),
                );
                let found = r["result"].as_array().map_or(0, Vec::len);
                let error = if fail_block > 0
                    && from.is_some_and(|f| f <= fail_block)
                    && to.is_some_and(|t| t >= fail_block)
                {
                    Some(json!({"code": -32000, "message": "internal error: missing trie node"}))
                } else if max_logs > 0 && found > max_logs {
                    Some(
                        json!({"code": -32005, "message": format!("query returned more than {max_logs} results")}),
                    )
                } else {
                    None
                };
                if let Some(error) = error {
                    r.as_object_mut().unwrap().remove("result");
                    r["error"] = error;
                }
            };
            match &mut answer {
                Value::Array(items) => items.iter_mut().for_each(limit),
                single => limit(single),
            }
            let hidden = rules.hidden_tx.lock().unwrap().clone();
            if let Some(hidden) = hidden {
                let log_ids: Vec<Value> = requests
                    .iter()
                    .filter(|r| r["method"] == "eth_getLogs")
                    .map(|r| r["id"].clone())
                    .collect();
                let hide = |r: &mut Value| {
                    if log_ids.contains(&r["id"])
                        && let Some(logs) = r.get_mut("result").and_then(Value::as_array_mut)
                    {
                        logs.retain(|l| {
                            !l["transactionHash"]
                                .as_str()
                                .is_some_and(|h| h.eq_ignore_ascii_case(&hidden))
                        });
                    }
                };
                match &mut answer {
                    Value::Array(items) => items.iter_mut().for_each(hide),
                    single => hide(single),
                }
            }
            if mode == PROXY_OMIT_LOGS {
                let log_ids: Vec<Value> = match &request {
                    Value::Array(items) => items.clone(),
                    single => vec![single.clone()],
                }
                .into_iter()
                .filter(|r| r["method"] == "eth_getLogs")
                .map(|r| r["id"].clone())
                .collect();
                let blank = |r: &mut Value| {
                    if log_ids.contains(&r["id"]) && r.get("result").is_some() {
                        r["result"] = json!([]);
                    }
                };
                match &mut answer {
                    Value::Array(items) => items.iter_mut().for_each(blank),
                    single => blank(single),
                }
            }
            axum::Json(answer).into_response()
        }
        let app = axum::Router::new()
            .route("/", axum::routing::post(handle))
            .with_state(state);
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await
                .unwrap();
        });
        Self {
            url,
            mode,
            rules,
            stop,
        }
    }

    pub fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}

/// The chain settings of an app on `anvil`, reached through `rpc_url` instead.
pub fn chain_vars_via(anvil: &Anvil, wallets: &Wallets, rpc_url: &str) -> Vec<(String, String)> {
    let mut vars = chain_vars(anvil, wallets);
    for (k, v) in &mut vars {
        if k == "RPC_ENDPOINT" {
            *v = rpc_url.to_owned();
        }
    }
    vars
}
