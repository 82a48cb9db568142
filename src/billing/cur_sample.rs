//! Writes CUR 2.0 CSV rows with the export's real column set, for tests, the parser benchmark and trying
//! the import against a local S3 (moto). Not used by the server itself.

use std::io::{self, Write};

use chrono::NaiveDate;

/// The CUR 2.0 table's columns, in the order a `SELECT` of them all delivers (AWS table dictionary).
pub const COLUMNS: &[&str] = &[
    "bill_bill_type",
    "bill_billing_entity",
    "bill_billing_period_end_date",
    "bill_billing_period_start_date",
    "bill_invoice_id",
    "bill_invoicing_entity",
    "bill_payer_account_id",
    "bill_payer_account_name",
    "cost_category",
    "discount",
    "discount_bundled_discount",
    "discount_total_discount",
    "identity_line_item_id",
    "identity_time_interval",
    "line_item_availability_zone",
    "line_item_blended_cost",
    "line_item_blended_rate",
    "line_item_currency_code",
    "line_item_legal_entity",
    "line_item_line_item_description",
    "line_item_line_item_type",
    "line_item_net_unblended_cost",
    "line_item_net_unblended_rate",
    "line_item_normalization_factor",
    "line_item_normalized_usage_amount",
    "line_item_operation",
    "line_item_product_code",
    "line_item_resource_id",
    "line_item_tax_type",
    "line_item_unblended_cost",
    "line_item_unblended_rate",
    "line_item_usage_account_id",
    "line_item_usage_account_name",
    "line_item_usage_amount",
    "line_item_usage_end_date",
    "line_item_usage_start_date",
    "line_item_usage_type",
    "pricing_currency",
    "pricing_lease_contract_length",
    "pricing_offering_class",
    "pricing_public_on_demand_cost",
    "pricing_public_on_demand_rate",
    "pricing_purchase_option",
    "pricing_rate_code",
    "pricing_rate_id",
    "pricing_term",
    "pricing_unit",
    "product",
    "product_comment",
    "product_fee_code",
    "product_fee_description",
    "product_from_location",
    "product_from_location_type",
    "product_from_region_code",
    "product_instance_family",
    "product_instance_type",
    "product_instancesku",
    "product_location",
    "product_location_type",
    "product_operation",
    "product_pricing_unit",
    "product_product_family",
    "product_region_code",
    "product_servicecode",
    "product_sku",
    "product_to_location",
    "product_to_location_type",
    "product_to_region_code",
    "product_usagetype",
    "reservation_amortized_upfront_cost_for_usage",
    "reservation_amortized_upfront_fee_for_billing_period",
    "reservation_availability_zone",
    "reservation_effective_cost",
    "reservation_end_time",
    "reservation_modification_status",
    "reservation_net_amortized_upfront_cost_for_usage",
    "reservation_net_amortized_upfront_fee_for_billing_period",
    "reservation_net_effective_cost",
    "reservation_net_recurring_fee_for_usage",
    "reservation_net_unused_amortized_upfront_fee_for_billing_period",
    "reservation_net_unused_recurring_fee",
    "reservation_net_upfront_value",
    "reservation_normalized_units_per_reservation",
    "reservation_number_of_reservations",
    "reservation_recurring_fee_for_usage",
    "reservation_reservation_a_r_n",
    "reservation_start_time",
    "reservation_subscription_id",
    "reservation_total_reserved_normalized_units",
    "reservation_total_reserved_units",
    "reservation_units_per_reservation",
    "reservation_unused_amortized_upfront_fee_for_billing_period",
    "reservation_unused_normalized_unit_quantity",
    "reservation_unused_quantity",
    "reservation_unused_recurring_fee",
    "reservation_upfront_value",
    "resource_tags",
    "savings_plan_amortized_upfront_commitment_for_billing_period",
    "savings_plan_end_time",
    "savings_plan_instance_type_family",
    "savings_plan_net_amortized_upfront_commitment_for_billing_period",
    "savings_plan_net_recurring_commitment_for_billing_period",
    "savings_plan_net_savings_plan_effective_cost",
    "savings_plan_offering_type",
    "savings_plan_payment_option",
    "savings_plan_purchase_term",
    "savings_plan_recurring_commitment_for_billing_period",
    "savings_plan_region",
    "savings_plan_savings_plan_a_r_n",
    "savings_plan_savings_plan_effective_cost",
    "savings_plan_savings_plan_rate",
    "savings_plan_start_time",
    "savings_plan_total_commitment_to_date",
    "savings_plan_used_commitment",
];

/// One line item; every other column gets a plausible value for an S3 row.
#[derive(Debug, Clone)]
pub struct SampleRow<'a> {
    pub usage_day: NaiveDate,
    /// Goes into `line_item_unblended_cost` (and, ×1, blended/net columns).
    pub cost: &'a str,
    /// The purchase tag value, written into `resource_tags` (and the flat column if the writer has it).
    pub tag: Option<&'a str>,
    pub usage_amount: &'a str,
    pub pricing_unit: &'a str,
    /// `Usage`, `Credit`, `Refund`, `Tax`, …
    pub line_item_type: &'a str,
    /// e.g. `officex-abc123` (the bucket).
    pub resource_id: &'a str,
}

/// Writes a CUR 2.0 CSV (header + rows) through the `csv` crate, which quotes like AWS does.
pub struct SampleWriter<W: Write> {
    csv: csv::Writer<W>,
    /// Also write `resource_tags_user_officex_vendor_purchase_id` (an export that selects the tag).
    flat_tag: bool,
    /// Extra columns AWS may add later, to check they are ignored.
    extra: Vec<String>,
    row: u64,
}

impl<W: Write> SampleWriter<W> {
    pub fn new(out: W, flat_tag: bool, extra: &[&str]) -> io::Result<Self> {
        let mut csv = csv::WriterBuilder::new()
            .buffer_capacity(1 << 16)
            .from_writer(out);
        let mut header: Vec<&str> = COLUMNS.to_vec();
        if flat_tag {
            header.push(super::cur::FLAT_TAG_COLUMN);
        }
        header.extend(extra.iter().copied());
        csv.write_record(&header)?;
        Ok(Self {
            csv,
            flat_tag,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            row: 0,
        })
    }

    pub fn write(&mut self, r: &SampleRow<'_>) -> io::Result<()> {
        self.row += 1;
        let day = r.usage_day;
        let period_start = day.format("%Y-%m-01T00:00:00.000Z").to_string();
        let period_end = day
            .checked_add_months(chrono::Months::new(1))
            .unwrap_or(day)
            .format("%Y-%m-01T00:00:00.000Z")
            .to_string();
        let start = day.format("%Y-%m-%dT00:00:00.000Z").to_string();
        let end = day
            .succ_opt()
            .unwrap_or(day)
            .format("%Y-%m-%dT00:00:00.000Z")
            .to_string();
        let tags = match r.tag {
            // An export that selects the flat tag column: the map need not carry it.
            Some(_) if self.flat_tag => r#"{"user_officex_vendor":"vendor-server"}"#.to_owned(),
            Some(tag) => format!(
                r#"{{"user_officex_vendor_purchase_id":"{tag}","user_officex_vendor":"vendor-server"}}"#
            ),
            None => r#"{"user_team":"platform"}"#.to_owned(),
        };
        let line_item_id = format!("{:052x}", u128::from(self.row) * 0x9e37_79b9_7f4a_7c15);
        let interval = format!("{start}/{end}");
        let description = format!(
            "$0.023 per GB - first 50 TB / month of storage used ({})",
            r.line_item_type
        );
        let mut record: Vec<&str> = Vec::with_capacity(COLUMNS.len() + 2);
        for column in COLUMNS {
            record.push(match *column {
                "bill_bill_type" => "Anniversary",
                "bill_billing_entity" => "AWS",
                "bill_billing_period_end_date" => &period_end,
                "bill_billing_period_start_date" => &period_start,
                "bill_invoicing_entity" => "Amazon Web Services, Inc.",
                "bill_payer_account_id" | "line_item_usage_account_id" => "123456789012",
                "bill_payer_account_name" | "line_item_usage_account_name" => "vendor",
                "cost_category" | "discount" => "{}",
                "identity_line_item_id" => &line_item_id,
                "identity_time_interval" => &interval,
                "line_item_blended_cost"
                | "line_item_unblended_cost"
                | "line_item_net_unblended_cost"
                | "pricing_public_on_demand_cost" => r.cost,
                "line_item_blended_rate"
                | "line_item_unblended_rate"
                | "line_item_net_unblended_rate"
                | "pricing_public_on_demand_rate" => "0.023",
                "line_item_currency_code" | "pricing_currency" => "USD",
                "line_item_legal_entity" => "Amazon Web Services, Inc.",
                "line_item_line_item_description" => &description,
                "line_item_line_item_type" => r.line_item_type,
                "line_item_normalization_factor" => "0",
                "line_item_normalized_usage_amount" => "0",
                "line_item_operation" | "product_operation" => "StandardStorage",
                "line_item_product_code" | "product_servicecode" => "AmazonS3",
                "line_item_resource_id" => r.resource_id,
                "line_item_usage_amount" => r.usage_amount,
                "line_item_usage_start_date" => &start,
                "line_item_usage_end_date" => &end,
                "line_item_usage_type" | "product_usagetype" => "TimedStorage-ByteHrs",
                "pricing_rate_code" => "WDD7T4FRJQFKW6ZS.JRTCKXETXF.PGHJ3S3EYE",
                "pricing_rate_id" => "3634113577",
                "pricing_term" => "OnDemand",
                "pricing_unit" | "product_pricing_unit" => r.pricing_unit,
                "product" => {
                    r#"{"product_name":"Amazon Simple Storage Service","storage_class":"General Purpose","volume_type":"Standard","region":"us-east-1"}"#
                }
                "product_location" => "US East (N. Virginia)",
                "product_location_type" => "AWS Region",
                "product_product_family" => "Storage",
                "product_region_code" => "us-east-1",
                "product_sku" => "WDD7T4FRJQFKW6ZS",
                "resource_tags" => &tags,
                _ => "",
            });
        }
        if self.flat_tag {
            record.push(r.tag.unwrap_or(""));
        }
        record.extend(std::iter::repeat_n(
            "extra, \"quoted\" value",
            self.extra.len(),
        ));
        self.csv.write_record(&record)?;
        Ok(())
    }

    /// The inner writer (rows may still sit in the CSV buffer).
    pub fn get_ref(&self) -> &W {
        self.csv.get_ref()
    }

    /// Flushes and returns the inner writer.
    pub fn finish(self) -> io::Result<W> {
        self.csv.into_inner().map_err(|e| e.into_error())
    }
}
