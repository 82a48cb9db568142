//! JSON-RPC calls in bounded batches: never more than the chain's `rpc_max_batch` requests or
//! `rpc_max_body_bytes` bytes in one HTTP request. A provider that refuses a batch (an error for the
//! whole batch, missing answers, an HTTP error) halves the chain's batch size for good and the refused
//! calls are sent again, down to single requests; an error answered for one request is that request's
//! own (see [`CallError::too_large`]).

use std::sync::atomic::Ordering;

use alloy::rpc::json_rpc::{RpcError, RpcRecv, RpcSend};

use super::ChainClient;

/// How one call of a batch failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The node answered this request with a JSON-RPC error.
    Rpc { code: i64, message: String },
    /// No answer (the endpoint is down, timed out or refused even a single request).
    Failed(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rpc { code, message } => write!(f, "{message} (code {code})"),
            Self::Failed(detail) => f.write_str(detail),
        }
    }
}

impl CallError {
    /// The provider refused an `eth_getLogs` as too large (too many results, a response or block
    /// range over its limit): the range is split and asked again. Told by the message: `-32005` is
    /// also a rate limit ("daily request count exceeded"), which splitting would only make worse.
    pub fn too_large(&self) -> bool {
        // The retry layer turns an error it retried in vain into a transport error carrying it.
        let message = match self {
            Self::Rpc { message, .. } | Self::Failed(message) => message.to_ascii_lowercase(),
        };
        let rate_limit = [
            "rate limit",
            "rate-limit",
            "ratelimit",
            "too many requests",
            "per second",
            "credits",
            "request count",
        ];
        if rate_limit.iter().any(|k| message.contains(k)) {
            return false;
        }
        [
            "more than",
            "too many",
            "too large",
            "too big",
            "response size",
            "size exceed",
            "block range",
            "range is too",
            "range too",
            "exceeds max results",
            "is limited to",
        ]
        .iter()
        .any(|k| message.contains(k))
    }
}

/// Bytes a request adds to a batch body besides its params (`{"method":..,"params":..,"id":..,"jsonrpc":"2.0"}`).
const REQUEST_OVERHEAD: usize = 64;

/// Calls `method` once per `params`, in order, in as few round trips as the chain's limits allow.
pub async fn call_many<P, R>(
    chain: &ChainClient,
    method: &'static str,
    params: &[P],
) -> Vec<Result<R, CallError>>
where
    P: RpcSend,
    R: RpcRecv,
{
    let sizes: Vec<usize> = params
        .iter()
        .map(|p| serde_json::to_vec(p).map_or(0, |v| v.len()) + method.len() + REQUEST_OVERHEAD)
        .collect();
    let max_body = chain.config.max_body_bytes();
    let mut results: Vec<Option<Result<R, CallError>>> = params.iter().map(|_| None).collect();
    let mut pending: std::collections::VecDeque<usize> = (0..params.len()).collect();
    while !pending.is_empty() {
        let limit = chain.batch_limit();
        let mut group = Vec::new();
        let mut bytes = 2;
        while let Some(&i) = pending.front() {
            if group.len() >= limit || (!group.is_empty() && bytes + sizes[i] + 1 > max_body) {
                break;
            }
            bytes += sizes[i] + 1;
            group.push(i);
            pending.pop_front();
        }
        // A single request only once batches are refused outright (a batch of one also keeps the
        // retry layer from retrying a -32005 "too many results" as if it were a rate limit).
        if let [i] = group[..]
            && limit == 1
        {
            let answer = chain.rpc().request::<_, R>(method, params[i].clone()).await;
            results[i] = Some(answer.map_err(|e| call_error(chain, e)));
            continue;
        }
        let mut batch = chain.rpc().new_batch();
        let mut waiters = Vec::with_capacity(group.len());
        for &i in &group {
            match batch.add_call::<_, R>(method, &params[i]) {
                Ok(waiter) => waiters.push((i, waiter)),
                Err(e) => results[i] = Some(Err(CallError::Failed(chain.rpc_error(e).to_string()))),
            }
        }
        let sent = batch.send().await;
        let mut refused = Vec::new();
        for (i, waiter) in waiters {
            match waiter.await {
                Ok(answer) => results[i] = Some(Ok(answer)),
                Err(RpcError::ErrorResp(payload)) => {
                    results[i] = Some(Err(CallError::Rpc {
                        code: payload.code,
                        message: payload.message.to_string(),
                    }));
                }
                Err(_) => refused.push(i),
            }
        }
        if !refused.is_empty() {
            let error = sent.err().map(|e| chain.rpc_error(e).to_string());
            chain.shrink_batch(group.len(), error.as_deref());
            for i in refused.into_iter().rev() {
                pending.push_front(i);
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(CallError::Failed("not sent".into()))))
        .collect()
}

fn call_error(
    chain: &ChainClient,
    e: RpcError<alloy::transports::TransportErrorKind>,
) -> CallError {
    match e {
        RpcError::ErrorResp(payload) => CallError::Rpc {
            code: payload.code,
            message: chain.rpc_error(payload.message).to_string(),
        },
        other => CallError::Failed(chain.rpc_error(other).to_string()),
    }
}

impl ChainClient {
    /// Requests per JSON-RPC batch now: the configured limit, halved each time the provider refused one.
    pub fn batch_limit(&self) -> usize {
        self.batch_limit.load(Ordering::Relaxed).max(1)
    }

    /// A batch of `size` requests was refused: batches stay under it from now on.
    fn shrink_batch(&self, size: usize, error: Option<&str>) {
        let next = (size / 2).max(1);
        let before = self.batch_limit.fetch_min(next, Ordering::Relaxed);
        if next < before {
            tracing::warn!(
                chain = self.name(),
                refused = size,
                now = next,
                error = error.unwrap_or("missing answers"),
                "the RPC provider refused a JSON-RPC batch; sending smaller batches"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rpc(code: i64, message: &str) -> CallError {
        CallError::Rpc {
            code,
            message: message.into(),
        }
    }

    #[test]
    fn providers_refusals_of_big_ranges_are_told_from_other_errors() {
        for big in [
            rpc(-32005, "query returned more than 10000 results"),
            rpc(-32602, "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range"),
            rpc(-32000, "block range is too wide"),
            rpc(-32600, "eth_getLogs is limited to a 10,000 range"),
            rpc(-32000, "query exceeds max results 20000, retry with the range 1-2"),
            CallError::Failed("Max retries exceeded server returned an error response: error code -32005: query returned more than 10000 results".into()),
        ] {
            assert!(big.too_large(), "{big}");
        }
        for other in [
            rpc(-32005, "rate limit exceeded"),
            rpc(-32005, "daily request count exceeded"),
            CallError::Failed("HTTP error 429 with body: Too Many Requests".into()),
            rpc(-32000, "header not found"),
            rpc(429, "Your app has exceeded its compute units per second capacity"),
            CallError::Failed("connection refused".into()),
            CallError::Failed("Max retries exceeded server returned an error response: error code -32005: daily request count exceeded".into()),
        ] {
            assert!(!other.too_large(), "{other}");
        }
    }
}
