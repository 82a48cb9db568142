//! Metering answers: the usage an answer reports (a whole JSON response, or a stream — SSE or a
//! JSON array — read object by object as it passes) and its charge, posted through the ledger.

use super::*;

/// One metered call: what it used and where to post it.
#[derive(Debug, Clone)]
pub struct Metered {
    pub purchase_id: PurchaseId,
    pub model: String,
    pub prices: ModelPrices,
    pub usage: Usage,
    /// Built-in tools used and their per-request price (charged with the tokens).
    pub tools: ToolCharge,
    pub response_id: Option<String>,
    pub model_version: Option<String>,
    /// The upstream reported no `usageMetadata`: `usage` is the call's held worst case.
    pub worst_case: bool,
    /// What the call held while it ran: a charge above it is still posted and raises a
    /// `gateway.hold_exceeded` alert.
    pub hold: Option<UsdMicros>,
}

/// Attempts at posting a charge the database refused for a passing reason (a detached call has
/// no client to answer, so it waits for the database a little).
const POST_ATTEMPTS: u32 = 5;

impl Metered {
    /// The call's charge: its tokens at the tier of its real prompt size, plus its tools.
    pub fn charge(&self) -> UsdMicros {
        UsdMicros(
            self.prices
                .charge(&self.usage)
                .0
                .saturating_add(self.tools.fee.0),
        )
    }

    fn entry(&self, reference: String) -> NewEntry {
        let u = &self.usage;
        let basis = if self.worst_case {
            " (no usage reported: the call's held maximum)"
        } else {
            ""
        };
        let tools = if self.tools.tools.is_empty() {
            String::new()
        } else {
            format!(" + {} (${})", self.tools.tools.join(", "), self.tools.fee)
        };
        let charge = self.charge();
        let mut entry = NewEntry::new(EntryKind::Usage, UsdMicros(-charge.0))
            .reference(reference)
            .description(format!(
                "Gemini {}: {} input ({} cached) + {} output tokens{tools}{basis}",
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
            "long_context": u.prompt_token_count > LONG_CONTEXT_TOKENS,
            "tools": self.tools.tools,
            "tools_usd": self.tools.fee,
            "charge_usd": charge,
            "hold_usd": self.hold,
            "usage_reported": !self.worst_case,
        });
        entry
    }

    /// Debits the call through the ledger and deletes its reservation (if any) in the same
    /// transaction. Nothing is posted for a call that costs nothing (the reservation still goes).
    /// A passing database failure is retried with the same reference (posting it twice is a
    /// replay, not a second charge).
    pub async fn post(
        &self,
        pool: &PgPool,
        reservation: Option<Uuid>,
    ) -> Result<Option<Posted>, GatewayError> {
        if self.usage.total() == 0 && self.tools.fee.0 == 0 {
            if let Some(id) = reservation {
                delete_reservation(pool, id).await?;
            }
            return Ok(None);
        }
        let mut reference = match &self.response_id {
            Some(id) if !id.is_empty() && id.len() <= 200 => format!("gemini:{id}"),
            _ => format!("gemini:req:{}", Uuid::new_v4()),
        };
        let mut attempt = 0;
        let posted = loop {
            attempt += 1;
            match self.post_once(pool, &reference, reservation).await {
                Ok(posted) => break posted,
                // An upstream that repeats a response id for a different call is still charged.
                Err(GatewayError::Billing(BillingError::ReferenceConflict(_)))
                    if !reference.starts_with("gemini:req:") =>
                {
                    reference = format!("gemini:req:{}", Uuid::new_v4());
                }
                Err(e) if attempt < POST_ATTEMPTS && is_passing(&e) => {
                    tracing::warn!(purchase_id = %self.purchase_id, attempt, error = %e, "cannot post Gemini usage yet; retrying");
                    tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
                }
                Err(e) => return Err(e),
            }
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
        reference: &str,
        reservation: Option<Uuid>,
    ) -> Result<Posted, GatewayError> {
        let mut tx = pool.begin().await?;
        let posted =
            ledger::post(&mut tx, self.purchase_id, &self.entry(reference.to_owned())).await?;
        if let Some(id) = reservation {
            sqlx::query!(
                "delete from gateway_reservation where reservation_id = $1",
                id
            )
            .execute(&mut *tx)
            .await?;
        }
        let charge = self.charge();
        if let Some(hold) = self.hold.filter(|hold| charge > *hold)
            && !posted.replayed
        {
            tracing::error!(purchase_id = %self.purchase_id, model = %self.model, %charge, %hold, "a Gemini call cost more than it held");
            let alert = crate::notify::events::Alert {
                subject: format!("A Gemini call cost more than its hold (${charge} > ${hold})"),
                text: format!(
                    "Purchase {} was charged ${charge} for a {} call that held ${hold} while it ran \
                     ({} prompt + {} tool-use + {} output tokens; reference {reference}). The hold \
                     is meant to be an upper bound: check the model's max_input_tokens / \
                     max_output_tokens and prices in the offers file. The balance may be below \
                     zero by the difference.\n",
                    self.purchase_id,
                    self.model,
                    self.usage.prompt_token_count,
                    self.usage.tool_use_prompt_token_count,
                    self.usage.output(),
                ),
            };
            crate::notify::events::alert(
                &mut tx,
                "gateway.hold_exceeded",
                Some(self.purchase_id),
                &alert,
                Some(&format!("alert:gateway.hold_exceeded:{reference}")),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(posted)
    }
}

/// A database failure that may pass (the database restarting or out of connections).
fn is_passing(e: &GatewayError) -> bool {
    match e {
        GatewayError::Db(db) | GatewayError::Billing(BillingError::Db(db)) => {
            crate::db::is_unavailable(db)
        }
        _ => false,
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
