//! Background jobs: wiring and scheduling only; each job's logic lives in its domain module and is a
//! plain `run_once` tests call directly.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::state::AppState;

/// What one pass of a job did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Handled this many items; run again soon.
    Processed(usize),
    /// Nothing to do; sleep longer.
    Idle,
}

/// Starts every background job; each stops when `shutdown` is cancelled.
pub fn spawn_all(state: &AppState, shutdown: CancellationToken) -> JoinSet<()> {
    let mut set = JoinSet::new();
    {
        let state = state.clone();
        set.spawn(run_loop(
            "notify",
            shutdown.clone(),
            Duration::from_secs(2),
            Duration::from_secs(10),
            move || {
                let state = state.clone();
                async move { crate::notify::worker::run_once(&state).await }
            },
        ));
    }
    {
        let state = state.clone();
        set.spawn(run_loop(
            "lifecycle",
            shutdown,
            Duration::from_secs(60),
            Duration::from_secs(60),
            move || {
                let state = state.clone();
                async move { crate::billing::lifecycle::run_once(&state).await }
            },
        ));
    }
    set
}

/// Runs `pass` in a loop until cancelled: again at once after work, after `idle` when idle, and after
/// `on_error` when it fails (logged).
pub async fn run_loop<F, Fut>(
    name: &'static str,
    shutdown: CancellationToken,
    idle: Duration,
    on_error: Duration,
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
                tracing::error!(job = name, error = ?e, "job pass failed");
                on_error
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    tracing::info!(job = name, "job stopped");
}
