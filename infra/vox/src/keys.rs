//! `vox keys create|list|revoke`: API keys straight in DATABASE_URL, for the first admin key
//! (before any key exists to call `POST /keys` with) and for operations.

use clap::Subcommand;
use common::db::api_key;
use common::db::{DbConfig, PgPool};

/// What to do with API keys.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it on stdout. It is shown this once: only its hash is stored.
    Create {
        /// Who or what the key is for.
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["admin", "analyst", "uploader"])]
        role: String,
    },
    /// List the keys (prefix, role, last use, revocation), never the keys themselves.
    List,
    /// Revoke a key by id.
    Revoke { id: i64 },
}

pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    let pool = PgPool::new(&DbConfig::from_env()?)?;
    let conn = pool.get().await?;
    match command {
        KeysCommand::Create { name, role } => {
            let role = api::Role::parse(&role)
                .ok_or_else(|| anyhow::anyhow!("{role:?} is not admin, analyst or uploader"))?;
            let (stored, key) = api::keys::create(&conn, &name, role).await?;
            eprintln!(
                "created API key {} ({}, {}); it is not shown again",
                stored.api_key_id, stored.role, stored.prefix
            );
            println!("{key}");
        }
        KeysCommand::List => {
            for k in api_key::list(&conn).await? {
                let state = match k.revoked_at {
                    Some(at) => format!("revoked {}", at.to_rfc3339()),
                    None => "active".to_owned(),
                };
                let used = k.last_used_at.map_or_else(
                    || "never used".to_owned(),
                    |at| format!("used {}", at.to_rfc3339()),
                );
                println!(
                    "{}\t{}\t{}\t{}\t{state}\t{used}",
                    k.api_key_id, k.prefix, k.role, k.name
                );
            }
        }
        KeysCommand::Revoke { id } => match api_key::revoke(&conn, id).await? {
            Some(k) => println!("revoked API key {} ({})", k.api_key_id, k.prefix),
            None => anyhow::bail!("API key {id} does not exist"),
        },
    }
    Ok(())
}
