//! Throwaway stores outside any test: a SQLite file in a temporary directory, or a fresh schema
//! in a PostgreSQL server, each removed when dropped. `lightning bench` measures on these, so
//! they are part of the shipped library (no `testing` feature); `lightning_store::testing`
//! builds the test fixtures on top of them.

use std::{str::FromStr, sync::Arc};

use sqlx::{postgres::PgConnectOptions, Connection, PgConnection};

use crate::{
    postgres::PgStore, redact_url, sqlite::SqliteStore, GroupConfig, Store, StoreConfig,
    StoreError, StoreResult,
};

/// The PostgreSQL the tests and the bench use unless told otherwise.
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// `TEST_DATABASE_URL`, else [`DEFAULT_TEST_DATABASE_URL`].
pub fn postgres_url_from_env() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_TEST_DATABASE_URL.to_string())
}

/// A store plus whatever must be cleaned up when it is dropped.
pub struct ScratchStore {
    pub store: Arc<dyn Store>,
    /// `DATABASE_URL` a separate process (e.g. a `lightning serve`) can use to reach this store.
    pub database_url: String,
    /// Kept alive with the store: the SQLite file, and every store's data directory.
    pub(crate) _dir: tempfile::TempDir,
    /// PostgreSQL only: the schema, and the URL of the server it lives in (to drop it).
    pub(crate) schema: Option<String>,
    pub(crate) admin_url: Option<String>,
}

fn temp_dir() -> StoreResult<tempfile::TempDir> {
    tempfile::tempdir().map_err(|e| StoreError::Config(format!("temporary directory: {e}")))
}

impl ScratchStore {
    /// A SQLite store in a new temporary directory.
    pub async fn sqlite(group_commit: GroupConfig) -> StoreResult<Self> {
        let dir = temp_dir()?;
        let mut config = StoreConfig::new(None, dir.path());
        config.group_commit = group_commit;
        let store = SqliteStore::open(&config).await?;
        let database_url = format!("sqlite://{}", dir.path().join("lightning.db").display());
        Ok(Self {
            store: Arc::new(store),
            database_url,
            _dir: dir,
            schema: None,
            admin_url: None,
        })
    }

    /// A migrated store in a fresh schema of the PostgreSQL at `url`.
    pub async fn postgres(
        url: &str,
        max_connections: u32,
        group_commit: GroupConfig,
    ) -> StoreResult<Self> {
        let schema = ScratchSchema::create(url).await?;
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| {
                StoreError::Config(format!("invalid PostgreSQL URL {}: {e}", redact_url(url)))
            })?
            .options([("search_path", schema.schema.as_str())]);
        let dir = temp_dir()?;
        let mut config = StoreConfig::new(Some(url.to_string()), dir.path());
        config.max_connections = max_connections;
        config.group_commit = group_commit;
        let store = PgStore::connect_with(options, &config).await?;
        // From here the schema is dropped with the store.
        let (schema_name, admin_url) = schema.keep();
        Ok(Self {
            store: Arc::new(store),
            database_url: schema_url(url, &schema_name),
            _dir: dir,
            schema: Some(schema_name),
            admin_url: Some(admin_url),
        })
    }

    /// Schema this store lives in (PostgreSQL only).
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }
}

impl Drop for ScratchStore {
    fn drop(&mut self) {
        if let (Some(schema), Some(url)) = (self.schema.take(), self.admin_url.take()) {
            drop_schema(url, schema);
        }
    }
}

/// An empty PostgreSQL schema (no migrations), dropped with this value: for a process that
/// brings its own tables, such as the bench's Express peer.
pub struct ScratchSchema {
    /// `DATABASE_URL` whose `search_path` is the schema.
    pub database_url: String,
    schema: String,
    admin_url: String,
}

impl ScratchSchema {
    pub async fn create(url: &str) -> StoreResult<Self> {
        let schema = format!("lt_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(url).await?;
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&mut admin)
            .await?;
        admin.close().await.ok();
        Ok(Self {
            database_url: schema_url(url, &schema),
            schema,
            admin_url: url.to_string(),
        })
    }

    /// Hands the schema's cleanup to the caller: (schema, server URL).
    fn keep(mut self) -> (String, String) {
        (
            std::mem::take(&mut self.schema),
            std::mem::take(&mut self.admin_url),
        )
    }
}

impl Drop for ScratchSchema {
    fn drop(&mut self) {
        if !self.schema.is_empty() {
            drop_schema(self.admin_url.clone(), self.schema.clone());
        }
    }
}

/// `url` with `search_path` set to `schema`, for another process.
fn schema_url(url: &str, schema: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20search_path%3D{schema}")
}

/// Drops a schema from a plain thread (Drop runs outside async context).
pub(crate) fn drop_schema(url: String, schema: String) {
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        rt.block_on(async {
            let mut c = PgConnection::connect(&url).await.ok()?;
            // Never hang on a lock some leaked connection still holds.
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn schema_exists(url: &str, schema: &str) -> bool {
        let mut c = PgConnection::connect(url)
            .await
            .expect("PostgreSQL for tests");
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = $1",
        )
        .bind(schema)
        .fetch_one(&mut c)
        .await
        .expect("count schemas");
        n == 1
    }

    #[tokio::test]
    async fn a_postgres_scratch_store_removes_its_schema_when_dropped() {
        let url = postgres_url_from_env();
        let scratch = ScratchStore::postgres(&url, 2, GroupConfig::default())
            .await
            .expect("scratch store");
        let schema = scratch
            .schema()
            .expect("a PostgreSQL scratch has a schema")
            .to_string();
        scratch.store.ping().await.expect("the store answers");
        assert!(schema_exists(&url, &schema).await);
        drop(scratch);
        assert!(!schema_exists(&url, &schema).await);
    }

    #[tokio::test]
    async fn a_sqlite_scratch_store_removes_its_directory_when_dropped() {
        let scratch = ScratchStore::sqlite(GroupConfig::default())
            .await
            .expect("scratch store");
        let dir = scratch._dir.path().to_path_buf();
        assert!(dir.join("lightning.db").is_file());
        assert_eq!(scratch.schema(), None);
        drop(scratch);
        assert!(!dir.exists());
    }

    #[tokio::test]
    async fn an_unreachable_server_is_an_error_not_a_panic() {
        // Port 1 on loopback: nothing listens there.
        let url = "postgres://postgres@127.0.0.1:1/test";
        let result = ScratchStore::postgres(url, 1, GroupConfig::default()).await;
        assert!(matches!(result, Err(StoreError::Unavailable(_))));
        assert!(ScratchSchema::create(url).await.is_err());
    }
}
