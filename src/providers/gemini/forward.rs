//! The one path of a metered call to the upstream, whatever the surface (Gemini's routes, or
//! another wire format built on them): [`Gateway::run`] holds the call's worst case against the
//! balance, then sends it upstream and reads the answer to its end in a task of its own, which
//! charges it. The client gets the answer through that task ([`Forwarded`]), so a client that
//! hangs up — before the answer, after the headers or mid-stream — never stops the reading nor the
//! charge: a call that reached the upstream is always charged, its reported usage or, when the
//! answer ends without one, its hold.

use std::sync::Arc;

use axum::body::Bytes;
use futures::StreamExt;
use reqwest::StatusCode;
use reqwest::header::HeaderValue;
use tokio::sync::{mpsc, oneshot};

use super::*;

/// How long a streaming client may leave a chunk unread before it is treated as gone (the upstream
/// is then read to its end without it, and the call charged).
const CLIENT_STALL: Duration = Duration::from_secs(60);
/// Chunks buffered between the upstream and a streaming client.
const STREAM_BUFFER: usize = 32;

/// The request sent upstream (with the vendor's key, added by [`Gateway::send`]).
#[derive(Debug, Clone)]
pub struct UpstreamRequest {
    pub method: reqwest::Method,
    /// From the upstream's root, e.g. `/v1beta/models/gemini-2.5-flash:generateContent`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Bytes>,
}

/// How the answer reaches the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Whole, once it is charged.
    Buffered,
    /// Chunk by chunk as the upstream sends them; the end of the stream once it is charged.
    Streamed,
}

/// Reads the usage an answer reports, one JSON object at a time: the whole answer, each element
/// of a streamed JSON array, or each SSE event's data. [`gemini_usage`] reads Gemini's
/// `usageMetadata`; another wire format brings its own.
pub type UsageReader = Box<dyn FnMut(&serde_json::Value, &mut ResponseUsage) + Send>;

/// Reads Gemini's `GenerateContentResponse` objects.
pub fn gemini_usage() -> UsageReader {
    Box::new(|object, seen| seen.observe(object))
}

/// An admitted call: what its answer is charged by.
#[derive(Debug, Clone)]
pub struct MeteredCall {
    pub purchase_id: PurchaseId,
    pub model: String,
    /// The model's prices in the purchase's terms.
    pub prices: ModelPrices,
    /// Built-in tools asked for, and their per-request price.
    pub tools: ToolCharge,
    /// The most the call may use ([`Estimate::worst_case`]): what is held, and what is charged
    /// when the answer reports no usage.
    pub worst_case: Usage,
    /// The purchase's rate limits (the tokens used are taken from them).
    pub limits: Limits,
}

impl MeteredCall {
    /// What the call holds against the balance while it runs: its worst case at the highest tier
    /// it may fall in, plus its tools.
    pub fn hold(&self) -> UsdMicros {
        UsdMicros(
            self.prices
                .hold_for(&self.worst_case)
                .0
                .saturating_add(self.tools.fee.0),
        )
    }
}

/// The answer, as the client gets it.
#[derive(Debug)]
pub struct Forwarded {
    pub status: StatusCode,
    pub content_type: Option<HeaderValue>,
    pub body: ForwardedBody,
}

#[derive(Debug)]
pub enum ForwardedBody {
    /// The whole answer (already charged, or an upstream error, which is free).
    Whole(Bytes),
    /// The chunks as they arrive; the channel closes after the charge is posted, and an `Err`
    /// means the upstream broke off.
    Chunks(mpsc::Receiver<Result<Bytes, std::io::Error>>),
}

impl Gateway {
    /// Runs one metered call: holds [`MeteredCall::hold`] (429 over `max_concurrent` calls of the
    /// purchase, 402 when it does not fit the balance less the running holds), then forwards
    /// `request` and reads the answer to its end in a detached task, which settles the charge:
    /// the reported usage (read by `reader`), else — once anything came back — the hold's usage.
    /// Upstream errors (non-2xx) are free. Returns once the answer is ready for the client:
    /// charged and whole ([`Delivery::Buffered`]), or its headers ([`Delivery::Streamed`]).
    /// Dropping the returned future (the client left) changes nothing upstream.
    pub async fn run(
        self: &Arc<Self>,
        pool: &PgPool,
        call: MeteredCall,
        max_concurrent: u32,
        request: UpstreamRequest,
        delivery: Delivery,
        reader: UsageReader,
    ) -> Result<Forwarded, GatewayError> {
        let hold = call.hold();
        let reservation =
            Reservation::take(pool, call.purchase_id, &call.model, hold, max_concurrent).await?;
        let (answer, answered) = oneshot::channel();
        let settlement = Settlement {
            gateway: Arc::clone(self),
            pool: pool.clone(),
            call,
            hold,
            reservation: Some(reservation),
            reader,
            splitter: JsonObjectSplitter::default(),
            seen: ResponseUsage::default(),
            received: false,
            extended_at: Instant::now(),
        };
        // Spawned before anything else is awaited: from here the call no longer depends on the
        // client.
        self.tasks.spawn(settlement.run(request, delivery, answer));
        answered.await.unwrap_or(Err(GatewayError::TaskLost))
    }
}

/// A forwarded call read to its end, detached from its client.
struct Settlement {
    gateway: Arc<Gateway>,
    pool: PgPool,
    call: MeteredCall,
    hold: UsdMicros,
    reservation: Option<Reservation>,
    reader: UsageReader,
    splitter: JsonObjectSplitter,
    seen: ResponseUsage,
    /// Whether the upstream sent any of its answer.
    received: bool,
    extended_at: Instant,
}

type Answer = oneshot::Sender<Result<Forwarded, GatewayError>>;

impl Settlement {
    async fn run(mut self, request: UpstreamRequest, delivery: Delivery, answer: Answer) {
        let upstream = match self
            .gateway
            .send(request.method, &request.path, &request.query, request.body)
            .await
        {
            Ok(upstream) => upstream,
            Err(e) => {
                self.release().await;
                let _ = answer.send(Err(e));
                return;
            }
        };
        let status = upstream.status();
        let content_type = upstream
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .cloned();
        if !status.is_success() {
            // Upstream errors are free, passed through as they came.
            let body = upstream
                .bytes()
                .await
                .map_err(|e| GatewayError::UpstreamUnavailable(e.without_url()));
            self.release().await;
            let _ = answer.send(body.map(|body| Forwarded {
                status,
                content_type,
                body: ForwardedBody::Whole(body),
            }));
            return;
        }
        let mut chunks = upstream.bytes_stream();
        match delivery {
            Delivery::Buffered => {
                let mut whole = Vec::new();
                while let Some(chunk) = chunks.next().await {
                    match chunk {
                        Ok(chunk) => {
                            self.observe(&chunk);
                            whole.extend_from_slice(&chunk);
                        }
                        Err(e) => {
                            // Nothing reached the customer: free.
                            let e = e.without_url();
                            tracing::warn!(purchase_id = %self.call.purchase_id, error = %e, "upstream answer interrupted");
                            self.release().await;
                            let _ = answer.send(Err(GatewayError::UpstreamUnavailable(e)));
                            return;
                        }
                    }
                }
                // The answer is released only once its cost is on the ledger.
                self.settle().await;
                let _ = answer.send(Ok(Forwarded {
                    status,
                    content_type,
                    body: ForwardedBody::Whole(Bytes::from(whole)),
                }));
            }
            Delivery::Streamed => {
                let (tx, rx) = mpsc::channel(STREAM_BUFFER);
                let mut client = answer
                    .send(Ok(Forwarded {
                        status,
                        content_type,
                        body: ForwardedBody::Chunks(rx),
                    }))
                    .ok()
                    .map(|()| tx);
                while let Some(chunk) = chunks.next().await {
                    match chunk {
                        Ok(chunk) => {
                            self.observe(&chunk);
                            if let Some(tx) = &client {
                                let sent = tokio::time::timeout(CLIENT_STALL, tx.send(Ok(chunk)));
                                if !matches!(sent.await, Ok(Ok(()))) {
                                    // The client left (or stopped reading): read on without it.
                                    client = None;
                                }
                            }
                        }
                        Err(e) => {
                            // The upstream broke off: charge what was seen, then tell the client.
                            tracing::warn!(purchase_id = %self.call.purchase_id, error = %e.without_url(), "upstream stream interrupted");
                            self.settle().await;
                            if let Some(tx) = client {
                                let _ = tx
                                    .send(Err(std::io::Error::other("upstream stream interrupted")))
                                    .await;
                            }
                            return;
                        }
                    }
                }
                // The client sees the end of the stream after the debit.
                self.settle().await;
                drop(client);
            }
        }
    }

    fn observe(&mut self, chunk: &[u8]) {
        self.received |= !chunk.is_empty();
        if let Some(reservation) = &self.reservation
            && self.extended_at.elapsed() >= RESERVATION_REFRESH
        {
            // A long answer keeps its hold; a crashed one loses it within RESERVATION_TTL_SECS.
            self.extended_at = Instant::now();
            let (pool, id) = (self.pool.clone(), reservation.id);
            tokio::spawn(async move {
                if let Err(e) = extend_reservation(&pool, id).await {
                    tracing::warn!(reservation_id = %id, error = %e, "cannot extend a running call's reservation");
                }
            });
        }
        let (reader, seen) = (&mut self.reader, &mut self.seen);
        self.splitter.push(chunk, |object| reader(&object, seen));
    }

    /// Nothing to charge: frees the hold.
    async fn release(&mut self) {
        if let Some(reservation) = self.reservation.take()
            && let Err(e) = reservation.release().await
        {
            tracing::warn!(purchase_id = %self.call.purchase_id, error = %e, "cannot release a gateway reservation; it lapses by itself");
        }
    }

    /// Charges the answer: its reported usage, else its hold's usage once anything came back
    /// (an empty answer is free), with the reservation's release in the same transaction.
    async fn settle(&mut self) {
        let (usage, worst_case) = match self.seen.usage {
            Some(usage) => (usage, false),
            None if self.received => (self.call.worst_case, true),
            None => {
                self.release().await;
                return;
            }
        };
        let call = &self.call;
        if worst_case {
            tracing::warn!(purchase_id = %call.purchase_id, model = %call.model, "upstream answer without usage: charged the call's hold");
        }
        self.gateway.limiter.record_tokens(
            call.purchase_id,
            call.limits,
            usage.total(),
            Instant::now(),
        );
        let metered = Metered {
            purchase_id: call.purchase_id,
            model: call.model.clone(),
            prices: call.prices,
            usage,
            tools: call.tools.clone(),
            response_id: self.seen.response_id.clone(),
            model_version: self.seen.model_version.clone(),
            worst_case,
            hold: Some(self.hold),
        };
        if let Err(e) = settle(&self.pool, Some(&metered), self.reservation.take()).await {
            tracing::error!(purchase_id = %call.purchase_id, charge = %metered.charge(), error = %e, "cannot post Gemini usage");
        }
    }
}
