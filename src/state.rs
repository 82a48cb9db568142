//! `AppState`: cheap, cloneable handles every handler and job shares.

use std::sync::Arc;

use sqlx::PgPool;

use crate::billing::meter::Meter;
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
    /// meter-usage debits, coalesced into group-committed transactions.
    pub meter: Meter,
}

impl AppState {
    pub fn new(pool: PgPool, config: Arc<Config>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("vendor-server/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(60))
            .build()?;
        Ok(Self {
            meter: Meter::new(pool.clone()),
            pool,
            config,
            http,
            providers: Providers::default(),
        })
    }
}
