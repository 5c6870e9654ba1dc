use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use clap::Args;
use lightning_store::{redact_url, Store, StoreConfig, StoreError};

/// Where the data lives; shared by every subcommand that opens the store.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// Database: postgres://user:pass@host/db, or sqlite://path. Unset: SQLite in the data directory.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Directory for the embedded SQLite database and the generated API key.
    #[arg(long, env = "LIGHTNING_DATA_DIR", default_value = "./lightning-data")]
    pub data_dir: PathBuf,

    /// Most database connections this process opens.
    #[arg(long, env = "LIGHTNING_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,

    /// Seconds to keep retrying when the database is unreachable at start-up.
    #[arg(long, env = "LIGHTNING_DB_CONNECT_TIMEOUT", default_value_t = 30)]
    pub db_connect_timeout: u64,

    /// Steps that may wait for the writer before new batches get 503 + Retry-After.
    #[arg(long, env = "LIGHTNING_WRITE_QUEUE_STEPS", default_value_t = lightning_store::GroupConfig::default().queue_steps)]
    pub write_queue_steps: usize,

    /// Longest a step batch waits for others to share its transaction (group commit), in
    /// microseconds; 0 groups only what queued up while the previous transaction ran.
    #[arg(long, env = "LIGHTNING_GROUP_COMMIT_LINGER_US", default_value_t = lightning_store::GroupConfig::default().linger.as_micros() as u64)]
    pub group_commit_linger_us: u64,

    /// Concurrent writer transactions for step batches on PostgreSQL (SQLite has one writer).
    /// Default: half of --db-max-connections, at most 4.
    #[arg(long, env = "LIGHTNING_GROUP_COMMIT_WRITERS", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub group_commit_writers: Option<u16>,
}

impl StoreArgs {
    pub fn config(&self) -> StoreConfig {
        let mut config = StoreConfig::new(self.database_url.clone(), &self.data_dir);
        config.max_connections = self.db_max_connections;
        config.group_commit.queue_steps = self.write_queue_steps;
        config.group_commit.linger = Duration::from_micros(self.group_commit_linger_us);
        config.group_commit.writers = self.group_commit_writers.map_or_else(
            || lightning_store::GroupConfig::default_writers(self.db_max_connections),
            usize::from,
        );
        config
    }

    pub fn describe(&self) -> String {
        match &self.database_url {
            Some(url) => redact_url(url),
            None => format!("sqlite://{}", self.data_dir.join("lightning.db").display()),
        }
    }

    /// Opens the store, retrying while the database is unreachable (e.g. still starting).
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        let config = self.config();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(self.db_connect_timeout);
        let mut delay = Duration::from_millis(250);
        loop {
            match lightning_store::open(&config).await {
                Ok(store) => return Ok(store),
                Err(StoreError::Unavailable(e))
                    if tokio::time::Instant::now() + delay < deadline =>
                {
                    tracing::warn!(
                        "database {} unreachable ({e}); retrying in {delay:?}",
                        self.describe()
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot open database {}", self.describe()))
                }
            }
        }
    }
}
