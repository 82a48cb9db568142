//! Gemini's OpenAI-compatible surface (`/v1beta/openai/…`): reading its usage into the same
//! [`Usage`] the native surface is charged by, the hold of a chat request, and its streams
//! (server-sent events of `chat.completion.chunk` objects, ended by `data: [DONE]`), whose usage
//! chunk the upstream is always asked for and the client sees only if it asked.

use super::*;

/// An OpenAI `usage` object as [`Usage`]: `prompt_tokens` (of which
/// `prompt_tokens_details.cached_tokens` cached) in, and out the larger of `completion_tokens` and
/// `total_tokens − prompt_tokens` (Gemini's compatible surface has reported thinking tokens only in
/// the total), of which `completion_tokens_details.reasoning_tokens` thoughts. `None` when the
/// object is not a usage.
pub fn openai_usage(usage: &serde_json::Value) -> Option<Usage> {
    let number = |pointer: &str| usage.pointer(pointer).and_then(serde_json::Value::as_u64);
    let prompt = number("/prompt_tokens")?;
    let completion = number("/completion_tokens").unwrap_or(0);
    let total = number("/total_tokens").unwrap_or(prompt + completion);
    let output = completion.max(total.saturating_sub(prompt));
    let thoughts = number("/completion_tokens_details/reasoning_tokens")
        .unwrap_or(0)
        .min(output);
    Some(Usage {
        prompt_token_count: prompt,
        cached_content_token_count: number("/prompt_tokens_details/cached_tokens")
            .unwrap_or(0)
            .min(prompt),
        candidates_token_count: output - thoughts,
        thoughts_token_count: thoughts,
        tool_use_prompt_token_count: 0,
        total_token_count: total.max(prompt + output),
    })
}

/// What an OpenAI answer (or one chunk of a stream) says about its usage and identity.
pub fn observe_openai(seen: &mut ResponseUsage, answer: &serde_json::Value) {
    if let Some(usage) = answer.get("usage").and_then(openai_usage) {
        seen.usage = Some(usage);
    }
    if let Some(id) = answer.get("id").and_then(serde_json::Value::as_str) {
        seen.response_id = Some(id.to_owned());
    }
    if let Some(model) = answer.get("model").and_then(serde_json::Value::as_str) {
        seen.model_version = Some(model.to_owned());
    }
}

/// The hold's inputs of an OpenAI chat request: the body's bytes bound the prompt (a remote
/// `image_url` or `file` — not a `data:` URL — is sized upstream, so the whole input limit is
/// held); the output is `max_completion_tokens` (or `max_tokens`) × `n`, else the model's limit.
pub fn estimate_chat(body: &serde_json::Value, body_bytes: u64) -> Estimate {
    fn remote_media(value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::Object(map) => map.iter().any(|(key, v)| {
                let url = v
                    .get("url")
                    .or_else(|| v.get("file_data"))
                    .or_else(|| v.get("file_id"))
                    .and_then(serde_json::Value::as_str);
                (matches!(
                    key.as_str(),
                    "image_url" | "file" | "input_audio" | "video_url"
                ) && url.is_some_and(|u| !u.starts_with("data:")))
                    || remote_media(v)
            }),
            serde_json::Value::Array(items) => items.iter().any(remote_media),
            _ => false,
        }
    }
    let number = |key: &str| body.get(key).and_then(serde_json::Value::as_u64);
    let whole_context = remote_media(body.get("messages").unwrap_or(&serde_json::Value::Null));
    Estimate {
        input_tokens: body_bytes.div_ceil(4),
        body_bytes,
        whole_context,
        max_output_tokens: number("max_completion_tokens").or_else(|| number("max_tokens")),
        candidates: number("n").unwrap_or(1).clamp(1, MAX_CANDIDATES),
        // Google's built-in tools are not reachable through this surface (its `tools` are
        // function declarations, run by the client).
        tools: Vec::new(),
    }
}

/// The request sent upstream: a stream always asks for its usage chunk. Returns the body and
/// whether the client asked for usage itself.
pub fn with_stream_usage(mut body: serde_json::Value) -> (serde_json::Value, bool) {
    let asked = body
        .pointer("/stream_options/include_usage")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    if let Some(map) = body.as_object_mut() {
        let options = map
            .entry("stream_options")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(options) = options.as_object_mut() {
            options.insert("include_usage".to_owned(), serde_json::Value::Bool(true));
        } else {
            *options = serde_json::json!({"include_usage": true});
        }
    }
    (body, asked)
}

/// Reads an OpenAI event stream as it passes: records the usage it carries and, when the client
/// did not ask for usage, takes it out (a chunk with no choices and a usage is dropped; a usage on
/// a chunk with choices is removed from it). Everything else passes byte for byte.
#[derive(Debug)]
pub struct OpenAiEvents {
    buf: Vec<u8>,
    client_wants_usage: bool,
    pub seen: ResponseUsage,
    /// Passing events through unparsed (one was larger than the meter buffers).
    raw: bool,
}

impl OpenAiEvents {
    pub fn new(client_wants_usage: bool) -> Self {
        Self {
            buf: Vec::new(),
            client_wants_usage,
            seen: ResponseUsage::default(),
            raw: false,
        }
    }

    /// Takes one chunk from upstream; returns what to send on now (whole events only).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.raw {
            return chunk.to_vec();
        }
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(self.buf.len());
        while let Some(end) = event_end(&self.buf) {
            let event: Vec<u8> = self.buf.drain(..end).collect();
            self.event(&event, &mut out);
        }
        if self.buf.len() > MAX_STREAM_OBJECT {
            tracing::warn!("OpenAI stream event over the meter's buffer: passed through unread");
            self.raw = true;
            out.append(&mut self.buf);
        }
        out
    }

    /// The stream ended: whatever is left (an event without its final blank line).
    pub fn finish(&mut self) -> Vec<u8> {
        let rest = std::mem::take(&mut self.buf);
        let mut out = Vec::new();
        if !rest.is_empty() {
            self.event(&rest, &mut out);
        }
        out
    }

    fn event(&mut self, event: &[u8], out: &mut Vec<u8>) {
        let text = String::from_utf8_lossy(event);
        let data: String = text
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(str::trim_start)
            .collect::<Vec<_>>()
            .join("\n");
        let Ok(mut chunk) = serde_json::from_str::<serde_json::Value>(&data) else {
            out.extend_from_slice(event);
            return;
        };
        observe_openai(&mut self.seen, &chunk);
        let has_usage = chunk.get("usage").is_some_and(|u| !u.is_null());
        if self.client_wants_usage || !has_usage {
            out.extend_from_slice(event);
            return;
        }
        let no_choices = chunk
            .get("choices")
            .and_then(serde_json::Value::as_array)
            .is_none_or(Vec::is_empty);
        if no_choices {
            return;
        }
        if let Some(map) = chunk.as_object_mut() {
            map.remove("usage");
        }
        out.extend_from_slice(format!("data: {chunk}\n\n").as_bytes());
    }
}

/// The end (exclusive, blank line included) of the first whole event in `buf`.
fn event_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i + 1 < buf.len() {
        if buf[i] == b'\n' {
            if buf[i + 1] == b'\n' {
                return Some(i + 2);
            }
            if buf[i + 1] == b'\r' && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_usage_counts_thoughts_reported_only_in_the_total() {
        // Gemini's compatible surface: completion_tokens without the 100 thinking tokens.
        let u = openai_usage(&json!({
            "prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1300,
            "prompt_tokens_details": {"cached_tokens": 400}
        }))
        .unwrap();
        assert_eq!((u.input(), u.cached(), u.output()), (600, 400, 300));
        // OpenAI's convention: completion includes reasoning.
        let u = openai_usage(&json!({
            "prompt_tokens": 10, "completion_tokens": 30, "total_tokens": 40,
            "completion_tokens_details": {"reasoning_tokens": 20}
        }))
        .unwrap();
        assert_eq!((u.output(), u.thoughts_token_count), (30, 20));
        // Embeddings: prompt only.
        let u = openai_usage(&json!({"prompt_tokens": 7, "total_tokens": 7})).unwrap();
        assert_eq!((u.input(), u.output()), (7, 0));
        assert!(openai_usage(&json!(null)).is_none());
    }

    #[test]
    fn streams_always_ask_usage_upstream() {
        let (body, asked) = with_stream_usage(json!({"stream": true}));
        assert_eq!(body["stream_options"]["include_usage"], true);
        assert!(!asked);
        let (body, asked) = with_stream_usage(
            json!({"stream": true, "stream_options": {"include_usage": true, "x": 1}}),
        );
        assert!(asked);
        assert_eq!(body["stream_options"]["x"], 1);
        let (body, asked) = with_stream_usage(json!({"stream_options": {"include_usage": false}}));
        assert!(!asked);
        assert_eq!(body["stream_options"]["include_usage"], true);
    }

    #[test]
    fn the_usage_chunk_reaches_only_a_client_that_asked_in_any_chunking() {
        let stream = concat!(
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            "data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],",
            "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":2,\"total_tokens\":7}}\r\n\r\n",
            "data: {\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3,\"total_tokens\":8}}\n\n",
            "data: [DONE]\n\n",
        );
        for size in [1, 3, 17, stream.len()] {
            for wants in [true, false] {
                let mut events = OpenAiEvents::new(wants);
                let mut out = Vec::new();
                for chunk in stream.as_bytes().chunks(size) {
                    out.extend(events.push(chunk));
                }
                out.extend(events.finish());
                let out = String::from_utf8(out).unwrap();
                let usage = events.seen.usage.unwrap();
                assert_eq!((usage.prompt_token_count, usage.output()), (5, 3));
                assert_eq!(events.seen.response_id.as_deref(), Some("c1"));
                if wants {
                    assert_eq!(out, stream, "by {size}");
                } else {
                    assert!(!out.contains("usage"), "by {size}: {out}");
                    assert!(out.contains("\"finish_reason\":\"stop\""));
                    assert!(out.starts_with("data: {\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n"));
                    assert!(out.ends_with("data: [DONE]\n\n"), "{out}");
                }
            }
        }
    }

    #[test]
    fn chat_holds_bound_the_prompt_by_bytes_and_remote_media_by_the_context() {
        let body =
            json!({"messages": [{"role": "user", "content": "hello"}], "max_tokens": 50, "n": 2});
        let e = estimate_chat(&body, 120);
        assert_eq!((e.body_bytes, e.whole_context), (120, false));
        assert_eq!((e.max_output_tokens, e.candidates), (Some(50), 2));
        let remote = json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
        ]}]});
        assert!(estimate_chat(&remote, 100).whole_context);
        let inline = json!({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
        ]}]});
        assert!(!estimate_chat(&inline, 100).whole_context);
    }
}
