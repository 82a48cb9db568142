//! Purchases and ledger/outbox checks shared by the billing tests.

use secrecy::ExposeSecret;
use sqlx::PgPool;
use vendor_server::billing::ledger::{self, EntryKind, NewEntry};
use vendor_server::billing::purchases::{self, NewPurchase};
use vendor_server::domain::ids::PurchaseId;
use vendor_server::domain::money::UsdMicros;

pub struct Bought {
    pub id: PurchaseId,
    pub customer_key: String,
    /// A vendor-wide billing token (`tokens create`): the one way to meter (SPEC §9).
    pub vendor_key: String,
}

/// A purchase of `offer` credited with `deposit` micro-USD (triggers from that first credit),
/// then activated, as finalize does.
pub async fn buy(pool: &PgPool, offer: &str, deposit: i64, email: Option<&str>) -> Bought {
    let mut tx = pool.begin().await.unwrap();
    let created = purchases::create(
        &mut tx,
        &NewPurchase {
            offer_id: offer.into(),
            title: "Test purchase".into(),
            customer_email: email.map(str::to_owned),
            tracer: Some("TracerID_secret-tracer".into()),
            customer_org_host: Some("org.example".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    if deposit > 0 {
        ledger::post(
            &mut tx,
            created.id,
            &NewEntry::new(EntryKind::Deposit, UsdMicros(deposit))
                .reference(format!("deposit:{}", created.id)),
        )
        .await
        .unwrap();
    }
    ledger::activate(&mut tx, created.id).await.unwrap();
    tx.commit().await.unwrap();
    let (_, token) = vendor_server::billing::tokens::create(pool, "test AI server")
        .await
        .unwrap();
    Bought {
        id: created.id,
        customer_key: created.customer_key.expose_secret().to_owned(),
        vendor_key: token.expose_secret().to_owned(),
    }
}

/// Credits `amount` micro-USD (a deposit with a unique reference).
pub async fn credit(pool: &PgPool, id: PurchaseId, amount: i64, reference: &str) {
    let mut tx = pool.begin().await.unwrap();
    ledger::post(
        &mut tx,
        id,
        &NewEntry::new(EntryKind::Deposit, UsdMicros(amount)).reference(reference),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// Balance and ledger sum (micro-USD); asserts they are equal.
pub async fn balance(pool: &PgPool, id: PurchaseId) -> i64 {
    let mut conn = pool.acquire().await.unwrap();
    let (balance, sum) = ledger::balance_and_ledger_sum(&mut conn, id).await.unwrap();
    assert_eq!(balance, sum, "the ledger must sum to the balance");
    balance.0
}

/// Outbox rows of a purchase by channel and event type.
pub async fn outbox_rows(
    pool: &PgPool,
    id: PurchaseId,
    channel: &str,
    event_type: &str,
) -> Vec<serde_json::Value> {
    sqlx::query_scalar::<_, serde_json::Value>(
        "select payload from outbox where purchase_id = $1 and channel = $2 and event_type = $3 order by outbox_id",
    )
    .bind(id.0)
    .bind(channel)
    .bind(event_type)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// The connection URL of the test's own database (for the CLI).
pub fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let db = pool.connect_options().get_database().unwrap().to_owned();
    match base.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{db}"),
        None => panic!("DATABASE_URL without a database"),
    }
}
