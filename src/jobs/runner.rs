//! The job loop: runs one pass after another until shutdown, sleeping when idle or after an error.
//! It knows nothing of the jobs it runs (each pass is a closure).

use std::future::Future;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::domain::Outcome;

/// Runs `pass` in a loop until cancelled: again at once after work, after `idle` when idle, and after
/// `on_error` when it fails (logged).
pub async fn run_loop<F, Fut>(
    name: &'static str,
    shutdown: CancellationToken,
    idle: Duration,
    on_error: Duration,
    pass: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Outcome>>,
{
    run_loop_woken(name, shutdown, idle, on_error, &Notify::new(), pass).await;
}

/// [`run_loop`] that also starts the next pass as soon as `wake` is notified (a notification during
/// a pass starts another one right after it).
pub async fn run_loop_woken<F, Fut>(
    name: &'static str,
    shutdown: CancellationToken,
    idle: Duration,
    on_error: Duration,
    wake: &Notify,
    mut pass: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Outcome>>,
{
    loop {
        let wait = match pass().await {
            Ok(Outcome::Processed(_)) => Duration::ZERO,
            Ok(Outcome::Idle) => idle,
            Err(e) => {
                tracing::error!(job = name, error = format!("{e:#}"), "job pass failed");
                on_error
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
            () = wake.notified() => {}
        }
    }
    tracing::info!(job = name, "job stopped");
}
