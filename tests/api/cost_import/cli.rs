//! `vendor-server billing import --period … [--dry-run]` and `billing runs`, as an operator runs them.

use std::process::Output;

use sqlx::PgPool;

use super::{BUCKET, balance, day, env, part, purchase, row};
use crate::helpers::ROOT;

/// The URL of the test's own database (same server as DATABASE_URL).
fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let db = pool.connect_options().get_database().unwrap().to_owned();
    let (server, _) = base.rsplit_once('/').unwrap();
    format!("{server}/{db}")
}

async fn cli(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let dir = std::env::temp_dir().join(format!("vendor-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_vendor-server"))
        .args(args)
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .output()
        .await
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[sqlx::test]
async fn billing_import_and_runs_from_the_command_line(pool: PgPool) {
    let mut env = env(pool, &[]).await;
    let p = purchase(env.pool(), 10).await;
    let tag = p.to_string();
    env.deliver(
        "2026-03",
        &[part(&[
            row(day(2026, 3, 1), "1", Some(&tag)),
            row(day(2026, 3, 2), "0.5", None),
        ])],
    )
    .await;
    let url = database_url(env.pool());
    let offers = format!("{ROOT}/config/offers.toml");
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("OFFERS_FILE", offers.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ENDPOINT_URL", env.moto.url.as_str()),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("BILLING_BUCKET_NAME", BUCKET),
    ];

    let out = cli(
        &["billing", "import", "--period", "2026-03", "--dry-run"],
        &vars,
    )
    .await;
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("dry run: nothing charged or recorded"),
        "{text}"
    );
    assert!(text.contains(&tag), "{text}");
    assert!(
        text.contains("would charge 1.360000 USD net over 1 purchase(s), 0 ledger row(s)"),
        "{text}"
    );
    assert!(
        text.contains("rows 2 (matched 1, unknown tag 0, untagged 1, malformed 0)"),
        "{text}"
    );
    assert_eq!(balance(env.pool(), p).await, 10_000_000);

    let out = cli(&["billing", "import", "--period", "2026-03"], &vars).await;
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("charged 1.360000 USD net over 1 purchase(s), 1 ledger row(s)"),
        "{text}"
    );
    assert!(text.contains("8.640000"), "balance column: {text}");
    assert_eq!(balance(env.pool(), p).await, 10_000_000 - 1_360_000);

    let out = cli(&["billing", "runs"], &vars).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.lines().any(|l| l.contains("2026-03")
            && l.contains("cur")
            && l.contains("cli")
            && l.contains("succeeded")
            && l.contains("1.360000")),
        "{text}"
    );

    // No manifest for the period: a clear failure; a malformed period: refused by the parser.
    let out = cli(&["billing", "import", "--period", "2025-01"], &vars).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no data for 2025-01"),
        "{}",
        stderr(&out)
    );
    let out = cli(&["billing", "import", "--period", "2026-13"], &vars).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not YYYY-MM"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("panicked"));
}
