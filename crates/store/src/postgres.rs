//! PostgreSQL backend for production: JSON as `jsonb`, timestamps as `timestamptz`, and any
//! number of stateless collectors sharing one database.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use lightning_core::{NewStep, TimeBucket};
use serde_json::Value;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions, PgRow},
    ColumnIndex, PgPool, Postgres, QueryBuilder, Row,
};
use uuid::Uuid;

use crate::{
    group::{CounterDelta, StepRow, ToolDelta},
    redact_url,
    sql::{
        AppendGuard, Dialect, PlanParts, StepWrite, TypedRow, TOOL_STATS_COLUMNS, TOOL_STATS_MERGE,
        UPSERT_STEP_COLUMNS,
    },
    sql_store::SqlBackend,
    Backend, StoreConfig, StoreError, StoreResult,
};

impl Dialect for Postgres {
    const ILIKE: &'static str = "ILIKE";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const APPEND_ONLY: bool = true;

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

    /// One statement for the whole plan: every column bound as one array and `UNNEST`ed, the
    /// four writes as data-modifying CTEs (their rows are disjoint: new and merged keys differ,
    /// each trajectory and each (trajectory, tool) appears once). The text is the same for
    /// any group, so each connection prepares it once.
    fn write_plan<'s>(plan: &PlanParts<'_, 's>, now: DateTime<Utc>) -> Vec<QueryBuilder<'s, Self>> {
        let mut qb = QueryBuilder::new("WITH new_steps AS (");
        push_step_rows(&mut qb, plan.new, now, StepWrite::Insert, "");
        qb.push("), merged_steps AS (");
        push_step_rows(&mut qb, plan.merged, now, StepWrite::Upsert, "");
        qb.push("), counters AS (");
        push_counters(&mut qb, plan.counters, now, "");
        qb.push("), tools AS (");
        push_tool_stats(&mut qb, plan.tools, "");
        qb.push(") SELECT 1");
        vec![qb]
    }

    /// `locked` takes the row locks in id order (materialized: referenced twice) and sees each
    /// trajectory's latest committed `max_step_number`; `guard` is evaluated once, before any
    /// write (each write filters on it), so a group that fails it writes nothing.
    fn append_only<'s>(
        plan: &PlanParts<'_, 's>,
        guard: &AppendGuard,
        now: DateTime<Utc>,
    ) -> Option<QueryBuilder<'s, Self>> {
        const ONLY_IF: &str = " AND (SELECT ok FROM guard)";
        let mut qb = QueryBuilder::new(
            "WITH locked AS (SELECT id, max_step_number FROM trajectories WHERE id = ANY(",
        );
        qb.push_bind(guard.ids.clone());
        qb.push(
            "::uuid[]) ORDER BY id FOR UPDATE), guard AS (SELECT (SELECT count(*) FROM locked) = ",
        );
        qb.push_bind(guard.ids.len() as i64);
        qb.push(" AND NOT EXISTS (SELECT 1 FROM locked l JOIN UNNEST(");
        qb.push_bind(guard.least.iter().map(|(id, _)| *id).collect::<Vec<_>>());
        qb.push("::uuid[], ");
        qb.push_bind(guard.least.iter().map(|(_, n)| *n).collect::<Vec<_>>());
        qb.push(
            "::int8[]) AS g (id, least) ON g.id = l.id WHERE l.max_step_number >= g.least) AS ok), \
             new_steps AS (",
        );
        push_step_rows(&mut qb, plan.new, now, StepWrite::Insert, ONLY_IF);
        qb.push("), counters AS (");
        push_counters(&mut qb, plan.counters, now, ONLY_IF);
        qb.push("), tools AS (");
        push_tool_stats(&mut qb, plan.tools, ONLY_IF);
        qb.push(") SELECT CAST(CASE WHEN ok THEN 1 ELSE 0 END AS BIGINT) AS ok FROM guard");
        Some(qb)
    }
}

/// `INSERT INTO trajectory_steps … SELECT * FROM UNNEST(<one array per column>)`. The arrays
/// borrow the steps' text and JSON (encoded straight from them into the statement's buffer).
/// `only_if` (`" AND <condition>"` or empty) filters the rows.
fn push_step_rows<'s>(
    qb: &mut QueryBuilder<'s, Postgres>,
    rows: &[StepRow<'s>],
    now: DateTime<Utc>,
    write: StepWrite,
    only_if: &str,
) {
    qb.push(format!(
        "INSERT INTO trajectory_steps ({UPSERT_STEP_COLUMNS}) SELECT * FROM UNNEST("
    ));
    let text =
        |f: fn(&'s NewStep) -> Option<&'s str>| rows.iter().map(|r| f(r.step)).collect::<Vec<_>>();
    let json = |f: fn(&'s NewStep) -> Option<&'s Value>| {
        rows.iter()
            .map(|r| f(r.step).map(sqlx::types::Json))
            .collect::<Vec<_>>()
    };
    qb.push_bind(rows.iter().map(|r| r.trajectory_id).collect::<Vec<_>>());
    qb.push("::uuid[], ");
    qb.push_bind(rows.iter().map(|r| r.step.step_number).collect::<Vec<_>>());
    qb.push("::int8[], ");
    qb.push_bind(
        rows.iter()
            .map(|r| r.step.timestamp.unwrap_or(now))
            .collect::<Vec<_>>(),
    );
    qb.push("::timestamptz[], ");
    qb.push_bind(
        rows.iter()
            .map(|r| r.step.tool_name.as_str())
            .collect::<Vec<_>>(),
    );
    qb.push("::text[], ");
    qb.push_bind(json(|s| s.tool_input.as_ref()));
    qb.push("::jsonb[], ");
    qb.push_bind(json(|s| s.tool_output.as_ref()));
    qb.push("::jsonb[], ");
    qb.push_bind(text(|s| s.error.as_deref()));
    qb.push("::text[], ");
    qb.push_bind(rows.iter().map(|r| r.step.duration_ms).collect::<Vec<_>>());
    qb.push("::int8[], ");
    qb.push_bind(text(|s| s.tool_use_id.as_deref()));
    qb.push("::text[], ");
    qb.push_bind(json(|s| s.metadata.as_ref()));
    qb.push("::jsonb[], ");
    qb.push_bind(rows.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>());
    qb.push("::text[]) WHERE true");
    qb.push(only_if);
    qb.push(write.clause());
}

/// The counter changes of [`crate::sql::update_counters`], from arrays.
/// A delta without a step number keeps the stored maximum.
fn push_counters(
    qb: &mut QueryBuilder<'_, Postgres>,
    deltas: &[CounterDelta],
    now: DateTime<Utc>,
    only_if: &str,
) {
    qb.push("UPDATE trajectories AS t SET updated_at = ");
    qb.push_bind(now);
    qb.push(
        ", status = CASE WHEN t.status = 'abandoned' THEN 'running' ELSE t.status END, \
         step_count = t.step_count + d.steps, error_count = t.error_count + d.errors, \
         max_step_number = COALESCE(d.max_step_number, t.max_step_number) FROM UNNEST(",
    );
    qb.push_bind(deltas.iter().map(|d| d.trajectory_id).collect::<Vec<_>>());
    qb.push("::uuid[], ");
    qb.push_bind(deltas.iter().map(|d| d.steps).collect::<Vec<_>>());
    qb.push("::int8[], ");
    qb.push_bind(deltas.iter().map(|d| d.errors).collect::<Vec<_>>());
    qb.push("::int8[], ");
    qb.push_bind(deltas.iter().map(|d| d.max_step_number).collect::<Vec<_>>());
    qb.push("::int8[]) AS d (id, steps, errors, max_step_number) WHERE t.id = d.id");
    qb.push(only_if);
}

/// The rollup changes of [`crate::sql::upsert_tool_stats`], from arrays.
fn push_tool_stats(
    qb: &mut QueryBuilder<'_, Postgres>,
    deltas: &[((Uuid, String), ToolDelta)],
    only_if: &str,
) {
    qb.push(format!(
        "INSERT INTO trajectory_tool_stats ({TOOL_STATS_COLUMNS}) SELECT * FROM UNNEST("
    ));
    qb.push_bind(deltas.iter().map(|((id, _), _)| *id).collect::<Vec<_>>());
    qb.push("::uuid[], ");
    qb.push_bind(
        deltas
            .iter()
            .map(|((_, tool), _)| tool.clone())
            .collect::<Vec<_>>(),
    );
    qb.push("::text[]");
    let fields: [fn(&ToolDelta) -> i64; 4] = [
        |d| d.calls,
        |d| d.errors,
        |d| d.duration_sum,
        |d| d.duration_count,
    ];
    for field in fields {
        qb.push(", ");
        qb.push_bind(deltas.iter().map(|(_, d)| field(d)).collect::<Vec<_>>());
        qb.push("::int8[]");
    }
    qb.push(") WHERE true");
    qb.push(only_if);
    qb.push(TOOL_STATS_MERGE);
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
            // No ping round trip before every checkout (a group of step batches is otherwise
            // BEGIN's second round trip): a connection that broke while idle fails its first
            // statement, is discarded, and that request gets 503 + Retry-After like any other
            // database error.
            .test_before_acquire(false)
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
