//! PostgreSQL: the connection pool and migrations.

use anyhow::Context;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};

use crate::config::{DatabaseConfig, redact_url};

/// The embedded migrations (`migrations/`).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!();

/// Connects and checks the database answers. Waits are bounded: a pool that cannot hand out a
/// connection within `acquire_timeout` fails the request (503) instead of hanging.
pub async fn connect(config: &DatabaseConfig) -> anyhow::Result<PgPool> {
    let url = config.url.expose_secret();
    let options: PgConnectOptions = url.parse().with_context(|| {
        format!(
            "DATABASE_URL {} is not a valid PostgreSQL URL",
            redact_url(url)
        )
    })?;
    let failed = || {
        format!(
            "cannot connect to the database at {} (DATABASE_URL)",
            redact_url(url)
        )
    };
    // One direct connection first: its error names the cause (connection refused, unknown database,
    // authentication) where the pool would only report its own timeout.
    match tokio::time::timeout(config.acquire_timeout, PgConnection::connect_with(&options)).await {
        Ok(Ok(connection)) => {
            let _ = connection.close().await;
        }
        Ok(Err(e)) => return Err(anyhow::Error::from(e).context(failed())),
        Err(_) => anyhow::bail!(
            "{}: no answer within {:?} (DATABASE_ACQUIRE_TIMEOUT_SECS)",
            failed(),
            config.acquire_timeout
        ),
    }
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(config.acquire_timeout)
        // No ping before each acquire (a round trip on every query): a connection broken by a
        // database restart fails its query (503) and is dropped; idle and aged ones are recycled.
        .test_before_acquire(false)
        .idle_timeout(std::time::Duration::from_secs(300))
        .max_lifetime(std::time::Duration::from_secs(1800))
        .connect_with(options)
        .await
        .with_context(failed)?;
    Ok(pool)
}

/// Applies pending migrations.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    MIGRATOR
        .run(pool)
        .await
        .context("database migration failed")
}

/// Server settings the ledger's tables depend on that are not as they should be, as operator
/// warnings. Today: `autovacuum` off. Without it nothing removes dead rows (the Gemini gateway's
/// reservations churn) and no statistics are refreshed, so plans go stale as the ledger grows. The
/// soak measured it: meter-usage p50 rose from 35 ms to 77 ms in 3 minutes, and one `VACUUM ANALYZE`
/// brought it back to 31 ms.
pub async fn setting_warnings(pool: &PgPool) -> Result<Vec<String>, sqlx::Error> {
    let autovacuum: Option<String> = sqlx::query_scalar("select current_setting('autovacuum')")
        .fetch_one(pool)
        .await?;
    Ok(match autovacuum.as_deref() {
        Some("off") => vec![
            "PostgreSQL runs with autovacuum = off: dead rows pile up and query plans go stale as the \
             ledger grows (meter-usage slows down). Turn it on (the default), or run VACUUM ANALYZE \
             regularly."
                .to_owned(),
        ],
        _ => Vec::new(),
    })
}

/// Whether a database error means "cannot reach the database" rather than a bug.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_) => true,
        // 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, 08xxx connection exceptions.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}
