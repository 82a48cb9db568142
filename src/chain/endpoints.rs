//! RPC endpoints: the transport of each endpoint (health tracked per call, URLs scrubbed from errors
//! because they carry API keys), their states for `/health` and `/metrics`, and the watch that probes
//! down endpoints and alerts once when every endpoint of a chain is down.
//!
//! Chain ids (SPEC §9): each endpoint's own `eth_chainId` is checked by its transport before the
//! endpoint serves its first call, and again whenever it comes back after being down. An endpoint on
//! another chain is marked down with reason `chain_id_mismatch` and never used: its calls fail at once
//! (the fallback goes on to the next endpoint) and only the probes of [`watch_endpoints`] ask it again.

use super::*;

/// Replaces every endpoint URL of a chain (they carry API keys) with `<rpc>`.
pub(super) struct Scrubber {
    secrets: Vec<String>,
}

impl Scrubber {
    pub(super) fn new(config: &ChainConfig) -> Self {
        let mut secrets = Vec::new();
        for url in config.endpoints() {
            let raw = url.expose_secret();
            secrets.push(raw.to_owned());
            secrets.push(raw.trim_end_matches('/').to_owned());
            if let Ok(mut parsed) = reqwest::Url::parse(raw) {
                secrets.push(parsed.as_str().to_owned());
                if let Some(password) = parsed.password() {
                    secrets.push(password.to_owned());
                }
                if !parsed.username().is_empty() {
                    secrets.push(format!("{}@", parsed.username()));
                }
                // reqwest's errors show the URL without its credentials.
                let _ = parsed.set_password(None);
                let _ = parsed.set_username("");
                secrets.push(parsed.as_str().to_owned());
                let tail = match parsed.query() {
                    Some(query) => format!("{}?{query}", parsed.path()),
                    None => parsed.path().to_owned(),
                };
                if tail.len() > 1 {
                    secrets.push(tail);
                }
                if let Some(query) = parsed.query() {
                    secrets.push(query.to_owned());
                }
            }
        }
        for secret in std::mem::take(&mut secrets) {
            secrets.push(secret.trim_end_matches('/').to_owned());
            secrets.push(secret);
        }
        secrets.retain(|s| !s.is_empty());
        // Longest first, so a URL is never half-replaced by a shorter prefix of it.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Self { secrets }
    }

    pub(super) fn clean(&self, text: &str) -> String {
        let mut out = text.to_owned();
        for secret in &self.secrets {
            out = out.replace(secret.as_str(), "<rpc>");
        }
        out
    }
}

/// Metric and health labels of endpoints: `host[:port]` (never a path, query or credentials),
/// with `#index` added when two endpoints share a host.
pub(super) fn endpoint_labels(urls: &[reqwest::Url]) -> Vec<String> {
    let hosts: Vec<String> = urls
        .iter()
        .map(|u| {
            let host = u.host_str().unwrap_or("unknown");
            match u.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            }
        })
        .collect();
    hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if hosts.iter().filter(|o| *o == h).count() > 1 {
                format!("{h}#{i}")
            } else {
                h.clone()
            }
        })
        .collect()
}

/// Whether an endpoint answered its last call.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum EndpointState {
    /// Not called yet.
    Unknown,
    Up,
    Down,
}

/// One chain's RPC endpoints as `/health` and the vendor console show them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ChainHealth {
    /// `down` when every endpoint is down, else `ok`.
    #[schema(example = "ok")]
    pub status: String,
    pub endpoints: Vec<EndpointReport>,
}

/// One RPC endpoint: its label (never its URL), state and counters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct EndpointReport {
    /// `host[:port]`.
    pub endpoint: String,
    pub index: usize,
    pub state: EndpointState,
    /// Why the endpoint is down when it is not a failed call: `chain_id_mismatch` (it answers another
    /// chain's id; it is never used until it answers the configured one).
    #[schema(example = "chain_id_mismatch")]
    pub reason: Option<String>,
    /// The chain id the endpoint answered when it was last checked (`null` before the check).
    pub chain_id: Option<u64>,
    pub requests: u64,
    pub errors: u64,
    /// RFC 3339.
    pub last_error_at: Option<String>,
    /// The last error, with every URL scrubbed.
    pub last_error: Option<String>,
}

/// The in-memory health of one JSON-RPC endpoint (also exported as `vendor_rpc_*` metrics).
#[derive(Debug)]
pub struct EndpointHealth {
    chain: String,
    pub index: usize,
    /// `host[:port]`: safe to show and log.
    pub label: String,
    state: std::sync::atomic::AtomicU8,
    requests: AtomicU64,
    errors: AtomicU64,
    last_error: std::sync::Mutex<Option<(chrono::DateTime<chrono::Utc>, String)>>,
    /// The endpoint's own chain id check: [`CHAIN_UNCHECKED`], [`CHAIN_MATCHED`] or
    /// [`CHAIN_MISMATCHED`].
    chain_check: std::sync::atomic::AtomicU8,
    /// The id it answered at its last check (0: none yet).
    answered_chain_id: AtomicU64,
}

/// Not checked since the endpoint was created or last went down.
const CHAIN_UNCHECKED: u8 = 0;
/// It answered the configured chain id.
const CHAIN_MATCHED: u8 = 1;
/// It answered another chain id: down, never used.
const CHAIN_MISMATCHED: u8 = 2;

/// The reason shown for an endpoint on another chain.
pub const CHAIN_ID_MISMATCH: &str = "chain_id_mismatch";

impl EndpointHealth {
    pub(super) fn new(chain: &str, index: usize, label: String) -> Self {
        Self {
            chain: chain.to_owned(),
            index,
            label,
            state: std::sync::atomic::AtomicU8::new(0),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_error: std::sync::Mutex::new(None),
            chain_check: std::sync::atomic::AtomicU8::new(CHAIN_UNCHECKED),
            answered_chain_id: AtomicU64::new(0),
        }
    }

    /// The endpoint answered the configured chain id (since it last came back).
    pub fn chain_id_matched(&self) -> bool {
        self.chain_check.load(Ordering::Acquire) == CHAIN_MATCHED
    }

    /// The other chain id the endpoint answered, when it is down for `chain_id_mismatch`.
    pub fn chain_id_mismatch(&self) -> Option<u64> {
        (self.chain_check.load(Ordering::Acquire) == CHAIN_MISMATCHED)
            .then(|| self.answered_chain_id.load(Ordering::Acquire))
    }

    /// Why the endpoint is down beyond a failed call (`chain_id_mismatch`).
    pub fn reason(&self) -> Option<&'static str> {
        self.chain_id_mismatch().map(|_| CHAIN_ID_MISMATCH)
    }

    /// The chain id it answered at its last check.
    pub fn answered_chain_id(&self) -> Option<u64> {
        Some(self.answered_chain_id.load(Ordering::Acquire)).filter(|id| *id != 0)
    }

    fn chain_id_ok(&self, id: u64) {
        self.answered_chain_id.store(id, Ordering::Release);
        let before = self.chain_check.swap(CHAIN_MATCHED, Ordering::AcqRel);
        if before == CHAIN_MISMATCHED {
            tracing::info!(chain = %self.chain, endpoint = %self.label, chain_id = id, "RPC endpoint answers the configured chain id again");
        } else if before == CHAIN_UNCHECKED {
            tracing::debug!(chain = %self.chain, endpoint = %self.label, chain_id = id, "RPC endpoint chain id verified");
        }
    }

    /// The endpoint answered another chain's id: down with reason `chain_id_mismatch`.
    fn chain_id_wrong(&self, id: u64, message: String) {
        self.answered_chain_id.store(id, Ordering::Release);
        let before = self.chain_check.swap(CHAIN_MISMATCHED, Ordering::AcqRel);
        if before != CHAIN_MISMATCHED {
            tracing::error!(chain = %self.chain, endpoint = %self.label, answered = id, "{message}");
        }
        self.errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("vendor_rpc_errors_total", &self.labels()).increment(1);
        metrics::gauge!("vendor_rpc_endpoint_up", &self.labels()).set(0.0);
        self.state.store(2, Ordering::Release);
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some((chrono::Utc::now(), message));
        }
    }

    pub fn state(&self) -> EndpointState {
        match self.state.load(Ordering::Acquire) {
            1 => EndpointState::Up,
            2 => EndpointState::Down,
            _ => EndpointState::Unknown,
        }
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// When the endpoint last failed, and the (scrubbed) error.
    pub fn last_error(&self) -> Option<(chrono::DateTime<chrono::Utc>, String)> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    fn labels(&self) -> [(&'static str, String); 2] {
        [
            ("chain", self.chain.clone()),
            ("endpoint", self.label.clone()),
        ]
    }

    fn record_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("vendor_rpc_requests_total", &self.labels()).increment(1);
    }

    fn record_ok(&self) {
        let before = self.state.swap(1, Ordering::AcqRel);
        if before == 2 {
            tracing::info!(chain = %self.chain, endpoint = %self.label, "RPC endpoint is up again");
        }
        metrics::gauge!("vendor_rpc_endpoint_up", &self.labels()).set(1.0);
    }

    fn record_error(&self, error: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("vendor_rpc_errors_total", &self.labels()).increment(1);
        metrics::gauge!("vendor_rpc_endpoint_up", &self.labels()).set(0.0);
        let before = self.state.swap(2, Ordering::AcqRel);
        if before != 2 {
            tracing::warn!(chain = %self.chain, endpoint = %self.label, error = %error, "RPC endpoint is down");
        }
        // When it comes back it may be another node: its chain id is checked again first.
        let _ = self.chain_check.compare_exchange(
            CHAIN_MATCHED,
            CHAIN_UNCHECKED,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some((chrono::Utc::now(), error));
        }
    }
}

/// One endpoint's transport: a timeout on every call, counted round trips (a JSON-RPC batch is
/// one) and the endpoint's health.
#[derive(Clone)]
pub(super) struct EndpointService<S> {
    pub(super) inner: S,
    pub(super) health: Arc<EndpointHealth>,
    pub(super) total: Arc<AtomicU64>,
    pub(super) timeout: Duration,
    pub(super) scrub: Arc<Scrubber>,
    /// The configured chain id the endpoint must answer.
    pub(super) chain_id: u64,
    /// A probe (no fallback): asks an endpoint on another chain again instead of failing at once.
    pub(super) probe: bool,
}

/// The error of a call refused because the endpoint is on another chain.
fn mismatch_error(label: &str, answered: u64, expected: u64) -> String {
    format!(
        "RPC endpoint {label} answers eth_chainId {answered}, not the configured {expected}: it is on another chain and is not used ({CHAIN_ID_MISMATCH})"
    )
}

/// Asks the endpoint's own `eth_chainId`.
async fn endpoint_chain_id<S>(inner: &mut S) -> Result<u64, TransportError>
where
    S: tower::Service<
            RequestPacket,
            Response = ResponsePacket,
            Error = TransportError,
            Future = TransportFut<'static>,
        >,
{
    use alloy::rpc::json_rpc::{Id, Request, ResponsePayload};
    let request = Request::new("eth_chainId", Id::Number(0), ())
        .serialize()
        .map_err(TransportError::ser_err)?;
    match inner.call(RequestPacket::Single(request)).await? {
        ResponsePacket::Single(response) => match response.payload {
            ResponsePayload::Success(raw) => {
                serde_json::from_str::<alloy::primitives::U64>(raw.get())
                    .map(|id| id.to::<u64>())
                    .map_err(|e| TransportErrorKind::custom_str(&format!("eth_chainId: {e}")))
            }
            ResponsePayload::Failure(e) => Err(TransportErrorKind::custom_str(&format!(
                "eth_chainId failed: {}",
                e.message
            ))),
        },
        ResponsePacket::Batch(_) => Err(TransportErrorKind::custom_str(
            "eth_chainId answered with a batch",
        )),
    }
}

impl<S> tower::Service<RequestPacket> for EndpointService<S>
where
    S: tower::Service<
            RequestPacket,
            Response = ResponsePacket,
            Error = TransportError,
            Future = TransportFut<'static>,
        > + Send
        + Sync
        + Clone
        + 'static,
{
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        let mut inner = self.inner.clone();
        let health = self.health.clone();
        let scrub = self.scrub.clone();
        let total = self.total.clone();
        let timeout = self.timeout;
        let expected = self.chain_id;
        let probe = self.probe;
        Box::pin(async move {
            let fail = |health: &EndpointHealth, e: TransportError| {
                let e = match e {
                    TransportError::Transport(kind) => {
                        TransportErrorKind::custom_str(&scrub.clean(&kind.to_string()))
                    }
                    other => other,
                };
                health.record_error(scrub.clean(&e.to_string()));
                e
            };
            let timed_out = || {
                TransportErrorKind::custom_str(&format!(
                    "the RPC call timed out after {} s",
                    timeout.as_secs()
                ))
            };
            // An endpoint on another chain is never used; a probe asks it again.
            if let Some(answered) = health.chain_id_mismatch()
                && !probe
            {
                return Err(TransportErrorKind::custom_str(&mismatch_error(
                    &health.label,
                    answered,
                    expected,
                )));
            }
            if !health.chain_id_matched() {
                total.fetch_add(1, Ordering::Relaxed);
                health.record_request();
                match tokio::time::timeout(timeout, endpoint_chain_id(&mut inner)).await {
                    Ok(Ok(id)) if id == expected => health.chain_id_ok(id),
                    Ok(Ok(id)) => {
                        let message = mismatch_error(&health.label, id, expected);
                        health.chain_id_wrong(id, message.clone());
                        return Err(TransportErrorKind::custom_str(&message));
                    }
                    Ok(Err(e)) => return Err(fail(&health, e)),
                    Err(_) => {
                        let e = timed_out();
                        health.record_error(e.to_string());
                        return Err(e);
                    }
                }
                // The check was the call itself.
                if let RequestPacket::Single(single) = &request
                    && single.method() == "eth_chainId"
                {
                    let id = single.id().clone();
                    let answer =
                        serde_json::value::to_raw_value(&alloy::primitives::U64::from(expected))
                            .map_err(TransportError::ser_err)?;
                    health.record_ok();
                    return Ok(ResponsePacket::Single(alloy::rpc::json_rpc::Response {
                        id,
                        payload: alloy::rpc::json_rpc::ResponsePayload::Success(answer),
                    }));
                }
            }
            total.fetch_add(1, Ordering::Relaxed);
            health.record_request();
            match tokio::time::timeout(timeout, inner.call(request)).await {
                Ok(Ok(response)) => {
                    health.record_ok();
                    Ok(response)
                }
                Ok(Err(e)) => Err(fail(&health, e)),
                Err(_) => {
                    let e = timed_out();
                    health.record_error(e.to_string());
                    Err(e)
                }
            }
        })
    }
}

/// Probes the endpoints marked down and sends one operator alert per episode of a chain with
/// every endpoint down (deduplicated in the outbox too). Validate and finalize on such a chain answer
/// 503 and sweeps wait meanwhile; the first endpoint that answers again ends the episode.
pub async fn watch_endpoints(pool: &sqlx::PgPool, chains: &Chains) -> Result<(), ChainError> {
    for chain in chains.iter() {
        chain.probe_down_endpoints().await;
        let Some(start) = chain.outage_alert_due() else {
            continue;
        };
        let labels: Vec<&str> = chain.endpoints.iter().map(|e| e.label.as_str()).collect();
        tracing::error!(chain = chain.name(), endpoints = ?labels, "every RPC endpoint of the chain is down");
        let alert = crate::notify::events::Alert {
            subject: format!("All RPC endpoints of chain {} are down", chain.name()),
            text: format!(
                "Every JSON-RPC endpoint of chain {} ({}) failed since {}. Checkouts on this chain cannot be validated or finalized (503, retryable) and sweeps wait until one answers again; no restart is needed once an endpoint is back.",
                chain.name(),
                labels.join(", "),
                start.to_rfc3339(),
            ),
        };
        let key = format!("rpc_down:{}:{}", chain.name(), start.timestamp_millis());
        let mut conn = pool.acquire().await?;
        crate::notify::events::alert(&mut conn, "rpc.down", None, &alert, Some(&key)).await?;
        chain.outage_alerted();
    }
    Ok(())
}
