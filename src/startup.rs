//! `Application`: the one startup seam `main` and the tests share.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::catalog::CatalogFile;
use crate::config::Config;
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
        let served = api::listener::serve(listener, app, limits, drain, shutdown.clone()).await;
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
