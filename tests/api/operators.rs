//! Operators of the console (SPEC §9 "Operators"): roles on every admin route (walked from the
//! OpenAPI document), audit rows naming their operator, revokes that hold at once, the CLI.

use std::process::{Command, Output};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::fixtures::{buy, database_url};
use crate::helpers::{TestApp, assert_error, spawn_app, spawn_app_with};

const ADMIN: &str = "admin-token-0123456789abcdef";

async fn admin_app(pool: PgPool) -> TestApp {
    spawn_app_with(pool, &[("ADMIN_TOKEN", ADMIN)]).await
}

/// Calls `path` with `token` (a fresh idempotency key on every mutation); status and JSON body.
async fn call(
    app: &TestApp,
    token: &str,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut request = app
        .client
        .request(method.clone(), app.url(path))
        .bearer_auth(token);
    if method != Method::GET {
        request = request.header("idempotency-key", uuid::Uuid::new_v4().to_string());
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let bytes = response.bytes().await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Creates an operator through the API as `ADMIN_TOKEN`; (id, token).
async fn create_operator(app: &TestApp, name: &str, role: &str) -> (i64, String) {
    let (status, body) = call(
        app,
        ADMIN,
        Method::POST,
        "/v1/admin/operators",
        Some(&json!({"name": name, "role": role})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], name);
    assert_eq!(body["role"], role);
    assert_eq!(body["status"], "active");
    let token = body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("vso_") && token.len() == 47, "{token}");
    (body["id"].as_i64().unwrap(), token)
}

/// The role each admin operation needs, as SPEC §9 states it (independently of the server's rule):
/// viewers read, operators act, owners also manage operators and billing tokens.
fn expected_role(method: &str, path: &str) -> u8 {
    let read = method == "get";
    if path.starts_with("/v1/admin/operators") || (!read && path.starts_with("/v1/admin/tokens")) {
        2
    } else if read {
        0
    } else {
        1
    }
}

/// A dummy value for a path parameter: the auth layer answers before the handler parses it.
fn dummy(param: &str) -> &'static str {
    match param {
        "chain_id" => "31337",
        _ => "999999",
    }
}

/// Every `/v1/admin/` operation of the generated document, called with a viewer's, an operator's
/// and an owner's token (dummy ids and bodies): 403 `forbidden_role` exactly where the role is
/// below the route's, anything but 403 (and 401) otherwise. ADMIN_TOKEN is an owner too.
#[sqlx::test]
async fn every_admin_operation_answers_each_role_by_the_rule(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    let (_, viewer) = create_operator(&app, "vera viewer", "viewer").await;
    let (_, operator) = create_operator(&app, "otto operator", "operator").await;
    let (_, owner) = create_operator(&app, "olga owner", "owner").await;
    let tokens = [
        ("viewer", viewer.as_str()),
        ("operator", operator.as_str()),
        ("owner", owner.as_str()),
        ("ADMIN_TOKEN", ADMIN),
    ];
    let doc = serde_json::to_value(vendor_server::api::openapi::document()).unwrap();
    let mut operations = 0;
    let mut by_role = [0; 3];
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/admin/") {
            continue;
        }
        let concrete: String = path
            .split('/')
            .map(|segment| match segment.strip_prefix('{') {
                Some(param) => dummy(param.trim_end_matches('}')).to_owned(),
                None => segment.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/");
        for (method, operation) in item.as_object().unwrap() {
            let need = expected_role(method, path);
            operations += 1;
            by_role[usize::from(need)] += 1;
            assert!(
                operation["responses"]["403"].is_object(),
                "{method} {path} does not document 403"
            );
            let http = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (http != Method::GET).then(|| json!({}));
            for (rank, (who, token)) in tokens.iter().enumerate() {
                let rank = u8::try_from(rank.min(2)).unwrap();
                let got = call(&app, token, http.clone(), &concrete, body.as_ref()).await;
                if rank < need {
                    assert_eq!(
                        got.0,
                        StatusCode::FORBIDDEN,
                        "{who} on {method} {path}: {}",
                        got.1
                    );
                    assert_error(&got, StatusCode::FORBIDDEN, "forbidden_role");
                } else {
                    assert!(
                        got.0 != StatusCode::FORBIDDEN && got.0 != StatusCode::UNAUTHORIZED,
                        "{who} on {method} {path}: {} {}",
                        got.0,
                        got.1
                    );
                }
            }
        }
    }
    // The walk covers the whole admin API, with routes of every role.
    assert!(operations >= 30, "only {operations} admin operations");
    assert!(by_role.iter().all(|n| *n >= 3), "{by_role:?}");
    // No token or an unknown one: 401 whatever the route.
    for token in ["", "vso_0000000000000000000000000000000000000000000"] {
        let got = call(&app, token, Method::GET, "/v1/admin/overview", None).await;
        assert_error(&got, StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

/// `GET /v1/admin/me` names who is signed in; audit rows name their operator (id and name;
/// `admin-token` for ADMIN_TOKEN, `cli` for the command line) and the log filters by them.
#[sqlx::test]
async fn audit_rows_name_their_operator_and_filter_by_them(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    let (alice_id, alice) = create_operator(&app, "alice", "operator").await;
    let p = buy(&pool, "gemini-api-gateway", 10_000_000, None).await;

    let (status, me) = call(&app, &alice, Method::GET, "/v1/admin/me", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me,
        json!({"id": alice_id, "name": "alice", "role": "operator"})
    );
    let (_, me) = call(&app, ADMIN, Method::GET, "/v1/admin/me", None).await;
    assert_eq!(
        me,
        json!({"id": null, "name": "admin-token", "role": "owner"})
    );

    let base = format!("/v1/admin/purchases/{}", p.id);
    let (status, body) = call(
        &app,
        &alice,
        Method::POST,
        &format!("{base}/adjustments"),
        Some(&json!({"amount_usd": "1.5", "reason": "goodwill"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(
        &app,
        ADMIN,
        Method::POST,
        &format!("{base}/suspend"),
        Some(&json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The command line (audited as `cli`).
    vendor_server::admin::operators::create(
        &pool,
        "from the shell",
        vendor_server::admin::operators::Role::Viewer,
        &vendor_server::admin::Actor::cli(),
    )
    .await
    .unwrap();

    let audit = |query: &str| {
        let app = &app;
        let query = query.to_owned();
        async move {
            let (status, page) = call(
                app,
                ADMIN,
                Method::GET,
                &format!("/v1/admin/audit{query}"),
                None,
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{page}");
            page["items"].as_array().unwrap().clone()
        }
    };
    let all = audit("").await;
    let named: Vec<(String, Value, String)> = all
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["operator_id"].clone(),
                r["operator_name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        named,
        vec![
            ("operator.create".into(), Value::Null, "cli".into()),
            ("purchase.suspend".into(), Value::Null, "admin-token".into()),
            ("purchase.adjust".into(), json!(alice_id), "alice".into()),
            ("operator.create".into(), Value::Null, "admin-token".into()),
        ]
    );
    let by_alice = audit("?operator_name=alice").await;
    assert_eq!(by_alice.len(), 1);
    assert_eq!(by_alice[0]["action"], "purchase.adjust");
    assert_eq!(by_alice[0]["target_id"], p.id.to_string());
    assert_eq!(audit(&format!("?operator_id={alice_id}")).await, by_alice);
    let by_admin = audit("?operator_name=admin-token").await;
    assert_eq!(by_admin.len(), 2);
    assert_eq!(audit("?operator_name=cli").await.len(), 1);
    assert!(audit("?operator_name=nobody").await.is_empty());
}

/// A revoked token is refused on the very next request (no cache outlives the revoke); revoking
/// needs an owner; names are never reused.
#[sqlx::test]
async fn a_revoked_operator_is_refused_on_the_very_next_request(pool: PgPool) {
    let app = admin_app(pool.clone()).await;
    let (owner_id, owner) = create_operator(&app, "olga", "owner").await;
    let (id, viewer) = create_operator(&app, "vic", "viewer").await;
    let (status, _) = call(&app, &viewer, Method::GET, "/v1/admin/overview", None).await;
    assert_eq!(status, StatusCode::OK);

    let revoke = format!("/v1/admin/operators/{id}/revoke");
    let denied = call(&app, &viewer, Method::POST, &revoke, None).await;
    assert_error(&denied, StatusCode::FORBIDDEN, "forbidden_role");
    let (status, row) = call(&app, &owner, Method::POST, &revoke, None).await;
    assert_eq!(status, StatusCode::OK, "{row}");
    assert_eq!(row["status"], "revoked");
    assert!(row["revoked_at"].is_string());
    let got = call(&app, &viewer, Method::GET, "/v1/admin/overview", None).await;
    assert_error(&got, StatusCode::UNAUTHORIZED, "unauthorized");

    let (status, list) = call(&app, &owner, Method::GET, "/v1/admin/operators", None).await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<(i64, &str, &str)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["id"].as_i64().unwrap(),
                o["name"].as_str().unwrap(),
                o["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![(id, "vic", "revoked"), (owner_id, "olga", "active")]
    );
    assert!(!list.to_string().contains(&viewer));

    let taken = call(
        &app,
        ADMIN,
        Method::POST,
        "/v1/admin/operators",
        Some(&json!({"name": "vic", "role": "viewer"})),
    )
    .await;
    assert_error(&taken, StatusCode::CONFLICT, "operator_name_taken");
    let bad = call(
        &app,
        ADMIN,
        Method::POST,
        "/v1/admin/operators",
        Some(&json!({"name": "x", "role": "admin"})),
    )
    .await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_role");
    let reserved = call(
        &app,
        ADMIN,
        Method::POST,
        "/v1/admin/operators",
        Some(&json!({"name": "cli", "role": "viewer"})),
    )
    .await;
    assert_error(&reserved, StatusCode::BAD_REQUEST, "invalid_name");
}

/// The last owner cannot be revoked (409 `last_owner`): nobody could manage operators and billing
/// tokens any more. `ADMIN_TOKEN`, when set, is an owner that stays, so an owner account is then
/// never the last one. Two owners revoking each other at once leave one.
#[sqlx::test]
async fn the_last_owner_cannot_be_revoked(pool: PgPool) {
    use vendor_server::admin::{Actor, operators};
    let app = spawn_app(pool.clone()).await;
    let olga = operators::create(&pool, "olga", operators::Role::Owner, &Actor::cli())
        .await
        .unwrap()
        .value;
    let olga_token = olga.token.unwrap();
    let revoke_olga = format!("/v1/admin/operators/{}/revoke", olga.row.id);
    let refused = call(&app, &olga_token, Method::POST, &revoke_olga, None).await;
    assert_error(&refused, StatusCode::CONFLICT, "last_owner");
    assert!(
        refused.1["error"]
            .as_str()
            .unwrap()
            .contains("another owner"),
        "{}",
        refused.1
    );
    // A viewer or an operator is never "the last owner".
    let (status, vic) = call(
        &app,
        &olga_token,
        Method::POST,
        "/v1/admin/operators",
        Some(&json!({"name": "vic", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{vic}");
    let (status, _) = call(
        &app,
        &olga_token,
        Method::POST,
        &format!("/v1/admin/operators/{}/revoke", vic["id"]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // With a second owner, olga may go; then oscar is the last.
    let (status, oscar) = call(
        &app,
        &olga_token,
        Method::POST,
        "/v1/admin/operators",
        Some(&json!({"name": "oscar", "role": "owner"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{oscar}");
    let oscar_token = oscar["token"].as_str().unwrap().to_owned();
    let (status, row) = call(&app, &olga_token, Method::POST, &revoke_olga, None).await;
    assert_eq!(status, StatusCode::OK, "{row}");
    assert_eq!(row["status"], "revoked");
    // Revoking an owner already revoked stays fine.
    let (status, _) = call(&app, &oscar_token, Method::POST, &revoke_olga, None).await;
    assert_eq!(status, StatusCode::OK);
    let revoke_oscar = format!("/v1/admin/operators/{}/revoke", oscar["id"]);
    let refused = call(&app, &oscar_token, Method::POST, &revoke_oscar, None).await;
    assert_error(&refused, StatusCode::CONFLICT, "last_owner");
    let (status, me) = call(&app, &oscar_token, Method::GET, "/v1/admin/me", None).await;
    assert_eq!(status, StatusCode::OK, "{me}");

    // Two owners revoking each other at the same moment: one of them stays.
    let (status, pia) = call(
        &app,
        &oscar_token,
        Method::POST,
        "/v1/admin/operators",
        Some(&json!({"name": "pia", "role": "owner"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{pia}");
    let pia_token = pia["token"].as_str().unwrap().to_owned();
    let revoke_pia = format!("/v1/admin/operators/{}/revoke", pia["id"]);
    let (a, b) = tokio::join!(
        call(&app, &oscar_token, Method::POST, &revoke_pia, None),
        call(&app, &pia_token, Method::POST, &revoke_oscar, None),
    );
    // The loser is refused as the last owner (409), or, when the winner committed before the
    // loser's request was signed in, as revoked (401): never both revoked.
    let mut codes = [a.0, b.0];
    codes.sort();
    assert!(
        codes == [StatusCode::OK, StatusCode::UNAUTHORIZED]
            || codes == [StatusCode::OK, StatusCode::CONFLICT],
        "{codes:?} {} {}",
        a.1,
        b.1
    );
    let live: i64 = sqlx::query_scalar(
        "select count(*) from operators where role = 'owner' and revoked_at is null",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(live, 1);

    // With ADMIN_TOKEN set, the bootstrap owner stays: the last owner account may go.
    let with_token = admin_app(pool.clone()).await;
    let (_, last) = call(&with_token, ADMIN, Method::GET, "/v1/admin/operators", None).await;
    let last_id = last["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["role"] == "owner" && o["status"] == "active")
        .unwrap()["id"]
        .clone();
    let (status, row) = call(
        &with_token,
        ADMIN,
        Method::POST,
        &format!("/v1/admin/operators/{last_id}/revoke"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{row}");
    assert_eq!(row["status"], "revoked");
}

fn cli(pool: &PgPool, args: &[&str]) -> Output {
    cli_with(pool, args, &[])
}

fn cli_with(pool: &PgPool, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let dir = std::env::temp_dir().join(format!("vendor-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vendor-server"))
        .args(args)
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url(pool))
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// `vendor-server operators create|list|revoke`: the token printed once signs in (even without
/// ADMIN_TOKEN, which is otherwise what turns the admin API on); revoke holds at once; audited
/// as `cli`.
#[sqlx::test]
async fn operators_from_the_cli(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    // Neither ADMIN_TOKEN nor an operator: the admin API does not exist.
    let off = call(&app, "anything", Method::GET, "/v1/admin/me", None).await;
    assert_error(&off, StatusCode::NOT_FOUND, "not_found");

    let out = cli(
        &pool,
        &["operators", "create", "--name", "Carol", "--role", "owner"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("shown only now"), "{stderr}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("vso_") && token.len() == 47, "{token}");

    let (status, me) = call(&app, &token, Method::GET, "/v1/admin/me", None).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["name"], "Carol");
    assert_eq!(me["role"], "owner");
    let nobody = call(&app, "", Method::GET, "/v1/admin/me", None).await;
    assert_error(&nobody, StatusCode::UNAUTHORIZED, "unauthorized");

    let bad = cli(
        &pool,
        &["operators", "create", "--name", "Dan", "--role", "boss"],
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("owner, operator or viewer"));

    let list = cli(&pool, &["operators", "list"]);
    let listed = String::from_utf8(list.stdout).unwrap();
    assert!(
        listed.contains("Carol\towner") && listed.contains("active"),
        "{listed}"
    );
    assert!(
        listed.contains(&token[..12]) && !listed.contains(&token),
        "{listed}"
    );
    let id = listed.split('\t').next().unwrap().trim().to_owned();

    // Carol is the last owner: refused, saying why and what to do.
    let refused = cli(&pool, &["operators", "revoke", &id]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("last owner") && stderr.contains("operators create"),
        "{stderr}"
    );
    // With ADMIN_TOKEN configured (the bootstrap owner stays), it goes.
    let revoke = cli_with(
        &pool,
        &["operators", "revoke", &id],
        &[("ADMIN_TOKEN", ADMIN)],
    );
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    // No live operator and no ADMIN_TOKEN: the admin API is gone again.
    let gone = call(&app, &token, Method::GET, "/v1/admin/me", None).await;
    assert_error(&gone, StatusCode::NOT_FOUND, "not_found");
    let missing = cli(&pool, &["operators", "revoke", "424242"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no operator with id 424242"));

    let rows: Vec<(String, String, Option<i64>)> = sqlx::query_as(
        "select action, operator_name, operator_id from admin_audit order by audit_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let id: i64 = id.parse().unwrap();
    assert_eq!(
        rows,
        vec![
            ("operator.create".into(), "cli".into(), None),
            ("operator.revoke".into(), "cli".into(), None),
        ]
    );
    assert!(id > 0);
}
