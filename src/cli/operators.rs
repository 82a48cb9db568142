//! `vendor-server operators create|list|revoke`: the console's operator accounts at the command
//! line, audited like the admin API's (actor `cli`).

use anyhow::Context;
use clap::Subcommand;

use crate::admin::operators::{self, Role};
use crate::admin::{Actor, AdminError};
use crate::db;

#[derive(Debug, Subcommand)]
pub enum OperatorsCommand {
    /// Create an operator and print their token (shown this once only).
    Create {
        /// The name the audit log shows (unique; letters, digits, spaces and . _ - @ +).
        #[arg(long)]
        name: String,
        /// owner (also manages operators and billing tokens), operator (acts) or viewer (reads).
        #[arg(long)]
        role: String,
    },
    /// List operators (id, name, role, token prefix, created, revoked); never the tokens.
    List,
    /// Revoke an operator's token at once (their next request is refused).
    Revoke {
        /// The operator id from `operators list`.
        id: i64,
    },
}

pub async fn run(command: OperatorsCommand) -> anyhow::Result<()> {
    let config = super::load_config()?;
    let pool = db::connect(&config.database).await?;
    db::migrate(&pool).await?;
    let actor = Actor::cli();
    match command {
        OperatorsCommand::Create { name, role } => {
            let role: Role = role
                .parse()
                .map_err(|e: AdminError| anyhow::anyhow!("{e}"))?;
            let created = operators::create(&pool, &name, role, &actor)
                .await
                .map_err(|e| anyhow::anyhow!("cannot create the operator: {e}"))?
                .value;
            let token = created
                .token
                .context("the new operator's token is missing")?;
            println!("{token}");
            eprintln!(
                "created operator {} ({}, role {}, token {}…); the token is shown only now: give it to them to sign in to the console",
                created.row.id,
                created.row.name,
                created.row.role.as_str(),
                created.row.display_prefix
            );
        }
        OperatorsCommand::List => {
            let list = operators::list(&pool)
                .await
                .map_err(|e| anyhow::anyhow!("cannot list operators: {e}"))?
                .items;
            if list.is_empty() {
                println!(
                    "no operators (ADMIN_TOKEN is the owner; create one with `vendor-server operators create --name NAME --role viewer`)"
                );
            }
            for o in list {
                let state = o.revoked_at.map_or_else(
                    || "active".to_owned(),
                    |at| format!("revoked {}", at.format("%Y-%m-%d %H:%M:%SZ")),
                );
                println!(
                    "{}\t{}\t{}\t{}…\tcreated {}\t{state}",
                    o.id,
                    o.name,
                    o.role.as_str(),
                    o.display_prefix,
                    o.created_at.format("%Y-%m-%d %H:%M:%SZ")
                );
            }
        }
        OperatorsCommand::Revoke { id } => {
            let bootstrap_owner = config.server.admin_token.is_some();
            let o = operators::revoke(&pool, id, bootstrap_owner, &actor)
                .await
                .map_err(|e| match e {
                    AdminError::NotFound(_) => anyhow::anyhow!(
                        "no operator with id {id} (see `vendor-server operators list`)"
                    ),
                    AdminError::Conflict { message, .. } => {
                        anyhow::anyhow!("cannot revoke the operator: {message}")
                    }
                    other => anyhow::anyhow!("cannot revoke the operator: {other}"),
                })?
                .value;
            println!(
                "revoked operator {} ({}, role {})",
                o.id,
                o.name,
                o.role.as_str()
            );
        }
    }
    Ok(())
}
