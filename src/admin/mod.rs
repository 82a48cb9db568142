//! The vendor's console behind `/v1/admin/…`: read models over purchases, the ledger, deposits,
//! sweeps, the notifications outbox, cost imports and billing tokens, and the operator's actions.
//! Every action is idempotent by key ([`Idempotency`]) and written to the audit log
//! ([`audit`]) in the action's own transaction.

pub mod chains;
pub mod cost_imports;
pub mod notifications;
pub mod operators;
pub mod overview;
pub mod purchases;
pub mod refunds;
pub mod stats;
pub mod sweeps;
pub mod tokens;

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sha2::{Digest, Sha256};
use sqlx::{PgConnection, PgPool};

use crate::billing::BillingError;
use crate::domain::page::Page;

/// Console failures, mapped to HTTP at the edge.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// `what` (purchase, sweep, notification, token) does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The target's state does not allow the action.
    #[error("{0}")]
    InvalidState(String),
    /// A bad input, with its stable code.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The action conflicts with what exists (409), with its stable code.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("the idempotency key {0:?} was already used with a different request")]
    IdempotencyConflict(String),
    /// A chain's RPC could not be reached (retryable; nothing changed).
    #[error("{0}")]
    ChainUnavailable(String),
    #[error(transparent)]
    Billing(#[from] BillingError),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl AdminError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }
}

/// Who acts: through what, where the request came from and its idempotency key (if any).
#[derive(Debug, Clone, Default)]
pub struct Actor {
    /// The audit log's `actor`.
    pub source: Source,
    /// The client's address (`TRUSTED_PROXIES` honoured).
    pub client_ip: Option<IpAddr>,
    pub idempotency: Option<Idempotency>,
    /// The signed-in operator (admin API); `None` elsewhere, where the audit log names the source
    /// (`cli`, `customer`; `admin-token` for an admin call without one).
    pub operator: Option<operators::SignedIn>,
}

impl Actor {
    /// The operator at the server's command line (`vendor-server tokens …`, `sweeps retry`).
    pub fn cli() -> Self {
        Self {
            source: Source::Cli,
            ..Self::default()
        }
    }
}

/// Where an audited action comes from (the audit log's `actor`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Source {
    /// The admin API (`ADMIN_TOKEN`): the console or a script.
    #[default]
    Admin,
    /// The `vendor-server` command line on the server.
    Cli,
    /// A customer on their own purchase (customer key).
    Customer,
}

impl Source {
    /// The audit log's `operator_name` when no operator account acted.
    fn operator_name(self) -> &'static str {
        match self {
            Self::Admin => operators::BOOTSTRAP_NAME,
            Self::Cli => "cli",
            Self::Customer => "customer",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Cli => "cli",
            Self::Customer => "customer",
        }
    }
}

/// An idempotency key with the fingerprint of the request it was first used with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    request_hash: Vec<u8>,
}

impl Idempotency {
    /// `route` names the action and its target (e.g. `POST /v1/admin/purchases/<id>/adjustments`);
    /// `body` is the request body without its `idempotency_key` (object keys are sorted, so the
    /// same content always hashes the same).
    pub fn new(key: impl Into<String>, route: &str, body: &serde_json::Value) -> Self {
        let mut body = body.clone();
        if let Some(map) = body.as_object_mut() {
            map.remove("idempotency_key");
        }
        let mut hasher = Sha256::new();
        hasher.update(route.as_bytes());
        hasher.update(b"\n");
        hasher.update(body.to_string().as_bytes());
        Self {
            key: key.into(),
            request_hash: hasher.finalize().to_vec(),
        }
    }

    /// The fingerprint of the request the key was first used with.
    pub fn request_hash(&self) -> &[u8] {
        &self.request_hash
    }
}

/// An action's result, and whether it is the replay of an earlier request with the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done<T> {
    pub value: T,
    pub replayed: bool,
}

/// Claims the actor's idempotency key inside the action's transaction. `Some` is the stored answer
/// of the first request with this key (the caller returns it without acting); a different request
/// with the same key is [`AdminError::IdempotencyConflict`]. A concurrent request with the same key
/// waits here until the first commits (then replays it) or rolls back (then acts).
pub(crate) async fn claim_key<T: DeserializeOwned>(
    conn: &mut PgConnection,
    actor: &Actor,
) -> Result<Option<Done<T>>, AdminError> {
    let Some(idem) = &actor.idempotency else {
        return Ok(None);
    };
    // Keys are kept 30 days (SPEC §9); admin actions are rare, so expired ones go here.
    sqlx::query!("delete from admin_idempotency where created_at < now() - interval '30 days'")
        .execute(&mut *conn)
        .await?;
    let inserted = sqlx::query!(
        "insert into admin_idempotency (key, request_hash, response) values ($1, $2, 'null')
         on conflict (key) do nothing",
        idem.key,
        idem.request_hash
    )
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(None);
    }
    let stored = sqlx::query!(
        "select request_hash, response from admin_idempotency where key = $1",
        idem.key
    )
    .fetch_one(&mut *conn)
    .await?;
    if stored.request_hash != idem.request_hash {
        return Err(AdminError::IdempotencyConflict(idem.key.clone()));
    }
    let value = serde_json::from_value(stored.response)
        .map_err(|e| AdminError::Internal(format!("stored admin answer unreadable: {e}")))?;
    Ok(Some(Done {
        value,
        replayed: true,
    }))
}

/// Stores the answer replayed to later requests with the actor's key (same transaction as the
/// action). Pass a copy without secrets: a replay never shows a secret again.
pub(crate) async fn save_answer(
    conn: &mut PgConnection,
    actor: &Actor,
    answer: &impl Serialize,
) -> Result<(), AdminError> {
    let Some(idem) = &actor.idempotency else {
        return Ok(());
    };
    let response = serde_json::to_value(answer)
        .map_err(|e| AdminError::Internal(format!("cannot store the admin answer: {e}")))?;
    sqlx::query!(
        "update admin_idempotency set response = $2 where key = $1",
        idem.key,
        response
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What an audit row records.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    /// e.g. `purchase.adjust`, `sweep.retry`, `token.create`.
    pub action: &'static str,
    /// `purchase`, `sweep`, `notification` or `token`.
    pub target_type: &'static str,
    pub target_id: String,
    pub reason: Option<String>,
    /// What the action did; never a secret.
    pub details: serde_json::Value,
}

/// Ends an audited action: stores its answer under the actor's idempotency key, writes the audit row
/// and commits, all in the action's transaction.
pub(crate) async fn finish<T: Serialize>(
    mut tx: sqlx::Transaction<'_, sqlx::Postgres>,
    actor: &Actor,
    answer: T,
    entry: AuditEntry,
) -> Result<Done<T>, AdminError> {
    save_answer(&mut tx, actor, &answer).await?;
    audit(&mut tx, actor, entry).await?;
    tx.commit().await?;
    Ok(Done {
        value: answer,
        replayed: false,
    })
}

/// Writes one audit row in the caller's transaction; returns its id.
pub(crate) async fn audit(
    conn: &mut PgConnection,
    actor: &Actor,
    entry: AuditEntry,
) -> Result<i64, AdminError> {
    let (operator_id, operator_name) = match &actor.operator {
        Some(op) => (op.id, op.name.clone()),
        None => (None, actor.source.operator_name().to_owned()),
    };
    let id = sqlx::query_scalar!(
        "insert into admin_audit (action, target_type, target_id, reason, details, client_ip, idempotency_key,
             actor, operator_id, operator_name)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) returning audit_id",
        entry.action,
        entry.target_type,
        entry.target_id,
        entry.reason,
        entry.details,
        actor.client_ip.map(|ip| ip.to_string()),
        actor.idempotency.as_ref().map(|i| i.key.clone()),
        actor.source.as_str(),
        operator_id,
        operator_name,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

/// One audit row as listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct AuditRecord {
    pub id: i64,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub reason: Option<String>,
    pub details: serde_json::Value,
    pub client_ip: Option<String>,
    pub idempotency_key: Option<String>,
    /// `admin` (the admin API), `cli` (the command line) or `customer` (on their own purchase).
    pub actor: String,
    /// The operator account that acted (`null` for `ADMIN_TOKEN`, the CLI and customers).
    pub operator_id: Option<i64>,
    /// Who acted: the operator's name, `admin-token` (ADMIN_TOKEN), `cli` or `customer`.
    pub operator_name: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

/// Filters of the audit list (all optional).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// The operator's name (`admin-token`, `cli`, `customer` for the other actors).
    pub operator_name: Option<String>,
    pub operator_id: Option<i64>,
}

/// The audit log, newest first.
pub async fn audit_log(
    pool: &PgPool,
    filter: &AuditFilter,
    before: Option<i64>,
    limit: i64,
) -> Result<Page<AuditRecord>, AdminError> {
    let rows = sqlx::query_as!(
        AuditRecord,
        "select audit_id as id, action, target_type, target_id, reason, details, client_ip, idempotency_key,
                actor, operator_id, operator_name, created_at
         from admin_audit
         where ($1::bigint is null or audit_id < $1)
           and ($2::text is null or action = $2)
           and ($3::text is null or target_type = $3)
           and ($4::text is null or target_id = $4)
           and ($5::text is null or operator_name = $5)
           and ($6::bigint is null or operator_id = $6)
         order by audit_id desc limit $7",
        before,
        filter.action,
        filter.target_type,
        filter.target_id,
        filter.operator_name,
        filter.operator_id,
        limit + 1
    )
    .fetch_all(pool)
    .await?;
    Ok(Page::from_rows(rows, limit, |r| r.id.to_string()))
}

/// A reason as operators give it: trimmed, 1 to 500 characters when `required`.
pub(crate) fn reason(reason: Option<&str>, required: bool) -> Result<Option<String>, AdminError> {
    let reason = reason.map(str::trim).filter(|r| !r.is_empty());
    match reason {
        None if required => Err(AdminError::invalid(
            "missing_field",
            "reason is required (1 to 500 characters)",
        )),
        Some(r) if r.chars().count() > 500 => Err(AdminError::invalid(
            "invalid_body",
            "reason is longer than 500 characters",
        )),
        r => Ok(r.map(str::to_owned)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_fingerprints_ignore_the_key_and_key_order() {
        let a = Idempotency::new(
            "k",
            "POST /x",
            &serde_json::json!({"a": 1, "b": "2", "idempotency_key": "k"}),
        );
        let b = Idempotency::new("k", "POST /x", &serde_json::json!({"b": "2", "a": 1}));
        let c = Idempotency::new("k", "POST /y", &serde_json::json!({"b": "2", "a": 1}));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn reasons_are_trimmed_and_bounded() {
        assert!(reason(None, true).is_err());
        assert!(reason(Some("  "), true).is_err());
        assert_eq!(reason(Some(" x "), true).unwrap().as_deref(), Some("x"));
        assert_eq!(reason(None, false).unwrap(), None);
        assert!(reason(Some(&"x".repeat(501)), false).is_err());
    }
}
