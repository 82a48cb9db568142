//! The Gemini offer: a metering gateway. Each purchase gets its own gateway key (hashed in
//! `gateway_key`, separate from the billing keys); the server answers Google's Gemini REST API
//! (`src/api/gemini.rs`), forwards to the upstream with the vendor's key and debits each response's
//! `usageMetadata` tokens × the offer's per-model prices through the ledger, in real time.
//!
//! This module holds the domain side: keys, prices, metering, rate limits and the upstream handle.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine;
use bigdecimal::BigDecimal;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use super::{Delivered, ProviderError, ProvisionRequest, ResourceProvider};
use crate::billing::ledger::{self, EntryKind, NewEntry, Posted};
use crate::billing::{BillingError, PurchaseStatus, keys};
use crate::config::GeminiConfig;
use crate::domain::ids::PurchaseId;
use crate::domain::money::UsdMicros;

/// Gateway keys start with this, so a leaked one is recognisable.
pub const KEY_PREFIX: &str = "vsg_";
/// Tokens Google counts for one image / file part; the estimate uses it for media parts.
const MEDIA_PART_TOKENS: u64 = 258;
/// The largest single streamed JSON object the meter buffers (inline images can be large).
const MAX_STREAM_OBJECT: usize = 64 * 1024 * 1024;
/// Rate-limit entries kept before idle (full) ones are dropped.
const LIMITER_PRUNE_AT: usize = 10_000;
/// A model's output limit when its prices in the offer do not set `max_output_tokens` (the
/// Gemini 2.5 models' limit).
pub const DEFAULT_MAX_OUTPUT_TOKENS: u64 = 65_536;
/// Concurrent calls per purchase when the offer does not set `max_concurrent_requests`.
pub const DEFAULT_MAX_CONCURRENT_REQUESTS: u32 = 4;
/// The most candidates a reservation counts (`generationConfig.candidateCount`; Google allows 8).
const MAX_CANDIDATES: u64 = 8;
/// How long a call's reservation holds without being settled: a request that crashed (or a
/// replica that died) frees its share of the balance and its concurrency slot after this long.
/// Longer than any call runs (Google ends a request after 10 minutes).
pub const RESERVATION_TTL_SECS: f64 = 900.0;
/// A stream still running pushes its reservation's lapse back this often, so a long generation
/// keeps its hold while a crashed one loses it within [`RESERVATION_TTL_SECS`].
const RESERVATION_REFRESH: Duration = Duration::from_secs(60);

/// Why the gateway refuses or fails a call. Mapped to Google's error shape at the edge.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(
        "Method doesn't allow unregistered callers. Please use an API key (x-goog-api-key header or key parameter)."
    )]
    MissingKey,
    #[error("API key not valid. Please pass a valid API key.")]
    InvalidKey,
    #[error("{0}")]
    PaymentRequired(String),
    #[error("Resource has been exhausted: {what} per minute limit of this purchase reached.")]
    RateLimited {
        what: &'static str,
        retry_after_secs: u64,
    },
    #[error(
        "Resource has been exhausted: this purchase already has {limit} calls in progress (its limit); retry when one ends."
    )]
    TooManyConcurrent { limit: u32 },
    #[error("Request payload size exceeds the limit: {0} bytes.")]
    PayloadTooLarge(usize),
    #[error("The request body was not received within {0} seconds.")]
    BodyTimeout(u64),
    #[error("models/{model} is not found for API version v1beta, or is not supported by this key.")]
    UnknownModel { model: String },
    #[error("Method {0:?} is not supported by this gateway.")]
    UnknownMethod(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("The Gemini gateway is not configured on this server.")]
    NotConfigured,
    #[error("The upstream model service is unavailable; retry shortly.")]
    UpstreamUnavailable(#[source] reqwest::Error),
    #[error("the offer's gateway settings are invalid: {0}")]
    Misconfigured(String),
    #[error(transparent)]
    Billing(#[from] BillingError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Prices of one model, USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ModelPrices {
    pub input: UsdMicros,
    pub output: UsdMicros,
    /// Cached prompt tokens; the input price when not set.
    #[serde(default)]
    pub cached_input: Option<UsdMicros>,
    /// The model's output limit in tokens (thoughts included): what a call without
    /// `generationConfig.maxOutputTokens` may produce. [`DEFAULT_MAX_OUTPUT_TOKENS`] when not set.
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
}

/// `usageMetadata` of a Gemini response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    #[serde(default)]
    pub prompt_token_count: u64,
    #[serde(default)]
    pub cached_content_token_count: u64,
    #[serde(default)]
    pub candidates_token_count: u64,
    #[serde(default)]
    pub thoughts_token_count: u64,
    #[serde(default)]
    pub tool_use_prompt_token_count: u64,
    #[serde(default)]
    pub total_token_count: u64,
}

impl Usage {
    /// Prompt tokens billed at the cached price (never more than the prompt).
    pub fn cached(&self) -> u64 {
        self.cached_content_token_count.min(self.prompt_token_count)
    }

    /// Tokens billed at the input price: the uncached prompt plus tool-use prompts.
    pub fn input(&self) -> u64 {
        self.prompt_token_count - self.cached() + self.tool_use_prompt_token_count
    }

    /// Tokens billed at the output price: candidates and thoughts.
    pub fn output(&self) -> u64 {
        self.candidates_token_count + self.thoughts_token_count
    }

    /// Every token of the call.
    pub fn total(&self) -> u64 {
        (self.prompt_token_count + self.tool_use_prompt_token_count + self.output())
            .max(self.total_token_count)
    }
}

impl ModelPrices {
    /// The exact charge: Σ tokens × price-per-million, rounded half up to micro-USD once.
    pub fn charge(&self, usage: &Usage) -> UsdMicros {
        let cached_price = self.cached_input.unwrap_or(self.input);
        let numerator = i128::from(usage.input()) * i128::from(self.input.0)
            + i128::from(usage.cached()) * i128::from(cached_price.0)
            + i128::from(usage.output()) * i128::from(self.output.0);
        let micros = (numerator + 500_000) / 1_000_000;
        UsdMicros(i64::try_from(micros).unwrap_or(i64::MAX))
    }

    /// The model's output limit (see [`ModelPrices::max_output_tokens`]).
    pub fn output_limit(&self) -> u64 {
        self.max_output_tokens.unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS)
    }

    /// The most a call may cost before it runs: its worst-case usage
    /// ([`Estimate::worst_case`]) at the uncached input price, rounded up. What the gateway
    /// reserves against the balance while the call runs.
    pub fn estimate(&self, estimate: &Estimate) -> UsdMicros {
        let worst = estimate.worst_case(self);
        let numerator = i128::from(worst.input()) * i128::from(self.input.0)
            + i128::from(worst.output()) * i128::from(self.output.0);
        let micros = (numerator + 999_999) / 1_000_000;
        UsdMicros(i64::try_from(micros).unwrap_or(i64::MAX))
    }
}

/// Token counts of a request, before it is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    /// The likely input (about 4 characters per text token, a fixed count per media part): what
    /// the tokens-per-minute limit admits.
    pub input_tokens: u64,
    /// An upper bound of the text input (one token per character) plus the media parts' count:
    /// what the reservation holds. (Audio and video are counted by duration upstream, which a
    /// request does not show; their excess is charged when the usage arrives.)
    pub max_input_tokens: u64,
    /// `generationConfig.maxOutputTokens` when the request sets it.
    pub max_output_tokens: Option<u64>,
    /// `generationConfig.candidateCount` (1 when absent, at most 8).
    pub candidates: u64,
}

impl Estimate {
    /// The most the call may use: the input's upper bound and, per candidate, the requested
    /// maximum output or else the model's output limit.
    pub fn worst_case(&self, prices: &ModelPrices) -> Usage {
        let per_candidate = self
            .max_output_tokens
            .unwrap_or_else(|| prices.output_limit());
        let output = per_candidate.saturating_mul(self.candidates.max(1));
        Usage {
            prompt_token_count: self.max_input_tokens,
            candidates_token_count: output,
            total_token_count: self.max_input_tokens.saturating_add(output),
            ..Usage::default()
        }
    }

    /// Reads the text, media parts and `generationConfig` of a request body.
    pub fn of_request(body: &serde_json::Value) -> Self {
        fn walk(value: &serde_json::Value, chars: &mut u64, media: &mut u64) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, v) in map {
                        match (key.as_str(), v) {
                            ("text", serde_json::Value::String(s)) => {
                                *chars += s.chars().count() as u64;
                            }
                            ("inlineData" | "inline_data" | "fileData" | "file_data", _) => {
                                *media += 1;
                            }
                            _ => walk(v, chars, media),
                        }
                    }
                }
                serde_json::Value::Array(items) => {
                    for item in items {
                        walk(item, chars, media);
                    }
                }
                _ => {}
            }
        }
        let (mut chars, mut media) = (0, 0);
        walk(body, &mut chars, &mut media);
        let config = body
            .get("generationConfig")
            .or_else(|| body.get("generation_config"));
        let config_number = |camel: &str, snake: &str| {
            config
                .and_then(|c| c.get(camel).or_else(|| c.get(snake)))
                .and_then(serde_json::Value::as_u64)
        };
        let max_output_tokens = config_number("maxOutputTokens", "max_output_tokens");
        let candidates = config_number("candidateCount", "candidate_count")
            .unwrap_or(1)
            .clamp(1, MAX_CANDIDATES);
        Self {
            input_tokens: chars.div_ceil(4) + media * MEDIA_PART_TOKENS,
            max_input_tokens: chars + media * MEDIA_PART_TOKENS,
            max_output_tokens,
            candidates,
        }
    }
}

/// The gateway part of a Gemini offer's `settings`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GatewaySettings {
    /// Models sold, by name (without `models/`), with their prices.
    pub models: BTreeMap<String, ModelPrices>,
    /// Per-purchase limits; absent or 0 = unlimited.
    #[serde(default)]
    pub requests_per_minute: Option<u64>,
    #[serde(default)]
    pub tokens_per_minute: Option<u64>,
    /// Calls of one purchase running at once (across replicas); [`DEFAULT_MAX_CONCURRENT_REQUESTS`]
    /// when absent.
    #[serde(default)]
    pub max_concurrent_requests: Option<u32>,
}

impl GatewaySettings {
    pub fn from_offer_settings(settings: &serde_json::Value) -> Result<Self, GatewayError> {
        let parsed: Self = serde_json::from_value(settings.clone())
            .map_err(|e| GatewayError::Misconfigured(e.to_string()))?;
        if parsed.models.is_empty() {
            return Err(GatewayError::Misconfigured("no models".to_owned()));
        }
        for (model, p) in &parsed.models {
            if p.input.0 < 0 || p.output.0 < 0 || p.cached_input.is_some_and(|c| c.0 < 0) {
                return Err(GatewayError::Misconfigured(format!(
                    "negative price for {model}"
                )));
            }
            if p.max_output_tokens == Some(0) {
                return Err(GatewayError::Misconfigured(format!(
                    "max_output_tokens of {model} must be at least 1"
                )));
            }
        }
        if parsed.max_concurrent_requests == Some(0) {
            return Err(GatewayError::Misconfigured(
                "max_concurrent_requests must be at least 1".to_owned(),
            ));
        }
        Ok(parsed)
    }

    /// The cap on concurrent calls per purchase.
    pub fn max_concurrent(&self) -> u32 {
        self.max_concurrent_requests
            .unwrap_or(DEFAULT_MAX_CONCURRENT_REQUESTS)
    }

    pub fn limits(&self) -> Limits {
        Limits {
            requests_per_minute: self.requests_per_minute.filter(|n| *n > 0),
            tokens_per_minute: self.tokens_per_minute.filter(|n| *n > 0),
        }
    }
}

/// Per-purchase limits per minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    level: f64,
    at: Instant,
}

impl Bucket {
    fn full(capacity: u64, now: Instant) -> Self {
        Self {
            level: capacity as f64,
            at: now,
        }
    }

    /// Refills at `capacity` per minute, up to `capacity`.
    fn refill(&mut self, capacity: u64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        let capacity = capacity as f64;
        self.level = (self.level + elapsed * capacity / 60.0).min(capacity);
        self.at = now;
    }

    /// Seconds until the level reaches `needed`.
    fn wait_for(&self, needed: f64, capacity: u64) -> u64 {
        let rate = capacity as f64 / 60.0;
        (((needed - self.level) / rate).ceil().max(1.0)) as u64
    }
}

#[derive(Debug, Default)]
struct PurchaseBuckets {
    requests: Option<Bucket>,
    tokens: Option<Bucket>,
}

/// Per-purchase token buckets (requests and tokens per minute), in memory: each replica enforces
/// the limits for the calls it serves.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<Uuid, PurchaseBuckets>>,
}

impl RateLimiter {
    /// Admits one request whose input is estimated at `tokens`, or says how long to wait.
    pub fn admit(
        &self,
        purchase: PurchaseId,
        limits: Limits,
        tokens: u64,
        now: Instant,
    ) -> Result<(), GatewayError> {
        if limits == Limits::default() {
            return Ok(());
        }
        let mut map = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= LIMITER_PRUNE_AT {
            prune(&mut map, now);
        }
        let entry = map.entry(purchase.0).or_default();
        if let Some(capacity) = limits.tokens_per_minute {
            let bucket = entry
                .tokens
                .get_or_insert_with(|| Bucket::full(capacity, now));
            bucket.refill(capacity, now);
            let needed = tokens.min(capacity).max(1) as f64;
            if bucket.level < needed {
                return Err(GatewayError::RateLimited {
                    what: "tokens",
                    retry_after_secs: bucket.wait_for(needed, capacity),
                });
            }
        }
        if let Some(capacity) = limits.requests_per_minute {
            let bucket = entry
                .requests
                .get_or_insert_with(|| Bucket::full(capacity, now));
            bucket.refill(capacity, now);
            if bucket.level < 1.0 {
                return Err(GatewayError::RateLimited {
                    what: "requests",
                    retry_after_secs: bucket.wait_for(1.0, capacity),
                });
            }
            bucket.level -= 1.0;
        }
        Ok(())
    }

    /// Takes the tokens a call actually used (the bucket may go below zero: later calls wait).
    pub fn record_tokens(&self, purchase: PurchaseId, limits: Limits, tokens: u64, now: Instant) {
        let Some(capacity) = limits.tokens_per_minute else {
            return;
        };
        let mut map = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = map
            .entry(purchase.0)
            .or_default()
            .tokens
            .get_or_insert_with(|| Bucket::full(capacity, now));
        bucket.refill(capacity, now);
        bucket.level -= tokens as f64;
    }
}

/// Drops entries whose buckets have been idle long enough to be full again.
fn prune(map: &mut HashMap<Uuid, PurchaseBuckets>, now: Instant) {
    map.retain(|_, b| {
        [b.requests, b.tokens]
            .iter()
            .flatten()
            .any(|bucket| now.saturating_duration_since(bucket.at) < Duration::from_secs(60))
    });
}

/// The upstream side: HTTP client, base URL, the vendor's keys (used in turn) and the limiter.
pub struct Gateway {
    http: reqwest::Client,
    upstream_url: String,
    keys: Vec<SecretString>,
    next_key: AtomicUsize,
    pub limiter: RateLimiter,
    /// Largest request body read (`GEMINI_MAX_BODY_BYTES`).
    pub max_body_bytes: usize,
    /// Time allowed to receive a request body (`GEMINI_BODY_READ_TIMEOUT_SECS`).
    pub body_read_timeout: Duration,
}

impl Gateway {
    pub fn new(config: &GeminiConfig) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("vendor-server/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            // Long generations stream for minutes; only a silent upstream is cut off.
            .read_timeout(Duration::from_secs(300))
            .build()?;
        Ok(Self {
            http,
            upstream_url: config.upstream_url.trim_end_matches('/').to_owned(),
            keys: config.api_keys.clone(),
            next_key: AtomicUsize::new(0),
            limiter: RateLimiter::default(),
            max_body_bytes: config.max_body_bytes,
            body_read_timeout: config.body_read_timeout,
        })
    }

    /// How many upstream keys there are (a 429 on one is retried on the next).
    pub fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The next vendor key, round robin.
    pub fn next_key(&self) -> Option<&SecretString> {
        if self.keys.is_empty() {
            return None;
        }
        let i = self.next_key.fetch_add(1, Ordering::Relaxed) % self.keys.len();
        self.keys.get(i)
    }

    /// Sends one request upstream with the vendor's key (never the customer's); on a 429, tries the
    /// next key while there is one.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(String, String)],
        body: Option<axum::body::Bytes>,
    ) -> Result<reqwest::Response, GatewayError> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.upstream_url))
            .map_err(|e| GatewayError::Misconfigured(format!("GEMINI_UPSTREAM_URL: {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let attempts = self.keys.len().clamp(1, 3);
        for attempt in 0..attempts {
            let key = self.next_key().ok_or(GatewayError::NotConfigured)?;
            let mut request = self
                .http
                .request(method.clone(), url.clone())
                .header("x-goog-api-key", key.expose_secret());
            if let Some(body) = &body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let response = request
                .send()
                .await
                .map_err(|e| GatewayError::UpstreamUnavailable(e.without_url()))?;
            if response.status() == reqwest::StatusCode::TOO_MANY_REQUESTS && attempt + 1 < attempts
            {
                tracing::warn!(attempt, "upstream key rate-limited; trying the next key");
                continue;
            }
            return Ok(response);
        }
        Err(GatewayError::NotConfigured)
    }
}

/// What a presented gateway key gives access to.
#[derive(Debug, Clone)]
pub struct KeyAccess {
    pub purchase_id: PurchaseId,
    pub key_status: String,
    pub purchase_status: PurchaseStatus,
    pub balance: UsdMicros,
    pub settings: serde_json::Value,
}

impl KeyAccess {
    /// Whether the key may be used at all: revoked keys and deleted purchases are refused like an
    /// invalid key; suspended ones (key disabled or purchase suspended) need a topup.
    pub fn check_usable(&self) -> Result<(), GatewayError> {
        if self.key_status == "revoked" || self.purchase_status == PurchaseStatus::Deleted {
            return Err(GatewayError::InvalidKey);
        }
        if self.key_status == "disabled" || self.purchase_status == PurchaseStatus::Suspended {
            return Err(GatewayError::PaymentRequired(
                "This purchase is suspended: its balance is used up. Top up to resume.".to_owned(),
            ));
        }
        if !matches!(
            self.purchase_status,
            PurchaseStatus::Active | PurchaseStatus::Low | PurchaseStatus::Critical
        ) {
            return Err(GatewayError::PaymentRequired(
                "This purchase is not active yet.".to_owned(),
            ));
        }
        Ok(())
    }

    /// Whether the balance can cover a call estimated at `estimate`.
    pub fn check_balance(&self, estimate: UsdMicros) -> Result<(), GatewayError> {
        if self.balance.0 <= 0 {
            return Err(GatewayError::PaymentRequired(format!(
                "The balance of this purchase is ${}. Top up to continue.",
                self.balance
            )));
        }
        if estimate > self.balance {
            return Err(GatewayError::PaymentRequired(format!(
                "The balance of this purchase (${}) cannot cover this request (up to ${}). \
                 Top up, or lower generationConfig.maxOutputTokens.",
                self.balance, estimate
            )));
        }
        Ok(())
    }
}

/// Looks a presented key up (by its hash).
pub async fn find_key(pool: &PgPool, key: &str) -> Result<Option<KeyAccess>, GatewayError> {
    if !key.starts_with(KEY_PREFIX) || key.len() > 128 {
        return Ok(None);
    }
    let row = sqlx::query!(
        "select k.purchase_id, k.status as key_status, p.status as purchase_status, p.balance_micros,
                o.settings
         from gateway_key k
         join purchase p using (purchase_id)
         join offer o using (offer_id)
         where k.key_hash = $1",
        keys::hash(key)
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|r| {
        Some(KeyAccess {
            purchase_id: PurchaseId(r.purchase_id),
            key_status: r.key_status,
            purchase_status: PurchaseStatus::parse(&r.purchase_status)?,
            balance: UsdMicros(r.balance_micros),
            settings: r.settings,
        })
    }))
}

/// A call's worst-case cost held against its purchase's balance while the call runs (a
/// `gateway_reservation` row, seen by every replica). Settled by [`Metered::post`] (the row goes
/// in the charge's own transaction) or [`Reservation::release`]; a guard dropped unsettled frees
/// the row in the background, and a row whose request crashed lapses after
/// [`RESERVATION_TTL_SECS`].
#[derive(Debug)]
pub struct Reservation {
    id: Uuid,
    pub amount: UsdMicros,
    pool: PgPool,
    armed: bool,
}

impl Reservation {
    /// Holds `amount` for one call of `model`, or refuses: 429 when the purchase already has
    /// `max_concurrent` calls in progress, 402 when its balance less what running calls hold
    /// cannot cover `amount`. The purchase row is locked meanwhile, so concurrent reservations
    /// (on any replica) and charges see each other.
    pub async fn take(
        pool: &PgPool,
        purchase_id: PurchaseId,
        model: &str,
        amount: UsdMicros,
        max_concurrent: u32,
    ) -> Result<Self, GatewayError> {
        let mut tx = pool.begin().await?;
        let balance = sqlx::query_scalar!(
            "select balance_micros from purchase where purchase_id = $1 for update",
            purchase_id.0
        )
        .fetch_optional(&mut *tx)
        .await?
        .map(UsdMicros)
        .ok_or(GatewayError::InvalidKey)?;
        sqlx::query!(
            "delete from gateway_reservation where purchase_id = $1 and expires_at <= now()",
            purchase_id.0
        )
        .execute(&mut *tx)
        .await?;
        let held = sqlx::query!(
            r#"select count(*) as "calls!", coalesce(sum(amount_micros), 0)::bigint as "held!"
               from gateway_reservation where purchase_id = $1"#,
            purchase_id.0
        )
        .fetch_one(&mut *tx)
        .await?;
        if held.calls >= i64::from(max_concurrent) {
            return Err(GatewayError::TooManyConcurrent {
                limit: max_concurrent,
            });
        }
        if balance.0 <= 0 {
            return Err(GatewayError::PaymentRequired(format!(
                "The balance of this purchase is ${balance}. Top up to continue."
            )));
        }
        let available = UsdMicros(balance.0.saturating_sub(held.held));
        if amount > available {
            return Err(GatewayError::PaymentRequired(format!(
                "The balance of this purchase (${balance}, of which ${} is held by calls in \
                 progress) cannot cover this request (up to ${amount}). Top up, wait for the other \
                 calls, or lower generationConfig.maxOutputTokens.",
                UsdMicros(held.held)
            )));
        }
        let id = Uuid::new_v4();
        sqlx::query!(
            "insert into gateway_reservation (reservation_id, purchase_id, amount_micros, model, expires_at)
             values ($1, $2, $3, $4, now() + make_interval(secs => $5))",
            id,
            purchase_id.0,
            amount.0,
            model,
            RESERVATION_TTL_SECS
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Self {
            id,
            amount,
            pool: pool.clone(),
            armed: true,
        })
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    /// The call is still running: its hold lapses [`RESERVATION_TTL_SECS`] from now.
    pub async fn extend(&self) -> Result<(), GatewayError> {
        extend_reservation(&self.pool, self.id).await
    }

    /// The call costs nothing (an upstream error, nothing delivered): frees the hold now.
    pub async fn release(mut self) -> Result<(), GatewayError> {
        self.armed = false;
        delete_reservation(&self.pool, self.id).await
    }

    /// The row is gone with the charge, or is deliberately left to lapse (a charge that could not
    /// be recorded keeps its worst case held until then).
    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (pool, id) = (self.pool.clone(), self.id);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = delete_reservation(&pool, id).await {
                    tracing::warn!(reservation_id = %id, error = %e, "cannot release a gateway reservation; it lapses by itself");
                }
            });
        }
    }
}

async fn extend_reservation(pool: &PgPool, id: Uuid) -> Result<(), GatewayError> {
    sqlx::query!(
        "update gateway_reservation set expires_at = now() + make_interval(secs => $2)
         where reservation_id = $1",
        id,
        RESERVATION_TTL_SECS
    )
    .execute(pool)
    .await?;
    Ok(())
}

async fn delete_reservation(pool: &PgPool, id: Uuid) -> Result<(), GatewayError> {
    sqlx::query!(
        "delete from gateway_reservation where reservation_id = $1",
        id
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Ends a call: posts its charge (if any) with its reservation's release in one transaction, or
/// releases the reservation alone when there is nothing to charge.
pub async fn settle(
    pool: &PgPool,
    metered: Option<&Metered>,
    reservation: Option<Reservation>,
) -> Result<Option<Posted>, GatewayError> {
    let Some(metered) = metered else {
        if let Some(r) = reservation {
            r.release().await?;
        }
        return Ok(None);
    };
    let posted = metered
        .post(pool, reservation.as_ref().map(Reservation::id))
        .await;
    if let Some(r) = reservation {
        // Posted: the row went with the charge. Failed: the worst case stays held until it lapses.
        r.disarm();
    }
    posted
}

/// A new gateway key: the secret (shown once), its hash and display prefix.
fn generate_key() -> (SecretString, Vec<u8>, String) {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let key = format!(
        "{KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = keys::hash(&key);
    let prefix = key.chars().take(12).collect();
    (SecretString::from(key), hash, prefix)
}

/// One metered call: what it used and where to post it.
#[derive(Debug, Clone)]
pub struct Metered {
    pub purchase_id: PurchaseId,
    pub model: String,
    pub prices: ModelPrices,
    pub usage: Usage,
    pub response_id: Option<String>,
    pub model_version: Option<String>,
    /// The upstream reported no `usageMetadata`: `usage` is the call's reserved worst case.
    pub worst_case: bool,
}

impl Metered {
    fn entry(&self, reference: String) -> NewEntry {
        let u = &self.usage;
        let basis = if self.worst_case {
            " (no usage reported: the call's reserved maximum)"
        } else {
            ""
        };
        let mut entry = NewEntry::new(EntryKind::Usage, UsdMicros(-self.prices.charge(u).0))
            .reference(reference)
            .description(format!(
                "Gemini {}: {} input ({} cached) + {} output tokens{basis}",
                self.model,
                u.input() + u.cached(),
                u.cached(),
                u.output()
            ));
        entry.usage_amount = Some(BigDecimal::from(u.total()));
        entry.usage_unit = Some("tokens".to_owned());
        entry.metadata = json!({
            "source": "gemini_gateway",
            "model": self.model,
            "model_version": self.model_version,
            "response_id": self.response_id,
            "prompt_tokens": u.prompt_token_count,
            "cached_tokens": u.cached(),
            "tool_use_prompt_tokens": u.tool_use_prompt_token_count,
            "candidates_tokens": u.candidates_token_count,
            "thoughts_tokens": u.thoughts_token_count,
            "charge_usd": self.prices.charge(u),
            "usage_reported": !self.worst_case,
        });
        entry
    }

    /// Debits the call through the ledger and deletes its reservation (if any) in the same
    /// transaction. Nothing is posted for a call without tokens (the reservation still goes).
    pub async fn post(
        &self,
        pool: &PgPool,
        reservation: Option<Uuid>,
    ) -> Result<Option<Posted>, GatewayError> {
        if self.usage.total() == 0 {
            if let Some(id) = reservation {
                delete_reservation(pool, id).await?;
            }
            return Ok(None);
        }
        let reference = match &self.response_id {
            Some(id) if !id.is_empty() && id.len() <= 200 => format!("gemini:{id}"),
            _ => format!("gemini:req:{}", Uuid::new_v4()),
        };
        let posted = match self
            .post_once(pool, self.entry(reference), reservation)
            .await
        {
            // An upstream that repeats a response id for a different call is still charged.
            Err(GatewayError::Billing(BillingError::ReferenceConflict(_))) => {
                self.post_once(
                    pool,
                    self.entry(format!("gemini:req:{}", Uuid::new_v4())),
                    reservation,
                )
                .await?
            }
            other => other?,
        };
        if posted.status_changed() {
            tracing::info!(
                purchase_id = %self.purchase_id,
                from = posted.status_before.as_str(),
                to = posted.status_after.as_str(),
                "gateway usage changed the purchase status"
            );
        }
        Ok(Some(posted))
    }

    async fn post_once(
        &self,
        pool: &PgPool,
        entry: NewEntry,
        reservation: Option<Uuid>,
    ) -> Result<Posted, GatewayError> {
        let mut tx = pool.begin().await?;
        let posted = ledger::post(&mut tx, self.purchase_id, &entry).await?;
        if let Some(id) = reservation {
            sqlx::query!(
                "delete from gateway_reservation where reservation_id = $1",
                id
            )
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(posted)
    }
}

/// Reads the top-level JSON objects out of a byte stream as they complete: the `data:` events of
/// an SSE stream and the elements of a streamed JSON array alike (anything outside an object is
/// skipped).
#[derive(Debug, Default)]
pub struct JsonObjectSplitter {
    buf: Vec<u8>,
    depth: usize,
    in_string: bool,
    escaped: bool,
    overflowed: bool,
}

impl JsonObjectSplitter {
    pub fn push(&mut self, bytes: &[u8], mut on_object: impl FnMut(serde_json::Value)) {
        for &b in bytes {
            if self.depth == 0 {
                if b == b'{' {
                    self.depth = 1;
                    self.buf.clear();
                    self.buf.push(b);
                    self.overflowed = false;
                }
                continue;
            }
            if !self.overflowed {
                if self.buf.len() >= MAX_STREAM_OBJECT {
                    self.overflowed = true;
                    self.buf = Vec::new();
                } else {
                    self.buf.push(b);
                }
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' => self.depth += 1,
                b'}' => {
                    self.depth -= 1;
                    if self.depth == 0 && !self.overflowed {
                        if let Ok(value) = serde_json::from_slice(&self.buf) {
                            on_object(value);
                        }
                        self.buf.clear();
                    }
                }
                _ => {}
            }
        }
    }
}

/// What a response (or the chunks of a stream so far) says about usage.
#[derive(Debug, Clone, Default)]
pub struct ResponseUsage {
    pub usage: Option<Usage>,
    pub response_id: Option<String>,
    pub model_version: Option<String>,
}

impl ResponseUsage {
    /// Takes what one `GenerateContentResponse` object carries (later chunks win).
    pub fn observe(&mut self, response: &serde_json::Value) {
        if let Some(usage) = response
            .get("usageMetadata")
            .and_then(|u| serde_json::from_value::<Usage>(u.clone()).ok())
        {
            self.usage = Some(usage);
        }
        if let Some(id) = response.get("responseId").and_then(|v| v.as_str()) {
            self.response_id = Some(id.to_owned());
        }
        if let Some(v) = response.get("modelVersion").and_then(|v| v.as_str()) {
            self.model_version = Some(v.to_owned());
        }
    }
}

/// Meters a streamed response: watches the chunks as they pass and posts the last
/// `usageMetadata` once — at the end of the stream, or (in the background) when the stream is
/// dropped early because the client went away. A stream that delivered anything without ever
/// showing `usageMetadata` is charged its worst case; one that delivered nothing is free. Either
/// way the call's reservation is settled with it.
pub struct StreamMeter {
    pool: PgPool,
    purchase_id: PurchaseId,
    model: String,
    prices: ModelPrices,
    worst_case: Usage,
    reservation: Option<Reservation>,
    on_tokens: Box<dyn Fn(u64) + Send + Sync>,
    splitter: JsonObjectSplitter,
    seen: ResponseUsage,
    delivered: bool,
    done: bool,
    extended_at: Instant,
}

impl StreamMeter {
    pub fn new(
        pool: PgPool,
        purchase_id: PurchaseId,
        model: String,
        prices: ModelPrices,
        worst_case: Usage,
        reservation: Option<Reservation>,
        on_tokens: Box<dyn Fn(u64) + Send + Sync>,
    ) -> Self {
        Self {
            pool,
            purchase_id,
            model,
            prices,
            worst_case,
            reservation,
            on_tokens,
            splitter: JsonObjectSplitter::default(),
            seen: ResponseUsage::default(),
            delivered: false,
            done: false,
            extended_at: Instant::now(),
        }
    }

    pub fn observe(&mut self, chunk: &[u8]) {
        self.delivered |= !chunk.is_empty();
        if let Some(reservation) = &self.reservation
            && self.extended_at.elapsed() >= RESERVATION_REFRESH
        {
            self.extended_at = Instant::now();
            let (pool, id) = (self.pool.clone(), reservation.id);
            tokio::spawn(async move {
                if let Err(e) = extend_reservation(&pool, id).await {
                    tracing::warn!(reservation_id = %id, error = %e, "cannot extend a running stream's reservation");
                }
            });
        }
        let seen = &mut self.seen;
        self.splitter.push(chunk, |object| seen.observe(&object));
    }

    /// What to charge, and the reservation to settle with it.
    fn take(&mut self) -> (Option<Metered>, Option<Reservation>) {
        if std::mem::replace(&mut self.done, true) {
            return (None, None);
        }
        let reservation = self.reservation.take();
        let (usage, worst_case) = match self.seen.usage {
            Some(usage) => (usage, false),
            None if self.delivered => (self.worst_case, true),
            None => return (None, reservation),
        };
        (self.on_tokens)(usage.total());
        let metered = Metered {
            purchase_id: self.purchase_id,
            model: self.model.clone(),
            prices: self.prices,
            usage,
            response_id: self.seen.response_id.clone(),
            model_version: self.seen.model_version.clone(),
            worst_case,
        };
        (Some(metered), reservation)
    }

    /// The stream ended: post the usage now (the client sees the end after the debit).
    pub async fn finish(mut self) {
        let (metered, reservation) = self.take();
        settle_logged(self.pool.clone(), self.purchase_id, metered, reservation).await;
    }
}

async fn settle_logged(
    pool: PgPool,
    purchase_id: PurchaseId,
    metered: Option<Metered>,
    reservation: Option<Reservation>,
) {
    if metered.as_ref().is_some_and(|m| m.worst_case) {
        tracing::warn!(%purchase_id, "streamed answer without usageMetadata: charged its reserved worst case");
    }
    if let Err(e) = settle(&pool, metered.as_ref(), reservation).await {
        tracing::error!(%purchase_id, error = %e, "cannot post streamed Gemini usage");
    }
}

impl Drop for StreamMeter {
    fn drop(&mut self) {
        let (metered, reservation) = self.take();
        if metered.is_none() && reservation.is_none() {
            return;
        }
        let (pool, purchase_id) = (self.pool.clone(), self.purchase_id);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(settle_logged(pool, purchase_id, metered, reservation));
            }
            Err(_) => {
                tracing::error!(%purchase_id, "Gemini usage of an interrupted stream lost: no runtime");
            }
        }
    }
}

/// The Gemini provider: gateway keys in the database.
pub struct GeminiProvider {
    pool: PgPool,
    /// The base URL customers give their Gemini client (`PUBLIC_BASE_URL`).
    base_url: String,
}

impl GeminiProvider {
    pub fn new(pool: PgPool, base_url: String) -> Self {
        Self { pool, base_url }
    }

    /// Moves the purchase's live key from one status to another. `Ok(false)` when no key was in
    /// `from` (the caller decides whether that is fine).
    async fn set_key_status(
        &self,
        purchase_id: PurchaseId,
        from: &str,
        to: &str,
    ) -> Result<bool, ProviderError> {
        let updated = sqlx::query!(
            "update gateway_key set status = $3,
                 revoked_at = case when $3 = 'revoked' then now() else revoked_at end
             where purchase_id = $1 and status = $2",
            purchase_id.0,
            from,
            to
        )
        .execute(&self.pool)
        .await
        .map_err(db_error)?;
        Ok(updated.rows_affected() > 0)
    }

    async fn has_key_in(
        &self,
        purchase_id: PurchaseId,
        status: &str,
    ) -> Result<bool, ProviderError> {
        sqlx::query_scalar!(
            r#"select exists(select 1 from gateway_key where purchase_id = $1 and status = $2) as "exists!""#,
            purchase_id.0,
            status
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_error)
    }
}

fn db_error(e: sqlx::Error) -> ProviderError {
    ProviderError::Retryable(format!("database: {e}"))
}

#[async_trait]
impl ResourceProvider for GeminiProvider {
    fn kind(&self) -> &'static str {
        "gemini"
    }

    /// Issues the purchase's gateway key. A retried provisioning revokes the earlier key (its
    /// secret was never delivered) and issues a new one.
    #[tracing::instrument(skip_all, fields(purchase_id = %request.purchase_id), err)]
    async fn provision(&self, request: &ProvisionRequest) -> Result<Delivered, ProviderError> {
        let settings = GatewaySettings::from_offer_settings(&request.offer.settings)
            .map_err(|e| ProviderError::Permanent(e.to_string()))?;
        let (secret, hash, prefix) = generate_key();
        let key_id = Uuid::new_v4();
        let mut tx = self.pool.begin().await.map_err(db_error)?;
        sqlx::query!(
            "update gateway_key set status = 'revoked', revoked_at = now()
             where purchase_id = $1 and status <> 'revoked'",
            request.purchase_id.0
        )
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        sqlx::query!(
            "insert into gateway_key (gateway_key_id, purchase_id, key_hash, key_prefix)
             values ($1, $2, $3, $4)",
            key_id,
            request.purchase_id.0,
            hash,
            prefix
        )
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        tx.commit().await.map_err(db_error)?;
        let models: Vec<&str> = settings.models.keys().map(String::as_str).collect();
        Ok(Delivered {
            description: format!(
                "Gemini API key for {}; use it with any Gemini client whose base URL is {}",
                models.join(", "),
                self.base_url
            ),
            redeem_url: None,
            redeem_code: Some(secret),
            state: json!({
                "gateway_key_id": key_id,
                "key_prefix": prefix,
                "base_url": self.base_url,
            }),
        })
    }

    #[tracing::instrument(skip_all, fields(purchase_id = %purchase_id), err)]
    async fn suspend(
        &self,
        purchase_id: PurchaseId,
        _state: &serde_json::Value,
    ) -> Result<(), ProviderError> {
        if self
            .set_key_status(purchase_id, "active", "disabled")
            .await?
            || self.has_key_in(purchase_id, "disabled").await?
        {
            Ok(())
        } else {
            Err(ProviderError::Permanent(
                "this purchase has no gateway key to suspend".to_owned(),
            ))
        }
    }

    #[tracing::instrument(skip_all, fields(purchase_id = %purchase_id), err)]
    async fn resume(
        &self,
        purchase_id: PurchaseId,
        _state: &serde_json::Value,
    ) -> Result<(), ProviderError> {
        if self
            .set_key_status(purchase_id, "disabled", "active")
            .await?
            || self.has_key_in(purchase_id, "active").await?
        {
            Ok(())
        } else {
            Err(ProviderError::Permanent(
                "this purchase has no gateway key to resume".to_owned(),
            ))
        }
    }

    #[tracing::instrument(skip_all, fields(purchase_id = %purchase_id), err)]
    async fn delete(
        &self,
        purchase_id: PurchaseId,
        _state: &serde_json::Value,
    ) -> Result<(), ProviderError> {
        self.set_key_status(purchase_id, "active", "revoked")
            .await?;
        self.set_key_status(purchase_id, "disabled", "revoked")
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices(input: &str, output: &str, cached: Option<&str>) -> ModelPrices {
        ModelPrices {
            input: UsdMicros::parse_decimal(input).unwrap(),
            output: UsdMicros::parse_decimal(output).unwrap(),
            cached_input: cached.map(|c| UsdMicros::parse_decimal(c).unwrap()),
            max_output_tokens: None,
        }
    }

    #[test]
    fn charges_are_exact_and_round_half_up_once() {
        let p = prices("0.30", "2.50", Some("0.075"));
        let usage = Usage {
            prompt_token_count: 1000,
            cached_content_token_count: 400,
            candidates_token_count: 200,
            thoughts_token_count: 100,
            ..Default::default()
        };
        // 600 × 0.30 + 400 × 0.075 + 300 × 2.50 = 180 + 30 + 750 = 960 µUSD.
        assert_eq!(p.charge(&usage), UsdMicros(960));
        // 1 token × 0.30 $/M = 0.3 µUSD → 0; 2 tokens = 0.6 → 1; 5 tokens at 0.10 = 0.5 → 1.
        let one = Usage {
            prompt_token_count: 1,
            ..Default::default()
        };
        assert_eq!(p.charge(&one), UsdMicros(0));
        let two = Usage {
            prompt_token_count: 2,
            ..Default::default()
        };
        assert_eq!(p.charge(&two), UsdMicros(1));
        let half = Usage {
            prompt_token_count: 5,
            ..Default::default()
        };
        assert_eq!(prices("0.10", "0", None).charge(&half), UsdMicros(1));
        // Cached tokens without a cached price pay the input price; never more than the prompt.
        let over = Usage {
            prompt_token_count: 10,
            cached_content_token_count: 50,
            ..Default::default()
        };
        assert_eq!(over.cached(), 10);
        assert_eq!(
            prices("1", "0", None).charge(&over),
            UsdMicros(10),
            "10 tokens × 1 $/M"
        );
        // Tool-use prompts are input.
        let tools = Usage {
            tool_use_prompt_token_count: 1_000_000,
            ..Default::default()
        };
        assert_eq!(p.charge(&tools), UsdMicros(300_000));
    }

    #[test]
    fn estimates_count_text_media_and_requested_output() {
        let body = json!({
            "contents": [{"role": "user", "parts": [
                {"text": "abcdefgh"},
                {"inlineData": {"mimeType": "image/png", "data": "AAAA".repeat(10_000)}}
            ]}],
            "systemInstruction": {"parts": [{"text": "abcd"}]},
            "generationConfig": {"maxOutputTokens": 1000}
        });
        let e = Estimate::of_request(&body);
        assert_eq!(
            e,
            Estimate {
                input_tokens: 3 + 258,
                max_input_tokens: 12 + 258,
                max_output_tokens: Some(1000),
                candidates: 1,
            }
        );
        let p = prices("1", "10", None);
        // The worst case: 270 × 1 + 1000 × 10 µUSD (1 $/M = 1 µUSD per token).
        assert_eq!(p.estimate(&e), UsdMicros(10_270));
        // Estimates round up: 1 token at 0.30 $/M = 0.3 µUSD → 1.
        let one = Estimate {
            input_tokens: 1,
            max_input_tokens: 1,
            max_output_tokens: Some(0),
            candidates: 1,
        };
        assert_eq!(prices("0.30", "0", None).estimate(&one), UsdMicros(1));
        let big = Estimate {
            input_tokens: 1_000_000,
            max_input_tokens: 1_000_000,
            max_output_tokens: Some(1_000_000),
            candidates: 1,
        };
        assert_eq!(p.estimate(&big), UsdMicros(11_000_000));
    }

    #[test]
    fn the_worst_case_is_the_models_output_limit_when_the_request_sets_none() {
        let body = json!({"contents": [{"parts": [{"text": "abcd"}]}]});
        let e = Estimate::of_request(&body);
        assert_eq!(e.max_output_tokens, None);
        // gemini-2.5-pro: 4 × 1.25 + 65536 × 10 µUSD = 655365 µUSD.
        let pro = prices("1.25", "10", None);
        assert_eq!(e.worst_case(&pro).output(), DEFAULT_MAX_OUTPUT_TOKENS);
        assert_eq!(pro.estimate(&e), UsdMicros(655_365));
        let limited = ModelPrices {
            max_output_tokens: Some(8192),
            ..prices("0.10", "0.40", None)
        };
        assert_eq!(e.worst_case(&limited).output(), 8192);
        // Several candidates multiply the output (at most 8).
        let many = json!({"contents": [], "generationConfig": {"candidateCount": 50, "maxOutputTokens": 100}});
        let e = Estimate::of_request(&many);
        assert_eq!(e.worst_case(&limited).output(), 800);
    }

    #[test]
    fn offer_settings_parse_and_reject_bad_prices() {
        let offers =
            crate::catalog::CatalogFile::parse(include_str!("../../config/offers.toml")).unwrap();
        let gemini = offers
            .offers
            .iter()
            .find(|o| o.provider == "gemini")
            .unwrap();
        let settings =
            GatewaySettings::from_offer_settings(&serde_json::to_value(&gemini.settings).unwrap())
                .unwrap();
        assert_eq!(
            settings.models["gemini-2.5-flash"],
            ModelPrices {
                max_output_tokens: Some(65_536),
                ..prices("0.30", "2.50", Some("0.075"))
            }
        );
        assert_eq!(settings.models["gemini-2.0-flash"].output_limit(), 8192);
        assert_eq!(settings.limits().requests_per_minute, Some(60));
        assert_eq!(settings.max_concurrent(), 4);
        let mut defaults = serde_json::to_value(&gemini.settings).unwrap();
        defaults
            .as_object_mut()
            .unwrap()
            .remove("max_concurrent_requests");
        assert_eq!(
            GatewaySettings::from_offer_settings(&defaults)
                .unwrap()
                .max_concurrent(),
            DEFAULT_MAX_CONCURRENT_REQUESTS
        );
        for bad in [
            json!({"models": {}}),
            json!({"models": {"m": {"input": "0.1234567", "output": "1"}}}),
            json!({"models": {"m": {"input": "-1", "output": "1"}}}),
            json!({"models": {"m": {"input": "1"}}}),
            json!({"models": {"m": {"input": "1", "output": "1", "max_output_tokens": 0}}}),
            json!({"models": {"m": {"input": "1", "output": "1"}}, "max_concurrent_requests": 0}),
        ] {
            assert!(GatewaySettings::from_offer_settings(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limiter_enforces_requests_and_tokens_per_minute() {
        let limiter = RateLimiter::default();
        let id = PurchaseId::new();
        let limits = Limits {
            requests_per_minute: Some(2),
            tokens_per_minute: Some(1000),
        };
        let t0 = Instant::now();
        assert!(limiter.admit(id, limits, 10, t0).is_ok());
        assert!(limiter.admit(id, limits, 10, t0).is_ok());
        match limiter.admit(id, limits, 10, t0) {
            Err(GatewayError::RateLimited {
                what: "requests",
                retry_after_secs,
            }) => assert_eq!(retry_after_secs, 30),
            other => panic!("{other:?}"),
        }
        // 30 s later one request has refilled.
        assert!(
            limiter
                .admit(id, limits, 10, t0 + Duration::from_secs(30))
                .is_ok()
        );
        // Tokens: a call that used 1500 tokens blocks the next until refilled.
        let other = PurchaseId::new();
        let t1 = t0 + Duration::from_secs(100);
        assert!(limiter.admit(other, limits, 100, t1).is_ok());
        limiter.record_tokens(other, limits, 1500, t1);
        assert!(matches!(
            limiter.admit(other, limits, 100, t1),
            Err(GatewayError::RateLimited { what: "tokens", .. })
        ));
        assert!(
            limiter
                .admit(other, limits, 100, t1 + Duration::from_secs(60))
                .is_ok()
        );
        // No limits: always admitted, nothing stored.
        assert!(limiter.admit(id, Limits::default(), 1, t0).is_ok());
    }

    #[test]
    fn splitter_reads_sse_and_json_array_streams_in_any_chunking() {
        let sse = "data: {\"a\":1,\"s\":\"}{\\\"\"}\r\n\r\ndata: {\"usageMetadata\":{\"promptTokenCount\":3}}\r\n\r\n";
        let array =
            "[{\"a\":1,\"s\":\"}{\\\"\"}\n,\r\n{\"usageMetadata\":{\"promptTokenCount\":3}}\n]";
        for text in [sse, array] {
            for size in [1, 2, 7, text.len()] {
                let mut splitter = JsonObjectSplitter::default();
                let mut seen = Vec::new();
                for chunk in text.as_bytes().chunks(size) {
                    splitter.push(chunk, |v| seen.push(v));
                }
                assert_eq!(seen.len(), 2, "{text} by {size}");
                assert_eq!(seen[0]["s"], "}{\"");
                let mut usage = ResponseUsage::default();
                usage.observe(&seen[1]);
                assert_eq!(usage.usage.unwrap().prompt_token_count, 3);
            }
        }
    }

    #[test]
    fn key_access_checks_status_then_balance() {
        let access = |key: &str, status: PurchaseStatus, balance: i64| KeyAccess {
            purchase_id: PurchaseId::new(),
            key_status: key.to_owned(),
            purchase_status: status,
            balance: UsdMicros(balance),
            settings: json!({}),
        };
        assert!(
            access("active", PurchaseStatus::Low, 1)
                .check_usable()
                .is_ok()
        );
        assert!(matches!(
            access("revoked", PurchaseStatus::Active, 1).check_usable(),
            Err(GatewayError::InvalidKey)
        ));
        assert!(matches!(
            access("active", PurchaseStatus::Deleted, 1).check_usable(),
            Err(GatewayError::InvalidKey)
        ));
        for (key, status) in [
            ("disabled", PurchaseStatus::Active),
            ("active", PurchaseStatus::Suspended),
            ("active", PurchaseStatus::Provisioning),
        ] {
            assert!(matches!(
                access(key, status, 1).check_usable(),
                Err(GatewayError::PaymentRequired(_))
            ));
        }
        let a = access("active", PurchaseStatus::Active, 100);
        assert!(a.check_balance(UsdMicros(100)).is_ok());
        assert!(a.check_balance(UsdMicros(101)).is_err());
        assert!(
            access("active", PurchaseStatus::Active, 0)
                .check_balance(UsdMicros(0))
                .is_err()
        );
    }

    #[test]
    fn generated_keys_are_prefixed_and_url_safe() {
        let (key, hash, prefix) = generate_key();
        let text = key.expose_secret();
        assert!(text.starts_with(KEY_PREFIX) && text.len() == 4 + 43);
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert!(keys::matches(text, &hash));
        assert!(text.starts_with(&prefix));
    }
}
