//! `AppState`: cheap, cloneable handles every handler and job shares.

use std::sync::Arc;

use sqlx::PgPool;

use crate::chain::Chains;
use crate::config::Config;
use crate::providers::Providers;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    /// Outbound HTTP (webhooks, upstream APIs); pooled connections.
    pub http: reqwest::Client,
    /// Resource providers by offer `provider` kind.
    pub providers: Providers,
    /// Configured chains, deposit keys and the gas wallet.
    pub chains: Arc<Chains>,
}

impl AppState {
    pub fn new(pool: PgPool, config: Arc<Config>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("vendor-server/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(60))
            .build()?;
        let chains = Arc::new(Chains::from_config(&config)?);
        Ok(Self {
            pool,
            config,
            http,
            providers: Providers::default(),
            chains,
        })
    }
}
