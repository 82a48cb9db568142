//! `Application`: the one startup seam `main` and the tests share.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
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
        let app = api::router(state);
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
        shutdown.cancel();
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
