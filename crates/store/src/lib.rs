//! Trajectory storage: one [`Store`] trait, implemented for SQLite (embedded default) and
//! PostgreSQL (production). All SQL of the project lives in this crate.

mod error;
mod exec;
mod export;
mod group;
pub mod keys;
mod optimization;
mod optimization_sql;
pub mod postgres;
pub mod private_files;
pub mod raw_ceiling;
mod redact;
mod rollout;
mod rollout_sql;
mod run_ops;
mod scores;
mod scores_sql;
pub mod scratch;
mod sql;
mod sql_store;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

use std::{path::PathBuf, sync::Arc, time::Duration};

use async_trait::async_trait;
use lightning_core::{
    AgentSummary, Completion, NewStep, NewTrajectory, Stats, StatsFilter, Step, Trajectory,
    TrajectoryFilter, TrajectoryPage,
};
use uuid::Uuid;

pub use error::{StoreError, StoreResult};
pub use export::{export_parts, export_stream, steps_pages, ExportPart, STEP_PAGE};
pub use group::GroupConfig;
pub use keys::KeyStore;
pub use optimization::OptimizationStore;
pub use redact::redact_url;
pub use rollout::{
    compare_rollout, compare_versions, end_rollout_with_evidence, event as prompt_event,
    guard_rollout, promote_with_history, reward_series, RolloutStore,
};
pub use run_ops::{shown_status, RunLiveness, RunOpsStore, RunSpend, STALE_AFTER};
pub use scores::ScoreStore;

/// Storage used by the collector and the optimizer. Implementations keep no state between calls
/// beyond their connection pools, so any number of collectors can share one database.
#[async_trait]
pub trait Store:
    OptimizationStore + ScoreStore + KeyStore + RolloutStore + RunOpsStore + Send + Sync + 'static
{
    /// Which backend this is, for logs and `/health`.
    fn backend(&self) -> Backend;

    /// Succeeds when the database answers a trivial query.
    async fn ping(&self) -> StoreResult<()>;

    /// Connection pool use, for metrics.
    fn pool_status(&self) -> PoolStatus;

    /// The step-batch group commit's work so far, for metrics and the bench.
    fn group_commit_stats(&self) -> GroupCommitStats;

    /// Creates a trajectory, or does nothing when `trajectory_id` is given and already exists.
    async fn start_trajectory(&self, trajectory: &NewTrajectory) -> StoreResult<Uuid>;

    /// Upserts steps atomically (see [`NewStep::merge`] for the merge rule), possibly in one
    /// transaction with other callers' batches (group commit); returns once it has committed.
    /// `NotFound` when the trajectory does not exist; then nothing is written. `Overloaded`
    /// when the write queue is full.
    /// Takes the steps by value: the writer keeps them until the group has committed.
    async fn append_steps(&self, trajectory_id: Uuid, steps: Vec<NewStep>) -> StoreResult<()>;

    /// Marks `running` trajectories with no activity since `idle_since` as `abandoned`;
    /// returns how many. Safe to run from several collectors at once.
    async fn abandon_idle(&self, idle_since: chrono::DateTime<chrono::Utc>) -> StoreResult<u64>;

    /// Records the outcome; repeating it overwrites the fields the newer call carries.
    async fn complete_trajectory(
        &self,
        trajectory_id: Uuid,
        completion: &Completion,
    ) -> StoreResult<()>;

    async fn get_trajectory(&self, trajectory_id: Uuid) -> StoreResult<Trajectory>;

    /// Steps with `step_number > after`, in order.
    async fn list_steps(
        &self,
        trajectory_id: Uuid,
        after: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<Step>>;

    /// Newest first, keyset-paginated.
    async fn list_trajectories(&self, filter: &TrajectoryFilter) -> StoreResult<TrajectoryPage>;

    async fn stats(&self, filter: &StatsFilter) -> StoreResult<Stats>;

    async fn agents(&self) -> StoreResult<Vec<AgentSummary>>;

    /// Deletes a trajectory and its steps; `NotFound` if there was none.
    async fn delete_trajectory(&self, trajectory_id: Uuid) -> StoreResult<()>;
}

/// What the group commit has done since the store opened (counters), and what waits (gauge).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GroupCommitStats {
    /// Group transactions run, committed or not (a failed group's retries count one each).
    pub transactions: u64,
    /// Batches answered.
    pub batches: u64,
    /// Steps in those batches.
    pub steps: u64,
    /// Wall time spent inside group transactions, summed over the writers.
    pub busy_seconds: f64,
    /// Groups whose transaction failed and whose batches were retried one by one.
    pub split_groups: u64,
    /// Steps waiting in the queue now.
    pub queued_steps: u64,
}

/// Connections open, idle, and allowed, summed over a backend's pools.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStatus {
    pub size: u32,
    pub idle: u32,
    pub max: u32,
}

impl PoolStatus {
    pub(crate) fn of<DB: sqlx::Database>(pool: &sqlx::Pool<DB>) -> Self {
        Self {
            size: pool.size(),
            idle: pool.num_idle() as u32,
            max: pool.options().get_max_connections(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Where the data lives and how hard to try reaching it. `Debug` masks the URL's password.
#[derive(Clone)]
pub struct StoreConfig {
    /// `postgres://…`, `sqlite://path`, or `None` for `<data_dir>/lightning.db`.
    pub database_url: Option<String>,
    pub data_dir: PathBuf,
    pub max_connections: u32,
    /// How long a request waits for a connection before answering "unavailable".
    pub acquire_timeout: Duration,
    /// Grouping of concurrent step batches into shared transactions.
    pub group_commit: GroupConfig,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("data_dir", &self.data_dir)
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

impl StoreConfig {
    pub fn new(database_url: Option<String>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            database_url,
            data_dir: data_dir.into(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            group_commit: GroupConfig::default(),
        }
    }

    pub fn backend(&self) -> StoreResult<Backend> {
        match self.database_url.as_deref() {
            None => Ok(Backend::Sqlite),
            Some(url) if url.starts_with("sqlite:") => Ok(Backend::Sqlite),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Ok(Backend::Postgres)
            }
            Some(url) => Err(StoreError::Config(format!(
                "DATABASE_URL must start with postgres://, postgresql:// or sqlite:// (got {})",
                redact_url(url)
            ))),
        }
    }
}

/// Opens the configured backend and applies its migrations.
pub async fn open(config: &StoreConfig) -> StoreResult<Arc<dyn Store>> {
    Ok(match config.backend()? {
        Backend::Sqlite => Arc::new(sqlite::SqliteStore::open(config).await?),
        Backend::Postgres => Arc::new(postgres::PgStore::open(config).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_from_url() {
        let c = |u: Option<&str>| StoreConfig::new(u.map(String::from), ".").backend();
        assert_eq!(c(None).unwrap(), Backend::Sqlite);
        assert_eq!(c(Some("sqlite://x.db")).unwrap(), Backend::Sqlite);
        assert_eq!(c(Some("postgresql://h/db")).unwrap(), Backend::Postgres);
        assert!(c(Some("mysql://u:pw@h/db"))
            .unwrap_err()
            .to_string()
            .contains("***"));
    }
}
