//! Per-purchase rate limits (requests and tokens per minute), in memory per replica.
//!
//! Kept hand-written rather than `governor`: token limits are post-paid (a call is admitted on its
//! estimate, and what it actually used is taken afterwards and may leave the bucket in debt), and the
//! quotas differ per offer; governor's GCRA can only take cells up front within the burst.

use super::*;

/// Per-purchase limits per minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
pub(super) struct Bucket {
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
pub(super) struct PurchaseBuckets {
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
pub(super) fn prune(map: &mut HashMap<Uuid, PurchaseBuckets>, now: Instant) {
    map.retain(|_, b| {
        [b.requests, b.tokens]
            .iter()
            .flatten()
            .any(|bucket| now.saturating_duration_since(bucket.at) < Duration::from_secs(60))
    });
}
