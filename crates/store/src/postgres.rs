//! PostgreSQL backend for production: JSON as `jsonb`, timestamps as `timestamptz`, and any
//! number of stateless collectors sharing one database.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use lightning_core::TimeBucket;
use serde_json::Value;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions, PgRow},
    ColumnIndex, PgPool, Postgres, QueryBuilder, Row,
};
use uuid::Uuid;

use crate::{
    redact_url,
    sql::{Dialect, TypedRow},
    sql_store::SqlBackend,
    Backend, StoreConfig, StoreError, StoreResult,
};

impl Dialect for Postgres {
    const ILIKE: &'static str = "ILIKE";
    const FOR_UPDATE: &'static str = " FOR UPDATE";

    fn bind_id(qb: &mut QueryBuilder<'_, Self>, id: Uuid) {
        qb.push_bind(id);
    }
    fn bind_ts(qb: &mut QueryBuilder<'_, Self>, ts: DateTime<Utc>) {
        qb.push_bind(ts);
    }
    fn bind_json(qb: &mut QueryBuilder<'_, Self>, value: Option<&Value>) {
        qb.push_bind(value.cloned().map(sqlx::types::Json));
    }
    crate::sql::plain_binds!();
    fn bucket_expr(bucket: TimeBucket) -> &'static str {
        match bucket {
            TimeBucket::Hour => {
                "to_char(t.start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24\":00:00Z\"')"
            }
            TimeBucket::Day => {
                "to_char(t.start_time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T00:00:00Z\"')"
            }
        }
    }
}

impl TypedRow for PgRow {
    fn id<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<Uuid> {
        Ok(self.try_get(i)?)
    }
    fn opt_ts<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<Option<DateTime<Utc>>> {
        Ok(self.try_get(i)?)
    }
    fn json<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<Option<Value>> {
        Ok(self
            .try_get::<Option<sqlx::types::Json<Value>>, _>(i)?
            .map(|j| j.0))
    }
    fn opt_bool<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<Option<bool>> {
        Ok(self.try_get(i)?)
    }
}

pub struct PgStore {
    writer: PgPool,
    /// The same pool as `writer`: PostgreSQL needs no reader/writer split.
    reader: PgPool,
    /// Step batches go through here: `group_commit.writers` concurrent transactions.
    group: crate::group::GroupCommit,
}

impl SqlBackend for PgStore {
    const BACKEND: Backend = Backend::Postgres;

    /// `reader` is the same pool as `writer`: count it once.
    fn pool_status(&self) -> crate::PoolStatus {
        crate::PoolStatus::of(&self.writer)
    }

    fn group(&self) -> &crate::group::GroupCommit {
        &self.group
    }
}

impl PgStore {
    pub async fn open(config: &StoreConfig) -> StoreResult<Self> {
        let url = crate::redact::without_unsupported_secrets(
            config.database_url.as_deref().unwrap_or_default(),
        );
        let url = url.as_str();
        let options = PgConnectOptions::from_str(url).map_err(|e| {
            StoreError::Config(format!("invalid PostgreSQL URL {}: {e}", redact_url(url)))
        })?;
        Self::connect_with(options, config).await
    }

    /// Connects with explicit options (tests use this to pin a `search_path`) and migrates.
    pub async fn connect_with(
        options: PgConnectOptions,
        config: &StoreConfig,
    ) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(config.acquire_timeout)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let group = crate::group::GroupCommit::start(
            std::sync::Arc::new(pool.clone()),
            config.group_commit,
        );
        Ok(Self {
            writer: pool.clone(),
            reader: pool,
            group,
        })
    }
}

crate::exec::impl_sql_exec!(PgStore, Postgres, PgRow);
