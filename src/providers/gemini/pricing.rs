//! Prices: per-model prices, a response's token usage, the pre-call estimate (the most a call can
//! cost, reserved before it is forwarded) and the offer's gateway settings.

use super::*;

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

    /// A request with input only (embeddings): its body's bytes bound the input tokens (a token
    /// is never shorter than one byte); nothing is generated.
    pub fn input_only(body_bytes: u64) -> Self {
        Self {
            input_tokens: body_bytes.div_ceil(4),
            max_input_tokens: body_bytes,
            max_output_tokens: Some(0),
            candidates: 1,
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
