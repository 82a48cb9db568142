//! `vendor-server tokens create|list|revoke`: a billing token printed once works on meter-usage for
//! any purchase until revoked.

use std::process::{Command, Output};

use reqwest::StatusCode;
use serde_json::json;
use sqlx::PgPool;

use crate::fixtures::{buy, database_url};
use crate::helpers::{assert_error, spawn_app};

fn cli(pool: &PgPool, args: &[&str]) -> Output {
    let dir = std::env::temp_dir().join(format!("vendor-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vendor-server"))
        .args(args)
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", database_url(pool))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    out
}

#[sqlx::test]
async fn billing_tokens_from_the_cli(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let a = buy(&pool, "gemini-api-gateway", 10_000_000, None).await;
    let out = cli(&pool, &["tokens", "create", "--label", "ai-server-1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("vst_") && token.len() == 47, "{token}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("shown only now"));

    let list = cli(&pool, &["tokens", "list"]);
    let listed = String::from_utf8(list.stdout).unwrap();
    assert!(
        listed.contains("ai-server-1") && listed.contains("active"),
        "{listed}"
    );
    assert!(
        listed.contains(&token[..12]) && !listed.contains(&token),
        "{listed}"
    );
    let id = listed.split('\t').next().unwrap().trim().to_owned();

    let path = format!("/v1/purchase/{}/meter-usage", a.id);
    let body = json!({"usage_amount": "1", "usage_unit": "tokens", "billed_amount": "0.5"});
    let (status, answer) = app.post_auth(&path, &token, &body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    let revoke = cli(&pool, &["tokens", "revoke", &id]);
    assert!(
        revoke.status.success(),
        "{}",
        String::from_utf8_lossy(&revoke.stderr)
    );
    assert!(String::from_utf8_lossy(&cli(&pool, &["tokens", "list"]).stdout).contains("revoked"));
    assert_error(
        &app.post_auth(&path, &token, &body).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );

    // Both actions are in the audit log, by actor `cli` (SPEC §9).
    let audited: Vec<(String, String, String)> = sqlx::query_as(
        "select action, target_id, actor from admin_audit where target_type = 'token' order by audit_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        audited,
        vec![
            ("token.create".to_owned(), id.clone(), "cli".to_owned()),
            ("token.revoke".to_owned(), id.clone(), "cli".to_owned()),
        ]
    );

    let unknown = cli(&pool, &["tokens", "revoke", "987654"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no billing token with id 987654"));
    let empty = cli(&pool, &["tokens", "create", "--label", " "]);
    assert_eq!(empty.status.code(), Some(1));
}
