//! Finalize reads its world once (#22 item 6): a checkout, its stored offer terms and its flow are
//! loaded once and passed down (scan, credit, create, provision, receipt), and the validate,
//! verify-topup and refund paths work from the value they loaded. Every SQL statement the server
//! runs is recorded (sqlx logs each one under the `sqlx::query` target), and the reads of the
//! `checkout` row and of the offers are counted per call: a re-read reintroduced anywhere down the
//! pipeline fails here.

use std::sync::{Arc, Mutex};

use alloy::signers::local::PrivateKeySigner;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::checkout::{GEMINI_USDC, setup};

/// The statements the server ran, as sqlx logged them.
#[derive(Clone, Default)]
struct Statements(Arc<Mutex<Vec<String>>>);

#[derive(Default)]
struct Sql {
    summary: String,
    statement: String,
}

impl Visit for Sql {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => value.clone_into(&mut self.summary),
            "db.statement" => value.clone_into(&mut self.statement),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

impl<S: tracing::Subscriber> Layer<S> for Statements {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let mut sql = Sql::default();
        event.record(&mut sql);
        let text = if sql.statement.trim().is_empty() {
            sql.summary
        } else {
            sql.statement
        };
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        self.0.lock().unwrap().push(text.to_lowercase());
    }
}

/// What one call ran.
struct Ran(Vec<String>);

impl Ran {
    /// Reads of the checkout row (a select from it or joining it, locks included).
    fn checkout_reads(&self) -> Vec<&String> {
        self.0
            .iter()
            .filter(|s| s.starts_with("select") || s.starts_with("with"))
            .filter(|s| {
                s.contains("from checkout")
                    || s.contains("join checkout")
                    || s.contains(", checkout ")
            })
            .collect()
    }

    /// Reads of the offers (the catalog or one offer row).
    fn offer_reads(&self) -> Vec<&String> {
        self.0
            .iter()
            .filter(|s| s.contains("from offer") || s.contains("from appstore_list"))
            .collect()
    }
}

impl Statements {
    async fn during<T>(&self, call: impl Future<Output = T>) -> (T, Ran) {
        self.0.lock().unwrap().clear();
        let out = call.await;
        (out, Ran(std::mem::take(&mut *self.0.lock().unwrap())))
    }
}

/// Each call's reads, checked at the end (so one run reports every figure).
#[derive(Default)]
struct Tally(Vec<(&'static str, usize, usize, usize, Vec<String>)>);

impl Tally {
    /// Records a call that should read the checkout row `expected` times and no offer.
    fn expect(&mut self, what: &'static str, ran: &Ran, expected: usize) {
        println!(
            "{what}: {} statements, {} checkout reads (expected {expected}), {} offer reads",
            ran.0.len(),
            ran.checkout_reads().len(),
            ran.offer_reads().len()
        );
        for s in &ran.0 {
            println!("  {}", s.chars().take(160).collect::<String>());
        }
        let reads = ran
            .checkout_reads()
            .into_iter()
            .chain(ran.offer_reads())
            .cloned()
            .collect();
        self.0.push((
            what,
            ran.checkout_reads().len() + ran.offer_reads().len(),
            expected,
            ran.0.len(),
            reads,
        ));
    }

    fn check(self) {
        let wrong: Vec<_> = self
            .0
            .iter()
            .filter(|(_, got, want, ..)| got != want)
            .collect();
        assert!(
            wrong.is_empty(),
            "reads of the checkout or offers: {wrong:#?}"
        );
    }
}

#[sqlx::test]
async fn finalize_validate_topup_and_refund_read_the_checkout_once(pool: PgPool) {
    let statements = Statements::default();
    // `sqlx::test` runs on one thread: the server's tasks log to this subscriber.
    let _recording =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(statements.clone()));
    let p = setup(pool).await;
    let mut tally = Tally::default();

    // validate: the checkout (with its terms) once; unclaimed money from that value.
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 10_000_000).await;
    p.anvil.mine(2).await;
    let (v, ran) = statements.during(p.validate(GEMINI_USDC, &session)).await;
    assert_eq!(v["success"], true, "{v}");
    assert_eq!(v["unclaimed_usd"], "10.000000", "{v}");
    tally.expect("validate", &ran, 1);

    // finalize: loaded once; the lock in its transaction (a concurrent finalize) and the ledger's
    // sweep-fee lookup (its own join) are the only other reads. Scan, credit, purchase,
    // provisioning and receipt work from the loaded value.
    let (f, ran) = statements
        .during(p.finalize(GEMINI_USDC, &session, "PurchaseID_once"))
        .await;
    assert_eq!(f["success"], true, "{f}");
    assert_eq!(f["receipt"]["status"], "RUNNING", "{f}");
    assert!(f["receipt"]["redeem_code"].is_string(), "{f}");
    tally.expect("finalize", &ran, 3);

    // A replay: loaded once, then the receipt read again with the resource's status (both change
    // while provisioning goes on).
    let (again, ran) = statements
        .during(p.finalize(GEMINI_USDC, &session, "PurchaseID_once"))
        .await;
    assert_eq!(again["receipt"], f["receipt"]);
    tally.expect("finalize replay", &ran, 2);
    // Another officex_purchase_id: still 409, from the loaded value.
    let (conflict, ran) = statements
        .during(p.app.post(
            "/v1/checkout/finalize",
            &json!({"checkout_flow_id": GEMINI_USDC, "checkout_session_id": session,
                    "officex_purchase_id": "PurchaseID_other"}),
        ))
        .await;
    crate::helpers::assert_error(
        &conflict,
        StatusCode::CONFLICT,
        "officex_purchase_id_in_use",
    );
    tally.expect("finalize with another officex_purchase_id", &ran, 1);

    // verify-topup: the purchase's checkout once, for the scan, the credits and unclaimed money
    // (plus the ledger's sweep-fee lookup with the one deposit credited).
    let purchase = f["receipt"]["vendor_purchase_id"].as_str().unwrap();
    let key = f["receipt"]["customer_billing_api_key"].as_str().unwrap();
    p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
    p.anvil.mine(2).await;
    let ((status, topped), ran): ((StatusCode, Value), Ran) = statements
        .during(p.app.post_auth(
            &format!("/v1/purchase/{purchase}/verify-topup"),
            key,
            &json!({}),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{topped}");
    assert_eq!(topped["topup_amount"], 2.0, "{topped}");
    tally.expect("verify-topup", &ran, 2);
    let ((status, topped), ran): ((StatusCode, Value), Ran) = statements
        .during(p.app.post_auth(
            "/v1/checkout/topup",
            key,
            &json!({"checkout_session_id": session}),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{topped}");
    tally.expect("topup", &ran, 1);

    // The refund of a checkout never finalized: its own locked read, and the customer's email for
    // the `refund.requested` email (shared by every refund event).
    let (other, other_address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, other_address, 3_000_000).await;
    p.anvil.mine(3).await;
    let (v, _) = statements.during(p.validate(GEMINI_USDC, &other)).await;
    assert_eq!(v["unclaimed_usd"], "3.000000", "{v}");
    let to = PrivateKeySigner::random().address();
    let ((status, refund), ran): ((StatusCode, Value), Ran) = statements
        .during(p.app.post(
            "/v1/checkout/refund",
            &json!({"checkout_flow_id": GEMINI_USDC, "checkout_session_id": other,
                    "to_address": format!("{to:#x}")}),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{refund}");
    tally.expect("checkout refund", &ran, 2);
    tally.check();
}
