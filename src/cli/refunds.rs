//! `vendor-server refunds list|approve|reject`: the console's refund actions at the command line,
//! audited like the admin API's.

use anyhow::Context;
use clap::Subcommand;

use crate::admin::{self, Actor};
use crate::domain::ids::RefundId;
use crate::refunds::Ctx;
use crate::{chain, db};

#[derive(Debug, Subcommand)]
pub enum RefundsCommand {
    /// List refunds, newest first (open ones by default: requested, approved, paying, failed).
    List {
        /// A status (requested, approved, paying, paid, rejected, canceled, failed), `open` or `all`.
        #[arg(long, default_value = "open")]
        status: String,
    },
    /// Approve a requested refund (the payout wallet pays it, or you do: see the payment link).
    Approve {
        /// `RefundID_<uuid>` from `refunds list`.
        id: String,
    },
    /// Reject a refund not being paid; its amount is credited back to the customer.
    Reject {
        /// `RefundID_<uuid>` from `refunds list`.
        id: String,
        /// Why (shown to the customer).
        #[arg(long)]
        reason: String,
    },
}

fn refund_id(id: &str) -> anyhow::Result<RefundId> {
    id.trim().parse().map_err(|_| {
        anyhow::anyhow!(
            "{id:?} is not a refund id (RefundID_<uuid>, see `vendor-server refunds list`)"
        )
    })
}

fn failed(e: admin::AdminError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

pub async fn run(command: RefundsCommand) -> anyhow::Result<()> {
    let config = super::load_config()?;
    let pool = db::connect(&config.database).await?;
    db::migrate(&pool).await?;
    let chains = chain::Chains::from_config(&config)?;
    let cx = Ctx {
        pool: &pool,
        chains: &chains,
        config: &config.refunds,
    };
    let actor = Actor::cli();
    match command {
        RefundsCommand::List { status } => {
            let status = (status != "all").then_some(status.as_str());
            let page = admin::refunds::list(&cx, status, None, 500)
                .await
                .map_err(failed)?;
            if page.items.is_empty() {
                println!("no {} refunds", status.unwrap_or("recorded"));
            }
            for r in page.items {
                println!(
                    "{}\t{}\t{} USD\t{} {} on chain {}\tto {}\t{}{}",
                    r.refund_id,
                    r.status.as_str(),
                    r.amount_usd,
                    r.token_amount,
                    r.token_symbol,
                    r.chain_id,
                    r.to_address,
                    r.purchase_id
                        .map(|p| p.to_string())
                        .or(r.checkout_session_id.map(|s| s.to_string()))
                        .unwrap_or_default(),
                    r.payment_uri
                        .map(|u| format!("\tpay: {u}"))
                        .or(r.tx_hash.map(|h| format!("\ttx {h}")))
                        .unwrap_or_default(),
                );
            }
        }
        RefundsCommand::Approve { id } => {
            let id = refund_id(&id)?;
            let chain_id =
                sqlx::query_scalar!("select chain_id from refund where refund_id = $1", id.0)
                    .fetch_optional(&pool)
                    .await?
                    .with_context(|| format!("no refund {id}"))?;
            let head = match u64::try_from(chain_id).ok().and_then(|c| chains.by_id(c)) {
                Some(c) => c.head().await.ok(),
                None => None,
            };
            let done = admin::refunds::approve(&cx, id, head, &actor)
                .await
                .map_err(failed)?;
            match done.value.payment_uri {
                Some(uri) => println!("refund {id} approved; pay it from your wallet: {uri}"),
                None => println!("refund {id} approved; the payout job pays it"),
            }
        }
        RefundsCommand::Reject { id, reason } => {
            let id = refund_id(&id)?;
            admin::refunds::reject(&cx, id, Some(&reason), &actor)
                .await
                .map_err(failed)?;
            println!("refund {id} rejected; its amount is credited back");
        }
    }
    Ok(())
}
