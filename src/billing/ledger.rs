//! The ledger: every balance change is one append-only row written in the same transaction as the
//! balance update, under the purchase row's lock (`FOR UPDATE`). Concurrent posts serialise on that
//! lock, so none is lost or invented; a `reference` makes a post happen at most once.

use bigdecimal::BigDecimal;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use std::collections::HashMap;
use uuid::Uuid;

use super::events::{StatusChange, status_changed};
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
    /// A refund requested by the customer leaves the balance at once (a debit).
    Refund,
    /// A canceled or rejected refund credited back.
    RefundReversal,
    /// The hourly S3 usage estimate (access logs, storage metrics); the daily import settles it.
    UsageEstimate,
    /// Takes back a deposit credit whose block a reorg removed (one per credit).
    Reversal,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deposit => "deposit",
            Self::Usage => "usage",
            Self::Cost => "cost",
            Self::SweepFee => "sweep_fee",
            Self::Adjustment => "adjustment",
            Self::Refund => "refund",
            Self::RefundReversal => "refund_reversal",
            Self::UsageEstimate => "usage_estimate",
            Self::Reversal => "reversal",
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

/// One purchase row held under `FOR UPDATE` for the rest of the transaction.
#[derive(Debug, Clone)]
pub struct LockedPurchase {
    pub id: PurchaseId,
    pub offer_id: String,
    pub title: String,
    pub customer_email: Option<String>,
    pub status: PurchaseStatus,
    pub balance: UsdMicros,
    pub triggers: Option<Triggers>,
    pub status_version: i64,
    /// An operator holds it suspended (`admin_hold_at`): the balance does not move its status.
    pub held: bool,
    /// An offer limit holds it suspended (`limit_hold_at`): the balance does not move its status.
    pub limit_held: bool,
    offer_triggers: (Option<UsdMicros>, Option<UsdMicros>, Option<UsdMicros>),
}

impl LockedPurchase {
    fn change(&self, to: PurchaseStatus, cause: &'static str) -> StatusChange {
        StatusChange {
            purchase_id: self.id,
            offer_id: self.offer_id.clone(),
            title: self.title.clone(),
            customer_email: self.customer_email.clone(),
            from: self.status,
            to,
            version: self.status_version + 1,
            balance: self.balance,
            cause,
        }
    }
}

/// Purchases locked by one transaction (in id order, so two transactions never deadlock).
#[derive(Debug, Default)]
pub struct Locked(HashMap<PurchaseId, LockedPurchase>);

impl Locked {
    pub fn get(&self, id: PurchaseId) -> Option<&LockedPurchase> {
        self.0.get(&id)
    }
}

/// Locks the purchase rows of `ids` (`FOR UPDATE`, ascending id order) inside the caller's
/// transaction. Unknown ids are simply absent from the result.
pub async fn lock_many(
    conn: &mut PgConnection,
    ids: &[PurchaseId],
) -> Result<Locked, BillingError> {
    let mut uuids: Vec<Uuid> = ids.iter().map(|i| i.0).collect();
    uuids.sort_unstable();
    uuids.dedup();
    let rows = sqlx::query!(
        "select p.purchase_id, p.offer_id, p.title, p.customer_email, p.status, p.balance_micros,
                p.low_trigger_micros, p.critical_trigger_micros, p.termination_trigger_micros, p.status_version,
                p.admin_hold_at is not null as \"held!\", p.limit_hold_at is not null as \"limit_held!\",
                o.low_trigger_micros as offer_low, o.critical_trigger_micros as offer_critical,
                o.termination_trigger_micros as offer_termination
         from purchase p join offer o using (offer_id)
         where p.purchase_id = any($1)
         order by p.purchase_id
         for update of p",
        &uuids
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
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
        let id = PurchaseId(row.purchase_id);
        out.insert(
            id,
            LockedPurchase {
                id,
                offer_id: row.offer_id,
                title: row.title,
                customer_email: row.customer_email,
                status: PurchaseStatus::parse(&row.status).ok_or(BillingError::PurchaseNotFound)?,
                balance: UsdMicros(row.balance_micros),
                triggers,
                status_version: row.status_version,
                held: row.held,
                limit_held: row.limit_held,
                offer_triggers: (
                    row.offer_low.map(UsdMicros),
                    row.offer_critical.map(UsdMicros),
                    row.offer_termination.map(UsdMicros),
                ),
            },
        );
    }
    Ok(Locked(out))
}

/// Locks one purchase row; unknown → `PurchaseNotFound`.
pub(crate) async fn lock(
    conn: &mut PgConnection,
    id: PurchaseId,
) -> Result<LockedPurchase, BillingError> {
    lock_many(conn, &[id])
        .await?
        .0
        .remove(&id)
        .ok_or(BillingError::PurchaseNotFound)
}

/// Posts one entry inside the caller's transaction: locks the purchase, appends the ledger row,
/// updates the balance and, for balance-following statuses, the status (announcing the change in the
/// same transaction). The first credit derives the trigger thresholds. The caller commits.
pub async fn post(
    conn: &mut PgConnection,
    id: PurchaseId,
    entry: &NewEntry,
) -> Result<Posted, BillingError> {
    let mut locked = lock_many(conn, &[id]).await?;
    post_locked(conn, &mut locked, &[(id, entry.clone())])
        .await?
        .pop()
        .unwrap_or(Err(BillingError::PurchaseNotFound))
}

struct Row {
    entry: usize,
    purchase: PurchaseId,
    balance_after: UsdMicros,
}

/// Posts several entries (of one or many purchases) whose purchases `locked` holds, in order, as
/// if each were posted alone: same balances, statuses, crossings and notifications, but a handful of
/// statements for the whole batch (a lookup of references, one statement for the rows and balances,
/// the notifications of each crossing). Per-entry failures (unknown purchase, overflow, reference
/// conflict) leave the other entries unaffected; a database error fails the transaction.
pub async fn post_locked(
    conn: &mut PgConnection,
    locked: &mut Locked,
    entries: &[(PurchaseId, NewEntry)],
) -> Result<Vec<Result<Posted, BillingError>>, BillingError> {
    // References already in the ledger.
    let (ref_ids, refs): (Vec<Uuid>, Vec<String>) = entries
        .iter()
        .filter_map(|(id, e)| e.reference.clone().map(|r| (id.0, r)))
        .unzip();
    let mut existing: HashMap<(PurchaseId, String), (i64, String, i64)> = HashMap::new();
    if !refs.is_empty() {
        let rows = sqlx::query!(
            r#"select l.purchase_id, l.reference as "reference!", l.entry_id, l.kind, l.amount_micros
               from ledger_entry l
               join unnest($1::uuid[], $2::text[]) as r(purchase_id, reference)
                 on l.purchase_id = r.purchase_id and l.reference = r.reference"#,
            &ref_ids,
            &refs
        )
        .fetch_all(&mut *conn)
        .await?;
        for r in rows {
            existing.insert(
                (PurchaseId(r.purchase_id), r.reference),
                (r.entry_id, r.kind, r.amount_micros),
            );
        }
    }

    let mut results: Vec<Option<Result<Posted, BillingError>>> = Vec::with_capacity(entries.len());
    let mut rows: Vec<Row> = Vec::new();
    let mut changes: Vec<StatusChange> = Vec::new();
    let mut touched: Vec<PurchaseId> = Vec::new();
    let mut credited: Vec<PurchaseId> = Vec::new();
    // Reference → index of the entry of this batch that posts it.
    let mut batch_refs: HashMap<(PurchaseId, String), usize> = HashMap::new();
    for (i, (id, entry)) in entries.iter().enumerate() {
        let Some(p) = locked.0.get_mut(id) else {
            results.push(Some(Err(BillingError::PurchaseNotFound)));
            continue;
        };
        if let Some(reference) = &entry.reference {
            let key = (*id, reference.clone());
            let seen = existing
                .get(&key)
                .map(|(_, kind, amount)| (kind.clone(), *amount))
                .or_else(|| {
                    batch_refs.get(&key).map(|j| {
                        (
                            entries[*j].1.kind.as_str().to_owned(),
                            entries[*j].1.amount.0,
                        )
                    })
                });
            if let Some((kind, amount)) = seen {
                if kind != entry.kind.as_str() || amount != entry.amount.0 {
                    results.push(Some(Err(BillingError::ReferenceConflict(
                        reference.clone(),
                    ))));
                } else {
                    // The entry id is filled in below for references posted by this batch.
                    results.push(Some(Ok(Posted {
                        entry_id: existing.get(&key).map_or(-1, |e| e.0),
                        balance_after: p.balance,
                        status_before: p.status,
                        status_after: p.status,
                        replayed: true,
                    })));
                }
                continue;
            }
            batch_refs.insert(key, i);
        }
        let Some(balance_after) = p.balance.checked_add(entry.amount) else {
            results.push(Some(Err(BillingError::Overflow)));
            continue;
        };
        if p.triggers.is_none() && entry.amount.0 > 0 {
            let (low, critical, termination) = p.offer_triggers;
            p.triggers = Some(Triggers::from_first_credit(
                entry.amount,
                low,
                critical,
                termination,
            ));
        }
        let status_before = p.status;
        let status_after = match p.triggers {
            Some(t) if p.status.follows_balance() && !p.held && !p.limit_held => {
                t.status_for(balance_after)
            }
            _ => p.status,
        };
        p.balance = balance_after;
        if status_after != status_before {
            changes.push(p.change(status_after, entry.kind.as_str()));
            p.status = status_after;
            p.status_version += 1;
        }
        if !touched.contains(id) {
            touched.push(*id);
        }
        if entry.amount.0 > 0 && !credited.contains(id) {
            credited.push(*id);
        }
        rows.push(Row {
            entry: i,
            purchase: *id,
            balance_after,
        });
        results.push(Some(Ok(Posted {
            entry_id: 0,
            balance_after,
            status_before,
            status_after,
            replayed: false,
        })));
    }

    if !rows.is_empty() {
        let mut c = Columns::default();
        for row in &rows {
            let e = &entries[row.entry].1;
            c.purchase_id.push(row.purchase.0);
            c.kind.push(e.kind.as_str().to_owned());
            c.amount.push(e.amount.0);
            c.balance_after.push(row.balance_after.0);
            c.usage_amount.push(e.usage_amount.clone());
            c.usage_unit.push(e.usage_unit.clone());
            c.description.push(e.description.clone());
            c.metadata.push(e.metadata.clone());
            c.occurred_at.push(e.occurred_at);
            c.reference.push(e.reference.clone());
        }
        let mut u = PurchaseColumns::default();
        for id in &touched {
            if let Some(p) = locked.0.get(id) {
                u.id.push(id.0);
                u.balance.push(p.balance.0);
                u.status.push(p.status.as_str().to_owned());
                u.version.push(p.status_version);
                u.low.push(p.triggers.map(|t| t.low.0));
                u.critical.push(p.triggers.map(|t| t.critical.0));
                u.termination.push(p.triggers.map(|t| t.termination.0));
                u.credited.push(credited.contains(id));
            }
        }
        // One statement (one round trip): entry ids taken in the entries' order, the rows appended,
        // the balances and statuses updated; the ids come back in the same order.
        let ids: Vec<i64> = sqlx::query_scalar!(
            r#"with u as materialized (
                   select nextval(pg_get_serial_sequence('ledger_entry', 'entry_id')) as entry_id, s.*
                   from (select * from unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], $5::numeric[],
                                              $6::text[], $7::text[], $8::jsonb[], $9::timestamptz[], $10::text[])
                                 with ordinality
                                 as s(purchase_id, kind, amount_micros, balance_after_micros, usage_amount,
                                      usage_unit, description, metadata, occurred_at, reference, ord)
                         order by ord) s
               ), appended as (
                   insert into ledger_entry (entry_id, purchase_id, kind, amount_micros, balance_after_micros,
                       usage_amount, usage_unit, description, metadata, occurred_at, reference)
                   select entry_id, purchase_id, kind, amount_micros, balance_after_micros, usage_amount, usage_unit,
                          description, metadata, coalesce(occurred_at, now()), reference
                   from u
               ), balances as (
                   update purchase p set balance_micros = v.balance, status = v.status,
                       low_trigger_micros = v.low, critical_trigger_micros = v.critical,
                       termination_trigger_micros = v.termination,
                       status_changed_at = case when p.status_version <> v.version then now() else p.status_changed_at end,
                       status_version = v.version,
                       last_credit_at = case when v.credited then now() else p.last_credit_at end
                   from unnest($11::uuid[], $12::bigint[], $13::text[], $14::bigint[], $15::bigint[], $16::bigint[],
                               $17::bigint[], $18::bool[])
                        as v(id, balance, status, version, low, critical, termination, credited)
                   where p.purchase_id = v.id
               )
               select entry_id as "entry_id!" from u order by ord"#,
            &c.purchase_id,
            &c.kind,
            &c.amount,
            &c.balance_after,
            &c.usage_amount as &[Option<BigDecimal>],
            &c.usage_unit as &[Option<String>],
            &c.description as &[Option<String>],
            &c.metadata,
            &c.occurred_at as &[Option<DateTime<Utc>>],
            &c.reference as &[Option<String>],
            &u.id,
            &u.balance,
            &u.status,
            &u.version,
            &u.low as &[Option<i64>],
            &u.critical as &[Option<i64>],
            &u.termination as &[Option<i64>],
            &u.credited,
        )
        .fetch_all(&mut *conn)
        .await?;
        if ids.len() != rows.len() {
            return Err(BillingError::Internal("ledger ids missing".into()));
        }
        for (row, entry_id) in rows.iter().zip(&ids) {
            if let Some(Some(Ok(posted))) = results.get_mut(row.entry) {
                posted.entry_id = *entry_id;
            }
        }
    }

    // Replays of a reference first posted by this same batch report that entry's id.
    for (i, (id, entry)) in entries.iter().enumerate() {
        if let (Some(reference), Some(Some(Ok(posted)))) = (&entry.reference, results.get(i))
            && posted.replayed
            && posted.entry_id == -1
        {
            let first = batch_refs
                .get(&(*id, reference.clone()))
                .and_then(|j| results.get(*j))
                .and_then(|r| r.as_ref())
                .and_then(|r| r.as_ref().ok())
                .map(|p| p.entry_id);
            if let (Some(first), Some(Some(Ok(posted)))) = (first, results.get_mut(i)) {
                posted.entry_id = first;
            }
        }
    }

    for change in &changes {
        status_changed(conn, change).await?;
    }
    Ok(results.into_iter().flatten().collect())
}

#[derive(Default)]
struct Columns {
    purchase_id: Vec<Uuid>,
    kind: Vec<String>,
    amount: Vec<i64>,
    balance_after: Vec<i64>,
    usage_amount: Vec<Option<BigDecimal>>,
    usage_unit: Vec<Option<String>>,
    description: Vec<Option<String>>,
    metadata: Vec<serde_json::Value>,
    occurred_at: Vec<Option<DateTime<Utc>>>,
    reference: Vec<Option<String>>,
}

#[derive(Default)]
struct PurchaseColumns {
    id: Vec<Uuid>,
    balance: Vec<i64>,
    status: Vec<String>,
    version: Vec<i64>,
    low: Vec<Option<i64>>,
    critical: Vec<Option<i64>>,
    termination: Vec<Option<i64>>,
    credited: Vec<bool>,
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
    set_locked_status(conn, &locked, after, "provisioned").await?;
    Ok((locked.status, after))
}

/// Moves a locked purchase to `to` (bumping its status version) and announces the change in the
/// same transaction. No-op when the status is already `to`.
pub(crate) async fn set_locked_status(
    conn: &mut PgConnection,
    locked: &LockedPurchase,
    to: PurchaseStatus,
    cause: &'static str,
) -> Result<(), BillingError> {
    if locked.status == to {
        return Ok(());
    }
    sqlx::query!(
        "update purchase set status = $2, status_changed_at = now(), status_version = status_version + 1
         where purchase_id = $1",
        locked.id.0,
        to.as_str()
    )
    .execute(&mut *conn)
    .await?;
    status_changed(conn, &locked.change(to, cause)).await
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

/// Posts the sweep fee (`fee_of(chain_id)`, the chain's `sweep_fee_usd`) once per confirmed sweep of
/// the purchase's deposit address (its own ledger row, reference `sweep_fee:<sweep_id>`).
pub async fn charge_sweep_fees(
    conn: &mut PgConnection,
    purchase_id: PurchaseId,
    fee_of: impl Fn(i64) -> UsdMicros,
) -> Result<usize, BillingError> {
    let sweeps = sqlx::query!(
        "select s.sweep_id, s.chain_id from sweep s join checkout c using (deposit_address)
         where c.purchase_id = $1 and s.status = 'confirmed'
           and not exists (select 1 from ledger_entry l where l.purchase_id = $1
                           and l.reference = 'sweep_fee:' || s.sweep_id)",
        purchase_id.0
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut charged = 0;
    for s in sweeps {
        let fee = fee_of(s.chain_id);
        if fee.0 <= 0 {
            continue;
        }
        let entry = NewEntry::new(EntryKind::SweepFee, UsdMicros(-fee.0))
            .reference(format!("sweep_fee:{}", s.sweep_id))
            .description(format!("Sweep fee (sweep {})", s.sweep_id));
        post(conn, purchase_id, &entry).await?;
        charged += 1;
    }
    Ok(charged)
}

/// Reverses a credited deposit whose block a reorg removed, in the caller's transaction (the one
/// that marks it `reorged`): one compensating entry of kind `reversal` (reference
/// `reversal:<deposit reference>:<round>`), the purchase's status following its balance, and the
/// `deposit.reversed` webhook. The deposit forgets its credit, so if the transfer is re-included it is
/// credited again once (its next round). Nothing happens for a deposit that was never credited.
pub async fn reverse_deposit(
    conn: &mut PgConnection,
    deposit_id: i64,
) -> Result<Option<Posted>, BillingError> {
    let Some(d) = sqlx::query!(
        "select reference, purchase_id, ledger_entry_id, amount_micros, credit_round, chain_id, tx_hash, log_index,
                token_symbol, deposit_address, amount_units::text as amount_units, block_number
         from deposit where deposit_id = $1 for update",
        deposit_id
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let (Some(purchase), Some(credit_entry)) = (d.purchase_id, d.ledger_entry_id) else {
        return Ok(None);
    };
    let purchase = PurchaseId(purchase);
    let reference = format!("reversal:{}:{}", d.reference, d.credit_round);
    let mut entry = NewEntry::new(EntryKind::Reversal, UsdMicros(-d.amount_micros))
        .reference(reference.clone())
        .description(format!(
            "Reversal of the deposit of {} USD in {} (chain {}, tx {}): its block left the chain",
            UsdMicros(d.amount_micros),
            d.token_symbol.to_uppercase(),
            d.chain_id,
            d.tx_hash
        ));
    entry.metadata = serde_json::json!({
        "chain_id": d.chain_id,
        "tx_hash": d.tx_hash,
        "log_index": d.log_index,
        "block_number": d.block_number,
        "reverses_entry_id": credit_entry,
    });
    let posted = post(conn, purchase, &entry).await?;
    sqlx::query!(
        "update deposit set ledger_entry_id = null, reversal_entry_id = $2, reversed_at = now(),
             credit_round = credit_round + 1
         where deposit_id = $1",
        deposit_id,
        posted.entry_id
    )
    .execute(&mut *conn)
    .await?;
    let data = serde_json::json!({
        "purchase_id": purchase.to_string(),
        "chain_id": d.chain_id,
        "tx_hash": d.tx_hash,
        "log_index": d.log_index,
        "block_number": d.block_number,
        "token": d.token_symbol,
        "deposit_address": d.deposit_address,
        "amount_units": d.amount_units,
        "amount_usd": UsdMicros(d.amount_micros).to_string(),
        "balance_usd": posted.balance_after.to_string(),
    });
    crate::notify::events::webhook(
        conn,
        crate::notify::events::WebhookEvent::DepositReversed,
        Some(purchase),
        &data,
        Some(&format!("webhook:deposit.reversed:{reference}")),
    )
    .await?;
    tracing::error!(%purchase, reference, amount = %UsdMicros(d.amount_micros), "reorged deposit credit reversed");
    Ok(Some(posted))
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
