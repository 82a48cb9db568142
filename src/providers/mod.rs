//! Resources a customer buys, behind one trait. The offer's `provider` names the implementation; a new
//! kind of resource is one new module registered in [`Providers::from_config`].

pub mod gemini;
pub mod lifecycle;
pub mod s3;
pub mod upgrade;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;
use sqlx::PgPool;

use crate::catalog::Offer;
use crate::config::Config;
use crate::domain::ids::PurchaseId;

/// Provider failures. `retryable` ones are retried with backoff; the purchase stays creditable.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("{0} is not configured on this server")]
    NotConfigured(&'static str),
    #[error("temporary failure: {0}")]
    Retryable(String),
    #[error("{0}")]
    Permanent(String),
}

/// What provisioning needs to know.
#[derive(Debug, Clone)]
pub struct ProvisionRequest {
    pub purchase_id: PurchaseId,
    pub offer: Offer,
    pub customer_email: Option<String>,
    /// The customer page the receipt links to (absolute, credentials in the fragment). The S3 gift
    /// card carries it as `billing_url` and `endpoint`.
    pub customer_url: String,
}

/// What provisioning delivered. Secrets go to the customer once (the receipt) and are never stored
/// in plain text; `state` is the non-secret resource state kept with the purchase.
#[derive(Debug, Clone, Default)]
pub struct Delivered {
    /// One line for the receipt (`S3 bucket officex-… in us-east-1`).
    pub description: String,
    /// The URL the customer opens to use the resource (gift card redeem URL, customer page); may hold
    /// a secret (the S3 gift card does).
    pub redeem_url: Option<SecretString>,
    /// A code/key shown once (the Gemini gateway key).
    pub redeem_code: Option<SecretString>,
    /// Non-secret state needed to suspend/resume/delete later (bucket, IAM user, key id …).
    pub state: serde_json::Value,
}

/// A resource's new credential (the customer's "rotate"): the secret is shown once and never
/// stored; the one it replaces no longer works.
#[derive(Debug, Clone)]
pub struct NewCredential {
    /// The gateway key, or the S3 secret access key.
    pub secret: SecretString,
    /// S3: the new access key's id.
    pub access_key_id: Option<String>,
    /// The last 4 characters, listed on the customer page.
    pub hint: String,
    /// The resource state to keep from now on (it names the new credential), when it changed.
    pub state: Option<serde_json::Value>,
}

/// What a customer needs to use a resource, never a secret (the customer page shows it).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ResourceInfo {
    /// The provider kind (`s3`, `gemini`).
    pub kind: &'static str,
    /// S3: the bucket's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// S3: the bucket's region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// S3: the endpoint URL clients talk to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Gemini: the base URL to give any Gemini client (the gateway's `/v1beta` API is under it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway_base_url: Option<String>,
}

/// A resource's lifecycle.
#[async_trait]
pub trait ResourceProvider: Send + Sync {
    /// The offer `provider` value this implements (`s3`, `gemini`).
    fn kind(&self) -> &'static str;
    /// Creates the resource. Must clean up after itself on failure (nothing half-made is left).
    async fn provision(&self, request: &ProvisionRequest) -> Result<Delivered, ProviderError>;
    /// Stops use, keeps data (credentials disabled).
    async fn suspend(
        &self,
        purchase_id: PurchaseId,
        state: &serde_json::Value,
    ) -> Result<(), ProviderError>;
    /// Undoes `suspend`.
    async fn resume(
        &self,
        purchase_id: PurchaseId,
        state: &serde_json::Value,
    ) -> Result<(), ProviderError>;
    /// What the customer needs to use the resource described by its stored `state` (no secret).
    fn info(&self, state: &serde_json::Value) -> ResourceInfo {
        let _ = state;
        ResourceInfo {
            kind: self.kind(),
            ..ResourceInfo::default()
        }
    }
    /// Brings a resource made by an older version up to what provisioning does now (the S3
    /// provider's bucket hardening and access logging). Idempotent; nothing to do by default.
    async fn upgrade(
        &self,
        purchase_id: PurchaseId,
        state: &serde_json::Value,
    ) -> Result<(), ProviderError> {
        let _ = (purchase_id, state);
        Ok(())
    }
    /// Issues a new credential for the resource and stops the current one at once. Safe to run again
    /// after a crash halfway (a credential issued then, never delivered, is removed). Resources
    /// without a credential of their own refuse.
    async fn rotate_credential(
        &self,
        purchase_id: PurchaseId,
        state: &serde_json::Value,
    ) -> Result<NewCredential, ProviderError> {
        let _ = (purchase_id, state);
        Err(ProviderError::Permanent(format!(
            "{} resources have no credential to replace",
            self.kind()
        )))
    }
    /// Removes the resource and its data. Safe to run again after a crash halfway.
    async fn delete(
        &self,
        purchase_id: PurchaseId,
        state: &serde_json::Value,
    ) -> Result<(), ProviderError>;
}

/// The configured providers by kind.
#[derive(Clone, Default)]
pub struct Providers(HashMap<&'static str, Arc<dyn ResourceProvider>>);

impl Providers {
    /// The providers whose services are configured: S3 when `AWS_REGION` is set, Gemini when
    /// `GEMINI_API_KEY` is; each missing one is off with one warning.
    pub async fn from_config(config: &Config, pool: &PgPool) -> Self {
        let mut providers = Self::default();
        match &config.aws {
            Some(aws) => {
                providers.insert(Arc::new(s3::S3Provider::from_config(aws, config).await));
            }
            None => tracing::warn!("AWS_REGION is not set: the S3 storage offer is off"),
        }
        match &config.gemini {
            Some(gemini) if !gemini.api_keys.is_empty() => {
                providers.insert(Arc::new(gemini::GeminiProvider::new(
                    pool.clone(),
                    config.server.public_base_url.clone(),
                )));
            }
            _ => tracing::warn!("GEMINI_API_KEY is not set: the Gemini gateway offer is off"),
        }
        providers
    }

    /// Whether a provider of this kind is registered.
    pub fn has(&self, kind: &str) -> bool {
        self.0.contains_key(kind)
    }

    /// Registers (or replaces) a provider.
    pub fn insert(&mut self, provider: Arc<dyn ResourceProvider>) {
        self.0.insert(provider.kind(), provider);
    }

    /// The provider for an offer's `provider` value.
    pub fn get(&self, kind: &str) -> Result<Arc<dyn ResourceProvider>, ProviderError> {
        self.0
            .get(kind)
            .cloned()
            .ok_or(ProviderError::NotConfigured("this offer's provider"))
    }
}
