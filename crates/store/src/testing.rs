//! Throwaway stores for tests: a SQLite file in a temporary directory, or a fresh schema in the
//! PostgreSQL named by `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/test`).
//! Each store is isolated, so tests run in parallel. PostgreSQL being unreachable is an error,
//! never a skip.

use std::{str::FromStr, sync::Arc};

use sqlx::{postgres::PgConnectOptions, Connection, PgConnection};

use crate::{postgres::PgStore, sqlite::SqliteStore, Backend, Store, StoreConfig};

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

pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

pub fn test_database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_string())
}

/// An empty PostgreSQL schema (no migrations), dropped with this value: for a process that
/// brings its own tables, such as the bench's Express peer.
pub struct TestSchema {
    /// `DATABASE_URL` whose `search_path` is the schema.
    pub database_url: String,
    schema: String,
    admin_url: String,
}

impl TestSchema {
    pub async fn postgres_at(url: &str) -> Self {
        let schema = format!("lt_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(url)
            .await
            .unwrap_or_else(|e| panic!("PostgreSQL at {}: {e}", crate::redact_url(url)));
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await
            .expect("create schema");
        admin.close().await.ok();
        let sep = if url.contains('?') { '&' } else { '?' };
        Self {
            database_url: format!("{url}{sep}options=-c%20search_path%3D{schema}"),
            schema,
            admin_url: url.to_string(),
        }
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        drop_schema(self.admin_url.clone(), self.schema.clone());
    }
}

/// Drops a schema from a plain thread (Drop runs outside async context).
fn drop_schema(url: String, schema: String) {
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            let mut c = PgConnection::connect(&url).await.ok()?;
            // Never hang a test run on a lock some leaked connection still holds.
            sqlx::query("SET lock_timeout = '10s'")
                .execute(&mut c)
                .await
                .ok()?;
            sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(&mut c)
                .await
                .ok()
        })
    })
    .join();
}

/// A store plus whatever must be cleaned up when the test ends.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    /// `DATABASE_URL` a separate process (e.g. a `lightning serve`) can use to reach this store.
    pub database_url: String,
    _dir: tempfile::TempDir,
    schema: Option<String>,
    admin_url: Option<String>,
}

impl TestStore {
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::sqlite().await,
            Backend::Postgres => Self::postgres().await,
        }
    }

    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = StoreConfig::new(None, dir.path());
        let store = SqliteStore::open(&config).await.expect("open SQLite store");
        let database_url = format!("sqlite://{}", dir.path().join("lightning.db").display());
        Self {
            store: Arc::new(store),
            database_url,
            _dir: dir,
            schema: None,
            admin_url: None,
        }
    }

    pub async fn postgres() -> Self {
        Self::postgres_at(&test_database_url()).await
    }

    /// A fresh schema in the PostgreSQL at `url`, dropped with the store.
    pub async fn postgres_at(url: &str) -> Self {
        Self::postgres_with(url, 5, crate::GroupConfig::default()).await
    }

    /// A SQLite store with the given group commit settings (the bench).
    pub async fn sqlite_with(group_commit: crate::GroupConfig) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = StoreConfig::new(None, dir.path());
        config.group_commit = group_commit;
        let store = SqliteStore::open(&config).await.expect("open SQLite store");
        let database_url = format!("sqlite://{}", dir.path().join("lightning.db").display());
        Self {
            store: Arc::new(store),
            database_url,
            _dir: dir,
            schema: None,
            admin_url: None,
        }
    }

    /// [`postgres_at`](Self::postgres_at) with a pool size and group commit settings.
    pub async fn postgres_with(
        url: &str,
        max_connections: u32,
        group_commit: crate::GroupConfig,
    ) -> Self {
        let url = url.to_string();
        let schema = format!("lt_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&url).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {} is required for tests: {e}",
                crate::redact_url(&url)
            )
        });
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await
            .expect("create schema");
        admin.close().await.ok();
        let options = PgConnectOptions::from_str(&url)
            .expect("url")
            .options([("search_path", schema.as_str())]);
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = StoreConfig::new(Some(url.clone()), dir.path());
        config.max_connections = max_connections;
        config.group_commit = group_commit;
        let store = PgStore::connect_with(options, &config)
            .await
            .expect("open PostgreSQL store");
        let sep = if url.contains('?') { '&' } else { '?' };
        let database_url = format!("{url}{sep}options=-c%20search_path%3D{schema}");
        Self {
            store: Arc::new(store),
            database_url,
            _dir: dir,
            schema: Some(schema),
            admin_url: Some(url),
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
            .schema
            .as_deref()
            .expect("reconnect_postgres needs a PostgreSQL TestStore");
        let url = self
            .admin_url
            .clone()
            .expect("PostgreSQL TestStore knows its URL");
        let mut options = PgConnectOptions::from_str(&url)
            .expect("url")
            .options([("search_path", schema)]);
        if let Some(port) = port {
            options = options.port(port);
        }
        let mut config = StoreConfig::new(Some(url), self._dir.path());
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
        match (&self.schema, &self.admin_url) {
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
        self.schema.as_deref()
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let (Some(schema), Some(url)) = (self.schema.take(), self.admin_url.take()) else {
            return;
        };
        drop_schema(url, schema);
    }
}
