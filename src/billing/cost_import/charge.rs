//! Charging: tags resolved to purchases, what each purchase was already charged for each day, the
//! plan of new and restated day charges, and posting them to the ledger.

use super::*;

/// Maps tags to known purchases (merging tags that name the same purchase), counting the rest.
pub(super) async fn resolve(
    pool: &PgPool,
    totals: &CostTotals,
    report: &mut PeriodReport,
) -> Result<HashMap<PurchaseId, BTreeMap<NaiveDate, DayTotal>>, CostImportError> {
    let parsed: Vec<(&str, Option<PurchaseId>)> = totals
        .tags()
        .map(|(tag, _)| (tag, tag.trim().parse::<PurchaseId>().ok()))
        .collect();
    let candidates: Vec<uuid::Uuid> = parsed
        .iter()
        .filter_map(|(_, id)| id.map(|i| i.0))
        .collect();
    let known: BTreeSet<uuid::Uuid> = sqlx::query_scalar!(
        "select purchase_id from purchase where purchase_id = any($1)",
        &candidates
    )
    .fetch_all(pool)
    .await?
    .into_iter()
    .collect();
    let mut by_purchase: HashMap<PurchaseId, BTreeMap<NaiveDate, DayTotal>> = HashMap::new();
    let mut unknown: Vec<(&str, u64)> = Vec::new();
    for (tag, id) in parsed {
        let Some(tag_totals) = totals.get(tag) else {
            continue;
        };
        match id.filter(|id| known.contains(&id.0)) {
            Some(id) => {
                report.rows_matched += tag_totals.rows;
                let days = by_purchase.entry(id).or_default();
                for (day, total) in &tag_totals.days {
                    report.matched_cost = report
                        .matched_cost
                        .checked_add(total.cost)
                        .ok_or_else(|| CostImportError::Overflow("matched cost".into()))?;
                    let merged = days.entry(*day).or_default();
                    merged.rows += total.rows;
                    merged.cost = merged
                        .cost
                        .checked_add(total.cost)
                        .ok_or_else(|| CostImportError::Overflow(format!("cost of {id}")))?;
                    for (unit, amount) in &total.usage {
                        match merged.usage.iter_mut().find(|(u, _)| u == unit) {
                            Some((_, sum)) => {
                                *sum = sum.checked_add(*amount).ok_or_else(|| {
                                    CostImportError::Overflow(format!("usage of {id}"))
                                })?;
                            }
                            None => merged.usage.push((unit.clone(), *amount)),
                        }
                    }
                }
            }
            None => {
                report.unknown_tag_rows += tag_totals.rows;
                unknown.push((tag, tag_totals.rows));
            }
        }
    }
    unknown.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    report.unknown_tags = unknown
        .into_iter()
        .take(MAX_UNKNOWN_TAGS)
        .map(|(tag, rows)| (tag.to_owned(), rows))
        .collect();
    Ok(by_purchase)
}

/// What was charged before for one key.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Charged {
    aws_cost: Exact,
    micros: i64,
    revision: i32,
    exists: bool,
    /// The markup the day was charged with (`None`: charged before markups were recorded).
    markup_bps: Option<u32>,
}

pub(super) async fn charged_so_far(
    conn: &mut sqlx::PgConnection,
    id: PurchaseId,
    period: BillingPeriod,
    lock: bool,
) -> Result<BTreeMap<NaiveDate, Charged>, CostImportError> {
    // `for update` only when charging; a dry run only reads.
    let rows = if lock {
        sqlx::query!(
            r#"select usage_date, aws_cost::text as "aws_cost!", charged_micros, revision, markup_bps
               from cost_charge where purchase_id = $1 and billing_period = $2
               for update"#,
            id.0,
            period.first_day()
        )
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|r| (r.usage_date, r.aws_cost, r.charged_micros, r.revision, r.markup_bps))
        .collect::<Vec<_>>()
    } else {
        sqlx::query!(
            r#"select usage_date, aws_cost::text as "aws_cost!", charged_micros, revision, markup_bps
               from cost_charge where purchase_id = $1 and billing_period = $2"#,
            id.0,
            period.first_day()
        )
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|r| (r.usage_date, r.aws_cost, r.charged_micros, r.revision, r.markup_bps))
        .collect::<Vec<_>>()
    };
    rows.into_iter()
        .map(|(day, cost, micros, revision, markup)| {
            let aws_cost = Exact::parse(cost.as_bytes()).ok_or_else(|| {
                CostImportError::Overflow(format!("stored cost {cost} of {id} on {day}"))
            })?;
            Ok((
                day,
                Charged {
                    aws_cost,
                    micros,
                    revision,
                    exists: true,
                    markup_bps: markup.and_then(|m| u32::try_from(m).ok()),
                },
            ))
        })
        .collect()
}

/// What the hourly S3 estimates charged per day of the period (`s3_estimate_day`): the import
/// posts each day's AWS figure less this and what earlier imports charged.
pub(super) async fn estimated_so_far(
    conn: &mut sqlx::PgConnection,
    id: PurchaseId,
    period: BillingPeriod,
    lock: bool,
) -> Result<BTreeMap<NaiveDate, i64>, CostImportError> {
    let rows = if lock {
        sqlx::query!(
            "select usage_date, charged_micros from s3_estimate_day
             where purchase_id = $1 and usage_date >= $2 and usage_date < $3 for update",
            id.0,
            period.first_day(),
            period.end()
        )
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|r| (r.usage_date, r.charged_micros))
        .collect()
    } else {
        sqlx::query!(
            "select usage_date, charged_micros from s3_estimate_day
             where purchase_id = $1 and usage_date >= $2 and usage_date < $3",
            id.0,
            period.first_day(),
            period.end()
        )
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|r| (r.usage_date, r.charged_micros))
        .collect()
    };
    Ok(rows)
}

/// One key's new state.
pub(super) struct Planned {
    day: NaiveDate,
    before: Charged,
    cost: Exact,
    /// The day's AWS figure with markup: what the customer owes for the day in total.
    total_micros: i64,
    /// What the hourly S3 estimates charged for the day.
    estimated: i64,
    /// What the imports charge for the day in total: `total_micros - estimated`.
    micros: i64,
    /// The markup this day is charged with: its own once charged, else the configured one.
    markup_bps: u32,
    total: DayTotal,
}

pub(super) fn plan(
    id: PurchaseId,
    days: &BTreeMap<NaiveDate, DayTotal>,
    before: &BTreeMap<NaiveDate, Charged>,
    estimated: &BTreeMap<NaiveDate, i64>,
    markup_bps: u32,
) -> Result<Vec<Planned>, CostImportError> {
    let all: BTreeSet<NaiveDate> = days.keys().chain(before.keys()).copied().collect();
    all.into_iter()
        .map(|day| {
            let total = days.get(&day).cloned().unwrap_or_default();
            let before = before.get(&day).copied().unwrap_or_default();
            // A day keeps the markup it was first charged with: changing COST_MARKUP_PERCENT never
            // re-prices the past, restatements included.
            let markup_bps = before.markup_bps.unwrap_or(markup_bps);
            let overflow = || CostImportError::Overflow(format!("charge of {id} on {day}"));
            let total_micros = total.cost.charge_micros(markup_bps).ok_or_else(overflow)?;
            // Only days the import has (a CUR figure, or charged before) are settled: an
            // estimate-only day waits for its AWS figure.
            let estimated = estimated.get(&day).copied().unwrap_or(0);
            let micros = total_micros.checked_sub(estimated).ok_or_else(overflow)?;
            Ok(Planned {
                day,
                before,
                cost: total.cost,
                total_micros,
                estimated,
                micros,
                markup_bps,
                total,
            })
        })
        .collect()
}

pub(super) fn summarize(
    id: PurchaseId,
    planned: &[Planned],
) -> Result<PurchaseCharge, CostImportError> {
    let overflow = || CostImportError::Overflow(format!("totals of {id}"));
    let mut charge = PurchaseCharge {
        purchase_id: id,
        days: planned.len(),
        aws_cost: Exact::ZERO,
        charged: UsdMicros::ZERO,
        delta: UsdMicros::ZERO,
        entries: 0,
        balance_after: None,
        status_change: None,
    };
    for p in planned {
        charge.aws_cost = charge.aws_cost.checked_add(p.cost).ok_or_else(overflow)?;
        charge.charged = charge
            .charged
            .checked_add(UsdMicros(p.total_micros))
            .ok_or_else(overflow)?;
        let delta = p.micros.checked_sub(p.before.micros).ok_or_else(overflow)?;
        charge.delta = charge
            .delta
            .checked_add(UsdMicros(delta))
            .ok_or_else(overflow)?;
    }
    Ok(charge)
}

/// A dry run's view of one purchase: what charging would do.
pub(super) async fn preview_purchase(
    pool: &PgPool,
    id: PurchaseId,
    period: BillingPeriod,
    days: &BTreeMap<NaiveDate, DayTotal>,
    markup_bps: u32,
) -> Result<PurchaseCharge, CostImportError> {
    let mut conn = pool.acquire().await?;
    let before = charged_so_far(&mut conn, id, period, false).await?;
    let estimated = estimated_so_far(&mut conn, id, period, false).await?;
    summarize(id, &plan(id, days, &before, &estimated, markup_bps)?)
}

/// Charges one purchase's differences in one transaction.
pub(super) async fn charge_purchase(
    pool: &PgPool,
    id: PurchaseId,
    period: BillingPeriod,
    days: &BTreeMap<NaiveDate, DayTotal>,
    markup_bps: u32,
    source: &'static str,
    run_id: Option<i64>,
) -> Result<PurchaseCharge, CostImportError> {
    let mut tx = pool.begin().await?;
    // The purchase row first: the S3 estimate job takes it before its own rows too, so the two
    // never interleave on one purchase.
    ledger::lock(&mut tx, id).await?;
    let before = charged_so_far(&mut tx, id, period, true).await?;
    let estimated = estimated_so_far(&mut tx, id, period, true).await?;
    let planned = plan(id, days, &before, &estimated, markup_bps)?;
    let mut charge = summarize(id, &planned)?;
    let mut first_status: Option<PurchaseStatus> = None;
    let mut last_status: Option<PurchaseStatus> = None;
    for p in &planned {
        let delta = p.micros - p.before.micros;
        let revision = if delta != 0 {
            p.before.revision + 1
        } else {
            p.before.revision
        };
        if delta != 0 {
            let cost_change = p
                .cost
                .checked_sub(p.before.aws_cost)
                .ok_or_else(|| CostImportError::Overflow(format!("cost change of {id}")))?;
            let usage: serde_json::Map<String, serde_json::Value> = p
                .total
                .usage
                .iter()
                .map(|(unit, amount)| (unit.clone(), amount.to_string().into()))
                .collect();
            let entry = NewEntry {
                kind: EntryKind::Cost,
                amount: UsdMicros(-delta),
                usage_amount: Some(cost_change.to_bigdecimal()),
                usage_unit: Some(USAGE_UNIT.to_owned()),
                description: Some(if p.before.exists {
                    format!("AWS cost of {} restated ({source})", p.day)
                } else {
                    format!("AWS cost of {} ({source})", p.day)
                }),
                metadata: serde_json::json!({
                    "source": source,
                    "billing_period": period.to_string(),
                    "usage_date": p.day.to_string(),
                    "aws_cost": p.cost,
                    "aws_cost_before": p.before.aws_cost,
                    "charged_total": UsdMicros(p.total_micros),
                    "estimated": UsdMicros(p.estimated),
                    "imports_total": UsdMicros(p.micros),
                    "charged_before": UsdMicros(p.before.micros),
                    "markup_bps": p.markup_bps,
                    "rows": p.total.rows,
                    "usage": usage,
                    "run_id": run_id,
                }),
                occurred_at: p.day.and_hms_opt(0, 0, 0).map(|t| t.and_utc()),
                reference: Some(format!("cost:{period}:{}:{revision}", p.day)),
            };
            let posted = ledger::post(&mut tx, id, &entry).await?;
            first_status.get_or_insert(posted.status_before);
            last_status = Some(posted.status_after);
            charge.balance_after = Some(posted.balance_after);
            if !posted.replayed {
                charge.entries += 1;
            }
        }
        if delta != 0 || !p.before.exists || p.cost != p.before.aws_cost {
            sqlx::query!(
                "insert into cost_charge (purchase_id, billing_period, usage_date, aws_cost, charged_micros,
                     revision, source, last_run_id, markup_bps)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 on conflict (purchase_id, billing_period, usage_date) do update
                 set aws_cost = excluded.aws_cost, charged_micros = excluded.charged_micros,
                     revision = excluded.revision, source = excluded.source, last_run_id = excluded.last_run_id,
                     markup_bps = excluded.markup_bps",
                id.0,
                period.first_day(),
                p.day,
                p.cost.to_bigdecimal(),
                p.micros,
                revision,
                source,
                run_id,
                i32::try_from(p.markup_bps).ok(),
            )
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    if let (Some(before), Some(after)) = (first_status, last_status)
        && before != after
    {
        charge.status_change = Some((before, after));
    }
    Ok(charge)
}
