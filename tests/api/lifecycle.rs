//! Suspension lifecycle with a provider that records its calls: suspend when the balance suspends
//! the purchase, resume after a credit, delete after the grace period (never while a deposit is
//! pending), provider failures retried on the next pass.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::json;
use sqlx::PgPool;
use vendor_server::domain::ids::PurchaseId;
use vendor_server::jobs::Outcome;
use vendor_server::providers::lifecycle;
use vendor_server::providers::{Delivered, ProviderError, ProvisionRequest, ResourceProvider};
use vendor_server::state::AppState;

use crate::fixtures::{Bought, buy, credit, outbox_rows};
use crate::helpers::{TestApp, spawn_app};

#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<(String, PurchaseId, serde_json::Value)>>,
    /// How many next calls fail.
    failures: Mutex<u32>,
}

#[async_trait]
impl ResourceProvider for Recorder {
    fn kind(&self) -> &'static str {
        "gemini"
    }
    async fn provision(&self, _: &ProvisionRequest) -> Result<Delivered, ProviderError> {
        Ok(Delivered::default())
    }
    async fn suspend(
        &self,
        id: PurchaseId,
        state: &serde_json::Value,
    ) -> Result<(), ProviderError> {
        self.call("suspend", id, state)
    }
    async fn resume(&self, id: PurchaseId, state: &serde_json::Value) -> Result<(), ProviderError> {
        self.call("resume", id, state)
    }
    async fn delete(&self, id: PurchaseId, state: &serde_json::Value) -> Result<(), ProviderError> {
        self.call("delete", id, state)
    }
}

impl Recorder {
    fn call(
        &self,
        what: &str,
        id: PurchaseId,
        state: &serde_json::Value,
    ) -> Result<(), ProviderError> {
        let mut failures = self.failures.lock().unwrap();
        if *failures > 0 {
            *failures -= 1;
            return Err(ProviderError::Retryable("upstream down".into()));
        }
        self.calls
            .lock()
            .unwrap()
            .push((what.to_owned(), id, state.clone()));
        Ok(())
    }

    fn calls(&self) -> Vec<String> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.0.clone())
            .collect()
    }
}

async fn statuses(pool: &PgPool, id: PurchaseId) -> (String, String) {
    sqlx::query_as("select status, resource_status from purchase where purchase_id = $1")
        .bind(id.0)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn debit(app: &TestApp, a: &Bought, usd: &str) {
    let (status, body) = app
        .post_auth(
            &format!("/v1/purchase/{}/meter-usage", a.id),
            &a.vendor_key,
            &json!({"usage_amount": "1", "usage_unit": "GB", "billed_amount": usd}),
        )
        .await;
    assert!(status.is_success(), "{body}");
}

async fn setup(pool: &PgPool) -> (TestApp, AppState, Arc<Recorder>, Bought) {
    let app = spawn_app(pool.clone()).await;
    let recorder = Arc::new(Recorder::default());
    let mut state = app.state.clone();
    state.providers.insert(recorder.clone());
    let a = buy(pool, "gemini-api-gateway", 10_000_000, None).await;
    sqlx::query("update purchase set resource_status = 'ready', resource_state = '{\"key_id\": \"k1\"}' where purchase_id = $1")
        .bind(a.id.0)
        .execute(pool)
        .await
        .unwrap();
    (app, state, recorder, a)
}

#[sqlx::test]
async fn suspension_then_restore_by_a_credit(pool: PgPool) {
    let (app, state, recorder, a) = setup(&pool).await;
    assert_eq!(
        lifecycle::run_once(&state.pool, &state.providers, &state.config.billing)
            .await
            .unwrap(),
        Outcome::Idle
    );
    debit(&app, &a, "9.95").await;
    assert_eq!(
        statuses(&pool, a.id).await,
        ("suspended".into(), "ready".into())
    );

    // The provider fails once: state kept, retried on the next pass.
    *recorder.failures.lock().unwrap() = 1;
    assert_eq!(
        lifecycle::run_once(&state.pool, &state.providers, &state.config.billing)
            .await
            .unwrap(),
        Outcome::Idle
    );
    assert_eq!(
        statuses(&pool, a.id).await,
        ("suspended".into(), "ready".into())
    );
    assert_eq!(
        lifecycle::run_once(&state.pool, &state.providers, &state.config.billing)
            .await
            .unwrap(),
        Outcome::Processed(1)
    );
    assert_eq!(
        statuses(&pool, a.id).await,
        ("suspended".into(), "suspended".into())
    );
    assert_eq!(recorder.calls(), vec!["suspend"]);
    assert_eq!(recorder.calls.lock().unwrap()[0].2, json!({"key_id": "k1"}));
    assert_eq!(
        lifecycle::run_once(&state.pool, &state.providers, &state.config.billing)
            .await
            .unwrap(),
        Outcome::Idle
    );

    // A top-up lifts the status (ledger) and the resource comes back (lifecycle).
    credit(&pool, a.id, 20_000_000, "deposit:topup").await;
    assert_eq!(statuses(&pool, a.id).await.0, "active");
    assert_eq!(
        lifecycle::run_once(&state.pool, &state.providers, &state.config.billing)
            .await
            .unwrap(),
        Outcome::Processed(1)
    );
    assert_eq!(
        statuses(&pool, a.id).await,
        ("active".into(), "ready".into())
    );
    assert_eq!(recorder.calls(), vec!["suspend", "resume"]);

    let changes: Vec<String> = outbox_rows(&pool, a.id, "webhook", "purchase.status_changed")
        .await
        .iter()
        .map(|d| d["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(changes, vec!["active", "suspended", "active"]);
}

#[sqlx::test]
async fn deletion_after_the_grace_period_never_while_a_deposit_is_pending(pool: PgPool) {
    let (app, state, recorder, a) = setup(&pool).await;
    debit(&app, &a, "10").await;
    lifecycle::run_once(&state.pool, &state.providers, &state.config.billing)
        .await
        .unwrap();
    assert_eq!(
        statuses(&pool, a.id).await,
        ("suspended".into(), "suspended".into())
    );

    // Within the grace period (7 days): kept.
    sqlx::query(
        "update purchase set status_changed_at = now() - interval '6 days' where purchase_id = $1",
    )
    .bind(a.id.0)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(
        lifecycle::run_once(&state.pool, &state.providers, &state.config.billing)
            .await
            .unwrap(),
        Outcome::Idle
    );
    // Past it, but a deposit is pending: kept.
    sqlx::query("update purchase set status_changed_at = now() - interval '8 days', pending_deposit_at = now() where purchase_id = $1")
        .bind(a.id.0)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        lifecycle::run_once(&state.pool, &state.providers, &state.config.billing)
            .await
            .unwrap(),
        Outcome::Idle
    );
    assert_eq!(statuses(&pool, a.id).await.0, "suspended");
    // A credit during the grace period (not enough to lift the status) restarts it.
    sqlx::query("update purchase set pending_deposit_at = null, last_credit_at = now() - interval '1 day' where purchase_id = $1")
        .bind(a.id.0)
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        lifecycle::run_once(&state.pool, &state.providers, &state.config.billing)
            .await
            .unwrap(),
        Outcome::Idle
    );
    assert_eq!(recorder.calls(), vec!["suspend"]);

    // No credit for longer than the grace period: deleted, then its resource (retried on failure).
    sqlx::query(
        "update purchase set last_credit_at = now() - interval '9 days' where purchase_id = $1",
    )
    .bind(a.id.0)
    .execute(&pool)
    .await
    .unwrap();
    *recorder.failures.lock().unwrap() = 1;
    assert_eq!(
        lifecycle::run_once(&state.pool, &state.providers, &state.config.billing)
            .await
            .unwrap(),
        Outcome::Processed(1)
    );
    assert_eq!(
        statuses(&pool, a.id).await,
        ("deleted".into(), "suspended".into())
    );
    assert_eq!(
        lifecycle::run_once(&state.pool, &state.providers, &state.config.billing)
            .await
            .unwrap(),
        Outcome::Processed(1)
    );
    assert_eq!(
        statuses(&pool, a.id).await,
        ("deleted".into(), "deleted".into())
    );
    assert_eq!(recorder.calls(), vec!["suspend", "delete"]);
    assert_eq!(
        lifecycle::run_once(&state.pool, &state.providers, &state.config.billing)
            .await
            .unwrap(),
        Outcome::Idle
    );

    // Announced once; a later credit records but never revives a deleted purchase.
    let changes: Vec<String> = outbox_rows(&pool, a.id, "webhook", "purchase.status_changed")
        .await
        .iter()
        .map(|d| d["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(changes, vec!["active", "suspended", "deleted"]);
    credit(&pool, a.id, 5_000_000, "deposit:late").await;
    assert_eq!(statuses(&pool, a.id).await.0, "deleted");
}

#[sqlx::test]
async fn an_operators_suspension_holds_through_the_grace_period_until_resumed(pool: PgPool) {
    use vendor_server::admin::Actor;
    use vendor_server::admin::purchases::{StatusAction, set_status};
    let (_app, state, recorder, a) = setup(&pool).await;
    let act = |action| {
        let pool = pool.clone();
        async move {
            set_status(&pool, a.id, action, None, &Actor::default())
                .await
                .unwrap()
                .value
        }
    };
    assert_eq!(
        act(StatusAction::Suspend).await.status.as_str(),
        "suspended"
    );
    assert_eq!(
        lifecycle::run_once(&state.pool, &state.providers, &state.config.billing)
            .await
            .unwrap(),
        Outcome::Processed(1)
    );
    assert_eq!(
        statuses(&pool, a.id).await,
        ("suspended".into(), "suspended".into())
    );
    // Long past the grace period, with no credit: an operator's hold is not deleted.
    sqlx::query(
        "update purchase set status_changed_at = now() - interval '60 days' where purchase_id = $1",
    )
    .bind(a.id.0)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(
        lifecycle::run_once(&state.pool, &state.providers, &state.config.billing)
            .await
            .unwrap(),
        Outcome::Idle
    );
    assert_eq!(statuses(&pool, a.id).await.0, "suspended");

    // Resumed: the balance's status, and the resource comes back.
    assert_eq!(act(StatusAction::Resume).await.status.as_str(), "active");
    assert_eq!(
        lifecycle::run_once(&state.pool, &state.providers, &state.config.billing)
            .await
            .unwrap(),
        Outcome::Processed(1)
    );
    assert_eq!(
        statuses(&pool, a.id).await,
        ("active".into(), "ready".into())
    );
    // Deleted by the operator: the resource goes.
    assert_eq!(act(StatusAction::Delete).await.status.as_str(), "deleted");
    assert_eq!(
        lifecycle::run_once(&state.pool, &state.providers, &state.config.billing)
            .await
            .unwrap(),
        Outcome::Processed(1)
    );
    assert_eq!(
        statuses(&pool, a.id).await,
        ("deleted".into(), "deleted".into())
    );
    assert_eq!(recorder.calls(), vec!["suspend", "resume", "delete"]);
}

/// Issue 23 #6: a status change reaches the resource within seconds: the lifecycle job is woken by
/// the change (PostgreSQL NOTIFY, seen by every replica), not only by its one-minute timer.
#[sqlx::test]
async fn a_status_change_reaches_the_resource_within_seconds(pool: PgPool) {
    let (app, state, recorder, a) = setup(&pool).await;
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut jobs = vendor_server::jobs::spawn_all(&state, shutdown.clone());
    // The first (timed) pass finds nothing to do; the next timed one is a minute away.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(recorder.calls().is_empty());

    let within = |want: Vec<&'static str>| {
        let recorder = recorder.clone();
        async move {
            let started = std::time::Instant::now();
            while recorder.calls() != want {
                assert!(
                    started.elapsed() < std::time::Duration::from_secs(10),
                    "{:?} after 10 s, wanted {want:?}",
                    recorder.calls()
                );
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            started.elapsed()
        }
    };
    debit(&app, &a, "9.95").await;
    let took = within(vec!["suspend"]).await;
    eprintln!("suspension reached the resource in {took:?}");
    assert_eq!(
        statuses(&pool, a.id).await,
        ("suspended".into(), "suspended".into())
    );
    credit(&pool, a.id, 20_000_000, "deposit:topup").await;
    let took = within(vec!["suspend", "resume"]).await;
    eprintln!("the top-up reached the resource in {took:?}");

    shutdown.cancel();
    while jobs.join_next().await.is_some() {}
}
