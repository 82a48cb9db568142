//! Credentials on the customer page (SPEC §9 "Customers get what they paid for"): each kind rotated
//! (the old one refused at once, the new one working: a gateway call through the Gemini stand-in,
//! S3 put/get on moto, the customer page's GET), one rotation per idempotency key, the gateway key
//! shown from the receipt while it is kept, never a secret in the purchase view.

use std::sync::Arc;

use aws_sdk_s3::primitives::ByteStream;
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sqlx::PgPool;
use vendor_server::billing::ledger::{self, EntryKind, NewEntry};
use vendor_server::billing::purchases::{self, NewPurchase};
use vendor_server::catalog;
use vendor_server::domain::ids::PurchaseId;
use vendor_server::domain::money::UsdMicros;
use vendor_server::providers::s3::{DiskAuth, GiftCard, S3Provider, S3Settings, S3State};
use vendor_server::providers::{ProvisionRequest, ResourceProvider};

use crate::chain::{Anvil, TestProvider, Wallets};
use crate::checkout::{GEMINI_USDC, Pay, spawn_dyn, spawn_pay_app_dyn};
use crate::gemini::{KeyIn, VENDOR_KEYS, call, json_of, prompt, start_standin};
use crate::helpers::{TestApp, assert_error};
use crate::moto::Moto;

const TOKEN: &str = "admin-token-for-credential-tests-0123456789";
const DATA_KEY: &str = "4242424242424242424242424242424242424242424242424242424242424242";
const FLASH: &str = "gemini-2.5-flash:generateContent";

/// POST with a bearer key and, when given, an Idempotency-Key; (status, idempotent-replayed, body).
async fn post(
    app: &TestApp,
    path: &str,
    bearer: &str,
    idempotency_key: Option<&str>,
    body: &Value,
) -> (StatusCode, bool, Value) {
    let mut request = app
        .client
        .post(app.url(path))
        .bearer_auth(bearer)
        .json(body);
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    if status == StatusCode::OK {
        assert_eq!(response.headers()["cache-control"], "no-store");
    }
    let bytes = response.bytes().await.unwrap();
    (
        status,
        replayed,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn rotate(
    app: &TestApp,
    id: PurchaseId,
    key: &str,
    idem: &str,
    kind: &str,
) -> (StatusCode, bool, Value) {
    post(
        app,
        &format!("/v1/purchase/{id}/credentials/rotate"),
        key,
        Some(idem),
        &json!({"kind": kind}),
    )
    .await
}

fn last4(s: &str) -> String {
    s[s.len() - 4..].to_owned()
}

/// The purchase's listed credential of `kind`: (hint, created_at).
fn listed(view: &Value, kind: &str) -> (Value, Value) {
    let c = view["credentials"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {view}"));
    (c["hint"].clone(), c["created_at"].clone())
}

async fn audit_rows(app: &TestApp, actor: &str) -> Vec<Value> {
    sqlx::query_scalar(
        "select details from admin_audit where action = 'purchase.credentials_rotate' and actor = $1
         order by audit_id",
    )
    .bind(actor)
    .fetch_all(&app.state.pool)
    .await
    .unwrap()
}

/// A purchase of `offer` whose resource `provider` delivered, credited and active, as finalize and
/// provisioning leave it; (id, customer key, what was delivered).
async fn ready_purchase(
    app: &TestApp,
    offer: &str,
    provider: &Arc<dyn ResourceProvider>,
) -> (PurchaseId, String, vendor_server::providers::Delivered) {
    let pool = &app.state.pool;
    let mut conn = pool.acquire().await.unwrap();
    let created = purchases::create(
        &mut conn,
        &NewPurchase {
            offer_id: offer.into(),
            title: offer.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    drop(conn);
    let offer = catalog::find_offer(pool, offer).await.unwrap().unwrap();
    let delivered = provider
        .provision(&ProvisionRequest {
            purchase_id: created.id,
            offer,
            customer_email: None,
            customer_url: app.url("/v1/dashboard/customer"),
        })
        .await
        .unwrap();
    sqlx::query(
        "update purchase set resource_status = 'ready', resource_state = $2 where purchase_id = $1",
    )
    .bind(created.id.0)
    .bind(&delivered.state)
    .execute(pool)
    .await
    .unwrap();
    let mut tx = pool.begin().await.unwrap();
    ledger::post(
        &mut tx,
        created.id,
        &NewEntry::new(EntryKind::Deposit, UsdMicros(5_000_000)).reference("deposit:test"),
    )
    .await
    .unwrap();
    ledger::activate(&mut tx, created.id).await.unwrap();
    tx.commit().await.unwrap();
    (
        created.id,
        created.customer_key.expose_secret().to_owned(),
        delivered,
    )
}

/// An app with the real Gemini gateway in front of the stand-in, and a Gemini purchase.
async fn gemini_purchase(pool: PgPool) -> (TestApp, PurchaseId, String, String) {
    let (_standin, url) = start_standin().await;
    let keys = VENDOR_KEYS.join(",");
    let app = crate::helpers::spawn_app_with(
        pool,
        &[
            ("GEMINI_API_KEY", &keys),
            ("GEMINI_UPSTREAM_URL", &url),
            ("DATA_ENCRYPTION_KEY", DATA_KEY),
            ("ADMIN_TOKEN", TOKEN),
        ],
    )
    .await;
    let provider = app.state.providers.get("gemini").unwrap();
    let (id, customer_key, delivered) = ready_purchase(&app, "gemini-api-gateway", &provider).await;
    let key = delivered.redeem_code.unwrap().expose_secret().to_owned();
    (app, id, customer_key, key)
}

async fn gateway_status(app: &TestApp, key: &str) -> u16 {
    json_of(call(app, key, KeyIn::Header, FLASH, &prompt("hi")).await)
        .await
        .0
        .as_u16()
}

#[sqlx::test]
async fn a_new_gateway_key_works_and_the_old_one_is_refused_at_once(pool: PgPool) {
    let (app, id, customer, old) = gemini_purchase(pool).await;
    assert_eq!(gateway_status(&app, &old).await, 200);
    let (status, view) = app.get_auth(&format!("/v1/purchase/{id}"), &customer).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(listed(&view, "gateway_key").0, json!(last4(&old)));
    assert_eq!(listed(&view, "customer_key").0, json!(last4(&customer)));
    assert!(!view.to_string().contains(&old) && !view.to_string().contains(&customer));

    // Refused without an idempotency key, with another purchase's key, for another kind.
    let path = format!("/v1/purchase/{id}/credentials/rotate");
    let got = post(
        &app,
        &path,
        &customer,
        None,
        &json!({"kind": "gateway_key"}),
    )
    .await;
    assert_error(
        &(got.0, got.2),
        StatusCode::BAD_REQUEST,
        "idempotency_key_required",
    );
    let got = rotate(&app, id, "vsc_wrong", "k1", "gateway_key").await;
    assert_error(&(got.0, got.2), StatusCode::UNAUTHORIZED, "unauthorized");
    let got = rotate(&app, PurchaseId::new(), &customer, "k1", "gateway_key").await;
    assert_error(&(got.0, got.2), StatusCode::UNAUTHORIZED, "unauthorized");
    let got = rotate(&app, id, &customer, "k0", "s3_access_key").await;
    assert_error(&(got.0, got.2), StatusCode::BAD_REQUEST, "invalid_kind");
    let got = rotate(&app, id, &customer, "k0", "password").await;
    assert_error(&(got.0, got.2), StatusCode::BAD_REQUEST, "invalid_kind");
    assert_eq!(gateway_status(&app, &old).await, 200, "nothing rotated yet");

    let (status, replayed, first) = rotate(&app, id, &customer, "k1", "gateway_key").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert!(!replayed);
    let new = first["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("vsg_") && new != old, "{first}");
    assert_eq!(first["kind"], "gateway_key");
    assert_eq!(first["hint"], json!(last4(&new)));
    assert_eq!(
        gateway_status(&app, &old).await,
        403,
        "the old key stops at once"
    );
    assert_eq!(gateway_status(&app, &new).await, 200);

    // The same key again: the same answer, nothing rotated twice; another request with it is 409.
    let (status, replayed, again) = rotate(&app, id, &customer, "k1", "gateway_key").await;
    assert_eq!((status, replayed), (StatusCode::OK, true), "{again}");
    assert_eq!(again, first);
    assert_eq!(gateway_status(&app, &new).await, 200);
    let keys: i64 = sqlx::query_scalar("select count(*) from gateway_key where purchase_id = $1")
        .bind(id.0)
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(keys, 2, "one rotation");
    let got = rotate(&app, id, &customer, "k1", "customer_key").await;
    assert_error(
        &(got.0, got.2),
        StatusCode::CONFLICT,
        "idempotency_key_reused",
    );

    let (_, view) = app.get_auth(&format!("/v1/purchase/{id}"), &customer).await;
    assert_eq!(listed(&view, "gateway_key").0, json!(last4(&new)));
    assert!(!view.to_string().contains(&new));
    let audit = audit_rows(&app, "customer").await;
    assert_eq!(audit, [json!({"kind": "gateway_key", "hint": last4(&new)})]);

    // The console rotates on the customer's behalf: idempotency key required, audited as admin.
    let admin_path = format!("/v1/admin/purchases/{id}/credentials/rotate");
    let got = post(
        &app,
        &admin_path,
        TOKEN,
        None,
        &json!({"kind": "gateway_key"}),
    )
    .await;
    assert_error(
        &(got.0, got.2),
        StatusCode::BAD_REQUEST,
        "idempotency_key_required",
    );
    let got = post(
        &app,
        &admin_path,
        &customer,
        Some("a1"),
        &json!({"kind": "gateway_key"}),
    )
    .await;
    assert_error(&(got.0, got.2), StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, _, by_admin) = post(
        &app,
        &admin_path,
        TOKEN,
        Some("a1"),
        &json!({"kind": "gateway_key"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{by_admin}");
    let third = by_admin["secret"].as_str().unwrap();
    assert_eq!(gateway_status(&app, &new).await, 403);
    assert_eq!(gateway_status(&app, third).await, 200);
    assert_eq!(audit_rows(&app, "admin").await.len(), 1);
    let unknown = format!(
        "/v1/admin/purchases/{}/credentials/rotate",
        PurchaseId::new()
    );
    let got = post(
        &app,
        &unknown,
        TOKEN,
        Some("a2"),
        &json!({"kind": "gateway_key"}),
    )
    .await;
    assert_error(&(got.0, got.2), StatusCode::NOT_FOUND, "purchase_not_found");
}

#[sqlx::test]
async fn a_new_customer_key_opens_the_page_and_the_old_one_only_replays_its_rotation(pool: PgPool) {
    let (app, id, old, _) = gemini_purchase(pool).await;
    let (status, replayed, first) = rotate(&app, id, &old, "c1", "customer_key").await;
    assert_eq!((status, replayed), (StatusCode::OK, false), "{first}");
    let new = first["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("vsc_") && new != old);
    let link = first["customer_url"].as_str().unwrap();
    assert_eq!(
        link,
        app.url(&format!(
            "/v1/dashboard/customer#vendor_purchase_id={id}&customer_billing_api_key={new}"
        ))
    );

    let page = format!("/v1/purchase/{id}");
    let got = app.get_auth(&page, &old).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, view) = app.get_auth(&page, &new).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    assert_eq!(listed(&view, "customer_key").0, json!(last4(&new)));

    // A retry of that very request with the replaced key gets the same answer; nothing else does.
    let (status, replayed, again) = rotate(&app, id, &old, "c1", "customer_key").await;
    assert_eq!((status, replayed), (StatusCode::OK, true), "{again}");
    assert_eq!(again, first);
    let got = rotate(&app, id, &old, "c2", "customer_key").await;
    assert_error(&(got.0, got.2), StatusCode::UNAUTHORIZED, "unauthorized");
    let got = rotate(&app, id, &old, "c1", "gateway_key").await;
    assert_error(&(got.0, got.2), StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, _) = app.get_auth(&page, &new).await;
    assert_eq!(status, StatusCode::OK, "the replay rotated nothing");
    assert_eq!(audit_rows(&app, "customer").await.len(), 1);
}

#[sqlx::test]
async fn a_new_s3_access_key_reaches_the_bucket_and_the_old_one_is_deleted(pool: PgPool) {
    let moto = Moto::start().await;
    let region = "us-east-1";
    let vendor = moto.iam(region, "test", "test");
    vendor
        .create_user()
        .user_name("vendor")
        .send()
        .await
        .unwrap();
    vendor
        .put_user_policy()
        .user_name("vendor")
        .policy_name("all")
        .policy_document(
            json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    let created = vendor
        .create_access_key()
        .user_name("vendor")
        .send()
        .await
        .unwrap();
    let (vendor_id, vendor_secret) = {
        let k = created.access_key().unwrap();
        (
            k.access_key_id().to_owned(),
            k.secret_access_key().to_owned(),
        )
    };
    moto.enforce_iam().await;
    let s3: Arc<dyn ResourceProvider> = Arc::new(S3Provider::with_clients(
        moto.s3(region, &vendor_id, &vendor_secret),
        moto.iam(region, &vendor_id, &vendor_secret),
        S3Settings {
            region: region.into(),
            endpoint_url: Some(moto.url.clone()),
            vendor_name: "Test Vendor".into(),
            officex_app_url: "https://officex.app".into(),
            access_log_bucket: None,
        },
    ));
    let app = spawn_dyn(pool, &[("DATA_ENCRYPTION_KEY", DATA_KEY)], vec![s3.clone()]).await;
    let (id, customer, delivered) = ready_purchase(&app, "aws-s3-storage-giftcard", &s3).await;
    let card = GiftCard::from_redeem_url(delivered.redeem_url.unwrap().expose_secret()).unwrap();
    let old: DiskAuth = serde_json::from_str(&card.auth_json).unwrap();
    let put = |access: String, secret: String, body: &'static [u8]| {
        let client = moto.s3(region, &access, &secret);
        let bucket = old.bucket.clone();
        async move {
            client
                .put_object()
                .bucket(&bucket)
                .key("notes.txt")
                .body(ByteStream::from_static(body))
                .send()
                .await
                .map(|_| ())
        }
    };
    put(old.access_key.clone(), old.secret_key.clone(), b"before")
        .await
        .unwrap();

    let got = rotate(&app, id, &customer, "s1", "gateway_key").await;
    assert_error(&(got.0, got.2), StatusCode::BAD_REQUEST, "invalid_kind");
    let (status, _, first) = rotate(&app, id, &customer, "s1", "s3_access_key").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let access = first["access_key_id"].as_str().unwrap().to_owned();
    let secret = first["secret_access_key"].as_str().unwrap().to_owned();
    assert_eq!(first["secret"], json!(secret));
    assert_ne!(access, old.access_key);
    assert_eq!(first["hint"], json!(last4(&access)));

    // The old key is gone at once; the new one reads and writes the bucket.
    assert!(
        put(old.access_key.clone(), old.secret_key.clone(), b"stale")
            .await
            .is_err(),
        "the old access key still works"
    );
    put(access.clone(), secret.clone(), b"after").await.unwrap();
    let got = moto
        .s3(region, &access, &secret)
        .get_object()
        .bucket(&old.bucket)
        .key("notes.txt")
        .send()
        .await
        .unwrap();
    let body = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(&body[..], b"after");

    // Replayed, not rotated twice: the user holds exactly the new key, and the state names it.
    let (status, replayed, again) = rotate(&app, id, &customer, "s1", "s3_access_key").await;
    assert_eq!((status, replayed), (StatusCode::OK, true));
    assert_eq!(again, first);
    let state: S3State = serde_json::from_value(
        sqlx::query_scalar("select resource_state from purchase where purchase_id = $1")
            .bind(id.0)
            .fetch_one(&app.state.pool)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(state.access_key_id, access);
    let keys = moto
        .iam(region, &vendor_id, &vendor_secret)
        .list_access_keys()
        .user_name(&state.iam_user)
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = keys
        .access_key_metadata()
        .iter()
        .filter_map(|k| k.access_key_id())
        .collect();
    assert_eq!(ids, [access.as_str()]);
    let (_, view) = app.get_auth(&format!("/v1/purchase/{id}"), &customer).await;
    assert_eq!(listed(&view, "s3_access_key").0, json!(last4(&access)));
    assert!(!view.to_string().contains(&secret));
}

#[sqlx::test]
async fn the_gateway_key_is_shown_from_the_receipt_until_it_is_replaced_or_24_hours_pass(
    pool: PgPool,
) {
    let (_standin, url) = start_standin().await;
    let anvil = Anvil::start().await;
    let wallets = Wallets::random();
    let keys = VENDOR_KEYS.join(",");
    let app = spawn_pay_app_dyn(
        pool,
        &anvil,
        &wallets,
        Vec::new(),
        &[("GEMINI_API_KEY", &keys), ("GEMINI_UPSTREAM_URL", &url)],
    )
    .await;
    let p = Pay {
        anvil,
        wallets,
        app,
        gemini: TestProvider::new("unused", 0),
        s3: TestProvider::new("unused", 0),
    };
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_shown").await;
    let r = &f["receipt"];
    assert_eq!(r["status"], "RUNNING", "{f}");
    let gateway_key = r["redeem_code"].as_str().unwrap().to_owned();
    let customer = r["customer_billing_api_key"].as_str().unwrap().to_owned();
    let id: PurchaseId = r["vendor_purchase_id"].as_str().unwrap().parse().unwrap();
    let app = &p.app;

    // What the customer page reads with the customer key alone: the key that works.
    let shown_path = format!("/v1/purchase/{id}/credentials/gateway_key");
    let got = app.get_auth(&shown_path, "vsc_wrong").await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthorized");
    let (status, shown) = app.get_auth(&shown_path, &customer).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["secret"], json!(gateway_key));
    assert_eq!(shown["hint"], json!(last4(&gateway_key)));
    assert_eq!(gateway_status(app, &gateway_key).await, 200);
    let (_, view) = app.get_auth(&format!("/v1/purchase/{id}"), &customer).await;
    assert_eq!(listed(&view, "gateway_key").0, json!(last4(&gateway_key)));
    assert!(!view.to_string().contains(&gateway_key), "{view}");

    // Once replaced, the receipt's key is never shown again (the new one was shown once).
    let (status, _, rotated) = rotate(app, id, &customer, "g1", "gateway_key").await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let got = app.get_auth(&shown_path, &customer).await;
    assert_error(&got, StatusCode::NOT_FOUND, "credential_not_shown");
    assert_eq!(gateway_status(app, &gateway_key).await, 403);
    assert_eq!(
        gateway_status(app, rotated["secret"].as_str().unwrap()).await,
        200
    );

    // A second purchase: shown for 24 hours, then not.
    let (session, address) = p.initiate(GEMINI_USDC).await;
    p.anvil.mint(p.anvil.usdc, address, 2_000_000).await;
    p.anvil.mine(2).await;
    let f = p.finalize(GEMINI_USDC, &session, "PurchaseID_later").await;
    let r = &f["receipt"];
    let customer = r["customer_billing_api_key"].as_str().unwrap();
    let id = r["vendor_purchase_id"].as_str().unwrap();
    let shown_path = format!("/v1/purchase/{id}/credentials/gateway_key");
    let (status, _) = app.get_auth(&shown_path, customer).await;
    assert_eq!(status, StatusCode::OK);
    sqlx::query(
        "update checkout set receipt_sealed_until = now() - interval '1 second'
         where checkout_session_id = $1::uuid",
    )
    .bind(session.strip_prefix("CheckoutSessionID_").unwrap())
    .execute(&app.state.pool)
    .await
    .unwrap();
    let got = app.get_auth(&shown_path, customer).await;
    assert_error(&got, StatusCode::NOT_FOUND, "credential_not_shown");
}
