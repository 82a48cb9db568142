//! OfficeX purchase records: the outbox worker keeps the customer's record true at a stand-in drive
//! that checks the SIGNATURE token as the canister does.

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::net::TcpListener;
use vendor_server::billing::ledger::{self, EntryKind, NewEntry};
use vendor_server::billing::purchases::{self, NewPurchase};
use vendor_server::config::Config;
use vendor_server::domain::ids::PurchaseId;
use vendor_server::domain::money::UsdMicros;
use vendor_server::jobs::Outcome;
use vendor_server::notify::{self, Channel};
use vendor_server::officex::identity::{ExtendedKey, OFFICEX_PATH, bip39_seed};
use vendor_server::officex::token::{self, SignatureChallenge, SignatureToken};
use vendor_server::officex::{DriveTarget, VendorIdentity, worker};
use vendor_server::startup::Application;

use crate::helpers::{TestApp, spawn_app_with, test_vars};
use crate::officex_drive::{StandInDrive, verify_token};

/// The vendor's officex.app profile phrase in these tests (never a real one).
const PHRASE: &str = "amber birch cedar delta ember fjord grove harbor ivory juniper kelp lantern";
const GEMINI: &str = "gemini-api-gateway";

fn vendor() -> VendorIdentity {
    VendorIdentity::from_seed_phrase(PHRASE).unwrap()
}

/// The customer's org: `DriveID_<principal>`.
fn org_id() -> String {
    let principal = ic_agent::export::Principal::self_authenticating(b"customer drive");
    format!("DriveID_{}", principal.to_text())
}

async fn spawn(pool: PgPool) -> TestApp {
    let vendor_id = vendor().user_id();
    spawn_app_with(
        pool,
        &[
            ("VENDOR_OFFICEX_SEED_PHRASE", PHRASE),
            ("VENDOR_ID", &vendor_id),
            ("OFFICEX_ALLOWED_HOSTS", "*.icp0.io,127.0.0.1"),
        ],
    )
    .await
}

struct Bought {
    id: PurchaseId,
    officex_id: String,
}

/// What finalize does, as the finalize module will: the purchase with the checkout's org data, its
/// first credit, activation, and one OfficeX outbox row in the same transaction.
async fn buy(pool: &PgPool, org_host: &str, officex: bool) -> Bought {
    let officex_id = format!("PurchaseID_{}", uuid::Uuid::new_v4());
    let mut tx = pool.begin().await.unwrap();
    let created = purchases::create(
        &mut tx,
        &NewPurchase {
            offer_id: GEMINI.into(),
            title: "Gemini API Key".into(),
            customer_org_id: officex.then(org_id),
            customer_org_host: officex.then(|| org_host.to_owned()),
            officex_purchase_id: officex.then(|| officex_id.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    ledger::post(
        &mut tx,
        created.id,
        &NewEntry::new(EntryKind::Deposit, UsdMicros(20_000_000)).reference("deposit:test:first"),
    )
    .await
    .unwrap();
    // Activation is a status change: `ledger::activate` queues the OfficeX row itself (as after a
    // finalize, where it collapses with the `purchase.created` row into one call).
    ledger::activate(&mut tx, created.id).await.unwrap();
    tx.commit().await.unwrap();
    Bought {
        id: created.id,
        officex_id,
    }
}

/// A ledger post followed by the OfficeX rows its module enqueues in the same transaction: a credit
/// (topup) and a status change each ask for a record sync.
async fn post_and_enqueue(pool: &PgPool, id: PurchaseId, entry: NewEntry, reference: &str) {
    let mut tx = pool.begin().await.unwrap();
    let is_credit = entry.kind == EntryKind::Deposit;
    let posted = ledger::post(&mut tx, id, &entry.reference(reference))
        .await
        .unwrap();
    if is_credit {
        notify::enqueue(
            &mut tx,
            Channel::Officex,
            "deposit.credited",
            Some(id),
            &json!({}),
            Some(&format!("officex:deposit.credited:{reference}")),
        )
        .await
        .unwrap();
    }
    // A status change queues its own OfficeX row inside `ledger::post` (billing events).
    let _ = posted;
    tx.commit().await.unwrap();
}

/// Runs the worker until it is idle; returns the rows it handled.
async fn drain(app: &TestApp) -> usize {
    let mut handled = 0;
    for _ in 0..10 {
        match worker::run_once(
            &app.state.pool,
            app.state.officex.as_deref(),
            &app.state.config,
        )
        .await
        .unwrap()
        {
            Outcome::Processed(n) => handled += n,
            Outcome::Idle => return handled,
        }
    }
    panic!("the OfficeX worker never went idle");
}

/// Makes every pending row due now (instead of waiting for its backoff).
async fn make_due(pool: &PgPool) {
    sqlx::query("update outbox set next_attempt_at = now() where status = 'pending'")
        .execute(pool)
        .await
        .unwrap();
}

/// (status, attempt_count, last_error) of the purchase's OfficeX rows, oldest first.
async fn officex_rows(pool: &PgPool, id: PurchaseId) -> Vec<(String, i32, Option<String>)> {
    sqlx::query_as(
        "select status, attempt_count, last_error from outbox
         where channel = 'officex' and purchase_id = $1 order by outbox_id",
    )
    .bind(id.0)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn attempts(pool: &PgPool, id: PurchaseId) -> Vec<(bool, Option<i32>)> {
    sqlx::query_as(
        "select a.ok, a.http_status from outbox_attempt a join outbox o using (outbox_id)
         where o.channel = 'officex' and o.purchase_id = $1 order by a.attempt_id",
    )
    .bind(id.0)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn alerts(pool: &PgPool) -> Vec<Value> {
    sqlx::query_scalar("select payload from outbox where channel = 'alert' order by outbox_id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Captures every log line of this thread (the test runtime runs the server and the worker here).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("trace")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[sqlx::test]
async fn finalize_topup_and_suspension_each_update_the_record_once(pool: PgPool) {
    let logs = Logs::default();
    let _guard = logs.capture();
    let drive = StandInDrive::start().await;
    let app = spawn(pool.clone()).await;
    let vendor_id = vendor().user_id();

    // Finalize: the client's own purchases/create lands, then the vendor's update.
    let bought = buy(&pool, &drive.host(), true).await;
    drive.create_record(&bought.officex_id, &vendor_id);
    assert_eq!(drain(&app).await, 1);
    let accepted = drive.accepted();
    assert_eq!(accepted.len(), 1, "rejected: {:?}", drive.rejected());
    let page = app.url(&format!(
        "/v1/dashboard/customer#vendor_purchase_id={}",
        bought.id
    ));
    assert_eq!(
        accepted[0].body,
        json!({
            "id": bought.officex_id,
            "title": "Gemini API Key",
            "status": "RUNNING",
            "billing_url": page,
            "support_url": page,
            "delivery_url": page,
            "pricing": "Per million tokens: gemini-2.5-flash $0.30 in / $2.50 out; gemini-2.5-pro $1.25 in / $10 out ($2.50 / $15 for prompts over 200k tokens)",
            "vendor_notes": "Running. Prepaid balance: 20.000000 USD. Top up any time from the billing page.",
        })
    );
    assert_eq!(accepted[0].org_id, org_id());
    assert_eq!(
        accepted[0].challenge.drive_canister_id,
        org_id().trim_start_matches("DriveID_")
    );
    assert_eq!(
        accepted[0].challenge.canonical_principal,
        vendor().principal().to_text()
    );
    // The record now carries the vendor's fields; the customer's own notes are untouched.
    let record = drive.record(&bought.officex_id).unwrap();
    assert_eq!(record["status"], "RUNNING");
    assert_eq!(record["notes"], "customer's own notes");
    // And reads back through the client.
    let client = app.state.officex.clone().unwrap();
    let target = DriveTarget {
        org_host: drive.host(),
        org_id: org_id(),
    };
    let read = client
        .get_purchase(&target, &bought.officex_id)
        .await
        .unwrap();
    assert_eq!(read["vendor_notes"], record["vendor_notes"]);
    assert_eq!(client.vendor_id(), vendor_id);

    // A topup: one more update with the new balance.
    post_and_enqueue(
        &pool,
        bought.id,
        NewEntry::new(EntryKind::Deposit, UsdMicros(5_000_000)),
        "deposit:test:topup",
    )
    .await;
    assert_eq!(drain(&app).await, 1);
    let accepted = drive.accepted();
    assert_eq!(accepted.len(), 2);
    assert_eq!(accepted[1].body["status"], "RUNNING");
    assert_eq!(
        accepted[1].body["vendor_notes"],
        "Running. Prepaid balance: 25.000000 USD. Top up any time from the billing page."
    );

    // Usage down to the termination trigger: suspended → BLOCKED, once.
    post_and_enqueue(
        &pool,
        bought.id,
        NewEntry::new(EntryKind::Usage, UsdMicros(-24_900_000)),
        "usage:test:1",
    )
    .await;
    assert_eq!(drain(&app).await, 1);
    let accepted = drive.accepted();
    assert_eq!(accepted.len(), 3);
    assert_eq!(accepted[2].body["status"], "BLOCKED");
    assert!(
        accepted[2].body["vendor_notes"]
            .as_str()
            .unwrap()
            .starts_with(
                "Blocked: the prepaid balance ran out (0.100000 USD). Your data is kept for 7 days"
            ),
        "{}",
        accepted[2].body
    );
    assert_eq!(
        drive.record(&bought.officex_id).unwrap()["status"],
        "BLOCKED"
    );
    assert!(drive.rejected().is_empty(), "{:?}", drive.rejected());
    let rows = officex_rows(&pool, bought.id).await;
    assert_eq!(rows.len(), 3);
    assert!(
        rows.iter().all(|r| r.0 == "delivered" && r.1 == 1),
        "{rows:?}"
    );

    // Nothing in any record or any log line is a secret.
    for a in &accepted {
        let text = a.body.to_string();
        assert!(!text.contains("key"), "{text}");
        assert!(!text.contains("redeem"), "{text}");
        assert!(!text.contains("PAID"), "{text}");
    }
    let log = logs.text();
    assert!(log.contains("OfficeX record updated"), "no logs captured");
    assert!(
        log.contains(&vendor_id),
        "the start-up line names the vendor"
    );
    let private = ExtendedKey::ed25519_derive(&bip39_seed(PHRASE, ""), &OFFICEX_PATH);
    let mut secrets = vec![
        PHRASE.to_owned(),
        "amber birch".to_owned(),
        hex::encode(private.key),
        hex::encode(private.chain_code),
        base64::engine::general_purpose::STANDARD.encode(private.key),
        format!("{:?}", private.key.to_vec()),
    ];
    for a in &accepted {
        let token = a.authorization.trim_start_matches("Bearer ").to_owned();
        secrets.push(token[..40].to_owned());
        secrets.push(token);
    }
    let debug = format!("{:?} {:?}", app.state.officex, app.state.config);
    for secret in &secrets {
        assert!(!log.contains(secret.as_str()), "a secret is in the logs");
        assert!(
            !debug.contains(secret.as_str()),
            "a secret is in Debug output"
        );
    }
}

#[sqlx::test]
async fn a_failed_call_is_retried_without_a_duplicate_effect(pool: PgPool) {
    let drive = StandInDrive::start().await;
    let app = spawn(pool.clone()).await;
    let bought = buy(&pool, &drive.host(), true).await;
    drive.create_record(&bought.officex_id, &vendor().user_id());

    drive.fail_next(&[500]);
    assert_eq!(drain(&app).await, 1);
    assert!(drive.accepted().is_empty());
    let rows = officex_rows(&pool, bought.id).await;
    assert_eq!(rows[0].0, "pending");
    assert!(rows[0].2.as_deref().unwrap().contains("500"), "{rows:?}");
    // Not due yet: the backoff holds it.
    assert_eq!(drain(&app).await, 0);

    make_due(&pool).await;
    assert_eq!(drain(&app).await, 1);
    let accepted = drive.accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0].body["status"], "RUNNING");
    assert_eq!(
        attempts(&pool, bought.id).await,
        vec![(false, Some(500)), (true, Some(200))]
    );
    assert_eq!(officex_rows(&pool, bought.id).await[0].0, "delivered");
    // Delivered rows are never sent again.
    make_due(&pool).await;
    assert_eq!(drain(&app).await, 0);
    assert_eq!(drive.accepted().len(), 1);
    assert!(alerts(&pool).await.is_empty());
}

#[sqlx::test]
async fn rows_of_one_purchase_collapse_into_one_call(pool: PgPool) {
    let drive = StandInDrive::start().await;
    let app = spawn(pool.clone()).await;
    let bought = buy(&pool, &drive.host(), true).await;
    drive.create_record(&bought.officex_id, &vendor().user_id());
    // Finalize also announcing the provisioning → active change: two rows, one current state.
    let mut conn = pool.acquire().await.unwrap();
    notify::enqueue(
        &mut conn,
        Channel::Officex,
        "purchase.status_changed",
        Some(bought.id),
        &json!({}),
        None,
    )
    .await
    .unwrap();
    drop(conn);
    assert_eq!(drain(&app).await, 2);
    assert_eq!(drive.accepted().len(), 1);
    let rows = officex_rows(&pool, bought.id).await;
    assert!(rows.iter().all(|r| r.0 == "delivered"), "{rows:?}");
}

#[sqlx::test]
async fn a_record_not_created_yet_is_retried_until_it_exists(pool: PgPool) {
    let drive = StandInDrive::start().await;
    let app = spawn(pool.clone()).await;
    let bought = buy(&pool, &drive.host(), true).await;

    // The client's purchases/create has not landed: 404, retried.
    assert_eq!(drain(&app).await, 1);
    assert_eq!(
        drive.rejected(),
        vec![(404, format!("no record {}", bought.officex_id))]
    );
    let rows = officex_rows(&pool, bought.id).await;
    assert_eq!(rows[0].0, "pending", "{rows:?}");

    drive.create_record(&bought.officex_id, &vendor().user_id());
    make_due(&pool).await;
    assert_eq!(drain(&app).await, 1);
    assert_eq!(drive.accepted().len(), 1);
    assert_eq!(
        attempts(&pool, bought.id).await,
        vec![(false, Some(404)), (true, Some(200))]
    );

    // 24 h after the change a 404 is final, and the operator hears of it.
    let late = buy(&pool, &drive.host(), true).await;
    sqlx::query(
        "update outbox set created_at = now() - interval '25 hours' where purchase_id = $1",
    )
    .bind(late.id.0)
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(drain(&app).await, 1);
    assert_eq!(officex_rows(&pool, late.id).await[0].0, "failed");
    let alerts = alerts(&pool).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["http_status"], 404);
    assert_eq!(alerts[0]["purchase_id"], late.id.to_string());
}

#[sqlx::test]
async fn a_refusal_gives_up_and_alerts(pool: PgPool) {
    let drive = StandInDrive::start().await;
    let app = spawn(pool.clone()).await;
    let bought = buy(&pool, &drive.host(), true).await;
    // The record names another vendor: the drive refuses (401), which will not change.
    drive.create_record(&bought.officex_id, "UserID_someone-else");
    assert_eq!(drain(&app).await, 1);
    assert!(drive.accepted().is_empty());
    let rows = officex_rows(&pool, bought.id).await;
    assert_eq!(rows[0].0, "failed", "{rows:?}");
    let alerts = alerts(&pool).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0]["http_status"], 401);
    // Nothing more is sent for it.
    make_due(&pool).await;
    assert_eq!(drain(&app).await, 0);
}

#[sqlx::test]
async fn a_disallowed_host_is_never_contacted(pool: PgPool) {
    let drive = StandInDrive::start().await;
    let app = spawn(pool.clone()).await;
    // Same drive, named by a host that is not on the list (loopback needs an exact entry).
    let host = format!("http://localhost:{}", drive.addr.port());
    let bought = buy(&pool, &host, true).await;
    drive.create_record(&bought.officex_id, &vendor().user_id());
    assert_eq!(drain(&app).await, 1);
    assert_eq!(drive.requests(), 0);
    let rows = officex_rows(&pool, bought.id).await;
    assert_eq!(rows[0].0, "failed");
    assert!(
        rows[0]
            .2
            .as_deref()
            .unwrap()
            .contains("OFFICEX_ALLOWED_HOSTS"),
        "{rows:?}"
    );
    assert_eq!(alerts(&pool).await.len(), 1);
}

#[sqlx::test]
async fn rows_without_officex_data_complete_as_skipped(pool: PgPool) {
    let drive = StandInDrive::start().await;
    let app = spawn(pool.clone()).await;
    let bought = buy(&pool, &drive.host(), false).await;
    assert_eq!(drain(&app).await, 1);
    let rows = officex_rows(&pool, bought.id).await;
    assert_eq!(rows[0].0, "skipped");
    assert!(rows[0].2.as_deref().unwrap().contains("no OfficeX record"));
    assert_eq!(attempts(&pool, bought.id).await, vec![(true, None)]);
    assert_eq!(drive.requests(), 0);
    make_due(&pool).await;
    assert_eq!(drain(&app).await, 0);
}

#[sqlx::test]
async fn without_an_identity_updates_are_off_and_rows_are_skipped(pool: PgPool) {
    let drive = StandInDrive::start().await;
    let app = spawn_app_with(pool.clone(), &[("OFFICEX_ALLOWED_HOSTS", "127.0.0.1")]).await;
    assert!(app.state.officex.is_none());
    let bought = buy(&pool, &drive.host(), true).await;
    drive.create_record(&bought.officex_id, &vendor().user_id());
    assert_eq!(drain(&app).await, 1);
    let rows = officex_rows(&pool, bought.id).await;
    assert_eq!(rows[0].0, "skipped");
    assert!(rows[0].2.as_deref().unwrap().contains("off"), "{rows:?}");
    assert_eq!(drive.requests(), 0);
}

async fn build(pool: PgPool, extra: &[(&str, &str)]) -> anyhow::Result<Application> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = Config::from_vars(&test_vars("http://127.0.0.1:1", extra)).unwrap();
    Application::build_with(config, pool, listener).await
}

#[sqlx::test]
async fn an_identity_without_a_matching_vendor_id_stops_the_server(pool: PgPool) {
    let expected = vendor().user_id();
    let err = build(pool.clone(), &[("VENDOR_OFFICEX_SEED_PHRASE", PHRASE)])
        .await
        .err()
        .expect("refused without VENDOR_ID")
        .to_string();
    assert!(
        err.contains("VENDOR_ID is not set")
            && err.contains("VENDOR_OFFICEX_SEED_PHRASE")
            && err.contains(&expected),
        "{err}"
    );
    assert!(!err.contains("amber"), "{err}");

    let other = VendorIdentity::from_raw_key(&[42; 32]).user_id();
    let err = build(
        pool.clone(),
        &[
            ("VENDOR_OFFICEX_SEED_PHRASE", PHRASE),
            ("VENDOR_ID", &other),
        ],
    )
    .await
    .err()
    .expect("refused with another VENDOR_ID")
    .to_string();
    assert!(
        err.contains("does not match") && err.contains(&other) && err.contains(&expected),
        "{err}"
    );

    // Anon@ is stripped; the PEM source works the same way.
    let anon = format!("Anon@{expected}");
    build(
        pool.clone(),
        &[("VENDOR_OFFICEX_SEED_PHRASE", PHRASE), ("VENDOR_ID", &anon)],
    )
    .await
    .expect("Anon@UserID_… is accepted");
    let pem = "-----BEGIN PRIVATE KEY-----\\nMC4CAQAwBQYDK2VwBCIEIAgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYn\\n-----END PRIVATE KEY-----";
    let err = build(
        pool.clone(),
        &[("VENDOR_IDENTITY_PEM", pem), ("VENDOR_ID", &expected)],
    )
    .await
    .err()
    .expect("the PEM is another identity")
    .to_string();
    assert!(err.contains("VENDOR_IDENTITY_PEM"), "{err}");
    let pem_id = VendorIdentity::from_pem(pem).unwrap().user_id();
    build(
        pool.clone(),
        &[("VENDOR_IDENTITY_PEM", pem), ("VENDOR_ID", &pem_id)],
    )
    .await
    .expect("matching PEM identity");
    let err = build(
        pool,
        &[
            ("VENDOR_IDENTITY_PEM", pem),
            ("VENDOR_OFFICEX_SEED_PHRASE", PHRASE),
            ("VENDOR_ID", &pem_id),
        ],
    )
    .await
    .err()
    .expect("two identities are ambiguous")
    .to_string();
    assert!(err.contains("not both"), "{err}");
}

/// The stand-in's check itself: the server's real token passes; a forged, expired or
/// wrong-principal one does not.
#[test]
fn the_stand_in_checks_tokens_like_the_canister() {
    let vendor = vendor();
    let org = org_id();
    let now = token::now_ms();
    let bearer = |t: &str| format!("Bearer {t}");

    let real = token::signature_token(&vendor, &org, now).unwrap();
    let (user, challenge) = verify_token(Some(&bearer(real.expose_secret())), now).unwrap();
    assert_eq!(user, vendor.user_id());
    assert_eq!(
        challenge.drive_canister_id,
        org.trim_start_matches("DriveID_")
    );
    // Unpadded base64 is accepted too (the canister pads).
    let unpadded = real.expose_secret().trim_end_matches('=').to_owned();
    assert!(verify_token(Some(&bearer(&unpadded)), now).is_ok());
    // 30 s window.
    assert!(verify_token(Some(&bearer(real.expose_secret())), now + 30_000).is_ok());

    let expired = token::signature_token(&vendor, &org, now - 31_000).unwrap();
    assert_eq!(
        verify_token(Some(&bearer(expired.expose_secret())), now).unwrap_err(),
        "challenge expired"
    );

    let decode = |t: &str| -> SignatureToken {
        serde_json::from_slice(&base64::engine::general_purpose::STANDARD.decode(t).unwrap())
            .unwrap()
    };
    let encode = |t: &SignatureToken| {
        bearer(&base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(t).unwrap()))
    };
    let attacker = VendorIdentity::from_raw_key(&[66; 32]);

    // Forged: the vendor's key and principal, signed by someone else.
    let mut forged = decode(real.expose_secret());
    forged.signature = attacker
        .sign(&forged.challenge.signed_bytes().unwrap())
        .unwrap();
    assert_eq!(
        verify_token(Some(&encode(&forged)), now).unwrap_err(),
        "signature does not verify"
    );
    // Tampered: a valid signature over another challenge.
    let mut tampered = decode(real.expose_secret());
    tampered.challenge.timestamp_ms += 1;
    assert_eq!(
        verify_token(Some(&encode(&tampered)), now).unwrap_err(),
        "signature does not verify"
    );
    // Wrong principal: the attacker's valid signature, claiming the vendor's principal.
    let challenge = SignatureChallenge {
        timestamp_ms: now,
        drive_canister_id: org.trim_start_matches("DriveID_").into(),
        self_auth_principal: attacker.public_key().to_vec(),
        canonical_principal: vendor.principal().to_text(),
    };
    let wrong = SignatureToken {
        auth_type: "SIGNATURE".into(),
        signature: attacker.sign(&challenge.signed_bytes().unwrap()).unwrap(),
        challenge,
    };
    assert_eq!(
        verify_token(Some(&encode(&wrong)), now).unwrap_err(),
        "canonical principal does not match the key"
    );
    // Not a token at all.
    for bad in [None, Some("Basic abc".to_owned()), Some(bearer("!!!"))] {
        assert!(verify_token(bad.as_deref(), now).is_err());
    }
    let api_key =
        base64::engine::general_purpose::STANDARD.encode(r#"{"auth_type":"API_KEY","value":"x"}"#);
    assert!(verify_token(Some(&bearer(&api_key)), now).is_err());
}

/// Over HTTP, the stand-in answers a bad token with the canister's 401 envelope.
#[tokio::test]
async fn the_stand_in_answers_bad_tokens_with_the_401_envelope() {
    let drive = StandInDrive::start().await;
    let attacker = VendorIdentity::from_raw_key(&[66; 32]);
    let expired = token::signature_token(&attacker, &org_id(), token::now_ms() - 60_000).unwrap();
    let response = reqwest::Client::new()
        .post(format!(
            "{}/v1/drive/{}/purchases/update",
            drive.host(),
            org_id()
        ))
        .bearer_auth(expired.expose_secret())
        .json(&json!({"id": "PurchaseID_x", "status": "RUNNING"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"err": {"code": 401, "message": "Unauthorized"}})
    );
    assert_eq!(
        drive.rejected(),
        vec![(401, "challenge expired".to_owned())]
    );
}
