//! Metering responses: the usage of a whole JSON response, and of a stream (SSE or a JSON array)
//! read object by object as it passes through, settled when it ends or is dropped.

use super::*;

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

    /// Usage read from the stream by its own parser (OpenAI's events): later ones win.
    pub fn observe_usage(&mut self, seen: &ResponseUsage) {
        if seen.usage.is_some() {
            self.seen.usage = seen.usage;
        }
        if seen.response_id.is_some() {
            self.seen.response_id.clone_from(&seen.response_id);
        }
        if seen.model_version.is_some() {
            self.seen.model_version.clone_from(&seen.model_version);
        }
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

pub(super) async fn settle_logged(
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
