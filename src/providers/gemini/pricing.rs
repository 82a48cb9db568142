//! Prices: per-model prices (with Google's long-context tier), a response's token usage, the
//! pre-call estimate (the most a call can cost, held before it is forwarded) and the gateway terms
//! of a purchase (the offer's settings as stored at checkout).

use super::*;

/// Prices of one model, USD per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub struct ModelPrices {
    pub input: UsdMicros,
    pub output: UsdMicros,
    /// Cached prompt tokens; the input price when not set.
    #[serde(default)]
    pub cached_input: Option<UsdMicros>,
    /// Input price of a call whose prompt is over [`LONG_CONTEXT_TOKENS`] (Google's long-context
    /// tier, e.g. gemini-2.5-pro); `input` when not set.
    #[serde(default)]
    pub input_over_200k: Option<UsdMicros>,
    /// Output price of a call whose prompt is over [`LONG_CONTEXT_TOKENS`]; `output` when not set.
    #[serde(default)]
    pub output_over_200k: Option<UsdMicros>,
    /// Cached price of a call whose prompt is over [`LONG_CONTEXT_TOKENS`]; `cached_input` (else
    /// the long-context input price) when not set.
    #[serde(default)]
    pub cached_input_over_200k: Option<UsdMicros>,
    /// The model's output limit in tokens (thoughts included): what a call without
    /// `generationConfig.maxOutputTokens` may produce. [`DEFAULT_MAX_OUTPUT_TOKENS`] when not set.
    #[serde(default)]
    pub max_output_tokens: Option<u64>,
    /// The model's input limit in tokens (its context window): the most a prompt can be.
    /// [`DEFAULT_MAX_INPUT_TOKENS`] when not set.
    #[serde(default)]
    pub max_input_tokens: Option<u64>,
}

/// The prices of one tier, USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub input: UsdMicros,
    pub output: UsdMicros,
    pub cached_input: UsdMicros,
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
    /// The prices of the tier a prompt of `prompt_tokens` falls in.
    pub fn rates(&self, prompt_tokens: u64) -> Rates {
        if prompt_tokens <= LONG_CONTEXT_TOKENS {
            return Rates {
                input: self.input,
                output: self.output,
                cached_input: self.cached_input.unwrap_or(self.input),
            };
        }
        let input = self.input_over_200k.unwrap_or(self.input);
        Rates {
            input,
            output: self.output_over_200k.unwrap_or(self.output),
            cached_input: self
                .cached_input_over_200k
                .or(self.cached_input)
                .unwrap_or(input),
        }
    }

    /// The exact charge: Σ tokens × price-per-million at the tier of the real prompt size,
    /// rounded half up to micro-USD once.
    pub fn charge(&self, usage: &Usage) -> UsdMicros {
        let r = self.rates(usage.prompt_token_count);
        let numerator = i128::from(usage.input()) * i128::from(r.input.0)
            + i128::from(usage.cached()) * i128::from(r.cached_input.0)
            + i128::from(usage.output()) * i128::from(r.output.0);
        let micros = (numerator + 500_000) / 1_000_000;
        UsdMicros(i64::try_from(micros).unwrap_or(i64::MAX))
    }

    /// The most a call using at most `worst` can cost, rounded up: every prompt token at the
    /// highest input price and every output token at the highest output price of the tiers the
    /// prompt may fall in (both tiers once the worst-case prompt is over [`LONG_CONTEXT_TOKENS`]).
    pub fn hold_for(&self, worst: &Usage) -> UsdMicros {
        let base = self.rates(0);
        let rates = if worst.prompt_token_count > LONG_CONTEXT_TOKENS {
            let long = self.rates(worst.prompt_token_count);
            Rates {
                input: base.input.max(long.input),
                output: base.output.max(long.output),
                cached_input: base.cached_input.max(long.cached_input),
            }
        } else {
            base
        };
        let input_price = rates.input.max(rates.cached_input);
        let input = worst.prompt_token_count + worst.tool_use_prompt_token_count;
        let numerator = i128::from(input) * i128::from(input_price.0)
            + i128::from(worst.output()) * i128::from(rates.output.0);
        let micros = (numerator + 999_999) / 1_000_000;
        UsdMicros(i64::try_from(micros).unwrap_or(i64::MAX))
    }

    /// The hold of a request: [`ModelPrices::hold_for`] its [`Estimate::worst_case`].
    pub fn hold(&self, estimate: &Estimate) -> UsdMicros {
        self.hold_for(&estimate.worst_case(self))
    }

    /// The model's output limit (see [`ModelPrices::max_output_tokens`]).
    pub fn output_limit(&self) -> u64 {
        self.max_output_tokens.unwrap_or(DEFAULT_MAX_OUTPUT_TOKENS)
    }

    /// The model's input limit (see [`ModelPrices::max_input_tokens`]).
    pub fn input_limit(&self) -> u64 {
        self.max_input_tokens.unwrap_or(DEFAULT_MAX_INPUT_TOKENS)
    }
}

/// Token counts of a request, before it is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Estimate {
    /// The likely input (about 4 characters per text token, a fixed count per media part): what
    /// the tokens-per-minute limit admits. Not a bound.
    pub input_tokens: u64,
    /// The request body's size in bytes: a bound of its input tokens (a token is never shorter
    /// than one byte), whatever part or key the text is in.
    pub body_bytes: u64,
    /// The input is not bounded by the body: a `fileData` (URI) part, inline video, audio or PDF
    /// (counted by duration or pages upstream), or a built-in tool (its results are prompt
    /// tokens). The hold takes the model's whole input limit.
    pub whole_context: bool,
    /// `generationConfig.maxOutputTokens` when the request sets it.
    pub max_output_tokens: Option<u64>,
    /// `generationConfig.candidateCount` (1 when absent, at most 8).
    pub candidates: u64,
    /// The built-in tools the request asks for (`googleSearch`, `codeExecution`, …), by their
    /// camelCase names; function declarations (run by the client) are not among them.
    pub tools: Vec<String>,
}

/// `google_search_retrieval` → `googleSearchRetrieval` (Google's JSON accepts both spellings).
pub fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = !out.is_empty();
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

impl Estimate {
    /// The most the call may use: the input's bound (the body's bytes, or the whole input limit)
    /// capped at the model's input limit and, per candidate, the requested maximum output capped
    /// at (or else) the model's output limit.
    pub fn worst_case(&self, prices: &ModelPrices) -> Usage {
        let limit = prices.input_limit();
        let input = if self.whole_context {
            limit
        } else {
            self.body_bytes.min(limit)
        };
        let per_candidate = self
            .max_output_tokens
            .map_or_else(|| prices.output_limit(), |m| m.min(prices.output_limit()));
        let output = per_candidate.saturating_mul(self.candidates.max(1));
        Usage {
            prompt_token_count: input,
            candidates_token_count: output,
            total_token_count: input.saturating_add(output),
            ..Usage::default()
        }
    }

    /// Reads a request body (`body` parsed from its `body_bytes` bytes): its size, media and
    /// file parts, built-in tools and `generationConfig`.
    pub fn of_request(body: &serde_json::Value, body_bytes: u64) -> Self {
        #[derive(Default)]
        struct Walk {
            chars: u64,
            media: u64,
            unbounded: bool,
        }
        fn is_media(key: &str) -> bool {
            matches!(key, "inlineData" | "inline_data" | "fileData" | "file_data")
        }
        fn walk(value: &serde_json::Value, w: &mut Walk) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, v) in map {
                        if is_media(key) {
                            w.media += 1;
                            let mime = v
                                .get("mimeType")
                                .or_else(|| v.get("mime_type"))
                                .and_then(serde_json::Value::as_str)
                                .unwrap_or_default();
                            if key.starts_with("file")
                                || mime.starts_with("video/")
                                || mime.starts_with("audio/")
                                || mime == "application/pdf"
                            {
                                w.unbounded = true;
                            }
                        } else {
                            walk(v, w);
                        }
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, w)),
                serde_json::Value::String(s) => w.chars += s.chars().count() as u64,
                _ => {}
            }
        }
        let mut w = Walk::default();
        walk(body, &mut w);
        let tools: Vec<String> = body
            .get("tools")
            .and_then(serde_json::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(serde_json::Value::as_object)
            .flat_map(|tool| tool.keys())
            .map(|k| camel_case(k))
            .filter(|k| k != "functionDeclarations")
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
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
            input_tokens: w.chars.div_ceil(4) + w.media * MEDIA_PART_TOKENS,
            body_bytes,
            whole_context: w.unbounded || !tools.is_empty(),
            max_output_tokens,
            candidates,
            tools,
        }
    }
}

/// The per-request price of a built-in tool the offer sells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ToolPrice {
    pub per_request_usd: UsdMicros,
}

/// The gateway part of a Gemini offer's `settings`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GatewaySettings {
    /// Models sold, by name (without `models/`), with their prices.
    pub models: BTreeMap<String, ModelPrices>,
    /// Built-in tools sold (`googleSearch`, `urlContext`, `codeExecution`, …; either spelling),
    /// each charged per request that asks for it. A request asking for any other is refused.
    #[serde(default)]
    pub tools: BTreeMap<String, ToolPrice>,
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
            let prices = [
                Some(p.input),
                Some(p.output),
                p.cached_input,
                p.input_over_200k,
                p.output_over_200k,
                p.cached_input_over_200k,
            ];
            if prices.iter().flatten().any(|price| price.0 < 0) {
                return Err(GatewayError::Misconfigured(format!(
                    "negative price for {model}"
                )));
            }
            if p.max_output_tokens == Some(0) || p.max_input_tokens == Some(0) {
                return Err(GatewayError::Misconfigured(format!(
                    "max_output_tokens and max_input_tokens of {model} must be at least 1"
                )));
            }
        }
        if let Some((tool, _)) = parsed.tools.iter().find(|(_, p)| p.per_request_usd.0 < 0) {
            return Err(GatewayError::Misconfigured(format!(
                "negative price for tool {tool}"
            )));
        }
        if parsed.max_concurrent_requests == Some(0) {
            return Err(GatewayError::Misconfigured(
                "max_concurrent_requests must be at least 1".to_owned(),
            ));
        }
        Ok(parsed)
    }

    /// What the built-in `tools` of a request cost per request, or the first one not sold (400
    /// `tool_not_sold`).
    pub fn tool_charge(&self, tools: &[String]) -> Result<ToolCharge, GatewayError> {
        let mut fee = UsdMicros(0);
        for tool in tools {
            let price = self
                .tools
                .iter()
                .find(|(name, _)| camel_case(name) == *tool)
                .map(|(_, p)| p.per_request_usd)
                .ok_or_else(|| GatewayError::ToolNotSold(tool.clone()))?;
            fee = UsdMicros(fee.0.saturating_add(price.0));
        }
        Ok(ToolCharge {
            tools: tools.to_vec(),
            fee,
        })
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

/// The built-in tools a call uses and what they cost per request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolCharge {
    pub tools: Vec<String>,
    pub fee: UsdMicros,
}
