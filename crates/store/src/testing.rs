//! Throwaway stores for tests ([`crate::scratch`] stores that panic rather than fail): a SQLite
//! file in a temporary directory, or a fresh schema in the PostgreSQL named by
//! `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
//! Each store is isolated, so tests run in parallel. PostgreSQL being unreachable is an error,
//! never a skip.

use std::{str::FromStr, sync::Arc};

use sqlx::{postgres::PgConnectOptions, Connection, PgConnection};

use crate::{postgres::PgStore, scratch::ScratchStore, Backend, GroupConfig, Store, StoreConfig};

/// Runs each listed `async fn(&TestStore)` as two tests, `sqlite::name` and `postgres::name`,
/// each on its own fresh store: one case, written once, on both backends.
#[macro_export]
macro_rules! test_on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $name() {
                let store = $crate::testing::TestStore::new($crate::Backend::Sqlite).await;
                super::$name(&store).await;
            })*
        }
        mod postgres {
            $(#[tokio::test] async fn $name() {
                let store = $crate::testing::TestStore::new($crate::Backend::Postgres).await;
                super::$name(&store).await;
            })*
        }
    };
}

pub use crate::scratch::DEFAULT_TEST_DATABASE_URL;

pub fn test_database_url() -> String {
    crate::scratch::postgres_url_from_env()
}

/// A [`ScratchStore`] for tests: opening it panics instead of failing (PostgreSQL being
/// unreachable fails the test), and it can check that no transaction was left open.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    /// `DATABASE_URL` a separate process (e.g. a `lightning serve`) can use to reach this store.
    pub database_url: String,
    scratch: ScratchStore,
}

impl TestStore {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::sqlite().await,
            Backend::Postgres => Self::postgres().await,
        }
    }

    pub async fn sqlite() -> Self {
        Self::sqlite_with(GroupConfig::default()).await
    }

    pub async fn postgres() -> Self {
        Self::postgres_at(&test_database_url()).await
    }

    /// A fresh schema in the PostgreSQL at `url`, dropped with the store.
    pub async fn postgres_at(url: &str) -> Self {
        Self::postgres_with(url, 5, GroupConfig::default()).await
    }

    /// A SQLite store with the given group commit settings.
    pub async fn sqlite_with(group_commit: GroupConfig) -> Self {
        let scratch = ScratchStore::sqlite(group_commit)
            .await
            .expect("open SQLite store");
        Self::of(scratch)
    }

    /// [`postgres_at`](Self::postgres_at) with a pool size and group commit settings.
    pub async fn postgres_with(url: &str, max_connections: u32, group_commit: GroupConfig) -> Self {
        let scratch = ScratchStore::postgres(url, max_connections, group_commit)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "PostgreSQL at {} is required for tests: {e}",
                    crate::redact_url(url)
                )
            });
        Self::of(scratch)
    }

    fn of(scratch: ScratchStore) -> Self {
        // `store` and `database_url` stay fields (tests read them directly); the scratch store
        // behind them owns the cleanup.
        Self {
            store: scratch.store.clone(),
            database_url: scratch.database_url.clone(),
            scratch,
        }
    }

    /// Another connection pool onto the same PostgreSQL schema, e.g. a second collector, or one
    /// that reaches the server through a proxy on `port`.
    pub async fn reconnect_postgres(
        &self,
        port: Option<u16>,
        acquire_timeout: std::time::Duration,
    ) -> Arc<dyn Store> {
        let schema = self
            .scratch
            .schema
            .as_deref()
            .expect("reconnect_postgres needs a PostgreSQL TestStore");
        let url = self
            .scratch
            .admin_url
            .clone()
            .expect("PostgreSQL TestStore knows its URL");
        let mut options = PgConnectOptions::from_str(&url)
            .expect("url")
            .options([("search_path", schema)]);
        if let Some(port) = port {
            options = options.port(port);
        }
        let mut config = StoreConfig::new(Some(url), self.scratch._dir.path());
        config.max_connections = 5;
        config.acquire_timeout = acquire_timeout;
        Arc::new(
            PgStore::connect_with(options, &config)
                .await
                .expect("reconnect PostgreSQL store"),
        )
    }

    /// Fails if a connection of the store still holds locks on its tables (e.g. a transaction
    /// left open after an error), by taking an exclusive lock with NOWAIT from a fresh
    /// connection. SQLite: a write through the store's single writer must go through.
    pub async fn assert_no_locks_left(&self) {
        match (&self.scratch.schema, &self.scratch.admin_url) {
            (Some(schema), Some(url)) => {
                let mut c = PgConnection::connect(url).await.expect("admin connection");
                let mut tx = c.begin().await.expect("begin");
                sqlx::query(&format!(
                    "LOCK TABLE {schema}.trajectories, {schema}.trajectory_steps IN ACCESS EXCLUSIVE MODE NOWAIT"
                ))
                .execute(&mut *tx)
                .await
                .expect("a store connection still holds locks (transaction left open?)");
                tx.rollback().await.expect("rollback");
            }
            _ => {
                let probe = crate::NewTrajectory {
                    agent_id: "lock-probe".into(),
                    ..Default::default()
                };
                let write = self.store.start_trajectory(&probe);
                let id = tokio::time::timeout(std::time::Duration::from_secs(5), write)
                    .await
                    .expect("the SQLite writer is still busy (transaction left open?)")
                    .expect("write");
                self.store
                    .delete_trajectory(id)
                    .await
                    .expect("clean up the probe");
            }
        }
    }

    /// Schema this store lives in (PostgreSQL only).
    pub fn schema(&self) -> Option<&str> {
        self.scratch.schema()
    }
}

/// The scratch store's own methods (e.g. `raw_ceiling`).
impl std::ops::Deref for TestStore {
    type Target = ScratchStore;
    fn deref(&self) -> &ScratchStore {
        &self.scratch
    }
}
