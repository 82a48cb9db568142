//! `Application`: the one startup seam `main` and the tests share.

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use sqlx::PgPool;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::catalog::CatalogFile;
use crate::config::{Config, HttpLimits};
use crate::state::AppState;
use crate::{api, db, jobs, officex, providers};

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Connects to the database, migrates, syncs the catalog and binds `HOST:PORT`.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let pool = db::connect(&config.database).await?;
        let addr = format!("{}:{}", config.server.host, config.server.port);
        let listener = TcpListener::bind(&addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (HOST/PORT)"))?;
        Self::build_with(config, pool, listener).await
    }

    /// Same, on a given pool and listener (tests bind port 0).
    pub async fn build_with(
        config: Config,
        pool: PgPool,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let catalog = CatalogFile::load(&config.offers_file).context("OFFERS_FILE")?;
        // The vendor identity and VENDOR_ID are checked before anything else starts.
        let officex = officex::from_config(&config)?;
        db::migrate(&pool).await?;
        match db::setting_warnings(&pool).await {
            Ok(warnings) => warnings.iter().for_each(|w| tracing::warn!("{w}")),
            Err(e) => tracing::warn!(error = %e, "could not read the database's settings"),
        }
        catalog
            .sync(&pool)
            .await
            .context("syncing the offers file to the database")?;
        let mut state = AppState::new(pool, Arc::new(config))?;
        // A chain id the RPC contradicts stops the start (SPEC §9).
        state.chains.verify_chain_ids().await?;
        state.officex = officex;
        state.providers = providers::Providers::from_config(&state.config, &state.pool).await;
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The resource providers, to register more before serving (tests inject their own).
    pub fn providers_mut(&mut self) -> &mut crate::providers::Providers {
        &mut self.state.providers
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight requests (bounded by the
    /// request timeout) and stops the background jobs.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        self.run_until_stopped_with(shutdown, |app| app).await
    }

    /// [`Self::run_until_stopped`] with the HTTP application wrapped by `wrap` first (the
    /// integration tests check every response against the OpenAPI document this way).
    pub async fn run_until_stopped_with(
        self,
        shutdown: CancellationToken,
        wrap: impl FnOnce(Router) -> Router,
    ) -> anyhow::Result<()> {
        let Self { listener, state } = self;
        tracing::info!(
            addr = %listener.local_addr()?,
            public_base_url = %state.config.server.public_base_url,
            "vendor-server listening"
        );
        let jobs = if state.config.jobs_enabled {
            Some(jobs::spawn_all(&state, shutdown.clone()))
        } else {
            None
        };
        let limits = state.config.server.limits.clone();
        // Draining ends with the longest a request may run (the timeout layer), plus a margin.
        let drain = state.config.server.request_timeout + Duration::from_secs(5);
        let gateway = state.gemini.clone();
        let app = wrap(api::router(state));
        let served = serve(listener, app, limits, drain, shutdown.clone()).await;
        shutdown.cancel();
        // Gemini calls whose clients left are still being read and charged.
        if let Some(gateway) = gateway {
            gateway.settled(drain).await;
        }
        if let Some(mut jobs) = jobs {
            while let Some(result) = jobs.join_next().await {
                if let Err(e) = result {
                    tracing::error!(error = %e, "background job ended abnormally");
                }
            }
        }
        served.context("HTTP server failed")?;
        tracing::info!("vendor-server stopped");
        Ok(())
    }
}

/// Serves HTTP/1.1 on `listener` with the listener limits: a header read timeout and size cap
/// (hyper's), at most `max_connections` connections at once (the rest wait in the backlog), and
/// connections idle for `keep_alive_timeout` closed. On `shutdown` it stops accepting, lets every
/// connection finish its request in flight, and gives up on stragglers after `drain`.
async fn serve(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    drain: Duration,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes)
        .keep_alive(true);
    let http = Arc::new(http);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let connections = TaskTracker::new();
    let hard_stop = CancellationToken::new();
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let connection = serve_connection(
            Arc::clone(&http),
            stream,
            peer,
            app.clone(),
            limits.keep_alive_timeout,
            shutdown.clone(),
            hard_stop.clone(),
        );
        connections.spawn(async move {
            connection.await;
            drop(permit);
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(drain, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the drain period; closing them"
        );
        hard_stop.cancel();
        connections.wait().await;
    }
    Ok(())
}

/// Requests in flight on one connection and when the last one ended (ms since `started`).
struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    last_done_ms: AtomicU64,
}

impl Activity {
    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Resolves once no request has been in flight for `idle`.
    async fn idle_for(&self, idle: Duration) {
        let idle_ms = u64::try_from(idle.as_millis()).unwrap_or(u64::MAX);
        loop {
            let quiet_ms = self
                .elapsed_ms()
                .saturating_sub(self.last_done_ms.load(Ordering::Acquire));
            if self.in_flight.load(Ordering::Acquire) == 0 && quiet_ms >= idle_ms {
                return;
            }
            let wait = if self.in_flight.load(Ordering::Acquire) == 0 {
                idle_ms - quiet_ms
            } else {
                idle_ms
            };
            tokio::time::sleep(Duration::from_millis(wait.max(10))).await;
        }
    }
}

/// Marks a request in flight until dropped.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        Self(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .last_done_ms
            .store(self.0.elapsed_ms(), Ordering::Release);
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn serve_connection(
    http: Arc<hyper::server::conn::http1::Builder>,
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    keep_alive: Duration,
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity {
        started: Instant::now(),
        in_flight: AtomicUsize::new(0),
        last_done_ms: AtomicU64::new(0),
    });
    let service = {
        let activity = Arc::clone(&activity);
        hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let in_flight = InFlight::new(&activity);
            let response = app.clone().oneshot(request);
            async move {
                let response = response.await;
                drop(in_flight);
                response
            }
        })
    };
    let mut connection = pin!(http.serve_connection(TokioIo::new(stream), service));
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, %peer, "connection ended with an error");
                }
                return;
            }
            () = shutdown.cancelled(), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            () = activity.idle_for(keep_alive), if !closing => {
                connection.as_mut().graceful_shutdown();
                closing = true;
            }
            () = hard_stop.cancelled() => return,
        }
    }
}
