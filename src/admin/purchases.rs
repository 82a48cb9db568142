//! Purchases in the console: the searchable list (keyset pages by creation, balance or last
//! activity), one purchase with everything around it, and the operator's actions on it (balance
//! adjustment, suspend, resume, delete).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, QueryBuilder};
use uuid::Uuid;

use super::{Actor, AdminError, AuditEntry, AuditFilter, AuditRecord, Done};
use crate::billing::ledger::{self, EntryKind, NewEntry};
use crate::billing::statement::{self, LedgerItem};
use crate::billing::{BillingError, PurchaseStatus, purchases};
use crate::config::ChainConfig;
use crate::domain::ids::{CheckoutSessionId, PurchaseId};
use crate::domain::money::UsdMicros;
use crate::domain::page::{Page, PageError};

/// What the purchase list is sorted by (newest / largest / most recent first by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SortBy {
    /// Creation time.
    #[default]
    Created,
    /// Balance.
    Balance,
    /// Last activity: the last change of the purchase row (every ledger post, status change, …).
    Activity,
}

impl SortBy {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "created" | "created_at" => Self::Created,
            "balance" | "balance_usd" => Self::Balance,
            "activity" | "last_activity" | "last_activity_at" => Self::Activity,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            Self::Created => "created_at",
            Self::Balance => "balance_micros",
            Self::Activity => "updated_at",
        }
    }
}

/// The purchase list's query.
#[derive(Debug, Clone, Default)]
pub struct PurchaseQuery {
    /// A purchase id (`CustomerPurchaseID_…` or the bare UUID), an OfficeX purchase id, or the start
    /// of a customer email (case-insensitive).
    pub q: Option<String>,
    pub status: Option<PurchaseStatus>,
    pub offer_id: Option<String>,
    pub sort: SortBy,
    /// Smallest first instead of largest/newest first.
    pub ascending: bool,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
    pub limit: i64,
}

/// One purchase as listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PurchaseRow {
    pub id: PurchaseId,
    pub offer_id: String,
    pub title: String,
    pub status: PurchaseStatus,
    /// Suspended by an operator (only `resume` lifts it).
    pub held: bool,
    pub balance_usd: UsdMicros,
    pub customer_email: Option<String>,
    pub officex_purchase_id: Option<String>,
    pub resource_status: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    pub last_activity_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct ListRow {
    purchase_id: Uuid,
    offer_id: String,
    title: String,
    status: String,
    held: bool,
    balance_micros: i64,
    customer_email: Option<String>,
    officex_purchase_id: Option<String>,
    resource_status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn status_of(s: &str) -> Result<PurchaseStatus, AdminError> {
    PurchaseStatus::parse(s).ok_or_else(|| AdminError::Internal(format!("unknown status {s}")))
}

impl TryFrom<ListRow> for PurchaseRow {
    type Error = AdminError;

    fn try_from(r: ListRow) -> Result<Self, AdminError> {
        Ok(Self {
            id: PurchaseId(r.purchase_id),
            offer_id: r.offer_id,
            title: r.title,
            status: status_of(&r.status)?,
            held: r.held,
            balance_usd: UsdMicros(r.balance_micros),
            customer_email: r.customer_email,
            officex_purchase_id: r.officex_purchase_id,
            resource_status: r.resource_status,
            created_at: r.created_at,
            last_activity_at: r.updated_at,
        })
    }
}

/// A position in the list: the sort key of the last row shown and its id (ties broken by id).
fn cursor_of(sort: SortBy, row: &PurchaseRow) -> String {
    let key = match sort {
        SortBy::Created => row.created_at.timestamp_micros(),
        SortBy::Balance => row.balance_usd.0,
        SortBy::Activity => row.last_activity_at.timestamp_micros(),
    };
    format!("{key}_{}", row.id.0)
}

fn parse_cursor(cursor: &str) -> Result<(i64, Uuid), PageError> {
    let (key, id) = cursor.split_once('_').ok_or(PageError::Cursor)?;
    Ok((
        key.parse().map_err(|_| PageError::Cursor)?,
        Uuid::parse_str(id).map_err(|_| PageError::Cursor)?,
    ))
}

/// Escapes `%`, `_` and `\` for a LIKE pattern.
fn like_prefix(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// One page of purchases, keyset-paginated on `(sort key, purchase_id)`. Creation order walks an
/// index from the cursor (a page costs the same anywhere in the list); balance and activity order
/// scan the table (~45 ms a page at 100,000 purchases) so the meter's purchase updates stay HOT.
pub async fn list(pool: &PgPool, query: &PurchaseQuery) -> Result<Page<PurchaseRow>, AdminError> {
    let column = query.sort.column();
    let mut b = QueryBuilder::new(
        "select purchase_id, offer_id, title, status, admin_hold_at is not null as held, balance_micros,
                customer_email, officex_purchase_id, resource_status, created_at, updated_at
         from purchase where true",
    );
    if let Some(q) = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        let id = q
            .parse::<PurchaseId>()
            .map(|p| p.0)
            .ok()
            .or_else(|| Uuid::parse_str(q).ok());
        match id {
            Some(id) => {
                b.push(" and purchase_id = ").push_bind(id);
            }
            None => {
                b.push(" and (officex_purchase_id = ")
                    .push_bind(q.to_owned())
                    .push(" or lower(customer_email) like ")
                    .push_bind(like_prefix(&q.to_lowercase()))
                    .push(")");
            }
        }
    }
    if let Some(status) = query.status {
        b.push(" and status = ").push_bind(status.as_str());
    }
    if let Some(offer) = &query.offer_id {
        b.push(" and offer_id = ").push_bind(offer.clone());
    }
    let (cmp, order) = if query.ascending {
        (">", "asc")
    } else {
        ("<", "desc")
    };
    if let Some(cursor) = query.cursor.as_deref().filter(|c| !c.is_empty()) {
        let (key, id) = parse_cursor(cursor)
            .map_err(|e| AdminError::invalid("invalid_cursor", e.to_string()))?;
        b.push(format_args!(" and ({column}, purchase_id) {cmp} ("));
        match query.sort {
            SortBy::Balance => b.push_bind(key),
            SortBy::Created | SortBy::Activity => {
                b.push_bind(DateTime::<Utc>::from_timestamp_micros(key).ok_or_else(|| {
                    AdminError::invalid("invalid_cursor", PageError::Cursor.to_string())
                })?)
            }
        };
        b.push(", ").push_bind(id).push(")");
    }
    b.push(format_args!(
        " order by {column} {order}, purchase_id {order} limit "
    ))
    .push_bind(query.limit + 1);
    let rows: Vec<ListRow> = b.build_query_as().fetch_all(pool).await?;
    let rows = rows
        .into_iter()
        .map(PurchaseRow::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let sort = query.sort;
    Ok(Page::from_rows(rows, query.limit, |r| cursor_of(sort, r)))
}

/// One purchase with everything the console shows about it. Never a secret: keys are hashes the
/// server cannot reverse; the resource state holds names and ids only.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct PurchaseDetail {
    pub id: PurchaseId,
    pub offer_id: String,
    pub title: String,
    pub status: PurchaseStatus,
    pub held: bool,
    pub balance_usd: UsdMicros,
    pub balance_low_trigger: Option<UsdMicros>,
    pub balance_critical_trigger: Option<UsdMicros>,
    pub balance_termination_trigger: Option<UsdMicros>,
    pub customer_email: Option<String>,
    pub customer_user_id: Option<String>,
    pub customer_org_id: Option<String>,
    pub customer_org_host: Option<String>,
    /// The customer key's display prefix (the key itself is never stored).
    pub customer_key_prefix: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = String, format = DateTime)]
    pub status_changed_at: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_credit_at: Option<DateTime<Utc>>,
    #[schema(value_type = String, format = DateTime)]
    pub last_activity_at: DateTime<Utc>,
    /// A deposit is seen but not confirmed yet.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub pending_deposit_at: Option<DateTime<Utc>>,
    pub resource: Resource,
    pub officex: OfficexRecord,
    pub checkout: Option<CheckoutInfo>,
    /// The newest ledger entries; more with `GET /v1/admin/purchases/{id}/ledger?cursor=`.
    pub ledger: Page<LedgerItem>,
    pub deposits: Vec<DepositRow>,
    pub sweeps: Vec<super::sweeps::SweepRow>,
    pub notifications: Vec<super::notifications::NotificationRow>,
    /// The newest admin actions on this purchase.
    pub audit: Vec<AuditRecord>,
}

/// The provider's resource: its non-secret state (bucket, IAM user, access key id, gateway key id…).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[schema(as = PurchaseResource)]
pub struct Resource {
    /// `none`, `provisioning`, `ready`, `suspended`, `deleted` or `failed`.
    pub status: String,
    pub provider: String,
    pub state: serde_json::Value,
    pub provision_attempts: i32,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_provision_at: Option<DateTime<Utc>>,
    pub last_provision_error: Option<String>,
    /// The Gemini gateway key (id, display prefix, status), when the purchase has one.
    pub gateway_key: Option<GatewayKey>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct GatewayKey {
    #[schema(value_type = String)]
    pub id: Uuid,
    pub key_prefix: String,
    pub status: String,
}

/// The customer's OfficeX purchase record: which status it should show, and the last update sent.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct OfficexRecord {
    pub officex_purchase_id: Option<String>,
    /// The OfficeX status the purchase's status maps to (`RUNNING`, `BLOCKED`, …).
    pub expected_status: String,
    /// The newest OfficeX update in the outbox (`pending`, `delivered`, `failed`, `skipped`).
    pub last_update: Option<super::notifications::NotificationRow>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct CheckoutInfo {
    pub checkout_session_id: CheckoutSessionId,
    pub deposit_address: String,
    pub chain: String,
    pub token: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finalized_at: Option<DateTime<Utc>>,
}

/// One deposit to the purchase's address.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct DepositRow {
    pub id: i64,
    pub chain_id: i64,
    pub tx_hash: String,
    pub log_index: i64,
    pub block_number: i64,
    pub token_symbol: String,
    pub from_address: String,
    /// In the token's smallest unit.
    pub amount_units: String,
    pub amount_usd: UsdMicros,
    /// `pending`, `confirmed`, `credited` or `reorged`.
    pub status: String,
    pub ledger_entry_id: Option<i64>,
    pub sweep_id: Option<i64>,
    pub explorer_url: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub credited_at: Option<DateTime<Utc>>,
}

/// How many deposits, sweeps, notifications and ledger entries the detail shows.
const DETAIL_ROWS: i64 = 50;

/// One purchase with its ledger head, deposits, sweeps, notifications, OfficeX record and resource.
pub async fn detail(
    pool: &PgPool,
    id: PurchaseId,
    chains: &[ChainConfig],
) -> Result<PurchaseDetail, AdminError> {
    let p = sqlx::query!(
        r#"select p.offer_id, p.title, p.status, p.admin_hold_at is not null as "held!", p.balance_micros,
                  p.low_trigger_micros, p.critical_trigger_micros, p.termination_trigger_micros,
                  p.customer_email, p.customer_user_id, p.customer_org_id, p.customer_org_host,
                  p.customer_key_prefix, p.officex_purchase_id, p.resource_state, p.resource_status,
                  p.provision_attempts, p.next_provision_at, p.last_provision_error, p.pending_deposit_at,
                  p.status_changed_at, p.last_credit_at, p.created_at, p.updated_at, o.provider
           from purchase p join offer o using (offer_id) where p.purchase_id = $1"#,
        id.0
    )
    .fetch_optional(pool)
    .await?
    .ok_or(AdminError::NotFound("purchase"))?;
    let status = status_of(&p.status)?;
    let gateway_key = sqlx::query_as!(
        GatewayKey,
        "select gateway_key_id as id, key_prefix, status from gateway_key
         where purchase_id = $1 order by (status <> 'revoked') desc, created_at desc limit 1",
        id.0
    )
    .fetch_optional(pool)
    .await?;
    let checkout = sqlx::query!(
        "select checkout_session_id, deposit_address, chain_name, token_symbol, created_at, finalized_at
         from checkout where purchase_id = $1",
        id.0
    )
    .fetch_optional(pool)
    .await?
    .map(|c| CheckoutInfo {
        checkout_session_id: CheckoutSessionId(c.checkout_session_id),
        deposit_address: c.deposit_address,
        chain: c.chain_name,
        token: c.token_symbol.to_uppercase(),
        created_at: c.created_at,
        finalized_at: c.finalized_at,
    });
    let deposits = sqlx::query!(
        "select d.deposit_id, d.chain_id, d.tx_hash, d.log_index, d.block_number, d.token_symbol, d.from_address,
                d.amount_units::text as \"amount_units!\", d.amount_micros, d.status, d.ledger_entry_id, d.sweep_id,
                d.created_at, d.credited_at
         from deposit d join checkout c using (checkout_session_id)
         where c.purchase_id = $1 order by d.deposit_id desc limit $2",
        id.0,
        DETAIL_ROWS
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|d| DepositRow {
        explorer_url: statement::tx_link(chains, d.chain_id, &d.tx_hash),
        id: d.deposit_id,
        chain_id: d.chain_id,
        tx_hash: d.tx_hash,
        log_index: d.log_index,
        block_number: d.block_number,
        token_symbol: d.token_symbol.to_uppercase(),
        from_address: d.from_address,
        amount_units: d.amount_units,
        amount_usd: UsdMicros(d.amount_micros),
        status: d.status,
        ledger_entry_id: d.ledger_entry_id,
        sweep_id: d.sweep_id,
        created_at: d.created_at,
        credited_at: d.credited_at,
    })
    .collect();
    let sweeps = match &checkout {
        Some(c) => {
            super::sweeps::sweeps_of_address(pool, &c.deposit_address, DETAIL_ROWS, chains).await?
        }
        None => Vec::new(),
    };
    let notifications =
        super::notifications::notifications_of_purchase(pool, id, None, DETAIL_ROWS).await?;
    let last_update = super::notifications::notifications_of_purchase(pool, id, Some("officex"), 1)
        .await?
        .pop();
    let ledger = statement::ledger_page(pool, id, None, DETAIL_ROWS, chains).await?;
    let audit = super::audit_log(
        pool,
        &AuditFilter {
            target_type: Some("purchase".into()),
            target_id: Some(id.to_string()),
            ..Default::default()
        },
        None,
        DETAIL_ROWS,
    )
    .await?
    .items;
    Ok(PurchaseDetail {
        id,
        offer_id: p.offer_id,
        title: p.title,
        status,
        held: p.held,
        balance_usd: UsdMicros(p.balance_micros),
        balance_low_trigger: p.low_trigger_micros.map(UsdMicros),
        balance_critical_trigger: p.critical_trigger_micros.map(UsdMicros),
        balance_termination_trigger: p.termination_trigger_micros.map(UsdMicros),
        customer_email: p.customer_email,
        customer_user_id: p.customer_user_id,
        customer_org_id: p.customer_org_id,
        customer_org_host: p.customer_org_host,
        customer_key_prefix: p.customer_key_prefix,
        created_at: p.created_at,
        status_changed_at: p.status_changed_at,
        last_credit_at: p.last_credit_at,
        last_activity_at: p.updated_at,
        pending_deposit_at: p.pending_deposit_at,
        resource: Resource {
            status: p.resource_status,
            provider: p.provider,
            state: p.resource_state,
            provision_attempts: p.provision_attempts,
            next_provision_at: p.next_provision_at,
            last_provision_error: p.last_provision_error,
            gateway_key,
        },
        officex: OfficexRecord {
            officex_purchase_id: p.officex_purchase_id,
            expected_status: status.officex().to_owned(),
            last_update,
        },
        checkout,
        ledger,
        deposits,
        sweeps,
        notifications,
        audit,
    })
}

/// Whether the purchase exists (404 before anything else).
pub async fn ensure_exists(pool: &PgPool, id: PurchaseId) -> Result<(), AdminError> {
    if purchases::exists(pool, id).await? {
        Ok(())
    } else {
        Err(AdminError::NotFound("purchase"))
    }
}

/// `POST /v1/admin/purchases/{id}/adjustments`: a signed amount and a required reason.
#[derive(Debug, Clone)]
pub struct Adjustment {
    pub amount: UsdMicros,
    pub reason: String,
}

impl Adjustment {
    /// A non-zero amount and a reason of 1 to 500 characters.
    pub fn new(amount: UsdMicros, reason: Option<&str>) -> Result<Self, AdminError> {
        if amount.0 == 0 {
            return Err(AdminError::invalid(
                "invalid_amount",
                "amount_usd must not be zero",
            ));
        }
        let reason = super::reason(reason, true)?.unwrap_or_default();
        Ok(Self { amount, reason })
    }
}

/// What an adjustment did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AdjustmentOut {
    pub purchase_id: PurchaseId,
    /// The ledger entry (kind `adjustment`).
    pub entry_id: i64,
    pub amount_usd: UsdMicros,
    pub reason: String,
    /// The balance right after the entry.
    pub balance_usd: UsdMicros,
    pub previous_status: PurchaseStatus,
    pub status: PurchaseStatus,
}

/// Posts an adjustment (a ledger entry of kind `adjustment`, the balance and status moving in the
/// same transaction as for any credit or debit), audited, idempotent by the actor's key.
pub async fn adjust(
    pool: &PgPool,
    id: PurchaseId,
    adjustment: &Adjustment,
    actor: &Actor,
) -> Result<Done<AdjustmentOut>, AdminError> {
    let mut tx = pool.begin().await?;
    if let Some(replay) = super::claim_key(&mut tx, actor).await? {
        return Ok(replay);
    }
    let mut entry = NewEntry::new(EntryKind::Adjustment, adjustment.amount)
        .description(adjustment.reason.clone());
    entry.metadata = serde_json::json!({
        "reason": adjustment.reason,
        "client_ip": actor.client_ip.map(|ip| ip.to_string()),
    });
    if let Some(idem) = &actor.idempotency {
        entry = entry.reference(format!("adjustment:{}", idem.key));
    }
    let posted = ledger::post(&mut tx, id, &entry)
        .await
        .map_err(|e| match e {
            BillingError::PurchaseNotFound => AdminError::NotFound("purchase"),
            other => other.into(),
        })?;
    let out = AdjustmentOut {
        purchase_id: id,
        entry_id: posted.entry_id,
        amount_usd: adjustment.amount,
        reason: adjustment.reason.clone(),
        balance_usd: posted.balance_after,
        previous_status: posted.status_before,
        status: posted.status_after,
    };
    let entry = AuditEntry {
        action: "purchase.adjust",
        target_type: "purchase",
        target_id: id.to_string(),
        reason: Some(adjustment.reason.clone()),
        details: serde_json::json!({
            "entry_id": out.entry_id,
            "amount_usd": out.amount_usd,
            "balance_usd": out.balance_usd,
            "previous_status": out.previous_status,
            "status": out.status,
        }),
    };
    super::finish(tx, actor, out, entry).await
}

/// An operator's status action on a purchase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusAction {
    Suspend,
    Resume,
    Delete,
}

impl StatusAction {
    fn audit_name(self) -> &'static str {
        match self {
            Self::Suspend => "purchase.suspend",
            Self::Resume => "purchase.resume",
            Self::Delete => "purchase.delete",
        }
    }
}

/// What a status action did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct StatusActionOut {
    pub purchase_id: PurchaseId,
    pub previous_status: PurchaseStatus,
    pub status: PurchaseStatus,
    /// Suspended by an operator after the action.
    pub held: bool,
    pub balance_usd: UsdMicros,
}

/// Suspends, resumes or deletes a purchase through the billing lifecycle (the lifecycle job then
/// suspends, resumes or deletes its resource), audited, idempotent by the actor's key.
pub async fn set_status(
    pool: &PgPool,
    id: PurchaseId,
    action: StatusAction,
    reason: Option<String>,
    actor: &Actor,
) -> Result<Done<StatusActionOut>, AdminError> {
    let mut tx = pool.begin().await?;
    if let Some(replay) = super::claim_key(&mut tx, actor).await? {
        return Ok(replay);
    }
    let moved = match action {
        StatusAction::Suspend => purchases::suspend(&mut tx, id).await,
        StatusAction::Resume => purchases::resume(&mut tx, id).await,
        StatusAction::Delete => purchases::delete(&mut tx, id).await,
    }
    .map_err(|e| match e {
        BillingError::PurchaseNotFound => AdminError::NotFound("purchase"),
        BillingError::InvalidState(m) => AdminError::InvalidState(m),
        other => other.into(),
    })?;
    let balance = sqlx::query_scalar!(
        "select balance_micros from purchase where purchase_id = $1",
        id.0
    )
    .fetch_one(&mut *tx)
    .await?;
    let out = StatusActionOut {
        purchase_id: id,
        previous_status: moved.before,
        status: moved.after,
        held: action == StatusAction::Suspend,
        balance_usd: UsdMicros(balance),
    };
    let entry = AuditEntry {
        action: action.audit_name(),
        target_type: "purchase",
        target_id: id.to_string(),
        reason,
        details: serde_json::json!({
            "previous_status": out.previous_status,
            "status": out.status,
            "balance_usd": out.balance_usd,
        }),
    };
    super::finish(tx, actor, out, entry).await
}

/// What a reprovision did.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ReprovisionOut {
    pub purchase_id: PurchaseId,
    pub status: PurchaseStatus,
    /// `failed` (or `none`) until the next attempt delivers (`ready`).
    pub resource_status: String,
    /// Attempts made so far (the backoff starts again from the first step).
    pub previous_attempts: i32,
    pub last_error: Option<String>,
}

/// Retries a purchase's provisioning now (the console's "retry provisioning"): the attempt count and
/// its backoff start again, and the retry job (every few seconds) makes the attempt. Only a purchase
/// whose resource is not delivered and that no worker is provisioning right now; audited, idempotent
/// by the actor's key.
pub async fn reprovision(
    pool: &PgPool,
    id: PurchaseId,
    actor: &Actor,
) -> Result<Done<ReprovisionOut>, AdminError> {
    let mut tx = pool.begin().await?;
    if let Some(replay) = super::claim_key(&mut tx, actor).await? {
        return Ok(replay);
    }
    let row = sqlx::query!(
        r#"select status, resource_status, provision_attempts, last_provision_error,
                  coalesce(next_provision_at > now(), false) as "leased!"
           from purchase where purchase_id = $1 for update"#,
        id.0
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AdminError::NotFound("purchase"))?;
    let status = PurchaseStatus::parse(&row.status)
        .ok_or_else(|| AdminError::Internal(format!("unknown status {}", row.status)))?;
    if !matches!(
        status,
        PurchaseStatus::Failed | PurchaseStatus::Provisioning
    ) || row.resource_status == "ready"
    {
        return Err(AdminError::InvalidState(format!(
            "only a purchase whose provisioning failed can be provisioned again (this one is {}, its resource {})",
            row.status, row.resource_status
        )));
    }
    if row.resource_status == "provisioning" && row.leased {
        return Err(AdminError::InvalidState(
            "this purchase is being provisioned right now; wait for the attempt to end".into(),
        ));
    }
    sqlx::query!(
        "update purchase set provision_attempts = 0, next_provision_at = now() where purchase_id = $1",
        id.0
    )
    .execute(&mut *tx)
    .await?;
    let out = ReprovisionOut {
        purchase_id: id,
        status,
        resource_status: row.resource_status,
        previous_attempts: row.provision_attempts,
        last_error: row.last_provision_error,
    };
    let entry = AuditEntry {
        action: "purchase.reprovision",
        target_type: "purchase",
        target_id: id.to_string(),
        reason: None,
        details: serde_json::json!({
            "previous_attempts": out.previous_attempts,
            "last_error": out.last_error,
        }),
    };
    super::finish(tx, actor, out, entry).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_like_patterns_are_escaped() {
        let id = Uuid::new_v4();
        assert_eq!(
            parse_cursor(&format!("-42_{id}")).unwrap(),
            (-42, id),
            "negative balances"
        );
        assert!(parse_cursor("x").is_err());
        assert!(parse_cursor("1_nope").is_err());
        assert_eq!(like_prefix("a_b%c\\"), "a\\_b\\%c\\\\%");
        assert_eq!(SortBy::parse("balance"), Some(SortBy::Balance));
        assert_eq!(SortBy::parse("nope"), None);
    }
}
