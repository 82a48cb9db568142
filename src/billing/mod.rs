//! Purchases, their prepaid balance and the append-only ledger.

pub mod cost_explorer;
pub mod cost_import;
pub mod cur;
pub mod cur_sample;
pub mod events;
pub mod history;
pub mod keys;
pub mod ledger;
pub mod meter;
pub mod purchases;
pub mod s3_usage;
pub mod statement;
pub mod tokens;

use crate::domain::money::UsdMicros;

/// Billing failures, mapped to HTTP at the edge.
#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("purchase not found")]
    PurchaseNotFound,
    /// Not a live billing token, or a purchase that does not exist: the same 401 either way.
    #[error("unauthorized")]
    Unauthorized,
    /// The purchase was deleted: nothing moves its balance any more.
    #[error("this purchase was deleted")]
    PurchaseDeleted,
    #[error("the balance would overflow")]
    Overflow,
    #[error("a ledger entry with reference {0:?} already exists with different content")]
    ReferenceConflict(String),
    #[error("{0}")]
    Invalid(String),
    /// The purchase's status does not allow the operation (e.g. resuming one nobody suspended).
    #[error("{0}")]
    InvalidState(String),
    #[error("idempotency key {0:?} was already used with a different request")]
    IdempotencyConflict(String),
    #[error("billing token {0} not found")]
    TokenNotFound(i64),
    #[error("too many usage records are waiting; retry shortly")]
    Overloaded,
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl BillingError {
    /// A copy for each of several waiters (database errors become `Unavailable`/`Internal`).
    pub fn share(&self) -> Self {
        match self {
            Self::PurchaseNotFound => Self::PurchaseNotFound,
            Self::Unauthorized => Self::Unauthorized,
            Self::PurchaseDeleted => Self::PurchaseDeleted,
            Self::Overflow => Self::Overflow,
            Self::ReferenceConflict(r) => Self::ReferenceConflict(r.clone()),
            Self::Invalid(m) => Self::Invalid(m.clone()),
            Self::InvalidState(m) => Self::InvalidState(m.clone()),
            Self::IdempotencyConflict(k) => Self::IdempotencyConflict(k.clone()),
            Self::TokenNotFound(id) => Self::TokenNotFound(*id),
            Self::Overloaded => Self::Overloaded,
            Self::Unavailable(m) => Self::Unavailable(m.clone()),
            Self::Internal(m) => Self::Internal(m.clone()),
            Self::Db(e) if crate::db::is_unavailable(e) => Self::Unavailable(e.to_string()),
            Self::Db(e) => Self::Internal(e.to_string()),
        }
    }
}

/// Purchase lifecycle (SPEC §9).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PurchaseStatus {
    Provisioning,
    Active,
    Low,
    Critical,
    Suspended,
    Deleted,
    Failed,
}

impl PurchaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Provisioning => "provisioning",
            Self::Active => "active",
            Self::Low => "low",
            Self::Critical => "critical",
            Self::Suspended => "suspended",
            Self::Deleted => "deleted",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "provisioning" => Self::Provisioning,
            "active" => Self::Active,
            "low" => Self::Low,
            "critical" => Self::Critical,
            "suspended" => Self::Suspended,
            "deleted" => Self::Deleted,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    /// Whether the balance decides this status (the others are set by provisioning/deletion).
    pub fn follows_balance(self) -> bool {
        matches!(
            self,
            Self::Active | Self::Low | Self::Critical | Self::Suspended
        )
    }

    /// The OfficeX purchase record status for this one.
    pub fn officex(self) -> &'static str {
        match self {
            Self::Provisioning | Self::Failed => "AWAITING",
            Self::Active | Self::Low => "RUNNING",
            Self::Critical => "PAYMENT_REQUIRED",
            Self::Suspended => "BLOCKED",
            Self::Deleted => "CANCELED",
        }
    }
}

/// Balance thresholds of one purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Triggers {
    pub low: UsdMicros,
    pub critical: UsdMicros,
    pub termination: UsdMicros,
}

impl Triggers {
    /// The reference's defaults from the first credit `b`: low `min(10, b/5)`, critical
    /// `min(2, b/10)`, termination `max(0.05, b/100)`; each may be overridden by the offer.
    pub fn from_first_credit(
        b: UsdMicros,
        low: Option<UsdMicros>,
        critical: Option<UsdMicros>,
        termination: Option<UsdMicros>,
    ) -> Self {
        let b = b.0.max(0);
        Self {
            low: low.unwrap_or(UsdMicros((b / 5).min(10_000_000))),
            critical: critical.unwrap_or(UsdMicros((b / 10).min(2_000_000))),
            termination: termination.unwrap_or(UsdMicros((b / 100).max(50_000))),
        }
    }

    /// The status a balance-following purchase has at `balance`.
    pub fn status_for(&self, balance: UsdMicros) -> PurchaseStatus {
        if balance <= self.termination {
            PurchaseStatus::Suspended
        } else if balance <= self.critical {
            PurchaseStatus::Critical
        } else if balance <= self.low {
            PurchaseStatus::Low
        } else {
            PurchaseStatus::Active
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_triggers_follow_the_reference() {
        let t = Triggers::from_first_credit(UsdMicros(100_000_000), None, None, None);
        assert_eq!(
            (t.low.0, t.critical.0, t.termination.0),
            (10_000_000, 2_000_000, 1_000_000)
        );
        let t = Triggers::from_first_credit(UsdMicros(2_000_000), None, None, None);
        assert_eq!(
            (t.low.0, t.critical.0, t.termination.0),
            (400_000, 200_000, 50_000)
        );
        let t = Triggers::from_first_credit(UsdMicros(2_000_000), Some(UsdMicros(1)), None, None);
        assert_eq!(t.low.0, 1);
    }

    #[test]
    fn status_follows_thresholds() {
        let t = Triggers {
            low: UsdMicros(10),
            critical: UsdMicros(5),
            termination: UsdMicros(1),
        };
        assert_eq!(t.status_for(UsdMicros(11)), PurchaseStatus::Active);
        assert_eq!(t.status_for(UsdMicros(10)), PurchaseStatus::Low);
        assert_eq!(t.status_for(UsdMicros(5)), PurchaseStatus::Critical);
        assert_eq!(t.status_for(UsdMicros(1)), PurchaseStatus::Suspended);
        assert_eq!(t.status_for(UsdMicros(-3)), PurchaseStatus::Suspended);
    }
}
