//! The binary itself: configuration failures give one clear line and a non-zero exit.

use std::process::{Command, Output};

use sqlx::PgPool;

use crate::helpers::{ROOT, spawn_app};

/// Runs the binary in an empty directory (no `.env`) with only the given variables.
fn run(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let dir = std::env::temp_dir().join(format!("vendor-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    Command::new(env!("CARGO_BIN_EXE_vendor-server"))
        .args(args)
        .current_dir(&dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .output()
        .unwrap()
}

#[track_caller]
fn assert_clear_failure(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert!(
        !stderr.contains("RUST_BACKTRACE"),
        "backtrace hint: {stderr}"
    );
}

#[test]
fn missing_database_url_is_a_clear_error() {
    let out = run(&["serve"], &[]);
    assert_clear_failure(&out, "DATABASE_URL is not set");
}

#[test]
fn malformed_variable_is_a_clear_error() {
    let out = run(
        &[],
        &[
            ("DATABASE_URL", "postgres://x@127.0.0.1/x"),
            ("PORT", "99999"),
        ],
    );
    assert_clear_failure(&out, "PORT is invalid");
}

#[test]
fn unreachable_database_is_a_clear_error_without_the_password() {
    let out = run(
        &["migrate"],
        &[
            ("DATABASE_URL", "postgres://user:hunter2@127.0.0.1:1/db"),
            ("DATABASE_ACQUIRE_TIMEOUT_SECS", "2"),
        ],
    );
    assert_clear_failure(&out, "cannot connect to the database");
    // The cause a newcomer can act on, not only the pool's timeout.
    assert_clear_failure(&out, "Connection refused");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("hunter2"));
}

#[test]
fn missing_offers_file_is_a_clear_error() {
    let db = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let out = run(
        &["serve"],
        &[
            ("DATABASE_URL", &db),
            ("OFFERS_FILE", "/nonexistent/offers.toml"),
            ("PORT", "0"),
        ],
    );
    assert_clear_failure(&out, "OFFERS_FILE");
}

#[sqlx::test]
async fn healthcheck_subcommand_reports_status(pool: PgPool) {
    let app = spawn_app(pool).await;
    let url = app.url("/health");
    let out = tokio::task::spawn_blocking(move || {
        run(&["healthcheck", &url, "--timeout-secs", "60"], &[])
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = app.url("/nope");
    let out = tokio::task::spawn_blocking(move || run(&["healthcheck", &bad], &[]))
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn example_env_file_is_a_valid_configuration() {
    // Parsed exactly as the server reads `.env`.
    let vars = dotenvy::from_path_iter(format!("{ROOT}/.env.example"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    vendor_server::config::Config::from_vars(&vars).expect(".env.example must load");
}

#[test]
fn copied_example_env_runs_the_cli() {
    // `cp .env.example .env` then any command reads it without complaint (migrate fails only on the
    // database, proving the file itself parsed).
    let dir = std::env::temp_dir().join(format!("vendor-env-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(format!("{ROOT}/.env.example")).unwrap();
    let text = text.replace("127.0.0.1:5432", "127.0.0.1:1");
    std::fs::write(dir.join(".env"), text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vendor-server"))
        .arg("migrate")
        .current_dir(&dir)
        .env_clear()
        .env("DATABASE_ACQUIRE_TIMEOUT_SECS", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot connect to the database"),
        "{stderr}"
    );
}

/// `vendor-server openapi | head`: a reader that stops early ends the output quietly (exit 0),
/// not with a panic about a broken pipe.
#[test]
fn openapi_into_a_closed_pipe_exits_quietly() {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_vendor-server"))
        .arg("openapi")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut head = [0_u8; 16];
    stdout.read_exact(&mut head).unwrap();
    assert!(String::from_utf8_lossy(&head).starts_with('{'));
    // The document is far larger than a pipe's buffer: the rest is written to a closed pipe.
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}
