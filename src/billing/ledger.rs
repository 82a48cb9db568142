//! The ledger: every balance change is one append-only row written in the same transaction as the
//! balance update, under the purchase row's lock (`FOR UPDATE`). Concurrent posts serialise on that
//! lock, so none is lost or invented; a `reference` makes a post happen at most once.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use super::{BillingError, PurchaseStatus, Triggers};
use crate::domain::ids::PurchaseId;
use crate::domain::money::UsdMicros;

/// Why the balance changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A confirmed on-chain deposit (credit).
    Deposit,
    /// Metered usage (meter-usage, the Gemini gateway).
    Usage,
    /// The daily cost import (a debit, or a credit back after a restatement).
    Cost,
    /// Optional per-sweep fee.
    SweepFee,
    /// Manual correction.
    Adjustment,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deposit => "deposit",
            Self::Usage => "usage",
            Self::Cost => "cost",
            Self::SweepFee => "sweep_fee",
            Self::Adjustment => "adjustment",
        }
    }
}

/// One balance change. `amount` is signed: credits positive, debits negative.
#[derive(Debug, Clone)]
pub struct NewEntry {
    pub kind: EntryKind,
    pub amount: UsdMicros,
    pub usage_amount: Option<BigDecimal>,
    pub usage_unit: Option<String>,
    pub description: Option<String>,
    pub metadata: serde_json::Value,
    /// When the usage happened; now when `None`.
    pub occurred_at: Option<DateTime<Utc>>,
    /// Unique per purchase: a second post with the same reference changes nothing.
    pub reference: Option<String>,
}

impl NewEntry {
    /// A plain entry of `kind` and `amount`, everything else empty.
    pub fn new(kind: EntryKind, amount: UsdMicros) -> Self {
        Self {
            kind,
            amount,
            usage_amount: None,
            usage_unit: None,
            description: None,
            metadata: serde_json::Value::Object(Default::default()),
            occurred_at: None,
            reference: None,
        }
    }

    pub fn reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }
}

/// The result of a post.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posted {
    pub entry_id: i64,
    pub balance_after: UsdMicros,
    pub status_before: PurchaseStatus,
    pub status_after: PurchaseStatus,
    /// The reference had already been posted: nothing changed, the original entry is returned.
    pub replayed: bool,
}

impl Posted {
    /// The status changed with this post.
    pub fn status_changed(&self) -> bool {
        self.status_before != self.status_after
    }
}

struct Locked {
    status: PurchaseStatus,
    balance: UsdMicros,
    triggers: Option<Triggers>,
    offer_triggers: (Option<UsdMicros>, Option<UsdMicros>, Option<UsdMicros>),
}

async fn lock(conn: &mut PgConnection, id: PurchaseId) -> Result<Locked, BillingError> {
    let row = sqlx::query!(
        "select p.status, p.balance_micros, p.low_trigger_micros, p.critical_trigger_micros,
                p.termination_trigger_micros, o.low_trigger_micros as offer_low,
                o.critical_trigger_micros as offer_critical, o.termination_trigger_micros as offer_termination
         from purchase p join offer o using (offer_id)
         where p.purchase_id = $1
         for update of p",
        id.0
    )
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(BillingError::PurchaseNotFound)?;
    let triggers = match (
        row.low_trigger_micros,
        row.critical_trigger_micros,
        row.termination_trigger_micros,
    ) {
        (Some(low), Some(critical), Some(termination)) => Some(Triggers {
            low: UsdMicros(low),
            critical: UsdMicros(critical),
            termination: UsdMicros(termination),
        }),
        _ => None,
    };
    Ok(Locked {
        status: PurchaseStatus::parse(&row.status).ok_or(BillingError::PurchaseNotFound)?,
        balance: UsdMicros(row.balance_micros),
        triggers,
        offer_triggers: (
            row.offer_low.map(UsdMicros),
            row.offer_critical.map(UsdMicros),
            row.offer_termination.map(UsdMicros),
        ),
    })
}

/// Posts one entry inside the caller's transaction: locks the purchase, appends the ledger row,
/// updates the balance and, for balance-following statuses, the status. The first credit derives the
/// trigger thresholds. The caller commits.
pub async fn post(
    conn: &mut PgConnection,
    id: PurchaseId,
    entry: &NewEntry,
) -> Result<Posted, BillingError> {
    let locked = lock(conn, id).await?;
    if let Some(reference) = &entry.reference {
        let existing = sqlx::query!(
            "select entry_id, kind, amount_micros from ledger_entry where purchase_id = $1 and reference = $2",
            id.0,
            reference
        )
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(existing) = existing {
            if existing.kind != entry.kind.as_str() || existing.amount_micros != entry.amount.0 {
                return Err(BillingError::ReferenceConflict(reference.clone()));
            }
            return Ok(Posted {
                entry_id: existing.entry_id,
                balance_after: locked.balance,
                status_before: locked.status,
                status_after: locked.status,
                replayed: true,
            });
        }
    }
    let balance_after = locked
        .balance
        .checked_add(entry.amount)
        .ok_or(BillingError::Overflow)?;
    let triggers = match locked.triggers {
        Some(t) => Some(t),
        None if entry.amount.0 > 0 => {
            let (low, critical, termination) = locked.offer_triggers;
            Some(Triggers::from_first_credit(
                entry.amount,
                low,
                critical,
                termination,
            ))
        }
        None => None,
    };
    let status_after = match triggers {
        Some(t) if locked.status.follows_balance() => t.status_for(balance_after),
        _ => locked.status,
    };
    let entry_id = sqlx::query_scalar!(
        "insert into ledger_entry (purchase_id, kind, amount_micros, balance_after_micros, usage_amount,
             usage_unit, description, metadata, occurred_at, reference)
         values ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, now()), $10)
         returning entry_id",
        id.0,
        entry.kind.as_str(),
        entry.amount.0,
        balance_after.0,
        entry.usage_amount,
        entry.usage_unit,
        entry.description,
        entry.metadata,
        entry.occurred_at,
        entry.reference,
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!(
        "update purchase set balance_micros = $2, status = $3,
             low_trigger_micros = $4, critical_trigger_micros = $5, termination_trigger_micros = $6,
             status_changed_at = case when status <> $3 then now() else status_changed_at end,
             last_credit_at = case when $7 then now() else last_credit_at end
         where purchase_id = $1",
        id.0,
        balance_after.0,
        status_after.as_str(),
        triggers.map(|t| t.low.0),
        triggers.map(|t| t.critical.0),
        triggers.map(|t| t.termination.0),
        entry.amount.0 > 0,
    )
    .execute(&mut *conn)
    .await?;
    Ok(Posted {
        entry_id,
        balance_after,
        status_before: locked.status,
        status_after,
        replayed: false,
    })
}

/// Provisioning finished: the purchase takes the status its balance gives (active, low, …).
/// Returns (before, after).
pub async fn activate(
    conn: &mut PgConnection,
    id: PurchaseId,
) -> Result<(PurchaseStatus, PurchaseStatus), BillingError> {
    let locked = lock(conn, id).await?;
    if !matches!(
        locked.status,
        PurchaseStatus::Provisioning | PurchaseStatus::Failed
    ) {
        return Ok((locked.status, locked.status));
    }
    let after = locked
        .triggers
        .map_or(PurchaseStatus::Active, |t| t.status_for(locked.balance));
    sqlx::query!(
        "update purchase set status = $2, status_changed_at = now() where purchase_id = $1",
        id.0,
        after.as_str()
    )
    .execute(&mut *conn)
    .await?;
    Ok((locked.status, after))
}

/// The purchase's balance and the sum of its ledger (they are always equal).
pub async fn balance_and_ledger_sum(
    conn: &mut PgConnection,
    id: PurchaseId,
) -> Result<(UsdMicros, UsdMicros), BillingError> {
    let row = sqlx::query!(
        r#"select p.balance_micros,
                  (select coalesce(sum(amount_micros), 0)::bigint from ledger_entry l where l.purchase_id = p.purchase_id) as "ledger_sum!"
           from purchase p where p.purchase_id = $1"#,
        id.0
    )
    .fetch_optional(conn)
    .await?
    .ok_or(BillingError::PurchaseNotFound)?;
    Ok((UsdMicros(row.balance_micros), UsdMicros(row.ledger_sum)))
}

#[cfg(test)]
mod tests {
    use sqlx::PgPool;

    use super::*;
    use crate::billing::purchases::{self, NewPurchase};
    use crate::catalog::CatalogFile;

    async fn purchase(pool: &PgPool) -> PurchaseId {
        CatalogFile::parse(include_str!("../../config/offers.toml"))
            .unwrap()
            .sync(pool)
            .await
            .unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let new = NewPurchase {
            offer_id: "gemini-api-gateway".into(),
            title: "t".into(),
            ..Default::default()
        };
        let created = purchases::create(&mut conn, &new).await.unwrap();
        activate(&mut conn, created.id).await.unwrap();
        created.id
    }

    async fn post_one(pool: &PgPool, id: PurchaseId, entry: NewEntry) -> Posted {
        let mut tx = pool.begin().await.unwrap();
        let posted = post(&mut tx, id, &entry).await.unwrap();
        tx.commit().await.unwrap();
        posted
    }

    #[sqlx::test]
    async fn credits_and_debits_move_status_and_match_the_ledger(pool: PgPool) {
        let id = purchase(&pool).await;
        let credit = post_one(
            &pool,
            id,
            NewEntry::new(EntryKind::Deposit, UsdMicros(100_000_000)).reference("d1"),
        )
        .await;
        assert_eq!(credit.balance_after, UsdMicros(100_000_000));
        assert_eq!(credit.status_after, PurchaseStatus::Active);
        let low = post_one(
            &pool,
            id,
            NewEntry::new(EntryKind::Usage, UsdMicros(-91_000_000)),
        )
        .await;
        assert_eq!(
            (low.status_before, low.status_after),
            (PurchaseStatus::Active, PurchaseStatus::Low)
        );
        let suspended = post_one(
            &pool,
            id,
            NewEntry::new(EntryKind::Usage, UsdMicros(-9_000_000)),
        )
        .await;
        assert_eq!(suspended.status_after, PurchaseStatus::Suspended);
        assert_eq!(suspended.balance_after, UsdMicros(0));
        let restored = post_one(
            &pool,
            id,
            NewEntry::new(EntryKind::Deposit, UsdMicros(50_000_000)).reference("d2"),
        )
        .await;
        assert_eq!(restored.status_after, PurchaseStatus::Active);
        let replay = post_one(
            &pool,
            id,
            NewEntry::new(EntryKind::Deposit, UsdMicros(50_000_000)).reference("d2"),
        )
        .await;
        assert!(replay.replayed);
        assert_eq!(replay.balance_after, UsdMicros(50_000_000));
        let mut conn = pool.acquire().await.unwrap();
        let conflict = post(
            &mut conn,
            id,
            &NewEntry::new(EntryKind::Deposit, UsdMicros(1)).reference("d2"),
        )
        .await;
        assert!(matches!(conflict, Err(BillingError::ReferenceConflict(_))));
        let (balance, sum) = balance_and_ledger_sum(&mut conn, id).await.unwrap();
        assert_eq!(
            (balance, sum),
            (UsdMicros(50_000_000), UsdMicros(50_000_000))
        );
    }

    #[sqlx::test]
    async fn concurrent_debits_are_exact(pool: PgPool) {
        let id = purchase(&pool).await;
        post_one(
            &pool,
            id,
            NewEntry::new(EntryKind::Deposit, UsdMicros(10_000_000)),
        )
        .await;
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    post_one(
                        &pool,
                        id,
                        NewEntry::new(EntryKind::Usage, UsdMicros(-12_345)),
                    )
                    .await
                })
            })
            .collect();
        let mut suspended_transitions = 0;
        for task in tasks {
            let posted = task.await.unwrap();
            if posted.status_changed() && posted.status_after == PurchaseStatus::Suspended {
                suspended_transitions += 1;
            }
        }
        let mut conn = pool.acquire().await.unwrap();
        let (balance, sum) = balance_and_ledger_sum(&mut conn, id).await.unwrap();
        assert_eq!(balance, UsdMicros(10_000_000 - 200 * 12_345));
        assert_eq!(balance, sum);
        assert_eq!(
            suspended_transitions, 0,
            "7.53 USD left stays above the thresholds"
        );
    }
}
