//! Credits: every confirmed deposit becomes exactly one ledger entry on the purchase (reference
//! `deposit:<chain_id>:<tx>:<log_index>`), whoever asks and however often.

use serde_json::json;
use sqlx::{PgConnection, PgPool};

use super::{CheckoutError, Checkouts};
use crate::billing::ledger::{self, EntryKind, NewEntry};
use crate::chain::Chains;
use crate::domain::ids::{CheckoutSessionId, PurchaseId};
use crate::domain::money::UsdMicros;
use crate::notify::{self, Channel};

/// Deposits credited per batch.
const BATCH_SIZE: i64 = 100;

/// One credited deposit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credited {
    pub deposit_id: i64,
    pub purchase_id: PurchaseId,
    pub amount: UsdMicros,
    pub balance_after: UsdMicros,
    pub reference: String,
}

/// Credits one confirmed deposit inside the caller's transaction (locks the deposit row). `None` when
/// it is not (or no longer) creditable. `officex` also queues an OfficeX record update (finalize
/// queues its own).
pub async fn credit_deposit(
    conn: &mut PgConnection,
    deposit_id: i64,
    purchase_id: PurchaseId,
    officex: bool,
) -> Result<Option<Credited>, CheckoutError> {
    let Some(d) = sqlx::query!(
        "select status, reference, amount_micros, amount_units, token_symbol, chain_id, tx_hash, log_index,
                block_number, deposit_address, credit_round, refund_id
         from deposit where deposit_id = $1 for update",
        deposit_id
    )
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    // A deposit a refund covers (a checkout never finalized) goes back to its payer instead.
    if d.status != "confirmed" || d.refund_id.is_some() {
        return Ok(None);
    }
    // A late payment to a deleted purchase is credited to nothing: the sweeper still moves it to the
    // treasury, and the vendor is told once.
    let purchase = sqlx::query!(
        "select status, status_changed_at from purchase where purchase_id = $1 for update",
        purchase_id.0
    )
    .fetch_one(&mut *conn)
    .await?;
    if purchase.status == "deleted" {
        let first = sqlx::query_scalar!(
            "update deposit set unclaimed_at = now() where deposit_id = $1 and unclaimed_at is null
             returning deposit_id",
            deposit_id
        )
        .fetch_optional(&mut *conn)
        .await?;
        if first.is_some() {
            let amount = UsdMicros(d.amount_micros);
            tracing::warn!(purchase_id = %purchase_id, reference = d.reference, %amount, "payment to a deleted purchase: not credited, swept, vendor alerted");
            let payload = json!({
                "message": format!(
                    "A payment of {amount} USD in {} (chain {}, tx {}) arrived at {}, the deposit address of purchase {purchase_id}, which was deleted on {}. It was credited to nothing; the sweeper moves it to the treasury (see `vendor-server sweeps`). Refund or credit the customer by hand.",
                    d.token_symbol.to_uppercase(),
                    d.chain_id,
                    d.tx_hash,
                    d.deposit_address,
                    purchase.status_changed_at.format("%Y-%m-%d %H:%M UTC"),
                ),
                "purchase_id": purchase_id.to_string(),
                "chain_id": d.chain_id,
                "tx_hash": d.tx_hash,
                "log_index": d.log_index,
                "reference": d.reference,
                "token": d.token_symbol,
                "deposit_address": d.deposit_address,
                "amount_units": d.amount_units.to_string(),
                "amount_usd": amount.to_string(),
            });
            notify::enqueue(
                conn,
                Channel::Alert,
                "deposit.unclaimed",
                Some(purchase_id),
                &payload,
                Some(&format!("alert:deposit.unclaimed:{}", d.reference)),
            )
            .await?;
        }
        return Ok(None);
    }
    // A transfer re-included after its credit was reversed (reorg) is credited again, once per round.
    let reference = if d.credit_round == 0 {
        d.reference.clone()
    } else {
        format!("{}:again:{}", d.reference, d.credit_round)
    };
    let mut entry = NewEntry::new(EntryKind::Deposit, UsdMicros(d.amount_micros))
        .reference(reference.clone())
        .description(format!(
            "Deposit of {} USD in {} (chain {}, tx {})",
            UsdMicros(d.amount_micros),
            d.token_symbol.to_uppercase(),
            d.chain_id,
            d.tx_hash
        ));
    entry.metadata = json!({
        "chain_id": d.chain_id,
        "tx_hash": d.tx_hash,
        "log_index": d.log_index,
        "block_number": d.block_number,
        "token": d.token_symbol,
        "amount_units": d.amount_units.to_string(),
    });
    let posted = ledger::post(conn, purchase_id, &entry).await?;
    sqlx::query!(
        "update deposit set status = 'credited', purchase_id = $2, ledger_entry_id = $3, credited_at = now()
         where deposit_id = $1",
        deposit_id,
        purchase_id.0,
        posted.entry_id
    )
    .execute(&mut *conn)
    .await?;
    crate::telemetry::deposit_credited(d.chain_id, d.amount_micros);
    let payload = json!({
        "purchase_id": purchase_id.to_string(),
        "chain_id": d.chain_id,
        "tx_hash": d.tx_hash,
        "log_index": d.log_index,
        "token": d.token_symbol,
        "deposit_address": d.deposit_address,
        "amount_units": d.amount_units.to_string(),
        "amount_usd": UsdMicros(d.amount_micros).to_string(),
        "balance_usd": posted.balance_after.to_string(),
    });
    notify::enqueue(
        conn,
        Channel::Webhook,
        "deposit.credited",
        Some(purchase_id),
        &payload,
        Some(&format!("webhook:deposit.credited:{reference}")),
    )
    .await?;
    if officex {
        notify::enqueue(
            conn,
            Channel::Officex,
            "deposit.credited",
            Some(purchase_id),
            &json!({}),
            Some(&format!("officex:deposit.credited:{reference}")),
        )
        .await?;
    }
    // A status crossing (a top-up lifting a suspension) is announced by the ledger itself, once.
    Ok(Some(Credited {
        deposit_id,
        purchase_id,
        amount: UsdMicros(d.amount_micros),
        balance_after: posted.balance_after,
        reference: d.reference,
    }))
}

/// Credits one confirmed deposit to a purchase in its own transaction, with the sweep fees due.
pub(super) async fn credit_one(
    pool: &PgPool,
    chains: &Chains,
    deposit_id: i64,
    purchase_id: PurchaseId,
) -> Result<Option<Credited>, CheckoutError> {
    let mut tx = pool.begin().await?;
    let credited = credit_deposit(&mut tx, deposit_id, purchase_id, true).await?;
    ledger::charge_sweep_fees(&mut tx, purchase_id, |c| chains.sweep_fee(c)).await?;
    tx.commit().await?;
    if let Some(c) = &credited {
        tracing::info!(purchase_id = %c.purchase_id, amount = %c.amount, reference = c.reference, "deposit credited");
    }
    Ok(credited)
}

/// Credits every confirmed, uncredited deposit of finalized checkouts.
pub async fn credit_ready(cx: &Checkouts) -> Result<Vec<Credited>, CheckoutError> {
    let mut out = Vec::new();
    let mut after = 0i64;
    loop {
        let rows = sqlx::query!(
            r#"select d.deposit_id, c.purchase_id as "purchase_id!"
               from deposit d join checkout c using (checkout_session_id)
               where d.status = 'confirmed' and d.unclaimed_at is null and c.purchase_id is not null
                 and d.deposit_id > $1
               order by d.deposit_id limit $2"#,
            after,
            BATCH_SIZE
        )
        .fetch_all(&cx.pool)
        .await?;
        let count = rows.len();
        for row in rows {
            after = row.deposit_id;
            let purchase = PurchaseId(row.purchase_id);
            out.extend(credit_one(&cx.pool, &cx.chains, row.deposit_id, purchase).await?);
        }
        if count < usize::try_from(BATCH_SIZE).unwrap_or(usize::MAX) {
            break;
        }
    }
    Ok(out)
}

/// Credits every confirmed, uncredited deposit of one finalized checkout to its purchase (the
/// caller has the checkout loaded).
pub async fn credit_checkout(
    cx: &Checkouts,
    session: CheckoutSessionId,
    purchase_id: PurchaseId,
) -> Result<Vec<Credited>, CheckoutError> {
    let ids = sqlx::query_scalar!(
        "select deposit_id from deposit
         where checkout_session_id = $1 and status = 'confirmed' and unclaimed_at is null
         order by deposit_id",
        session.0
    )
    .fetch_all(&cx.pool)
    .await?;
    let mut out = Vec::new();
    for id in ids {
        out.extend(credit_one(&cx.pool, &cx.chains, id, purchase_id).await?);
    }
    Ok(out)
}
