//! OfficeX purchase records: the vendor keeps the customer's record true (README step 7 of the
//! original, never built there). Finalize, topups and status changes enqueue an outbox row on
//! `Channel::Officex`; [`worker::run_once`] sends the purchase's current state to the customer's
//! drive with a SIGNATURE token of the vendor's ICP identity.

pub mod client;
pub mod identity;
pub mod token;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

pub use client::{DriveTarget, HostAllowList, HttpOfficexClient, OfficexClient, PurchaseUpdate};
pub use identity::VendorIdentity;

use crate::config::Config;

/// OfficeX failures. Configuration ones stop the server at start; the others are classified by
/// the worker (retry, give up).
#[derive(Debug, thiserror::Error)]
pub enum OfficexError {
    #[error("{var}: {detail}")]
    Identity { var: &'static str, detail: String },
    #[error(
        "VENDOR_ID is not set: with {source_var} configured it must be this identity's user id, {expected}"
    )]
    VendorIdMissing {
        source_var: &'static str,
        expected: String,
    },
    #[error(
        "VENDOR_ID ({configured}) does not match the identity of {source_var}, which is {expected}: \
         fix VENDOR_ID or use the identity of that OfficeX user"
    )]
    VendorIdMismatch {
        source_var: &'static str,
        configured: String,
        expected: String,
    },
    #[error("org host {0} is not on OFFICEX_ALLOWED_HOSTS")]
    HostNotAllowed(String),
    #[error("invalid OfficeX target: {0}")]
    InvalidTarget(String),
    #[error("signing failed: {0}")]
    Signing(String),
    #[error("network error: {0}")]
    Network(String),
    #[error("unexpected drive response: {0}")]
    Protocol(String),
    #[error("drive answered {status}: {message}")]
    Drive {
        status: u16,
        message: String,
        retry_after: Option<Duration>,
    },
}

impl OfficexError {
    fn identity(var: &'static str, detail: impl std::fmt::Display) -> Self {
        Self::Identity {
            var,
            detail: detail.to_string(),
        }
    }
}

/// The OfficeX client `config` asks for, checked at start: `None` (updates off, one warning) without
/// an identity; an error when the identity cannot be loaded or `VENDOR_ID` does not name it.
pub fn from_config(config: &Config) -> Result<Option<Arc<dyn OfficexClient>>, OfficexError> {
    let Some(identity) = VendorIdentity::from_config(&config.officex)? else {
        tracing::warn!(
            "OfficeX purchase record updates are off: set VENDOR_OFFICEX_SEED_PHRASE or \
             VENDOR_IDENTITY_PEM (with VENDOR_ID) to keep customers' records up to date"
        );
        return Ok(None);
    };
    identity.check_vendor_id(config.vendor.id.as_deref())?;
    tracing::info!(
        vendor_id = %identity.user_id(),
        source = identity.source(),
        allowed_hosts = ?config.officex.allowed_hosts,
        "OfficeX purchase record updates on"
    );
    let client = HttpOfficexClient::new(
        Arc::new(identity),
        HostAllowList::new(&config.officex.allowed_hosts),
    )?;
    Ok(Some(Arc::new(client)))
}
