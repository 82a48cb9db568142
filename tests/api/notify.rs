//! Notification delivery: signed webhooks to a local receiver that checks the signature, retries
//! with recorded attempts, `Retry-After`, give-up with an operator alert, and email through a real
//! SMTP server (aiosmtpd).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use axum::response::IntoResponse;
use axum::routing::post;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;
use vendor_server::jobs::Outcome;
use vendor_server::notify::events::verify_signature;
use vendor_server::notify::{RETRY_SCHEDULE_SECS, worker};

use crate::fixtures::{Bought, buy};
use crate::helpers::{TestApp, spawn_app_with};

const OFFER: &str = "gemini-api-gateway";
const SECRET: &str = "whsec_test_secret";

#[derive(Debug, Clone)]
struct Received {
    event_id: String,
    signature_ok: bool,
    body: Value,
}

/// A scripted answer: HTTP status and optional `Retry-After`.
type Answer = (u16, Option<&'static str>);

#[derive(Clone, Default)]
struct Receiver {
    /// Answers to give, in order (status, Retry-After); 200 when empty.
    script: Arc<Mutex<VecDeque<Answer>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
    let signature = headers
        .get("x-vendor-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let now = chrono::Utc::now().timestamp();
    r.received.lock().unwrap().push(Received {
        event_id: headers
            .get("x-vendor-event-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        signature_ok: verify_signature(SECRET.as_bytes(), signature, &body, now, 300),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let (status, retry_after) = r.script.lock().unwrap().pop_front().unwrap_or((200, None));
    let mut out = HeaderMap::new();
    if let Some(after) = retry_after {
        out.insert("retry-after", after.parse().unwrap());
    }
    (AxumStatus::from_u16(status).unwrap(), out, "ok")
}

async fn start_receiver(script: &[Answer]) -> (Receiver, String) {
    let receiver = Receiver::default();
    receiver
        .script
        .lock()
        .unwrap()
        .extend(script.iter().copied());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hook", post(hook))
        .with_state(receiver.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (receiver, url)
}

/// A real SMTP server (aiosmtpd) writing every message to a Maildir.
struct SmtpSink {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn python() -> PathBuf {
    let tools = std::env::var("TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/vendor-server-tools")
        });
    let python = tools.join("venv/bin/python");
    assert!(
        python.exists(),
        "aiosmtpd's python not found at {} (run scripts/install-tools.sh or set TOOLS_DIR)",
        python.display()
    );
    python
}

impl SmtpSink {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // aiosmtpd's Mailbox handler creates the Maildir (it must not exist yet).
        let dir = std::env::temp_dir().join(format!("smtp-sink-{}", uuid::Uuid::new_v4()));
        let child = Command::new(python())
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start aiosmtpd");
        let sink = Self { child, dir, port };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return sink;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("aiosmtpd did not start on port {port}");
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    fn messages(&self) -> Vec<String> {
        let new = self.dir.join("new");
        let mut out: Vec<String> = std::fs::read_dir(new)
            .map(|d| {
                d.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }
}

/// Forgets the notifications of the purchases' creation so a test sees only its own.
async fn clear_outbox(pool: &PgPool) {
    sqlx::query("delete from outbox_attempt")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("delete from outbox")
        .execute(pool)
        .await
        .unwrap();
}

/// Debits enough to cross `active → low` (10 USD deposit: low at 2 USD).
async fn cross_low(app: &TestApp, a: &Bought) {
    let (status, body) = app
        .post_auth(
            &format!("/v1/purchase/{}/meter-usage", a.id),
            &a.vendor_key,
            &json!({"usage_amount": "1", "usage_unit": "tokens", "billed_amount": "8.5"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "low");
}

/// Each row with its retry delay: next attempt − the last attempt's time (both written in one
/// transaction, so the figure is exact however slow the machine is; before any attempt, − now()).
async fn outbox(pool: &PgPool, channel: &str) -> Vec<(i64, String, i32, f64)> {
    sqlx::query_as::<_, (i64, String, i32, f64)>(
        "select o.outbox_id, o.status, o.attempt_count,
                extract(epoch from o.next_attempt_at - coalesce(
                    (select max(a.attempted_at) from outbox_attempt a where a.outbox_id = o.outbox_id),
                    now()))::float8
         from outbox o where o.channel = $1 order by o.outbox_id",
    )
    .bind(channel)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn make_due(pool: &PgPool) {
    sqlx::query("update outbox set next_attempt_at = now() where status = 'pending'")
        .execute(pool)
        .await
        .unwrap();
}

#[sqlx::test]
async fn webhooks_are_signed_retried_and_every_attempt_recorded(pool: PgPool) {
    let (receiver, url) = start_receiver(&[(500, None)]).await;
    let app = spawn_app_with(
        pool.clone(),
        &[
            ("VENDOR_WEBHOOK_URL", &url),
            ("VENDOR_WEBHOOK_SECRET", SECRET),
        ],
    )
    .await;
    let a = buy(&pool, OFFER, 10_000_000, None).await;
    clear_outbox(&pool).await;
    cross_low(&app, &a).await;

    assert_eq!(
        worker::run_once(&app.state.pool, &app.state.config, &app.state.http)
            .await
            .unwrap(),
        Outcome::Processed(1)
    );
    let rows = outbox(&pool, "webhook").await;
    assert_eq!(rows.len(), 1);
    let (id, status, attempts, wait) = rows[0].clone();
    assert_eq!((status.as_str(), attempts), ("pending", 1));
    assert!(
        (4.0..=6.0).contains(&wait),
        "first retry after 5 s ± 20 %: {wait}"
    );
    // Not due yet: nothing happens.
    assert_eq!(
        worker::run_once(&app.state.pool, &app.state.config, &app.state.http)
            .await
            .unwrap(),
        Outcome::Idle
    );
    make_due(&pool).await;
    assert_eq!(
        worker::run_once(&app.state.pool, &app.state.config, &app.state.http)
            .await
            .unwrap(),
        Outcome::Processed(1)
    );
    let rows = outbox(&pool, "webhook").await;
    assert_eq!(rows[0].1, "delivered");

    let attempts: Vec<(bool, Option<i32>)> = sqlx::query_as(
        "select ok, http_status from outbox_attempt where outbox_id = $1 order by attempt_id",
    )
    .bind(id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(attempts, vec![(false, Some(500)), (true, Some(200))]);

    let received = receiver.received.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    for r in &received {
        assert!(r.signature_ok, "signature must verify");
        assert_eq!(r.body["id"], r.event_id.as_str());
        assert!(r.event_id.starts_with("evt_"));
        assert_eq!(r.body["type"], "purchase.status_changed");
        assert!(
            chrono::DateTime::parse_from_rfc3339(r.body["created_at"].as_str().unwrap()).is_ok()
        );
        assert_eq!(r.body["data"]["purchase_id"], a.id.to_string());
        assert_eq!(r.body["data"]["previous_status"], "active");
        assert_eq!(r.body["data"]["status"], "low");
        assert_eq!(r.body["data"]["officex_status"], "RUNNING");
        assert_eq!(r.body["data"]["balance_usd"], "1.500000");
    }
    assert_eq!(
        received[0].body, received[1].body,
        "a retry sends the same event"
    );
    // The OfficeX row is another worker's; email is not configured: completed as skipped.
    assert_eq!(outbox(&pool, "officex").await[0].1, "pending");
    assert!(
        outbox(&pool, "email").await.is_empty(),
        "no email without a customer address"
    );
}

#[sqlx::test]
async fn retry_after_is_honoured_and_a_dead_webhook_alerts_by_email(pool: PgPool) {
    let sink = SmtpSink::start().await;
    let (receiver, url) = start_receiver(&[(429, Some("120")), (503, None)]).await;
    let app = spawn_app_with(
        pool.clone(),
        &[
            ("VENDOR_WEBHOOK_URL", &url),
            ("VENDOR_WEBHOOK_SECRET", SECRET),
            ("SMTP_URL", &sink.url()),
            ("NOTIFY_FROM_EMAIL", "billing@vendor.example"),
            ("VENDOR_ALERT_EMAIL", "ops@vendor.example"),
        ],
    )
    .await;
    let a = buy(&pool, OFFER, 10_000_000, None).await;
    clear_outbox(&pool).await;
    cross_low(&app, &a).await;
    worker::run_once(&app.state.pool, &app.state.config, &app.state.http)
        .await
        .unwrap();
    let (_, status, _, wait) = outbox(&pool, "webhook").await[0].clone();
    assert_eq!(status, "pending");
    assert!(
        (95.0..=145.0).contains(&wait),
        "Retry-After 120 s ± 20 %: {wait}"
    );

    // The last step of the schedule fails: given up, alert raised, never through the webhook.
    let last = i32::try_from(RETRY_SCHEDULE_SECS.len()).unwrap();
    sqlx::query(
        "update outbox set attempt_count = $1, next_attempt_at = now() where channel = 'webhook'",
    )
    .bind(last)
    .execute(&pool)
    .await
    .unwrap();
    worker::run_once(&app.state.pool, &app.state.config, &app.state.http)
        .await
        .unwrap();
    assert_eq!(outbox(&pool, "webhook").await[0].1, "failed");
    let alerts = outbox(&pool, "alert").await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].1, "delivered",
        "the alert went out in the same pass"
    );
    assert_eq!(receiver.received.lock().unwrap().len(), 2);
    let mails = sink.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert!(mails[0].contains("To: ops@vendor.example"), "{}", mails[0]);
    assert!(mails[0].contains("webhook delivery failed"), "{}", mails[0]);
    assert!(!mails[0].contains(SECRET));
    // A second pass does not alert again.
    assert_eq!(
        worker::run_once(&app.state.pool, &app.state.config, &app.state.http)
            .await
            .unwrap(),
        Outcome::Idle
    );
    assert_eq!(sink.messages().len(), 1);
}

#[sqlx::test]
async fn customer_email_reaches_a_real_smtp_server(pool: PgPool) {
    let sink = SmtpSink::start().await;
    let app = spawn_app_with(
        pool.clone(),
        &[
            ("SMTP_URL", &sink.url()),
            ("NOTIFY_FROM_EMAIL", "billing@vendor.example"),
        ],
    )
    .await;
    let a = buy(&pool, OFFER, 10_000_000, Some("customer@example.com")).await;
    clear_outbox(&pool).await;
    cross_low(&app, &a).await;
    let Outcome::Processed(n) =
        worker::run_once(&app.state.pool, &app.state.config, &app.state.http)
            .await
            .unwrap()
    else {
        panic!("nothing delivered");
    };
    assert!(n >= 2, "one email, one skipped webhook");
    let mails = sink.messages();
    assert_eq!(mails.len(), 1, "{mails:?}");
    let mail = &mails[0];
    assert!(mail.contains("To: customer@example.com"), "{mail}");
    assert!(mail.contains("From: billing@vendor.example"), "{mail}");
    assert!(mail.contains("Subject: Test purchase: low"), "{mail}");
    assert!(mail.contains("1.500000 USD"), "{mail}");
    assert!(!mail.contains(&a.customer_key) && !mail.contains(&a.vendor_key));
    assert_eq!(outbox(&pool, "email").await[0].1, "delivered");
    // No webhook URL: the webhook row is completed as skipped, not left pending.
    assert_eq!(outbox(&pool, "webhook").await[0].1, "skipped");
    assert_eq!(
        worker::run_once(&app.state.pool, &app.state.config, &app.state.http)
            .await
            .unwrap(),
        Outcome::Idle
    );
}

/// `purchase.status_changed` outbox payloads of a purchase, per channel.
async fn status_rows(pool: &PgPool, purchase: &str, channel: &str) -> Vec<Value> {
    sqlx::query_scalar::<_, Value>(
        "select payload from outbox where purchase_id = $1 and channel = $2
           and event_type = 'purchase.status_changed' order by outbox_id",
    )
    .bind(
        purchase
            .parse::<vendor_server::domain::ids::PurchaseId>()
            .unwrap()
            .0,
    )
    .bind(channel)
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Issue 10 #4: one crossing, one notification of each kind, one payload shape — on finalize
/// (provisioning → active) and on a top-up that lifts a suspension (suspended → active).
#[sqlx::test]
async fn each_crossing_is_announced_once_on_finalize_and_on_a_lifting_topup(pool: PgPool) {
    use crate::checkout::{GEMINI_USDC, setup};

    let p = setup(pool.clone()).await;
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 10_000_000).await;
    p.anvil.mine(2).await;
    let f = p
        .finalize(GEMINI_USDC, &session, "PurchaseID_crossings")
        .await;
    assert_eq!(f["receipt"]["status"], "RUNNING", "{f}");
    let purchase = f["receipt"]["vendor_purchase_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = f["receipt"]["customer_billing_api_key"]
        .as_str()
        .unwrap()
        .to_owned();

    let shape = |rows: &[Value]| {
        for row in rows {
            let data = row.get("data").unwrap_or(row);
            assert!(data.get("previous_status").is_some(), "{row}");
            assert!(data.get("status_before").is_none(), "{row}");
        }
    };
    // Finalize: provisioning → active, once per channel.
    let webhooks = status_rows(&pool, &purchase, "webhook").await;
    assert_eq!(webhooks.len(), 1, "{webhooks:?}");
    shape(&webhooks);
    assert_eq!(status_rows(&pool, &purchase, "officex").await.len(), 1);

    // Usage past the termination threshold: active → suspended (one more each).
    let (token, secret) = vendor_server::billing::tokens::create(&pool, "crossings")
        .await
        .unwrap();
    assert!(token.revoked_at.is_none());
    let (status, body) = p
        .app
        .post_auth(
            &format!("/v1/purchase/{purchase}/meter-usage"),
            secrecy::ExposeSecret::expose_secret(&secret),
            &json!({"usage_amount": "1", "usage_unit": "tokens", "billed_amount": "10"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "suspended");
    assert_eq!(status_rows(&pool, &purchase, "webhook").await.len(), 2);
    assert_eq!(status_rows(&pool, &purchase, "officex").await.len(), 2);

    // A top-up that lifts the suspension: suspended → active, once per channel.
    p.anvil.mint(p.anvil.usdc, address, 20_000_000).await;
    p.anvil.mine(2).await;
    let (status, body) = p
        .app
        .post_auth(
            "/v1/checkout/topup",
            &key,
            &json!({"checkout_session_id": session}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["success"], true, "{body}");
    let webhooks = status_rows(&pool, &purchase, "webhook").await;
    assert_eq!(webhooks.len(), 3, "{webhooks:?}");
    shape(&webhooks);
    let last = webhooks[2].get("data").unwrap_or(&webhooks[2]);
    assert_eq!(
        (last["previous_status"].as_str(), last["status"].as_str()),
        (Some("suspended"), Some("active")),
        "{last}"
    );
    assert_eq!(status_rows(&pool, &purchase, "officex").await.len(), 3);
}
