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

use super::{
    Delivered, NewCredential, ProviderError, ProvisionRequest, ResourceInfo, ResourceProvider,
};
use crate::billing::ledger::{self, EntryKind, NewEntry, Posted};
use crate::billing::{BillingError, PurchaseStatus, keys};
use crate::config::GeminiConfig;
use crate::domain::ids::PurchaseId;
use crate::domain::money::UsdMicros;

mod access;
mod forward;
mod limiter;
mod openai;
mod pricing;
mod provider;
mod slots;
mod stream;

pub use access::*;
pub use forward::*;
pub use limiter::*;
pub use openai::*;
pub use pricing::*;
pub use provider::*;
pub use slots::*;
pub use stream::*;

/// What the gateway serves, named in the 404 of anything else.
pub const SERVED: &str = "It serves models.list and models.get (GET /v1beta/models, \
     /v1beta/models/{model}) and, on a model, :generateContent, :streamGenerateContent, \
     :countTokens (free), :embedContent and :batchEmbedContents, each also under /v1/; and \
     Gemini's OpenAI-compatible API: POST /v1beta/openai/chat/completions, POST \
     /v1beta/openai/embeddings, GET /v1beta/openai/models.";

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
/// A model's input limit when its prices in the offer do not set `max_input_tokens` (the Gemini
/// 2.5 models' context window).
pub const DEFAULT_MAX_INPUT_TOKENS: u64 = 1_048_576;
/// Prompts over this many tokens pay a model's long-context prices (`input_over_200k`, …).
pub const LONG_CONTEXT_TOKENS: u64 = 200_000;
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
    #[error("Method {0:?} is not served by this gateway. {SERVED}")]
    UnknownMethod(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error(
        "tool_not_sold: the tool {0:?} is not sold with this key (its use is billed per request upstream and this offer does not price it). Remove it from `tools`."
    )]
    ToolNotSold(String),
    #[error("The Gemini gateway is not configured on this server.")]
    NotConfigured,
    #[error("The upstream model service is unavailable; retry shortly.")]
    UpstreamUnavailable(#[source] reqwest::Error),
    #[error("the offer's gateway settings are invalid: {0}")]
    Misconfigured(String),
    #[error("the call's settlement task ended without an answer")]
    TaskLost,
    #[error(transparent)]
    Billing(#[from] BillingError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// How the vendor's key goes upstream: Google's header, or a bearer token (Gemini's
/// OpenAI-compatible API, as OpenAI's clients send it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamAuth {
    GoogleKey,
    Bearer,
}

/// The upstream side: HTTP client, base URL, the vendor's keys (used in turn) and the limiter.
pub struct Gateway {
    http: reqwest::Client,
    upstream_url: String,
    keys: Vec<SecretString>,
    next_key: AtomicUsize,
    pub limiter: RateLimiter,
    /// The calls being read to their end and settled, detached from their clients: shutdown
    /// waits for them ([`Gateway::settled`]).
    tasks: tokio_util::task::TaskTracker,
    /// Each purchase's calls in progress, counted from their headers.
    pub slots: CallSlots,
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
            tasks: tokio_util::task::TaskTracker::new(),
            slots: CallSlots::default(),
            max_body_bytes: config.max_body_bytes,
            body_read_timeout: config.body_read_timeout,
        })
    }

    /// Waits (at most `within`) for every call already forwarded to be read to its end and
    /// charged; at shutdown, after the server stopped taking calls.
    pub async fn settled(&self, within: Duration) -> bool {
        self.tasks.close();
        let done = tokio::time::timeout(within, self.tasks.wait())
            .await
            .is_ok();
        if !done {
            tracing::warn!(
                running = self.tasks.len(),
                "Gemini calls still running at shutdown: their holds lapse and they are not charged"
            );
        }
        done
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

    /// Sends one request upstream with the vendor's key (never the customer's) in
    /// `x-goog-api-key`; on a 429, tries the next key while there is one.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(String, String)],
        body: Option<axum::body::Bytes>,
    ) -> Result<reqwest::Response, GatewayError> {
        self.send_as(method, path, query, body, UpstreamAuth::GoogleKey)
            .await
    }

    /// [`Gateway::send`] with the vendor's key presented as `auth` says.
    pub async fn send_as(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(String, String)],
        body: Option<axum::body::Bytes>,
        auth: UpstreamAuth,
    ) -> Result<reqwest::Response, GatewayError> {
        let mut url = reqwest::Url::parse(&format!("{}{path}", self.upstream_url))
            .map_err(|e| GatewayError::Misconfigured(format!("GEMINI_UPSTREAM_URL: {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let attempts = self.keys.len().clamp(1, 3);
        for attempt in 0..attempts {
            let key = self.next_key().ok_or(GatewayError::NotConfigured)?;
            let request = self.http.request(method.clone(), url.clone());
            let mut request = match auth {
                UpstreamAuth::GoogleKey => request.header("x-goog-api-key", key.expose_secret()),
                UpstreamAuth::Bearer => request.bearer_auth(key.expose_secret()),
            };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(text: &str) -> UsdMicros {
        UsdMicros::parse_decimal(text).unwrap()
    }

    fn prices(input: &str, output: &str, cached: Option<&str>) -> ModelPrices {
        ModelPrices {
            input: usd(input),
            output: usd(output),
            cached_input: cached.map(usd),
            ..ModelPrices::default()
        }
    }

    /// The estimate of a body as a client sends it (compact JSON).
    fn estimate(body: &serde_json::Value) -> Estimate {
        Estimate::of_request(body, serde_json::to_vec(body).unwrap().len() as u64)
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
    fn the_hold_bounds_input_by_the_body_and_output_by_the_request() {
        let body = json!({
            "contents": [{"role": "user", "parts": [
                {"text": "abcdefgh"},
                {"inlineData": {"mimeType": "image/png", "data": "AAAA".repeat(10_000)}}
            ]}],
            "systemInstruction": {"parts": [{"text": "abcd"}]},
            "generationConfig": {"maxOutputTokens": 1000}
        });
        let bytes = serde_json::to_vec(&body).unwrap().len() as u64;
        let e = estimate(&body);
        assert_eq!(
            e,
            Estimate {
                // "user", "abcdefgh", "abcd": 16 characters, about 4 tokens; one image.
                input_tokens: 4 + 258,
                body_bytes: bytes,
                whole_context: false,
                max_output_tokens: Some(1000),
                candidates: 1,
                tools: Vec::new(),
            }
        );
        let p = prices("1", "10", None);
        // The worst case: every byte a token at 1 µUSD, 1000 output tokens at 10 µUSD.
        assert_eq!(p.hold(&e), UsdMicros(bytes as i64 + 10_000));
        // Strings under any key count: a 3 MB functionResponse is held at the model's input limit.
        let tool_answer = json!({"contents": [{"role": "user", "parts": [{"functionResponse": {
            "name": "f", "response": {"result": "x".repeat(3_000_000)}}}]}],
            "generationConfig": {"maxOutputTokens": 10}});
        let e = estimate(&tool_answer);
        assert!(e.body_bytes > 3_000_000 && e.input_tokens >= 750_000);
        assert_eq!(
            e.worst_case(&p).prompt_token_count,
            DEFAULT_MAX_INPUT_TOKENS
        );
        // A file (by URI) or inline video/audio/PDF: the whole input limit, whatever its size.
        for part in [
            json!({"fileData": {"fileUri": "https://www.youtube.com/watch?v=x"}}),
            json!({"file_data": {"file_uri": "gs://b/o", "mime_type": "image/png"}}),
            json!({"inlineData": {"mimeType": "video/mp4", "data": "AAAA"}}),
            json!({"inline_data": {"mime_type": "audio/ogg", "data": "AAAA"}}),
            json!({"inlineData": {"mimeType": "application/pdf", "data": "AAAA"}}),
        ] {
            let limited = ModelPrices {
                max_input_tokens: Some(32_768),
                ..p
            };
            let e = estimate(&json!({"contents": [{"parts": [part]}]}));
            assert!(e.whole_context, "{part}");
            assert_eq!(e.worst_case(&limited).prompt_token_count, 32_768);
        }
        // Estimates round up: 1 token at 0.30 $/M = 0.3 µUSD → 1.
        let one = Usage {
            prompt_token_count: 1,
            ..Default::default()
        };
        assert_eq!(prices("0.30", "0", None).hold_for(&one), UsdMicros(1));
    }

    #[test]
    fn long_prompts_pay_the_long_context_tier_and_holds_the_highest() {
        // gemini-2.5-pro: $1.25 / $10 up to 200k prompt tokens, $2.50 / $15 above.
        let pro = ModelPrices {
            input_over_200k: Some(usd("2.50")),
            output_over_200k: Some(usd("15")),
            ..prices("1.25", "10", Some("0.31"))
        };
        let at = |prompt: u64, cached: u64| Usage {
            prompt_token_count: prompt,
            cached_content_token_count: cached,
            candidates_token_count: 1000,
            ..Default::default()
        };
        // 200,000 × 1.25 + 1000 × 10 = 260,000 µUSD.
        assert_eq!(pro.charge(&at(200_000, 0)), UsdMicros(260_000));
        // 200,001 × 2.50 + 1000 × 15 = 515,002.5 → 515,003.
        assert_eq!(pro.charge(&at(200_001, 0)), UsdMicros(515_003));
        // Cached tokens above 200k: cached_input_over_200k, else cached_input.
        assert_eq!(
            pro.charge(&at(300_000, 100_000)),
            UsdMicros(200_000 * 2_500_000 / 1_000_000 + 31_000 + 15_000)
        );
        // A worst case under 200k holds the base tier; above it, the higher of both.
        let small = Usage {
            prompt_token_count: 100_000,
            candidates_token_count: 65_536,
            ..Default::default()
        };
        assert_eq!(pro.hold_for(&small), UsdMicros(125_000 + 655_360));
        let whole = Usage {
            prompt_token_count: DEFAULT_MAX_INPUT_TOKENS,
            candidates_token_count: 65_536,
            ..Default::default()
        };
        assert_eq!(
            pro.hold_for(&whole),
            UsdMicros(2_621_440 + 983_040),
            "1,048,576 × 2.50 + 65,536 × 15"
        );
        // The charge of any usage within the worst case is within the hold.
        for usage in [at(150_000, 0), at(300_000, 0), at(1_000_000, 500_000)] {
            assert!(pro.charge(&usage) <= pro.hold_for(&whole));
        }
    }

    #[test]
    fn built_in_tools_are_named_and_priced_per_request() {
        let body = json!({"contents": [], "tools": [
            {"functionDeclarations": [{"name": "f"}]},
            {"google_search": {}},
            {"codeExecution": {}}
        ]});
        let e = estimate(&body);
        assert_eq!(e.tools, ["codeExecution", "googleSearch"]);
        assert!(e.whole_context, "tool results are prompt tokens");
        assert!(
            estimate(&json!({"tools": [{"function_declarations": []}]}))
                .tools
                .is_empty()
        );
        let settings = GatewaySettings::from_offer_settings(&json!({
            "models": {"m": {"input": "1", "output": "1"}},
            "tools": {"google_search": {"per_request_usd": "0.035"}}
        }))
        .unwrap();
        match settings.tool_charge(&e.tools) {
            Err(GatewayError::ToolNotSold(tool)) => assert_eq!(tool, "codeExecution"),
            other => panic!("{other:?}"),
        }
        let charge = settings.tool_charge(&["googleSearch".to_owned()]).unwrap();
        assert_eq!(charge.fee, UsdMicros(35_000));
        assert_eq!(
            camel_case("google_search_retrieval"),
            "googleSearchRetrieval"
        );
        assert_eq!(camel_case("urlContext"), "urlContext");
    }

    #[test]
    fn the_worst_case_is_the_models_output_limit_when_the_request_sets_none() {
        let body = json!({"contents": [{"parts": [{"text": "abcd"}]}]});
        let e = estimate(&body);
        assert_eq!(e.max_output_tokens, None);
        // gemini-2.5-pro: 42 bytes × 1.25 + 65536 × 10 µUSD = 655412.5 → 655413 µUSD.
        assert_eq!(e.body_bytes, 42);
        let pro = prices("1.25", "10", None);
        assert_eq!(e.worst_case(&pro).output(), DEFAULT_MAX_OUTPUT_TOKENS);
        assert_eq!(pro.hold(&e), UsdMicros(655_413));
        let limited = ModelPrices {
            max_output_tokens: Some(8192),
            ..prices("0.10", "0.40", None)
        };
        assert_eq!(e.worst_case(&limited).output(), 8192);
        // Several candidates multiply the output (at most 8); a request above the limit is capped.
        let many = json!({"contents": [], "generationConfig": {"candidateCount": 50, "maxOutputTokens": 100}});
        assert_eq!(estimate(&many).worst_case(&limited).output(), 800);
        let over = json!({"generationConfig": {"maxOutputTokens": 1_000_000}});
        assert_eq!(estimate(&over).worst_case(&limited).output(), 8192);
    }

    #[test]
    fn offer_settings_parse_and_reject_bad_prices() {
        let offers =
            crate::catalog::CatalogFile::parse(include_str!("../../../config/offers.toml"))
                .unwrap();
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
                max_input_tokens: Some(1_048_576),
                ..prices("0.30", "2.50", Some("0.075"))
            }
        );
        let pro = settings.models["gemini-2.5-pro"];
        assert_eq!(
            (pro.input_over_200k, pro.output_over_200k),
            (Some(usd("2.50")), Some(usd("15")))
        );
        assert!(
            settings.tools.is_empty(),
            "no built-in tool is sold by default"
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
            json!({"models": {"m": {"input": "1", "output": "1", "output_over_200k": "-1"}}}),
            json!({"models": {"m": {"input": "1", "output": "1", "max_input_tokens": 0}}}),
            json!({"models": {"m": {"input": "1", "output": "1"}}, "tools": {"t": {"per_request_usd": "-1"}}}),
            json!({"models": {"m": {"input": "1", "output": "1"}}, "tools": {"t": {}}}),
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
    fn key_access_checks_the_key_and_purchase_status() {
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
