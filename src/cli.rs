//! The `vendor-server` command line. Each subcommand prints what a person needs and exits non-zero
//! with one clear line on failure.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::Config;

/// `billing import` / `billing runs`.
mod billing;
/// `deposits rescan`, `reconcile`.
mod chains;
/// `dev …`: the main job on a local chain and a local AWS, without any account.
mod dev;
/// `operators create|list|revoke`.
mod operators;
/// `refunds list|approve|reject`.
mod refunds;
use crate::startup::Application;
use crate::{db, shutdown, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "vendor-server",
    version,
    about = "Sell cloud resources on the OfficeX appstore for stablecoins"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server and background jobs (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Exit 0 if URL answers 2xx within 5 s (for container health checks).
    Healthcheck {
        /// e.g. http://localhost:3001/health
        url: String,
        /// Give up (unhealthy) after this many seconds without an answer.
        #[arg(long, default_value_t = 5)]
        timeout_secs: u64,
    },
    /// Daily cost import of AWS costs (CUR 2.0 / Cost Explorer): run it by hand, list runs.
    Billing {
        #[command(subcommand)]
        command: billing::BillingCommand,
    },
    /// Print the deposit address derived from DEPOSIT_MNEMONIC at m/44'/60'/0'/0/INDEX (the same on
    /// every EVM chain).
    Address {
        /// Deposit index (0 to 2147483647).
        index: u32,
    },
    /// List sweeps (newest first), or retry a failed one.
    Sweeps {
        /// Only unfinished sweeps.
        #[arg(long)]
        pending: bool,
        #[command(subcommand)]
        action: Option<SweepsAction>,
    },
    /// Gas wallet balance per chain.
    Gas,
    /// Deposits: rescan a block range for payments the watcher missed (audited, as in the console).
    Deposits {
        #[command(subcommand)]
        command: chains::DepositsCommand,
    },
    /// Compare every deposit address's on-chain balance with its recorded deposits less sweeps; each
    /// difference raises one `reconcile.mismatch` alert. Exits 1 when something differs.
    Reconcile,
    /// Refunds: list them, approve or reject one (audited, as in the console).
    Refunds {
        #[command(subcommand)]
        command: refunds::RefundsCommand,
    },
    /// Operators of the console: named accounts with a role (owner, operator, viewer) and a token.
    Operators {
        #[command(subcommand)]
        command: operators::OperatorsCommand,
    },
    /// Vendor-wide billing tokens (meter-usage on any purchase, for AI servers).
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Print the OpenAPI document generated from the code (JSON; the committed `openapi.json`), e.g.
    /// for client type generators. Needs no configuration.
    Openapi,
    /// Local development only (chain id 31337/1337): deploy the test tokens, write a dev .env, pay a
    /// deposit address, run a whole checkout.
    Dev {
        #[command(subcommand)]
        command: dev::DevCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum SweepsAction {
    /// Plan a failed sweep again (after fixing its cause).
    Retry {
        /// The sweep id from `vendor-server sweeps`.
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a token and print it (shown this once only).
    Create {
        /// What the token is for (e.g. the AI server's name).
        #[arg(long)]
        label: String,
    },
    /// List tokens (id, prefix, label, created, revoked); never the secrets.
    List,
    /// Revoke a token at once.
    Revoke {
        /// The token id from `tokens list`.
        id: i64,
    },
}

/// Parses arguments, runs the command, maps failure to exit code 1 with one message on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "vendor-server failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let config = load_config()?;
            let _telemetry = telemetry::init(&config.server);
            let app = Application::build(config).await?;
            let token = CancellationToken::new();
            tokio::spawn(shutdown::cancel_on_signal(token.clone()));
            app.run_until_stopped(token).await
        }
        Command::Migrate => {
            let config = load_config()?;
            let pool = db::connect(&config.database).await?;
            db::migrate(&pool).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Healthcheck { url, timeout_secs } => healthcheck(&url, timeout_secs).await,
        Command::Address { index } => address(index),
        Command::Sweeps { pending, action } => sweeps(pending, action).await,
        Command::Gas => gas().await,
        Command::Deposits { command } => chains::deposits(command).await,
        Command::Reconcile => chains::reconcile().await,
        Command::Refunds { command } => refunds::run(command).await,
        Command::Billing { command } => billing::run(command).await,
        Command::Operators { command } => operators::run(command).await,
        Command::Tokens { command } => tokens(command).await,
        Command::Dev { command } => dev::run(command).await,
        Command::Openapi => {
            let text = crate::api::openapi::pretty().context("serialising the OpenAPI document")?;
            print_all(&text)
        }
    }
}

/// Writes `text` to stdout; a reader that stopped early (`| head`) is not an error.
fn print_all(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}

fn address(index: u32) -> anyhow::Result<()> {
    // Only the mnemonic is needed (no database).
    match dotenvy::dotenv() {
        Ok(_) => {}
        Err(e) if e.not_found() => {}
        Err(e) => anyhow::bail!("invalid .env: {e}"),
    }
    let phrase = std::env::var("DEPOSIT_MNEMONIC")
        .ok()
        .filter(|p| !p.trim().is_empty())
        .context("DEPOSIT_MNEMONIC is not set")?;
    let address = crate::chain::wallet::derive_address(&phrase, index)?;
    println!("{}", address.to_checksum(None));
    Ok(())
}

async fn sweeps(pending: bool, action: Option<SweepsAction>) -> anyhow::Result<()> {
    let config = load_config()?;
    let pool = db::connect(&config.database).await?;
    if let Some(SweepsAction::Retry { id }) = action {
        // As the console's retry: audited (actor `cli`).
        crate::admin::sweeps::retry_sweep(&pool, id, &crate::admin::Actor::cli())
            .await
            .map_err(|e| match e {
                crate::admin::AdminError::NotFound(_) => anyhow::anyhow!("no sweep with id {id}"),
                other => anyhow::Error::from(other).context("cannot retry the sweep"),
            })?;
        println!("sweep {id} planned again; the sweeper picks it up on its next pass");
        return Ok(());
    }
    let rows = crate::chain::sweeper::list(&pool, pending, 200).await?;
    if rows.is_empty() {
        println!("no {}sweeps", if pending { "pending " } else { "" });
        return Ok(());
    }
    println!(
        "{:>6}  {:>8}  {:<5}  {:<42}  {:>20}  {:<8}  {:<6}  {:<9}  {:<66}  note",
        "id",
        "chain",
        "token",
        "deposit address",
        "amount (units)",
        "method",
        "step",
        "status",
        "tx"
    );
    for r in rows {
        let note = match (&r.last_error, &r.dust_wei) {
            (Some(e), _) => format!("error: {e}"),
            (None, Some(d)) if d != "0" => format!("dust {d} wei"),
            _ => String::new(),
        };
        println!(
            "{:>6}  {:>8}  {:<5}  {:<42}  {:>20}  {:<8}  {:<6}  {:<9}  {:<66}  {note}",
            r.sweep_id,
            r.chain_id,
            r.token_symbol,
            r.deposit_address,
            r.amount_units,
            r.method,
            r.step,
            r.status,
            r.tx_hash.unwrap_or_default(),
        );
    }
    Ok(())
}

async fn gas() -> anyhow::Result<()> {
    let config = load_config()?;
    let chains = crate::chain::Chains::from_config(&config)?;
    let gas = chains
        .gas()
        .context("VENDOR_GAS_TANK_PRIVATE_KEY is not set")?
        .address();
    anyhow::ensure!(chains.iter().next().is_some(), "no chain is configured");
    let mut failed = 0;
    for chain in chains.iter() {
        match crate::chain::sweeper::gas_balance(chain, gas).await {
            Ok(wei) => println!(
                "{} (chain {}): {} {} ETH ({wei} wei)",
                chain.name(),
                chain.id(),
                gas.to_checksum(None),
                crate::chain::format_units(wei, 18)
            ),
            Err(e) => {
                failed += 1;
                println!("{} (chain {}): {e}", chain.name(), chain.id());
            }
        }
    }
    anyhow::ensure!(failed == 0, "{failed} chain(s) could not be read");
    Ok(())
}

async fn tokens(command: TokensCommand) -> anyhow::Result<()> {
    use crate::admin::{Actor, tokens as admin_tokens};
    use crate::billing::tokens;
    let config = load_config()?;
    let pool = db::connect(&config.database).await?;
    db::migrate(&pool).await?;
    match command {
        TokensCommand::Create { label } => {
            // As the console's create: audited (actor `cli`, never the secret).
            let created = admin_tokens::create_token(&pool, &label, &Actor::cli())
                .await
                .context("cannot create the token")?
                .value;
            let secret = created.token.context("the new token's secret is missing")?;
            println!("{secret}");
            eprintln!(
                "created billing token {} ({}, label {:?}); it is shown only now: store it in the AI server's secrets",
                created.row.id, created.row.display_prefix, created.row.label
            );
        }
        TokensCommand::List => {
            let list = tokens::list(&pool).await.context("cannot list tokens")?;
            if list.is_empty() {
                println!(
                    "no billing tokens (create one with `vendor-server tokens create --label NAME`)"
                );
            }
            for t in list {
                let state = t.revoked_at.map_or_else(
                    || "active".to_owned(),
                    |at| format!("revoked {}", at.format("%Y-%m-%d %H:%M:%SZ")),
                );
                println!(
                    "{}\t{}…\t{}\tcreated {}\t{state}",
                    t.id,
                    t.display_prefix,
                    t.label,
                    t.created_at.format("%Y-%m-%d %H:%M:%SZ")
                );
            }
        }
        TokensCommand::Revoke { id } => {
            let t = admin_tokens::revoke_token(&pool, id, &Actor::cli())
                .await
                .map_err(|e| match e {
                    crate::admin::AdminError::NotFound(_) => {
                        anyhow::anyhow!(
                            "no billing token with id {id} (see `vendor-server tokens list`)"
                        )
                    }
                    other => anyhow::Error::from(other).context("cannot revoke the token"),
                })?
                .value;
            println!(
                "revoked billing token {} ({}, label {:?})",
                t.id, t.display_prefix, t.label
            );
        }
    }
    Ok(())
}

fn load_config() -> anyhow::Result<Config> {
    Config::from_env().context("invalid configuration")
}

async fn healthcheck(url: &str, timeout_secs: u64) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(timeout_secs))
        .build()?;
    let response = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("{url} did not answer"))?;
    let status = response.status();
    anyhow::ensure!(status.is_success(), "{url} answered {status}");
    println!("ok: {url} answered {status}");
    Ok(())
}
