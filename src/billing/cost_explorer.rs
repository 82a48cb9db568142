//! Cost Explorer as the cost source (`BILLING_SOURCE=cost_explorer`): `GetCostAndUsage`, daily,
//! grouped by the purchase tag, every page. Gives the same per (tag, day) totals as the CUR export, and
//! goes through the same restatement-safe charging.

use aws_sdk_costexplorer::error::DisplayErrorContext;
use aws_sdk_costexplorer::types::{
    DateInterval, Granularity, GroupDefinition, GroupDefinitionType,
};
use chrono::NaiveDate;

use super::cost_import::{BillingPeriod, CostImportError, CostTotals, Exact, ReadStats};
use crate::config::BillingConfig;

/// The cost allocation tag purchases' resources carry.
pub const TAG: &str = "officex_vendor_purchase_id";

/// Pages read at most per period (a month of daily groups fits in a few).
const MAX_PAGES: u32 = 1_000;

/// The Cost Explorer metric for a CUR cost column (`CUR_COST_COLUMN`).
pub fn metric_for_column(column: &str) -> Result<&'static str, CostImportError> {
    match column {
        "line_item_unblended_cost" => Ok("UnblendedCost"),
        "line_item_blended_cost" => Ok("BlendedCost"),
        "line_item_net_unblended_cost" => Ok("NetUnblendedCost"),
        other => Err(CostImportError::NotConfigured(format!(
            "CUR_COST_COLUMN {other:?} has no Cost Explorer metric (use line_item_unblended_cost, \
             line_item_blended_cost or line_item_net_unblended_cost)"
        ))),
    }
}

/// Cost Explorer client and what to ask it.
pub struct CostExplorerSource {
    client: aws_sdk_costexplorer::Client,
    metric: &'static str,
}

impl CostExplorerSource {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        billing: &BillingConfig,
    ) -> Result<Self, CostImportError> {
        Ok(Self {
            client: aws_sdk_costexplorer::Client::new(sdk),
            metric: metric_for_column(&billing.cur_cost_column)?,
        })
    }

    /// Daily cost per tag value of `period`, up to `today` for the running month.
    pub async fn read_period(
        &self,
        period: BillingPeriod,
        today: NaiveDate,
        stats: &mut ReadStats,
    ) -> Result<CostTotals, CostImportError> {
        let start = period.first_day();
        // End is exclusive; Cost Explorer has nothing after today.
        let end = period
            .end()
            .min(today.succ_opt().unwrap_or(today))
            .max(start.succ_opt().unwrap_or(start));
        let interval = DateInterval::builder()
            .start(start.to_string())
            .end(end.to_string())
            .build()
            .map_err(|e| CostImportError::CostExplorer(e.to_string()))?;
        let group = GroupDefinition::builder()
            .r#type(GroupDefinitionType::Tag)
            .key(TAG)
            .build();
        let mut totals = CostTotals::default();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .get_cost_and_usage()
                .time_period(interval.clone())
                .granularity(Granularity::Daily)
                .metrics(self.metric)
                .group_by(group.clone())
                .set_next_page_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    CostImportError::CostExplorer(format!(
                        "GetCostAndUsage {period}: {}",
                        DisplayErrorContext(&e)
                    ))
                })?;
            stats.files += 1;
            for result in page.results_by_time() {
                let Some(day) = result
                    .time_period()
                    .and_then(|p| NaiveDate::parse_from_str(p.start(), "%Y-%m-%d").ok())
                else {
                    stats.row_error("a result without a valid TimePeriod.Start".into());
                    continue;
                };
                for group in result.groups() {
                    stats.rows_read += 1;
                    let tag = group
                        .keys()
                        .first()
                        .map(|k| k.split_once('$').map_or(k.as_str(), |(_, v)| v).trim())
                        .unwrap_or_default();
                    let amount = group
                        .metrics()
                        .and_then(|m| m.get(self.metric))
                        .and_then(|m| m.amount());
                    let Some(cost) = amount.and_then(|a| Exact::parse(a.as_bytes())) else {
                        stats.row_error(format!(
                            "{day} {tag:?}: {} amount {amount:?} is not a decimal",
                            self.metric
                        ));
                        continue;
                    };
                    if tag.is_empty() {
                        stats.untagged_rows += 1;
                        continue;
                    }
                    totals.add(tag, day, cost, None)?;
                }
            }
            token = page
                .next_page_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                break;
            }
            if stats.files >= MAX_PAGES {
                return Err(CostImportError::CostExplorer(format!(
                    "more than {MAX_PAGES} pages for {period}"
                )));
            }
        }
        Ok(totals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_columns_map_to_metrics() {
        assert_eq!(
            metric_for_column("line_item_unblended_cost").unwrap(),
            "UnblendedCost"
        );
        assert_eq!(
            metric_for_column("line_item_blended_cost").unwrap(),
            "BlendedCost"
        );
        assert_eq!(
            metric_for_column("line_item_net_unblended_cost").unwrap(),
            "NetUnblendedCost"
        );
        assert!(metric_for_column("pricing_public_on_demand_cost").is_err());
    }
}
