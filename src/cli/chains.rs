//! `vendor-server deposits rescan` and `vendor-server reconcile`: finding deposits the watcher missed
//! and comparing deposit addresses with the chain, audited like the admin API's.

use anyhow::Context;
use clap::Subcommand;

use crate::admin::{self, Actor};
use crate::{chain, db};

#[derive(Debug, Subcommand)]
pub enum DepositsCommand {
    /// Re-read a block range's Transfer logs for every watched address and record and credit what the
    /// watcher missed (idempotent: a deposit found again is never credited twice).
    Rescan {
        /// The chain: its id (8453) or its name (base).
        #[arg(long)]
        chain: String,
        /// The first block to read.
        #[arg(long)]
        from_block: u64,
        /// The last block to read (default: the head).
        #[arg(long)]
        to_block: Option<u64>,
    },
}

fn chain_id(chains: &chain::Chains, wanted: &str) -> anyhow::Result<u64> {
    let found = match wanted.trim().parse::<u64>() {
        Ok(id) => chains.by_id(id),
        Err(_) => chains.get(wanted.trim()),
    };
    found.map(|c| c.id()).with_context(|| {
        let known: Vec<String> = chains
            .iter()
            .map(|c| format!("{} ({})", c.id(), c.name()))
            .collect();
        format!(
            "no configured chain {wanted:?} (configured: {})",
            known.join(", ")
        )
    })
}

pub async fn deposits(command: DepositsCommand) -> anyhow::Result<()> {
    let DepositsCommand::Rescan {
        chain,
        from_block,
        to_block,
    } = command;
    let config = super::load_config()?;
    let pool = db::connect(&config.database).await?;
    db::migrate(&pool).await?;
    let chains = chain::Chains::from_config(&config)?;
    chains.keys().map_err(|e| anyhow::anyhow!("{e}"))?;
    let id = chain_id(&chains, &chain)?;
    let started = std::time::Instant::now();
    let mut last_told = std::time::Instant::now();
    let done = admin::chains::rescan(
        &pool,
        &chains,
        id,
        from_block,
        to_block,
        None,
        &Actor::cli(),
        |at, to| {
            if last_told.elapsed().as_secs() >= 5 {
                last_told = std::time::Instant::now();
                eprintln!("… read up to block {at} of {to}");
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))
    .context("the rescan failed (blocks read before the failure stay recorded; run it again)")?
    .value;
    let blocks = done.to_block - done.from_block + 1;
    let secs = started.elapsed().as_secs_f64().max(0.001);
    println!(
        "chain {}: blocks {} to {} read ({blocks} blocks in {secs:.1} s, {:.0} blocks/s): {} Transfer logs, {} to watched addresses, {} new deposit(s) recorded, {} credited",
        done.chain_id,
        done.from_block,
        done.to_block,
        blocks as f64 / secs,
        done.logs,
        done.matched,
        done.new_deposits,
        done.credited
    );
    Ok(())
}

pub async fn reconcile() -> anyhow::Result<()> {
    let config = super::load_config()?;
    let pool = db::connect(&config.database).await?;
    db::migrate(&pool).await?;
    let chains = chain::Chains::from_config(&config)?;
    anyhow::ensure!(chains.iter().next().is_some(), "no chain is configured");
    let report = admin::chains::reconcile(&pool, &chains)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for c in &report.chains {
        match (&c.error, c.block) {
            (Some(e), _) => println!("{} (chain {}): not reconciled: {e}", c.chain, c.chain_id),
            (None, block) => println!(
                "{} (chain {}): {} address(es) at block {}: {} mismatch(es), {} skipped (sweep in flight)",
                c.chain,
                c.chain_id,
                c.addresses,
                block.unwrap_or_default(),
                c.mismatches,
                c.skipped
            ),
        }
    }
    for m in &report.mismatches {
        println!(
            "MISMATCH chain {} {} {}: on chain {} units, recorded {} (difference {}) at block {}",
            m.chain_id,
            m.token,
            m.deposit_address,
            m.on_chain_units,
            m.recorded_units,
            m.difference_units,
            m.block
        );
    }
    let failed = report.chains.iter().filter(|c| c.error.is_some()).count();
    anyhow::ensure!(failed == 0, "{failed} chain(s) could not be reconciled");
    anyhow::ensure!(
        report.mismatches.is_empty(),
        "{} mismatch(es): each raised a reconcile.mismatch alert; a positive difference is usually a missed deposit (`vendor-server deposits rescan`)",
        report.chains.iter().map(|c| c.mismatches).sum::<usize>()
    );
    println!("clean: every deposit address matches its records");
    Ok(())
}
