//! `vendor-server billing …`: run the cost import or the S3 usage estimate by hand and list recent runs.

use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

use crate::billing::cost_import::{
    self, BillingPeriod, CostImportError, ImportOptions, PeriodReport, Progress, RunStatus, Trigger,
};
use crate::billing::s3_usage;
use crate::config::Config;
use crate::db;
use crate::state::AppState;

#[derive(Debug, Subcommand)]
pub enum BillingCommand {
    /// Import one billing period's AWS costs now and print what each purchase was charged.
    Import {
        /// The billing period, YYYY-MM.
        #[arg(long)]
        period: BillingPeriod,
        /// Read and compute everything, charge and record nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run the S3 usage estimate now (new access logs, storage metrics, estimate charges, limits),
    /// as the hourly job does, and print what it did.
    Estimate,
    /// List recent cost import runs, newest first.
    Runs {
        /// How many runs to show.
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

/// Runs a `billing` subcommand.
pub async fn run(command: BillingCommand) -> anyhow::Result<()> {
    let config = Config::from_env().context("invalid configuration")?;
    let pool = db::connect(&config.database).await?;
    let state = AppState::new(pool, Arc::new(config))?;
    match command {
        BillingCommand::Import { period, dry_run } => import(&state, period, dry_run).await,
        BillingCommand::Runs { limit } => runs(&state, limit).await,
        BillingCommand::Estimate => estimate(&state).await,
    }
}

async fn estimate(state: &AppState) -> anyhow::Result<()> {
    let metering = s3_usage::Metering::from_config(&state.config).await?;
    let r = metering
        .run_once(&state.pool, chrono::Utc::now())
        .await
        .context("S3 usage estimate failed")?;
    if r.busy {
        anyhow::bail!(
            "another S3 usage estimate is running (on this or another replica); try again later"
        );
    }
    println!(
        "log objects {} ({} bytes), lines {} (malformed {}, unknown bucket {}), storage figures {}",
        r.log_objects,
        r.log_bytes,
        r.lines,
        r.malformed_lines,
        r.unknown_bucket_lines,
        r.storage_points
    );
    println!(
        "charged {} USD net in {} ledger row(s) over {} purchase-day(s); limit suspensions {}, lifted {}; log prefixes removed {}",
        r.charged,
        r.entries_posted,
        r.days_charged,
        r.limit_suspended,
        r.limit_lifted,
        r.log_prefixes_purged
    );
    Ok(())
}

/// Draws a bar of compressed bytes per data file (on stderr, only on a terminal).
struct Bar(ProgressBar);

impl Progress for Bar {
    fn file_started(&self, name: &str, size: Option<u64>) {
        self.0.set_length(size.unwrap_or(0));
        self.0.set_position(0);
        self.0
            .set_message(name.rsplit('/').next().unwrap_or(name).to_owned());
    }

    fn advanced(&self, bytes: u64) {
        self.0.inc(bytes);
    }
}

async fn import(state: &AppState, period: BillingPeriod, dry_run: bool) -> anyhow::Result<()> {
    cost_import::check_configured(&state.config)?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let options = ImportOptions {
        dry_run,
        progress: Arc::new(Bar(bar.clone())),
        ..ImportOptions::new(Trigger::Cli)
    };
    let result = cost_import::import_period(&state.pool, &state.config, period, &options).await;
    bar.finish_and_clear();
    let report = match result {
        Ok(report) => report,
        Err(CostImportError::Busy) => {
            anyhow::bail!(
                "another cost import is running (on this or another replica); try again later"
            )
        }
        Err(e) => return Err(e.into()),
    };
    print!("{}", summary(&report));
    match report.status {
        RunStatus::Failed => anyhow::bail!(
            "the import of {period} failed, nothing charged for the failed part: {}",
            report.error.as_deref().unwrap_or("unknown error")
        ),
        RunStatus::NoData => anyhow::bail!(
            "no data for {period}: AWS has not delivered a manifest for it (check BILLING_BUCKET_NAME, \
             CUR_EXPORT_PREFIX and CUR_EXPORT_NAME)"
        ),
        _ => Ok(()),
    }
}

/// The per-purchase summary printed after an import.
pub fn summary(report: &PeriodReport) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let run = report.run_id.map_or_else(
        || "dry run: nothing charged or recorded".to_owned(),
        |id| format!("run {id}"),
    );
    let _ = writeln!(
        out,
        "billing period {} from {} ({run}): {}",
        report.period,
        report.source,
        report.status.as_str()
    );
    let s = &report.stats;
    let _ = writeln!(
        out,
        "files {}, {} bytes, rows {} (matched {}, unknown tag {}, untagged {}, malformed {}), {} ms",
        s.files,
        s.bytes,
        s.rows_read,
        report.rows_matched,
        report.unknown_tag_rows,
        s.untagged_rows,
        s.error_rows,
        report.duration_ms
    );
    if !report.purchases.is_empty() {
        let _ = writeln!(
            out,
            "{:<56} {:>4} {:>20} {:>16} {:>16} {:>16}",
            "purchase",
            "days",
            "aws cost (USD)",
            "charged (USD)",
            "this run (USD)",
            "balance (USD)"
        );
        for p in &report.purchases {
            let _ = writeln!(
                out,
                "{:<56} {:>4} {:>20} {:>16} {:>16} {:>16}",
                p.purchase_id.to_string(),
                p.days,
                p.aws_cost.to_string(),
                p.charged.to_string(),
                p.delta.to_string(),
                p.balance_after
                    .map_or_else(|| "-".to_owned(), |b| b.to_string()),
            );
        }
    }
    let verb = if report.dry_run {
        "would charge"
    } else {
        "charged"
    };
    let _ = writeln!(
        out,
        "{verb} {} USD net over {} purchase(s), {} ledger row(s)",
        report.total_charged,
        report.purchases_charged(),
        report.entries_posted
    );
    for (tag, rows) in &report.unknown_tags {
        let _ = writeln!(out, "unknown tag {tag:?}: {rows} row(s), not charged");
    }
    if let Some(error) = &report.error {
        let _ = writeln!(out, "error: {error}");
    }
    for e in &s.errors {
        let _ = writeln!(out, "  {e}");
    }
    out
}

async fn runs(state: &AppState, limit: i64) -> anyhow::Result<()> {
    let runs = cost_import::recent_runs(&state.pool, limit.clamp(1, 1000)).await?;
    if runs.is_empty() {
        println!("no cost import runs yet");
        return Ok(());
    }
    println!(
        "{:>6} {:<7} {:<13} {:<8} {:<9} {:<20} {:>5} {:>9} {:>9} {:>7} {:>9} {:>6} {:>9} {:>14} {:>8}",
        "run",
        "period",
        "source",
        "trigger",
        "status",
        "started (UTC)",
        "files",
        "rows",
        "matched",
        "unknown",
        "untagged",
        "errors",
        "purchases",
        "charged (USD)",
        "ms"
    );
    for r in &runs {
        println!(
            "{:>6} {:<7} {:<13} {:<8} {:<9} {:<20} {:>5} {:>9} {:>9} {:>7} {:>9} {:>6} {:>9} {:>14} {:>8}",
            r.run_id,
            r.billing_period,
            r.source,
            r.trigger,
            r.status,
            r.started_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            r.files,
            r.rows_read,
            r.rows_matched,
            r.unknown_tag_rows,
            r.untagged_rows,
            r.error_rows,
            r.purchases_charged,
            r.total_charged.to_string(),
            r.duration_ms
                .map_or_else(|| "-".to_owned(), |d| d.to_string()),
        );
        if r.status == "failed"
            && let Some(first) = r
                .errors
                .as_array()
                .and_then(|e| e.first())
                .and_then(|e| e.as_str())
        {
            println!("       error: {first}");
        }
    }
    Ok(())
}
