//! `AppState`: cheap, cloneable handles every handler and job shares.

use std::sync::Arc;

use sqlx::PgPool;

use crate::billing::meter::Meter;
use crate::chain::Chains;
use crate::checkout::Checkouts;
use crate::config::Config;
use crate::officex::OfficexClient;
use crate::providers::Providers;
use crate::providers::gemini::Gateway;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub config: Arc<Config>,
    /// Outbound HTTP (webhooks, upstream APIs); pooled connections.
    pub http: reqwest::Client,
    /// Resource providers by offer `provider` kind.
    pub providers: Providers,
    /// Customers' OfficeX purchase records; `None` when no vendor identity is configured (off).
    pub officex: Option<Arc<dyn OfficexClient>>,
    /// The Gemini gateway's upstream client, vendor keys and rate limiter (`None`: gateway off).
    pub gemini: Option<Arc<Gateway>>,
    /// Configured chains, deposit keys and the gas wallet.
    pub chains: Arc<Chains>,
    /// meter-usage debits, coalesced into group-committed transactions.
    pub meter: Meter,
    /// The active offers and lists in memory (read paths do not query the database).
    pub catalog: crate::catalog::Snapshot,
    /// `/health`'s database check, cached for at most a second.
    pub db_check: crate::api::health::DbCheck,
}

impl AppState {
    pub fn new(pool: PgPool, config: Arc<Config>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("vendor-server/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(60))
            .build()?;
        let gemini = config
            .gemini
            .as_ref()
            .filter(|g| !g.api_keys.is_empty())
            .map(|g| Gateway::new(g).map(Arc::new))
            .transpose()?;
        let chains = Arc::new(Chains::from_config(&config)?);
        Ok(Self {
            meter: Meter::new(pool.clone()),
            pool,
            config,
            http,
            providers: Providers::default(),
            officex: None,
            gemini,
            chains,
            catalog: Default::default(),
            db_check: Default::default(),
        })
    }

    /// The handles checkouts work with.
    pub fn checkouts(&self) -> Checkouts {
        Checkouts {
            pool: self.pool.clone(),
            config: Arc::clone(&self.config),
            chains: Arc::clone(&self.chains),
            providers: self.providers.clone(),
            catalog: self.catalog.clone(),
        }
    }
}
