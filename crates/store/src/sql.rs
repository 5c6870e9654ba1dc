//! SQL shared by both backends. Builders only produce queries; each backend executes them and
//! decodes the columns whose types differ (uuid/timestamptz/jsonb there, text here).

use chrono::{DateTime, Utc};
use lightning_core::{
    query::success_rate, AgentStats, StatsFilter, Status, StepKind, TimeBucket, ToolStats,
    TrajectoryFilter,
};
use serde_json::Value;
use sqlx::{ColumnIndex, Database, Decode, QueryBuilder, Row, Type};
use uuid::Uuid;

use crate::{
    exec::ColumnRow,
    group::{CounterDelta, StepRow, ToolDelta},
    StoreError, StoreResult,
};

/// How a backend binds the types whose representation differs between backends.
pub(crate) trait Dialect: Database {
    /// Case-insensitive LIKE.
    const ILIKE: &'static str;
    /// Appended to a SELECT to lock the rows it returns (PostgreSQL), or nothing (SQLite, whose
    /// single writer already serializes transactions).
    const FOR_UPDATE: &'static str;
    /// Whether [`Dialect::append_only`] has a statement.
    const APPEND_ONLY: bool = false;

    fn bind_id(qb: &mut QueryBuilder<'_, Self>, id: Uuid);
    fn bind_ts(qb: &mut QueryBuilder<'_, Self>, ts: DateTime<Utc>);
    fn bind_json(qb: &mut QueryBuilder<'_, Self>, value: Option<&Value>);
    fn bind_text(qb: &mut QueryBuilder<'_, Self>, text: Option<String>);
    fn bind_int(qb: &mut QueryBuilder<'_, Self>, value: Option<i64>);
    fn bind_float(qb: &mut QueryBuilder<'_, Self>, value: Option<f64>);
    fn bind_bool(qb: &mut QueryBuilder<'_, Self>, value: Option<bool>);
    /// `start_time` truncated to the bucket, as fixed-width RFC 3339 text.
    fn bucket_expr(bucket: TimeBucket) -> &'static str;

    /// The statements that write a group's plan inside its transaction: the new rows (plain
    /// INSERT), the rows merged into stored ones (upsert), the counter changes and the per-tool
    /// rollup. The default is one multi-row statement of each kind per chunk; PostgreSQL
    /// overrides it with a single statement whose text does not depend on the group's size, so
    /// a group costs one round trip and the statement is planned once per connection.
    /// The statements may borrow the rows' steps (`'s`) instead of copying them.
    fn write_plan<'s>(plan: &PlanParts<'_, 's>, now: DateTime<Utc>) -> Vec<QueryBuilder<'s, Self>> {
        let mut statements = Vec::new();
        for (rows, write) in [
            (plan.new, StepWrite::Insert),
            (plan.merged, StepWrite::Upsert),
        ] {
            for chunk in rows.chunks(STEP_CHUNK) {
                statements.push(write_steps(chunk, now, write));
            }
        }
        for chunk in plan.counters.chunks(ID_CHUNK / 4) {
            statements.push(update_counters(chunk, now));
        }
        for chunk in plan.tools.chunks(ID_CHUNK) {
            statements.push(upsert_tool_stats(chunk));
        }
        statements
    }

    /// One statement, run as its own transaction, that locks the group's trajectories and
    /// writes `plan` (all rows new, computed as if nothing were stored) only if `guard` holds;
    /// it answers one row whose `ok` is 1 if it wrote and 0 if it wrote nothing. The usual
    /// append-only group then costs one round trip instead of BEGIN, lock, write and COMMIT.
    /// `None`: the backend has no such statement (SQLite: its writer is in-process, a round
    /// trip costs no network wait); such a backend sets [`Dialect::APPEND_ONLY`] to `false` so
    /// the group is not planned for it.
    fn append_only<'s>(
        _plan: &PlanParts<'_, 's>,
        _guard: &AppendGuard,
        _now: DateTime<Utc>,
    ) -> Option<QueryBuilder<'s, Self>> {
        None
    }
}

/// What [`Dialect::append_only`] checks under the trajectories' row locks before it writes:
/// every trajectory exists, and none has a stored step numbered at or above the least step
/// the group writes to it (so every row is new and the plan computed for "nothing stored"
/// is exact).
pub(crate) struct AppendGuard {
    pub ids: Vec<Uuid>,
    /// `(trajectory, least step number in the group)` for each trajectory with steps.
    pub least: Vec<(Uuid, i64)>,
}

/// A group's plan as [`Dialect::write_plan`] writes it.
pub(crate) struct PlanParts<'p, 's> {
    /// Rows no stored row has the key of (the group holds its trajectories' locks).
    pub new: &'p [StepRow<'s>],
    /// Rows merged into the stored row of their key.
    pub merged: &'p [StepRow<'s>],
    pub counters: &'p [CounterDelta],
    pub tools: &'p [((Uuid, String), ToolDelta)],
}

/// The `Dialect` binds whose Rust types encode natively on every backend.
macro_rules! plain_binds {
    () => {
        fn bind_text(qb: &mut sqlx::QueryBuilder<'_, Self>, text: Option<String>) {
            qb.push_bind(text);
        }
        fn bind_int(qb: &mut sqlx::QueryBuilder<'_, Self>, value: Option<i64>) {
            qb.push_bind(value);
        }
        fn bind_float(qb: &mut sqlx::QueryBuilder<'_, Self>, value: Option<f64>) {
            qb.push_bind(value);
        }
        fn bind_bool(qb: &mut sqlx::QueryBuilder<'_, Self>, value: Option<bool>) {
            qb.push_bind(value);
        }
    };
}
pub(crate) use plain_binds;

pub(crate) const TRAJECTORY_COLUMNS: &str = "id, agent_id, task_type, session_id, prompt, \
    system_prompt, prompt_version, model, metadata, start_time, end_time, success, result, error, \
    total_steps, duration_ms, cost_usd, input_tokens, output_tokens, cache_read_input_tokens, \
    cache_creation_input_tokens, num_turns, step_count, error_count, created_at, updated_at, status";

pub(crate) const STEP_COLUMNS: &str = "step_number, \"timestamp\", tool_name, tool_input, \
    tool_output, error, duration_ms, tool_use_id, metadata, kind";

/// Rows per INSERT: 11 binds each stays far below SQLite's 32766-parameter limit.
pub(crate) const STEP_CHUNK: usize = 1000;

/// Ids (or step numbers) per `IN (...)` list.
pub(crate) const ID_CHUNK: usize = 500;

fn sep<DB: Database>(qb: &mut QueryBuilder<'_, DB>, first: &mut bool, s: &str) {
    if !std::mem::take(first) {
        qb.push(s);
    }
}

pub(crate) fn insert_trajectory<'a, DB: Dialect>(
    id: Uuid,
    t: &lightning_core::NewTrajectory,
    now: DateTime<Utc>,
) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(
        "INSERT INTO trajectories (id, agent_id, task_type, session_id, prompt, system_prompt, \
         prompt_version, model, metadata, start_time, created_at, updated_at) VALUES (",
    );
    DB::bind_id(&mut qb, id);
    for text in [
        Some(t.agent_id.clone()),
        t.task_type.clone(),
        t.session_id.clone(),
        t.prompt.clone(),
        t.system_prompt.clone(),
        t.prompt_version.clone(),
        t.model.clone(),
    ] {
        qb.push(", ");
        DB::bind_text(&mut qb, text);
    }
    qb.push(", ");
    DB::bind_json(&mut qb, t.metadata.as_ref());
    for ts in [t.start_time.unwrap_or(now), now, now] {
        qb.push(", ");
        DB::bind_ts(&mut qb, ts);
    }
    qb.push(") ON CONFLICT (id) DO NOTHING");
    qb
}

pub(crate) fn complete_trajectory<'a, DB: Dialect>(
    id: Uuid,
    c: &lightning_core::Completion,
    now: DateTime<Utc>,
) -> QueryBuilder<'a, DB> {
    let usage = c.usage.unwrap_or_default();
    let mut qb = QueryBuilder::new("UPDATE trajectories SET success = ");
    DB::bind_bool(&mut qb, Some(c.success));
    qb.push(", status = ");
    DB::bind_text(&mut qb, Some(c.final_status().as_str().to_string()));
    match c.end_time {
        Some(end) => {
            qb.push(", end_time = ");
            DB::bind_ts(&mut qb, end);
        }
        None => {
            qb.push(", end_time = COALESCE(end_time, ");
            DB::bind_ts(&mut qb, now);
            qb.push(")");
        }
    }
    qb.push(", result = COALESCE(");
    DB::bind_json(&mut qb, c.result.as_ref());
    qb.push(", result), error = COALESCE(");
    DB::bind_text(&mut qb, c.error.clone());
    qb.push(", error), cost_usd = COALESCE(");
    DB::bind_float(&mut qb, c.cost_usd);
    qb.push(", cost_usd)");
    for (column, value) in [
        ("total_steps", c.total_steps),
        ("duration_ms", c.duration_ms()),
        ("num_turns", c.num_turns),
        ("input_tokens", usage.input_tokens),
        ("output_tokens", usage.output_tokens),
        ("cache_read_input_tokens", usage.cache_read_input_tokens),
        (
            "cache_creation_input_tokens",
            usage.cache_creation_input_tokens,
        ),
    ] {
        qb.push(format_args!(", {column} = COALESCE("));
        DB::bind_int(&mut qb, value);
        qb.push(format_args!(", {column})"));
    }
    qb.push(", updated_at = ");
    DB::bind_ts(&mut qb, now);
    qb.push(" WHERE id = ");
    DB::bind_id(&mut qb, id);
    qb
}

/// First statement of a group of step batches: which trajectories exist and their largest
/// stored step number, locking their rows in id order (PostgreSQL) so concurrent groups touching
/// the same trajectories serialize without deadlocking.
pub(crate) fn lock_trajectories<'a, DB: Dialect>(ids: &[Uuid]) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new("SELECT id, max_step_number FROM trajectories WHERE id IN (");
    let mut first = true;
    for &id in ids {
        sep(&mut qb, &mut first, ", ");
        DB::bind_id(&mut qb, id);
    }
    qb.push(format_args!(") ORDER BY id{}", DB::FOR_UPDATE));
    qb
}

/// The stored state of the given steps, found by primary key: `(trajectory_id, step_number,
/// tool_name, kind, has_error, duration_ms)`.
pub(crate) fn stored_steps<'a, DB: Dialect>(keys: &[(Uuid, &[i64])]) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(
        "SELECT trajectory_id, step_number, tool_name, kind, \
         CAST(CASE WHEN error IS NULL THEN 0 ELSE 1 END AS BIGINT) AS has_error, duration_ms \
         FROM trajectory_steps WHERE ",
    );
    let mut first = true;
    for (id, numbers) in keys {
        sep(&mut qb, &mut first, " OR ");
        qb.push("(trajectory_id = ");
        DB::bind_id(&mut qb, *id);
        qb.push(" AND step_number IN (");
        let mut first_number = true;
        for &n in numbers.iter() {
            sep(&mut qb, &mut first_number, ", ");
            DB::bind_int(&mut qb, Some(n));
        }
        qb.push("))");
    }
    qb
}

/// The columns [`upsert_steps`] writes, in bind order.
pub(crate) const UPSERT_STEP_COLUMNS: &str = "trajectory_id, step_number, \"timestamp\", \
    tool_name, tool_input, tool_output, error, duration_ms, tool_use_id, metadata, kind";

/// The merge rule of `NewStep::merge` against a stored row: non-null newer fields win, nulls
/// never erase, the stored timestamp is kept.
pub(crate) const STEP_MERGE: &str = " ON CONFLICT (trajectory_id, step_number) DO UPDATE SET \
    tool_name = excluded.tool_name, \
    kind = excluded.kind, \
    tool_input = COALESCE(excluded.tool_input, trajectory_steps.tool_input), \
    tool_output = COALESCE(excluded.tool_output, trajectory_steps.tool_output), \
    error = COALESCE(excluded.error, trajectory_steps.error), \
    duration_ms = COALESCE(excluded.duration_ms, trajectory_steps.duration_ms), \
    tool_use_id = COALESCE(excluded.tool_use_id, trajectory_steps.tool_use_id), \
    metadata = COALESCE(excluded.metadata, trajectory_steps.metadata)";

/// The columns [`upsert_tool_stats`] writes, in bind order.
pub(crate) const TOOL_STATS_COLUMNS: &str =
    "trajectory_id, tool_name, calls, errors, duration_sum, duration_count";

/// A rollup row's change is added to the stored one.
pub(crate) const TOOL_STATS_MERGE: &str = " ON CONFLICT (trajectory_id, tool_name) DO UPDATE SET \
    calls = trajectory_tool_stats.calls + excluded.calls, \
    errors = trajectory_tool_stats.errors + excluded.errors, \
    duration_sum = trajectory_tool_stats.duration_sum + excluded.duration_sum, \
    duration_count = trajectory_tool_stats.duration_count + excluded.duration_count";

/// How [`write_steps`] treats a row whose key is already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StepWrite {
    /// Rows known not to be stored (the group holds its trajectories' locks and found none of
    /// them): a plain INSERT, which costs the database no conflict check.
    Insert,
    /// Rows that may be stored: merged by [`STEP_MERGE`].
    Upsert,
}

impl StepWrite {
    pub(crate) fn clause(self) -> &'static str {
        match self {
            StepWrite::Insert => "",
            StepWrite::Upsert => STEP_MERGE,
        }
    }
}

/// One multi-row INSERT, merging by the rule of `NewStep::merge` against stored rows with
/// [`StepWrite::Upsert`] (the stored timestamp is kept: it is when the step started). Rows may
/// belong to several trajectories; `(trajectory_id, step_number)` must be unique among them.
pub(crate) fn write_steps<'a, DB: Dialect>(
    rows: &[StepRow<'_>],
    now: DateTime<Utc>,
    write: StepWrite,
) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "INSERT INTO trajectory_steps ({UPSERT_STEP_COLUMNS}) VALUES "
    ));
    let mut first = true;
    for row in rows {
        let step = row.step;
        sep(&mut qb, &mut first, ", ");
        qb.push("(");
        DB::bind_id(&mut qb, row.trajectory_id);
        qb.push(", ");
        DB::bind_int(&mut qb, Some(step.step_number));
        qb.push(", ");
        DB::bind_ts(&mut qb, step.timestamp.unwrap_or(now));
        qb.push(", ");
        DB::bind_text(&mut qb, Some(step.tool_name.clone()));
        qb.push(", ");
        DB::bind_json(&mut qb, step.tool_input.as_ref());
        qb.push(", ");
        DB::bind_json(&mut qb, step.tool_output.as_ref());
        qb.push(", ");
        DB::bind_text(&mut qb, step.error.clone());
        qb.push(", ");
        DB::bind_int(&mut qb, step.duration_ms);
        qb.push(", ");
        DB::bind_text(&mut qb, step.tool_use_id.clone());
        qb.push(", ");
        DB::bind_json(&mut qb, step.metadata.as_ref());
        qb.push(", ");
        DB::bind_text(&mut qb, Some(row.kind.as_str().to_string()));
        qb.push(")");
    }
    qb.push(write.clause());
    qb
}

/// Applies counter changes computed from the group's own rows (never a recount), marks the
/// trajectories active, and reopens an `abandoned` one: a late step corrects the sweep.
pub(crate) fn update_counters<'a, DB: Dialect>(
    deltas: &[CounterDelta],
    now: DateTime<Utc>,
) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new("UPDATE trajectories SET updated_at = ");
    DB::bind_ts(&mut qb, now);
    qb.push(", status = CASE WHEN status = 'abandoned' THEN 'running' ELSE status END");
    type Field = fn(&CounterDelta) -> Option<i64>;
    let fields: [(&str, bool, Field); 3] = [
        ("step_count", true, |d| Some(d.steps)),
        ("error_count", true, |d| Some(d.errors)),
        ("max_step_number", false, |d| d.max_step_number),
    ];
    for (column, additive, value) in fields {
        qb.push(format_args!(", {column} = "));
        if additive {
            qb.push(format_args!("{column} + "));
        }
        qb.push("CASE id");
        for d in deltas {
            qb.push(" WHEN ");
            DB::bind_id(&mut qb, d.trajectory_id);
            qb.push(" THEN ");
            DB::bind_int(&mut qb, value(d));
        }
        match additive {
            true => qb.push(" ELSE 0 END"),
            false => qb.push(format_args!(" ELSE {column} END")),
        };
    }
    qb.push(" WHERE id IN (");
    let mut first = true;
    for d in deltas {
        sep(&mut qb, &mut first, ", ");
        DB::bind_id(&mut qb, d.trajectory_id);
    }
    qb.push(")");
    qb
}

/// Adds the group's changes to the per-trajectory, per-tool rollup read by `stats`.
pub(crate) fn upsert_tool_stats<'a, DB: Dialect>(
    deltas: &[((Uuid, String), ToolDelta)],
) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "INSERT INTO trajectory_tool_stats ({TOOL_STATS_COLUMNS}) VALUES "
    ));
    let mut first = true;
    for ((id, tool), d) in deltas {
        sep(&mut qb, &mut first, ", ");
        qb.push("(");
        DB::bind_id(&mut qb, *id);
        qb.push(", ");
        DB::bind_text(&mut qb, Some(tool.clone()));
        for v in [d.calls, d.errors, d.duration_sum, d.duration_count] {
            qb.push(", ");
            DB::bind_int(&mut qb, Some(v));
        }
        qb.push(")");
    }
    qb.push(TOOL_STATS_MERGE);
    qb
}

/// The idle sweep: one conditional UPDATE, safe to run from any number of collectors at once
/// (a trajectory touched meanwhile no longer matches).
pub(crate) fn abandon_idle<'a, DB: Dialect>(idle_since: DateTime<Utc>) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(
        "UPDATE trajectories SET status = 'abandoned' WHERE status = 'running' AND updated_at < ",
    );
    DB::bind_ts(&mut qb, idle_since);
    qb
}

pub(crate) fn select_trajectory<'a, DB: Dialect>(id: Uuid) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {TRAJECTORY_COLUMNS} FROM trajectories WHERE id = "
    ));
    DB::bind_id(&mut qb, id);
    qb
}

pub(crate) fn select_steps<'a, DB: Dialect>(
    id: Uuid,
    after: Option<i64>,
    limit: i64,
) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {STEP_COLUMNS} FROM trajectory_steps WHERE trajectory_id = "
    ));
    DB::bind_id(&mut qb, id);
    qb.push(" AND step_number > ");
    DB::bind_int(&mut qb, Some(after.unwrap_or(-1)));
    qb.push(" ORDER BY step_number LIMIT ");
    DB::bind_int(&mut qb, Some(limit));
    qb
}

pub(crate) fn delete_trajectory<'a, DB: Dialect>(id: Uuid) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new("DELETE FROM trajectories WHERE id = ");
    DB::bind_id(&mut qb, id);
    qb
}

/// A deleted trajectory's steps (PostgreSQL has no cascade for them since migration 0011; on
/// SQLite the cascade has already removed them).
pub(crate) fn delete_steps<'a, DB: Dialect>(id: Uuid) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new("DELETE FROM trajectory_steps WHERE trajectory_id = ");
    DB::bind_id(&mut qb, id);
    qb
}

/// Appends ` AND …` conditions on the trajectory table aliased as `t`.
pub(crate) fn push_time_and_agent<DB: Dialect>(
    qb: &mut QueryBuilder<'_, DB>,
    agent_id: &Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
) {
    if let Some(agent) = agent_id {
        qb.push(" AND t.agent_id = ");
        DB::bind_text(qb, Some(agent.clone()));
    }
    if let Some(since) = since {
        qb.push(" AND t.start_time >= ");
        DB::bind_ts(qb, since);
    }
    if let Some(until) = until {
        qb.push(" AND t.start_time < ");
        DB::bind_ts(qb, until);
    }
}

/// Leaves out optimizer evaluation runs (`promptVersion` starting `opt-`) when `exclude`.
pub(crate) fn push_evaluations<DB: Dialect>(qb: &mut QueryBuilder<'_, DB>, exclude: bool) {
    if exclude {
        qb.push(" AND (t.prompt_version IS NULL OR t.prompt_version NOT LIKE ");
        DB::bind_text(
            qb,
            Some(format!(
                "{}%",
                lightning_core::evidence::EVALUATION_PROMPT_VERSION_PREFIX
            )),
        );
        qb.push(")");
    }
}

fn like_pattern(needle: &str) -> String {
    let escaped = needle
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

pub(crate) fn list_trajectories<'a, DB: Dialect>(f: &TrajectoryFilter) -> QueryBuilder<'a, DB> {
    let columns = TRAJECTORY_COLUMNS.replace(", ", ", t.");
    let mut qb = QueryBuilder::new(format!(
        "SELECT t.{columns} FROM trajectories t WHERE 1 = 1"
    ));
    push_time_and_agent(&mut qb, &f.agent_id, f.since, f.until);
    push_evaluations(&mut qb, f.exclude_evaluations);
    if let Some(task_type) = &f.task_type {
        qb.push(" AND t.task_type = ");
        DB::bind_text(&mut qb, Some(task_type.clone()));
    }
    if let Some(status) = f.status {
        qb.push(" AND t.status = ");
        DB::bind_text(&mut qb, Some(status.as_str().to_string()));
    }
    if let Some(search) = f.search.as_deref().filter(|s| !s.is_empty()) {
        let pattern = like_pattern(search);
        qb.push(" AND (");
        let mut first = true;
        for column in [
            "CAST(t.id AS TEXT)",
            "t.agent_id",
            "t.task_type",
            "t.prompt",
        ] {
            sep(&mut qb, &mut first, " OR ");
            qb.push(format_args!("{column} {} ", DB::ILIKE));
            DB::bind_text(&mut qb, Some(pattern.clone()));
            qb.push(" ESCAPE '\\'");
        }
        qb.push(")");
    }
    crate::scores_sql::push_score_filter(&mut qb, f.score.as_ref());
    if let Some(cursor) = f.cursor {
        // The first bound is a plain range on the index's leading column, so a deep cursor
        // starts its index scan at the cursor instead of filtering every row before it.
        qb.push(" AND t.start_time <= ");
        DB::bind_ts(&mut qb, cursor.start_time);
        qb.push(" AND (t.start_time < ");
        DB::bind_ts(&mut qb, cursor.start_time);
        qb.push(" OR (t.start_time = ");
        DB::bind_ts(&mut qb, cursor.start_time);
        qb.push(" AND t.id < ");
        DB::bind_id(&mut qb, cursor.id);
        qb.push("))");
    }
    qb.push(" ORDER BY t.start_time DESC, t.id DESC LIMIT ");
    // One extra row tells whether there is a next page.
    DB::bind_int(&mut qb, Some(f.limit + 1));
    qb
}

/// Named `trajectories`, `running`, `succeeded`, `failed` (see [`outcome_counts`]).
const OUTCOME_COUNTS: &str = "COUNT(*) AS trajectories, \
    CAST(COALESCE(SUM(CASE WHEN t.status = 'running' THEN 1 ELSE 0 END), 0) AS BIGINT) AS running, \
    CAST(COALESCE(SUM(CASE WHEN t.success THEN 1 ELSE 0 END), 0) AS BIGINT) AS succeeded, \
    CAST(COALESCE(SUM(CASE WHEN NOT t.success THEN 1 ELSE 0 END), 0) AS BIGINT) AS failed";

pub(crate) fn stats_summary<'a, DB: Dialect>(f: &StatsFilter) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {OUTCOME_COUNTS}, CAST(AVG(t.step_count) AS DOUBLE PRECISION) AS mean_steps, \
         CAST(AVG(t.duration_ms) AS DOUBLE PRECISION) AS mean_duration_ms, \
         CAST(AVG(t.cost_usd) AS DOUBLE PRECISION) AS mean_cost_usd, \
         CAST(COALESCE(SUM(t.cost_usd), 0) AS DOUBLE PRECISION) AS total_cost_usd, \
         CAST(COALESCE(SUM(CASE WHEN t.status = 'interrupted' THEN 1 ELSE 0 END), 0) AS BIGINT) \
         AS interrupted, \
         CAST(COALESCE(SUM(CASE WHEN t.status = 'abandoned' THEN 1 ELSE 0 END), 0) AS BIGINT) \
         AS abandoned FROM trajectories t WHERE 1 = 1"
    ));
    push_time_and_agent(&mut qb, &f.agent_id, f.since, f.until);
    push_evaluations(&mut qb, !f.include_evaluations);
    qb
}

pub(crate) fn stats_tools<'a, DB: Dialect>(f: &StatsFilter) -> QueryBuilder<'a, DB> {
    // From the rollup maintained by each batch: one row per trajectory and tool, not per step.
    let mut qb = QueryBuilder::new(
        "SELECT r.tool_name, CAST(SUM(r.calls) AS BIGINT) AS calls, \
         CAST(SUM(r.errors) AS BIGINT) AS errors, \
         CAST(SUM(r.duration_sum) AS DOUBLE PRECISION) / NULLIF(SUM(r.duration_count), 0) \
         AS mean_duration_ms \
         FROM trajectory_tool_stats r JOIN trajectories t ON t.id = r.trajectory_id WHERE 1 = 1",
    );
    push_time_and_agent(&mut qb, &f.agent_id, f.since, f.until);
    push_evaluations(&mut qb, !f.include_evaluations);
    qb.push(
        " GROUP BY r.tool_name HAVING SUM(r.calls) > 0 \
         ORDER BY SUM(r.calls) DESC, r.tool_name LIMIT 100",
    );
    qb
}

pub(crate) fn stats_agents<'a, DB: Dialect>(f: &StatsFilter) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT t.agent_id, {OUTCOME_COUNTS} FROM trajectories t WHERE 1 = 1"
    ));
    push_time_and_agent(&mut qb, &f.agent_id, f.since, f.until);
    push_evaluations(&mut qb, !f.include_evaluations);
    qb.push(" GROUP BY t.agent_id ORDER BY COUNT(*) DESC, t.agent_id LIMIT 100");
    qb
}

pub(crate) fn stats_timeline<'a, DB: Dialect>(
    f: &StatsFilter,
    bucket: TimeBucket,
) -> QueryBuilder<'a, DB> {
    let expr = DB::bucket_expr(bucket);
    let mut qb = QueryBuilder::new(format!(
        "SELECT {expr} AS bucket, {OUTCOME_COUNTS} FROM trajectories t WHERE 1 = 1"
    ));
    push_time_and_agent(&mut qb, &f.agent_id, f.since, f.until);
    push_evaluations(&mut qb, !f.include_evaluations);
    qb.push(" GROUP BY 1 ORDER BY 1");
    qb
}

pub(crate) fn agents<'a, DB: Dialect>() -> QueryBuilder<'a, DB> {
    QueryBuilder::new(format!(
        "SELECT t.agent_id, {OUTCOME_COUNTS}, MAX(t.updated_at) AS last_seen FROM trajectories t \
         GROUP BY t.agent_id ORDER BY MAX(t.updated_at) DESC"
    ))
}

/// Column decoding that is the same on both backends (integers, floats, text), by position
/// (`usize`, what the optimization decoders use) or by name (`&str`, through [`ColumnRow`]).
pub(crate) trait PlainRow: Row + Sized {
    fn int<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<i64>;
    fn opt_float<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<Option<f64>>;
    fn text<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<String>;
    fn opt_int<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<Option<i64>>;
    fn opt_text<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<Option<String>>;
}

impl<R> PlainRow for R
where
    R: Row,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> f64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    fn int<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<i64> {
        Ok(self.try_get::<i64, _>(i)?)
    }
    fn opt_float<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<Option<f64>> {
        Ok(self.try_get::<Option<f64>, _>(i)?)
    }
    fn text<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<String> {
        Ok(self.try_get::<String, _>(i)?)
    }
    fn opt_int<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<Option<i64>> {
        Ok(self.try_get::<Option<i64>, _>(i)?)
    }
    fn opt_text<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<Option<String>> {
        Ok(self.try_get::<Option<String>, _>(i)?)
    }
}

/// Decoding of the columns whose storage differs per backend.
pub(crate) trait TypedRow: PlainRow {
    fn id<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<Uuid>;
    fn opt_ts<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<Option<DateTime<Utc>>>;
    fn json<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<Option<Value>>;
    fn opt_bool<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<Option<bool>>;

    fn ts<I: ColumnIndex<Self> + Copy>(&self, i: I) -> StoreResult<DateTime<Utc>> {
        self.opt_ts(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {i:?} is null")))
    }
}

/// Decodes a row selected with [`TRAJECTORY_COLUMNS`].
pub(crate) fn decode_trajectory<R: ColumnRow>(r: &R) -> StoreResult<lightning_core::Trajectory> {
    let success = r.opt_bool("success")?;
    let status = r.text("status")?;
    let usage = lightning_core::Usage {
        input_tokens: r.opt_int("input_tokens")?,
        output_tokens: r.opt_int("output_tokens")?,
        cache_read_input_tokens: r.opt_int("cache_read_input_tokens")?,
        cache_creation_input_tokens: r.opt_int("cache_creation_input_tokens")?,
    };
    let has_usage = usage != lightning_core::Usage::default();
    Ok(lightning_core::Trajectory {
        id: r.id("id")?,
        agent_id: r.text("agent_id")?,
        task_type: r.opt_text("task_type")?,
        session_id: r.opt_text("session_id")?,
        prompt: r.opt_text("prompt")?,
        system_prompt: r.opt_text("system_prompt")?,
        prompt_version: r.opt_text("prompt_version")?,
        model: r.opt_text("model")?,
        metadata: r.json("metadata")?,
        start_time: r.ts("start_time")?,
        end_time: r.opt_ts("end_time")?,
        status: Status::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("trajectory status {status:?}")))?,
        success,
        result: r.json("result")?,
        error: r.opt_text("error")?,
        total_steps: r.opt_int("total_steps")?,
        duration_ms: r.opt_int("duration_ms")?,
        cost_usd: r.opt_float("cost_usd")?,
        usage: has_usage.then_some(usage),
        num_turns: r.opt_int("num_turns")?,
        step_count: r.int("step_count")?,
        error_count: r.int("error_count")?,
        created_at: r.ts("created_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

/// Decodes a row selected with [`STEP_COLUMNS`].
pub(crate) fn decode_step<R: ColumnRow>(r: &R) -> StoreResult<lightning_core::Step> {
    Ok(lightning_core::Step {
        step_number: r.int("step_number")?,
        timestamp: r.ts("timestamp")?,
        tool_name: r.text("tool_name")?,
        tool_input: r.json("tool_input")?,
        tool_output: r.json("tool_output")?,
        error: r.opt_text("error")?,
        duration_ms: r.opt_int("duration_ms")?,
        tool_use_id: r.opt_text("tool_use_id")?,
        metadata: r.json("metadata")?,
        kind: {
            let kind = r.text("kind")?;
            StepKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("step kind {kind:?}")))?
        },
    })
}

pub(crate) fn decode_agent<R: ColumnRow>(r: &R) -> StoreResult<lightning_core::AgentSummary> {
    let [trajectories, _running, succeeded, failed] = outcome_counts(r)?;
    Ok(lightning_core::AgentSummary {
        agent_id: r.text("agent_id")?,
        trajectories,
        succeeded,
        failed,
        last_seen: r.ts("last_seen")?,
    })
}

/// Turns `limit + 1` fetched rows into a page and the cursor of the next one.
pub(crate) fn into_page(
    mut trajectories: Vec<lightning_core::Trajectory>,
    limit: i64,
) -> lightning_core::TrajectoryPage {
    let more = trajectories.len() as i64 > limit;
    trajectories.truncate(limit.max(0) as usize);
    let next_cursor = more.then(|| trajectories.last()).flatten().map(|t| {
        lightning_core::Cursor {
            start_time: t.start_time,
            id: t.id,
        }
        .encode()
    });
    lightning_core::TrajectoryPage {
        trajectories,
        next_cursor,
    }
}

/// The columns of [`OUTCOME_COUNTS`]: (trajectories, running, succeeded, failed).
pub(crate) fn outcome_counts<R: ColumnRow>(row: &R) -> StoreResult<[i64; 4]> {
    Ok([
        row.int("trajectories")?,
        row.int("running")?,
        row.int("succeeded")?,
        row.int("failed")?,
    ])
}

pub(crate) fn decode_stats<R: ColumnRow>(
    summary: &R,
    tools: &[R],
    agents: &[R],
    timeline: &[R],
    bucket: TimeBucket,
) -> StoreResult<lightning_core::Stats> {
    let [trajectories, running, succeeded, failed] = outcome_counts(summary)?;
    let tools = tools
        .iter()
        .map(|r| {
            let (calls, errors) = (r.int("calls")?, r.int("errors")?);
            Ok(ToolStats {
                tool_name: r.text("tool_name")?,
                calls,
                errors,
                error_rate: if calls > 0 {
                    errors as f64 / calls as f64
                } else {
                    0.0
                },
                mean_duration_ms: r.opt_float("mean_duration_ms")?,
            })
        })
        .collect::<StoreResult<_>>()?;
    let agents = agents
        .iter()
        .map(|r| {
            let [n, _running, ok, failed] = outcome_counts(r)?;
            Ok(AgentStats {
                agent_id: r.text("agent_id")?,
                trajectories: n,
                succeeded: ok,
                failed,
                success_rate: success_rate(ok, failed),
            })
        })
        .collect::<StoreResult<_>>()?;
    let timeline = timeline
        .iter()
        .map(|r| {
            let [n, _running, ok, failed] = outcome_counts(r)?;
            let bucket = r.text("bucket")?;
            Ok(lightning_core::TimelinePoint {
                bucket: lightning_core::time::parse(&bucket)
                    .map_err(|e| StoreError::Corrupt(format!("time bucket {bucket:?}: {e}")))?,
                trajectories: n,
                succeeded: ok,
                failed,
            })
        })
        .collect::<StoreResult<_>>()?;
    Ok(lightning_core::Stats {
        trajectories,
        running,
        succeeded,
        failed,
        interrupted: summary.int("interrupted")?,
        abandoned: summary.int("abandoned")?,
        success_rate: success_rate(succeeded, failed),
        mean_steps: summary.opt_float("mean_steps")?,
        mean_duration_ms: summary.opt_float("mean_duration_ms")?,
        mean_cost_usd: summary.opt_float("mean_cost_usd")?,
        total_cost_usd: summary.opt_float("total_cost_usd")?.unwrap_or(0.0),
        bucket,
        tools,
        agents,
        timeline,
    })
}
