//! Operators of the console (SPEC §9 "Operators"): named accounts with a role and their own token.
//!
//! - Roles, lowest first: `viewer` reads, `operator` also acts (every mutating admin route),
//!   `owner` also manages operators and billing tokens. [`required_role`] is the one rule the admin
//!   API applies to every route under `/v1/admin/` (by method, plus an explicit owner-only list),
//!   so a new route gets it without a per-handler check.
//! - Tokens (`vso_…`, 32 random bytes) are stored only as SHA-256 hashes and compared in constant
//!   time; every request reads the table, so a revoke holds from the very next request.
//! - `ADMIN_TOKEN` stays the bootstrap owner, named [`BOOTSTRAP_NAME`] (it has no row).
//! - Create and revoke are audited (`operator.create`, `operator.revoke`) and idempotent by key,
//!   from the API (owners) as from the CLI (actor `cli`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use super::{Actor, AdminError, AuditEntry, Done};
use crate::billing::keys::{self, KeyKind};
use crate::domain::page::Page;

/// The audit log's name for `ADMIN_TOKEN`, the bootstrap owner.
pub const BOOTSTRAP_NAME: &str = "admin-token";
/// Names no operator may take: the audit log's other actors.
const RESERVED_NAMES: [&str; 4] = [BOOTSTRAP_NAME, "cli", "customer", "admin"];

/// What an operator may do; ordered (`Viewer < Operator < Owner`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
#[schema(as = OperatorRole)]
pub enum Role {
    /// Reads every admin route (GET).
    Viewer,
    /// Also acts: adjustments, status actions, refunds, retries, rescans.
    Operator,
    /// Also manages operators and billing tokens.
    Owner,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Owner => "owner",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = AdminError;

    fn from_str(s: &str) -> Result<Self, AdminError> {
        match s.trim() {
            "viewer" => Ok(Self::Viewer),
            "operator" => Ok(Self::Operator),
            "owner" => Ok(Self::Owner),
            other => Err(AdminError::invalid(
                "invalid_role",
                format!("role must be owner, operator or viewer, not {other:?}"),
            )),
        }
    }
}

/// Routes only owners may call, whatever the method: operators. Billing tokens are owner-only
/// for every method but reads (see [`required_role`]).
const OWNER_ONLY: [&str; 1] = ["/v1/admin/operators"];
/// Routes whose mutations only owners may call (reads stay open to viewers).
const OWNER_MUTATIONS: [&str; 1] = ["/v1/admin/tokens"];

/// Whether `path` is `prefix` or below it (`/v1/admin/tokens/{id}`).
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The role a request to the admin route `path` (its template, e.g. `/v1/admin/tokens/{id}`) with
/// `method` needs: reads (GET, HEAD) need `viewer`, every other method `operator`; operators'
/// routes and billing-token mutations need `owner`.
pub fn required_role(method: &axum::http::Method, path: &str) -> Role {
    let read = matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD);
    if OWNER_ONLY.iter().any(|p| under(path, p))
        || (!read && OWNER_MUTATIONS.iter().any(|p| under(path, p)))
    {
        Role::Owner
    } else if read {
        Role::Viewer
    } else {
        Role::Operator
    }
}

/// Who is signed in: an operator account (`id`), or the bootstrap owner (`ADMIN_TOKEN`, no id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = SignedInOperator)]
pub struct SignedIn {
    /// The operator's id; `null` for `ADMIN_TOKEN` (the bootstrap owner).
    pub id: Option<i64>,
    /// The operator's name (`admin-token` for `ADMIN_TOKEN`), as the audit log shows it.
    pub name: String,
    pub role: Role,
}

impl SignedIn {
    /// `ADMIN_TOKEN`.
    pub fn bootstrap() -> Self {
        Self {
            id: None,
            name: BOOTSTRAP_NAME.to_owned(),
            role: Role::Owner,
        }
    }
}

/// The live (not revoked) operator whose token is `presented`, if any. Reads the table on every
/// call (no cache: a revoke holds from the next request); the stored hash is compared in constant
/// time.
pub async fn authenticate(pool: &PgPool, presented: &str) -> Result<Option<SignedIn>, AdminError> {
    if !presented.starts_with(KeyKind::Operator.prefix()) {
        return Ok(None);
    }
    let row = sqlx::query!(
        "select operator_id, name, role, token_hash from operators
         where token_hash = $1 and revoked_at is null",
        keys::hash(presented)
    )
    .fetch_optional(pool)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    if !keys::matches(presented, &row.token_hash) {
        return Ok(None);
    }
    Ok(Some(SignedIn {
        id: Some(row.operator_id),
        name: row.name,
        role: row.role.parse()?,
    }))
}

/// Whether any operator account is live (the admin API exists without `ADMIN_TOKEN` then).
pub async fn any_live(pool: &PgPool) -> Result<bool, AdminError> {
    Ok(sqlx::query_scalar!(
        r#"select exists (select 1 from operators where revoked_at is null) as "live!""#
    )
    .fetch_one(pool)
    .await?)
}

/// An operator as listed (never the token).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct OperatorRow {
    pub id: i64,
    pub name: String,
    pub role: Role,
    /// The token's first characters, to recognise it.
    pub display_prefix: String,
    /// `active` or `revoked`.
    pub status: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new operator: the token is in `token` this once (a replay with the same idempotency key
/// answers `null` there: the token is never stored).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct OperatorCreated {
    #[serde(flatten)]
    pub row: OperatorRow,
    pub token: Option<String>,
}

struct Raw {
    operator_id: i64,
    name: String,
    role: String,
    display_prefix: String,
    created_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

impl TryFrom<Raw> for OperatorRow {
    type Error = AdminError;

    fn try_from(r: Raw) -> Result<Self, AdminError> {
        Ok(Self {
            id: r.operator_id,
            name: r.name,
            role: r.role.parse()?,
            display_prefix: r.display_prefix,
            status: if r.revoked_at.is_some() {
                "revoked"
            } else {
                "active"
            }
            .into(),
            created_at: r.created_at,
            revoked_at: r.revoked_at,
        })
    }
}

/// Every operator, newest first (revoked ones too).
pub async fn list(pool: &PgPool) -> Result<Page<OperatorRow>, AdminError> {
    let rows = sqlx::query_as!(
        Raw,
        "select operator_id, name, role, display_prefix, created_at, revoked_at
         from operators order by operator_id desc"
    )
    .fetch_all(pool)
    .await?;
    Ok(Page {
        items: rows
            .into_iter()
            .map(OperatorRow::try_from)
            .collect::<Result<_, _>>()?,
        next_cursor: None,
    })
}

/// A name as operators give it: trimmed, 1 to 64 characters of letters, digits and `.`, `_`, `-`,
/// `@`, `+`, space; not one of the other actors' names.
fn valid_name(name: &str) -> Result<String, AdminError> {
    let name = name.trim();
    let ok_chars = name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+' | ' '));
    if name.is_empty() || name.chars().count() > 64 || !ok_chars {
        return Err(AdminError::invalid(
            "invalid_name",
            "name must be 1 to 64 characters: letters, digits, spaces and . _ - @ +",
        ));
    }
    if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(AdminError::invalid(
            "invalid_name",
            format!("{name:?} is reserved for the audit log's other actors"),
        ));
    }
    Ok(name.to_owned())
}

/// Creates an operator (as `operators create`): the token is returned once. Audited (never with
/// the token), idempotent by key; a name already taken is 409 `operator_name_taken`.
pub async fn create(
    pool: &PgPool,
    name: &str,
    role: Role,
    actor: &Actor,
) -> Result<Done<OperatorCreated>, AdminError> {
    let name = valid_name(name)?;
    let mut tx = pool.begin().await?;
    if let Some(replay) = super::claim_key(&mut tx, actor).await? {
        return Ok(replay);
    }
    let key = keys::generate(KeyKind::Operator);
    let inserted = sqlx::query_as!(
        Raw,
        "insert into operators (name, role, token_hash, display_prefix) values ($1, $2, $3, $4)
         on conflict (name) do nothing
         returning operator_id, name, role, display_prefix, created_at, revoked_at",
        name,
        role.as_str(),
        key.hash,
        key.display_prefix
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(raw) = inserted else {
        return Err(AdminError::Conflict {
            code: "operator_name_taken",
            message: format!("an operator named {name:?} already exists (names are never reused)"),
        });
    };
    let row = OperatorRow::try_from(raw)?;
    super::save_answer(
        &mut tx,
        actor,
        &OperatorCreated {
            row: row.clone(),
            token: None,
        },
    )
    .await?;
    super::audit(
        &mut tx,
        actor,
        AuditEntry {
            action: "operator.create",
            target_type: "operator",
            target_id: row.id.to_string(),
            reason: None,
            details: serde_json::json!({
                "name": row.name, "role": row.role, "display_prefix": row.display_prefix,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Done {
        value: OperatorCreated {
            row,
            token: Some(keys::reveal(&key.secret).to_owned()),
        },
        replayed: false,
    })
}

/// Revokes an operator's token at once (as `operators revoke`); revoking twice is fine. Audited,
/// idempotent by key.
///
/// The last owner is never revoked (409 `last_owner`): nobody could manage operators and billing
/// tokens from the console any more. `bootstrap_owner` says whether `ADMIN_TOKEN` is configured:
/// it is an owner that stays, so with it no owner account is the last one. The live owners are
/// locked first, so two owners revoking each other at once leave one.
pub async fn revoke(
    pool: &PgPool,
    id: i64,
    bootstrap_owner: bool,
    actor: &Actor,
) -> Result<Done<OperatorRow>, AdminError> {
    let mut tx = pool.begin().await?;
    if let Some(replay) = super::claim_key(&mut tx, actor).await? {
        return Ok(replay);
    }
    let owners = sqlx::query_scalar!(
        "select operator_id from operators where role = 'owner' and revoked_at is null
         order by operator_id for update",
    )
    .fetch_all(&mut *tx)
    .await?;
    if !bootstrap_owner && owners == [id] {
        return Err(AdminError::Conflict {
            code: "last_owner",
            message: format!(
                "operator {id} is the last owner: revoking it would leave nobody who can manage operators and billing tokens. Create another owner first (`vendor-server operators create --name NAME --role owner`), or configure ADMIN_TOKEN"
            ),
        });
    }
    let raw = sqlx::query_as!(
        Raw,
        "update operators set revoked_at = coalesce(revoked_at, now()) where operator_id = $1
         returning operator_id, name, role, display_prefix, created_at, revoked_at",
        id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AdminError::NotFound("operator"))?;
    let row = OperatorRow::try_from(raw)?;
    let entry = AuditEntry {
        action: "operator.revoke",
        target_type: "operator",
        target_id: id.to_string(),
        reason: None,
        details: serde_json::json!({"name": row.name, "role": row.role}),
    };
    super::finish(tx, actor, row, entry).await
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::*;

    #[test]
    fn reads_need_a_viewer_actions_an_operator_management_an_owner() {
        let cases = [
            (Method::GET, "/v1/admin/overview", Role::Viewer),
            (Method::GET, "/v1/admin/me", Role::Viewer),
            (Method::GET, "/v1/admin/tokens", Role::Viewer),
            (
                Method::POST,
                "/v1/admin/purchases/{id}/adjustments",
                Role::Operator,
            ),
            (
                Method::DELETE,
                "/v1/admin/something-new/{id}",
                Role::Operator,
            ),
            (Method::PUT, "/v1/admin/something-new", Role::Operator),
            (Method::POST, "/v1/admin/tokens", Role::Owner),
            (Method::DELETE, "/v1/admin/tokens/{id}", Role::Owner),
            (Method::GET, "/v1/admin/operators", Role::Owner),
            (Method::POST, "/v1/admin/operators", Role::Owner),
            (Method::POST, "/v1/admin/operators/{id}/revoke", Role::Owner),
            // A prefix of a word is not the route.
            (Method::POST, "/v1/admin/tokensx", Role::Operator),
        ];
        for (method, path, want) in cases {
            assert_eq!(required_role(&method, path), want, "{method} {path}");
        }
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Owner);
    }

    #[test]
    fn names_are_bounded_and_never_an_actor_s() {
        assert_eq!(valid_name("  Alice B.  ").unwrap(), "Alice B.");
        for bad in [
            "",
            "  ",
            "cli",
            "Admin-Token",
            "customer",
            "a\nb",
            "x/y",
            &"a".repeat(65),
        ] {
            assert!(valid_name(bad).is_err(), "{bad:?}");
        }
    }
}
