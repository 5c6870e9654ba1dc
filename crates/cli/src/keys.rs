//! `lightning keys create|list|revoke`: named API keys with a scope, kept hashed in the store
//! (the same table `POST /api/keys` writes). The secret is printed once, at creation.

use clap::{Args, Subcommand};
use lightning_core::Scope;

use crate::store_args::StoreArgs;

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key and print its secret (shown this once; only its hash is stored).
    Create {
        #[command(flatten)]
        store: StoreArgs,
        /// A name to recognise the key by, e.g. the agent or host using it.
        #[arg(long)]
        name: String,
        /// ingest (agents: send trajectories, scores, read their prompt), read (dashboard),
        /// or admin (everything, including deleting data, promoting prompts and managing keys).
        #[arg(long, value_parser = parse_scope)]
        scope: Scope,
    },
    /// List keys (never their secrets).
    List {
        #[command(flatten)]
        store: StoreArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id or name. Collectors stop accepting it within 10 seconds.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        /// The key's id or name.
        key: String,
    },
}

fn parse_scope(raw: &str) -> Result<Scope, String> {
    Scope::parse(raw).ok_or_else(|| format!("unknown scope {raw:?}: use ingest, read or admin"))
}

pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    match args.command {
        KeysCommand::Create { store, name, scope } => {
            let store = store.open().await?;
            let (secret, key) = lightning_collector::keys::generate_key(&name, scope)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let info = store.create_key(&key).await?;
            eprintln!(
                "Created {} key {:?} ({}). Its secret is shown only now:\n",
                info.scope, info.name, info.id
            );
            println!("{secret}");
            eprintln!("\nSend it as `Authorization: Bearer <key>` (LIGHTNING_API_KEY for agents).");
        }
        KeysCommand::List { store, json } => {
            let keys = store.open().await?.list_keys().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else if keys.is_empty() {
                eprintln!("No keys yet: create one with `lightning keys create --name NAME --scope ingest`.");
            } else {
                println!(
                    "{:<36}  {:<24}  {:<6}  {:<11}  {:<20}  REVOKED",
                    "ID", "NAME", "SCOPE", "PREFIX", "CREATED"
                );
                for k in keys {
                    println!(
                        "{:<36}  {:<24}  {:<6}  {:<11}  {:<20}  {}",
                        k.id,
                        k.name,
                        k.scope.as_str(),
                        k.prefix,
                        k.created_at.format("%Y-%m-%d %H:%M:%S"),
                        k.revoked_at
                            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                            .unwrap_or_else(|| "-".into())
                    );
                }
            }
        }
        KeysCommand::Revoke { store, key } => {
            let at = lightning_core::time::normalize(chrono::Utc::now());
            let info = store.open().await?.revoke_key(&key, at).await?;
            eprintln!(
                "Revoked {} key {:?} ({}); collectors refuse it within 10 seconds.",
                info.scope, info.name, info.id
            );
        }
    }
    Ok(())
}
