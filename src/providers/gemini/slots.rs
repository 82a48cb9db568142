//! A purchase's calls in progress on this replica, counted from each call's headers: a slot is
//! taken once the key is known, before any of the body is read, so a purchase cannot hold more
//! than its `max_concurrent_requests` connections with bodies still arriving. (The reservation,
//! taken once the body is read, still counts running calls across replicas.)

use std::sync::Arc;

use super::*;

/// Calls in progress per purchase.
#[derive(Debug, Default)]
pub struct CallSlots {
    running: Arc<Mutex<HashMap<Uuid, u32>>>,
}

impl CallSlots {
    /// Takes one of the purchase's `limit` slots until the returned guard is dropped, or refuses
    /// with 429 when all are taken.
    pub fn enter(&self, purchase: PurchaseId, limit: u32) -> Result<CallSlot, GatewayError> {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let calls = running.entry(purchase.0).or_default();
        if *calls >= limit {
            return Err(GatewayError::TooManyConcurrent { limit });
        }
        *calls += 1;
        Ok(CallSlot {
            running: Arc::clone(&self.running),
            purchase: purchase.0,
        })
    }

    /// The purchase's calls in progress on this replica.
    pub fn running(&self, purchase: PurchaseId) -> u32 {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&purchase.0)
            .copied()
            .unwrap_or(0)
    }
}

/// One call in progress; its slot frees when this drops.
#[derive(Debug)]
pub struct CallSlot {
    running: Arc<Mutex<HashMap<Uuid, u32>>>,
    purchase: Uuid,
}

impl Drop for CallSlot {
    fn drop(&mut self) {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(calls) = running.get_mut(&self.purchase) {
            *calls = calls.saturating_sub(1);
            if *calls == 0 {
                running.remove(&self.purchase);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_per_purchase_and_free_on_drop() {
        let slots = CallSlots::default();
        let (a, b) = (PurchaseId(Uuid::new_v4()), PurchaseId(Uuid::new_v4()));
        let first = slots.enter(a, 2).unwrap();
        let second = slots.enter(a, 2).unwrap();
        assert!(matches!(
            slots.enter(a, 2),
            Err(GatewayError::TooManyConcurrent { limit: 2 })
        ));
        let other = slots.enter(b, 2).unwrap();
        assert_eq!((slots.running(a), slots.running(b)), (2, 1));
        drop(first);
        let third = slots.enter(a, 2).unwrap();
        drop((second, third, other));
        assert_eq!((slots.running(a), slots.running(b)), (0, 0));
        assert!(slots.running.lock().unwrap().is_empty());
    }
}
