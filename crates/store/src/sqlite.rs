//! SQLite backend: the zero-setup default. One writer connection (SQLite has one writer anyway,
//! and a single connection avoids SQLITE_BUSY on lock upgrades) and a pool of readers, in WAL mode.

use std::{str::FromStr, time::Duration};

use chrono::{DateTime, Utc};
use lightning_core::{time, TimeBucket};
use serde_json::Value;
use sqlx::{
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
    },
    ColumnIndex, QueryBuilder, Row, Sqlite, SqlitePool,
};
use uuid::Uuid;

use crate::{
    sql::{Dialect, TypedRow},
    sql_store::SqlBackend,
    Backend, StoreConfig, StoreError, StoreResult,
};

impl Dialect for Sqlite {
    const ILIKE: &'static str = "LIKE";
    const FOR_UPDATE: &'static str = "";

    fn bind_id(qb: &mut QueryBuilder<'_, Self>, id: Uuid) {
        qb.push_bind(id.hyphenated().to_string());
    }
    fn bind_ts(qb: &mut QueryBuilder<'_, Self>, ts: DateTime<Utc>) {
        qb.push_bind(time::format(ts));
    }
    fn bind_json(qb: &mut QueryBuilder<'_, Self>, value: Option<&Value>) {
        qb.push_bind(value.map(Value::to_string));
    }
    crate::sql::plain_binds!();
    fn bucket_expr(bucket: TimeBucket) -> &'static str {
        match bucket {
            TimeBucket::Hour => "substr(t.start_time, 1, 13) || ':00:00Z'",
            TimeBucket::Day => "substr(t.start_time, 1, 10) || 'T00:00:00Z'",
        }
    }
}

impl TypedRow for SqliteRow {
    fn id<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<Uuid> {
        let raw: String = self.try_get(i)?;
        raw.parse()
            .map_err(|e| StoreError::Corrupt(format!("id {raw:?}: {e}")))
    }
    fn opt_ts<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<Option<DateTime<Utc>>> {
        let raw: Option<String> = self.try_get(i)?;
        raw.map(|s| {
            time::parse(&s).map_err(|e| StoreError::Corrupt(format!("timestamp {s:?}: {e}")))
        })
        .transpose()
    }
    fn json<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<Option<Value>> {
        let raw: Option<String> = self.try_get(i)?;
        raw.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("json: {e}"))))
            .transpose()
    }
    fn opt_bool<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<Option<bool>> {
        Ok(self.try_get(i)?)
    }
}

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// Step batches go through here: one writer task, so one transaction at a time.
    group: crate::group::GroupCommit,
}

impl SqlBackend for SqliteStore {
    const BACKEND: Backend = Backend::Sqlite;

    fn pool_status(&self) -> crate::PoolStatus {
        let (w, r) = (
            crate::PoolStatus::of(&self.writer),
            crate::PoolStatus::of(&self.reader),
        );
        crate::PoolStatus {
            size: w.size + r.size,
            idle: w.idle + r.idle,
            max: w.max + r.max,
        }
    }

    fn group(&self) -> &crate::group::GroupCommit {
        &self.group
    }
}

impl SqliteStore {
    pub async fn open(config: &StoreConfig) -> StoreResult<Self> {
        let options = match config.database_url.as_deref() {
            Some(url) => SqliteConnectOptions::from_str(url).map_err(|e| {
                StoreError::Config(format!(
                    "invalid SQLite URL {}: {e}",
                    crate::redact_url(url)
                ))
            })?,
            None => {
                let db = config.data_dir.join("lightning.db");
                crate::private_files::create_dir(&config.data_dir)
                    .and_then(|()| crate::private_files::create_file(&db))
                    .map_err(|e| {
                        StoreError::Config(format!(
                            "cannot create data directory {}: {e}",
                            config.data_dir.display()
                        ))
                    })?;
                SqliteConnectOptions::new().filename(db)
            }
        }
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // NORMAL in WAL mode survives a process crash; only an OS crash can lose the last commits.
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);

        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        crate::private_files::tighten_database(options.get_filename());
        let reader = SqlitePoolOptions::new()
            .max_connections(config.max_connections.max(2))
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options.read_only(true))
            .await?;
        let group_config = crate::GroupConfig {
            writers: 1,
            ..config.group_commit
        };
        let group =
            crate::group::GroupCommit::start(std::sync::Arc::new(writer.clone()), group_config);
        Ok(Self {
            writer,
            reader,
            group,
        })
    }
}

crate::exec::impl_sql_exec!(SqliteStore, Sqlite, SqliteRow);
