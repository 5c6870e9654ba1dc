//! SQL of canary rollouts, prompt decisions and version comparisons (both backends).

use chrono::{DateTime, Utc};
use lightning_core::rollout::{EventKind, PromptEvent, Rollout, ToolErrors};
use sqlx::QueryBuilder;
use uuid::Uuid;

use crate::{
    exec::ColumnRow, optimization_sql::bind_opt_id, sql::Dialect, StoreError, StoreResult,
};

const ROLLOUT_COLUMNS: &str = "agent_id, rollout_id, version, baseline_version, percent, \
    auto_rollback, reward, started_at, updated_at";

const EVENT_COLUMNS: &str =
    "id, agent_id, kind, version, rollout_id, percent, actor, reason, evidence, created_at";

/// [`EVENT_COLUMNS`] for reading: the nullable uuid as text, which both backends decode alike.
const EVENT_SELECT: &str =
    "id, agent_id, kind, version, CAST(rollout_id AS TEXT) AS rollout_id, percent, \
    actor, reason, evidence, created_at";

pub(crate) fn select_rollout<'a, DB: Dialect>(agent_id: &str) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {ROLLOUT_COLUMNS} FROM prompt_rollouts WHERE agent_id = "
    ));
    DB::bind_text(&mut qb, Some(agent_id.to_string()));
    qb
}

pub(crate) fn select_rollouts<'a, DB: Dialect>() -> QueryBuilder<'a, DB> {
    QueryBuilder::new(format!(
        "SELECT {ROLLOUT_COLUMNS} FROM prompt_rollouts ORDER BY agent_id"
    ))
}

/// Inserts the rollout unless the agent already has one (then affects no row).
pub(crate) fn insert_rollout<'a, DB: Dialect>(r: &Rollout) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "INSERT INTO prompt_rollouts ({ROLLOUT_COLUMNS}) VALUES ("
    ));
    DB::bind_text(&mut qb, Some(r.agent_id.clone()));
    qb.push(", ");
    DB::bind_id(&mut qb, r.rollout_id);
    qb.push(", ");
    DB::bind_int(&mut qb, Some(r.version));
    qb.push(", ");
    DB::bind_int(&mut qb, r.baseline_version);
    qb.push(", ");
    DB::bind_float(&mut qb, Some(r.percent));
    qb.push(", ");
    DB::bind_bool(&mut qb, Some(r.auto_rollback));
    qb.push(", ");
    DB::bind_text(&mut qb, Some(r.reward.clone()));
    qb.push(", ");
    DB::bind_ts(&mut qb, r.started_at);
    qb.push(", ");
    DB::bind_ts(&mut qb, r.updated_at);
    qb.push(") ON CONFLICT (agent_id) DO NOTHING");
    qb
}

/// Changes percentage, guard and reward of the rollout, if it is still the current one.
pub(crate) fn update_rollout<'a, DB: Dialect>(r: &Rollout) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new("UPDATE prompt_rollouts SET percent = ");
    DB::bind_float(&mut qb, Some(r.percent));
    qb.push(", auto_rollback = ");
    DB::bind_bool(&mut qb, Some(r.auto_rollback));
    qb.push(", reward = ");
    DB::bind_text(&mut qb, Some(r.reward.clone()));
    qb.push(", updated_at = ");
    DB::bind_ts(&mut qb, r.updated_at);
    push_current(&mut qb, &r.agent_id, r.rollout_id);
    qb
}

/// Deletes the rollout if it is still the current one.
pub(crate) fn delete_rollout<'a, DB: Dialect>(
    agent_id: &str,
    rollout_id: Uuid,
) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new("DELETE FROM prompt_rollouts");
    push_current(&mut qb, agent_id, rollout_id);
    qb
}

fn push_current<DB: Dialect>(qb: &mut QueryBuilder<'_, DB>, agent_id: &str, rollout_id: Uuid) {
    qb.push(" WHERE agent_id = ");
    DB::bind_text(qb, Some(agent_id.to_string()));
    qb.push(" AND rollout_id = ");
    DB::bind_id(qb, rollout_id);
}

pub(crate) fn insert_event<'a, DB: Dialect>(e: &PromptEvent) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "INSERT INTO prompt_events ({EVENT_COLUMNS}) VALUES ("
    ));
    DB::bind_id(&mut qb, e.id);
    qb.push(", ");
    DB::bind_text(&mut qb, Some(e.agent_id.clone()));
    qb.push(", ");
    DB::bind_text(&mut qb, Some(e.kind.as_str().to_string()));
    qb.push(", ");
    DB::bind_int(&mut qb, e.version);
    qb.push(", ");
    bind_opt_id(&mut qb, e.rollout_id);
    qb.push(", ");
    DB::bind_float(&mut qb, e.percent);
    qb.push(", ");
    DB::bind_text(&mut qb, Some(e.actor.clone()));
    qb.push(", ");
    DB::bind_text(&mut qb, e.reason.clone());
    qb.push(", ");
    DB::bind_json(&mut qb, e.evidence.as_ref());
    qb.push(", ");
    DB::bind_ts(&mut qb, e.created_at);
    qb.push(")");
    qb
}

pub(crate) fn list_events<'a, DB: Dialect>(agent_id: &str, limit: i64) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {EVENT_SELECT} FROM prompt_events WHERE agent_id = "
    ));
    DB::bind_text(&mut qb, Some(agent_id.to_string()));
    qb.push(" ORDER BY created_at DESC, id DESC LIMIT ");
    DB::bind_int(&mut qb, Some(limit));
    qb
}

/// `AND` conditions selecting one agent's runs of one version (`None`: recorded without one).
fn push_arm<DB: Dialect>(
    qb: &mut QueryBuilder<'_, DB>,
    agent_id: &str,
    version: Option<&str>,
    since: Option<DateTime<Utc>>,
) {
    qb.push(" t.agent_id = ");
    DB::bind_text(qb, Some(agent_id.to_string()));
    match version {
        Some(v) => {
            qb.push(" AND t.prompt_version = ");
            DB::bind_text(qb, Some(v.to_string()));
        }
        None => {
            qb.push(" AND t.prompt_version IS NULL");
        }
    }
    if let Some(since) = since {
        qb.push(" AND t.start_time >= ");
        DB::bind_ts(qb, since);
    }
}

/// Run count, finished runs, successes and means of one arm, success as the reward: a
/// succeeded run is 1; failed, interrupted and abandoned runs are 0; running ones are left out.
/// Columns: runs, rewarded, successes, mean_cost_usd, mean_duration_ms, mean_steps.
pub(crate) fn arm_success<'a, DB: Dialect>(
    agent_id: &str,
    version: Option<&str>,
    since: Option<DateTime<Utc>>,
) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(
        "SELECT COUNT(*) AS runs, \
         COALESCE(SUM(CASE WHEN t.status <> 'running' THEN 1 ELSE 0 END), 0) AS rewarded, \
         COALESCE(SUM(CASE WHEN t.status = 'succeeded' THEN 1 ELSE 0 END), 0) AS successes, \
         AVG(t.cost_usd) AS mean_cost_usd, \
         AVG(CAST(t.duration_ms AS DOUBLE PRECISION)) AS mean_duration_ms, \
         AVG(CAST(t.step_count AS DOUBLE PRECISION)) AS mean_steps FROM trajectories t WHERE",
    );
    push_arm(&mut qb, agent_id, version, since);
    qb
}

/// One arm's per-run rewards from scores: each trajectory's mean of its own (not step) numeric
/// and boolean scores named `name` (booleans as 1/0). Columns: n, reward_sum, reward_sum_sq.
pub(crate) fn arm_score_sums<'a, DB: Dialect>(
    agent_id: &str,
    version: Option<&str>,
    since: Option<DateTime<Utc>>,
    name: &str,
) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(
        "SELECT COUNT(*) AS n, COALESCE(SUM(r.reward), 0.0) AS reward_sum, \
         COALESCE(SUM(r.reward * r.reward), 0.0) AS reward_sum_sq \
         FROM (SELECT AVG(sc.value_number) AS reward FROM scores sc \
         JOIN trajectories t ON t.id = sc.trajectory_id \
         WHERE sc.value_number IS NOT NULL AND sc.step_number IS NULL AND sc.name = ",
    );
    DB::bind_text(&mut qb, Some(name.to_string()));
    qb.push(" AND");
    push_arm(&mut qb, agent_id, version, since);
    qb.push(" GROUP BY sc.trajectory_id) r");
    qb
}

/// Calls and errors per tool over one arm's runs, most used first.
pub(crate) fn arm_tools<'a, DB: Dialect>(
    agent_id: &str,
    version: Option<&str>,
    since: Option<DateTime<Utc>>,
) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(
        "SELECT s.tool_name, COUNT(*) AS calls, \
         COALESCE(SUM(CASE WHEN s.error IS NOT NULL THEN 1 ELSE 0 END), 0) AS errors \
         FROM trajectory_steps s JOIN trajectories t ON t.id = s.trajectory_id \
         WHERE s.kind = 'tool' AND",
    );
    push_arm(&mut qb, agent_id, version, since);
    qb.push(" GROUP BY s.tool_name ORDER BY COUNT(*) DESC, s.tool_name LIMIT 50");
    qb
}

pub(crate) fn decode_rollout<R: ColumnRow>(r: &R) -> StoreResult<Rollout> {
    Ok(Rollout {
        agent_id: r.text("agent_id")?,
        rollout_id: r.id("rollout_id")?,
        version: r.int("version")?,
        baseline_version: r.opt_int("baseline_version")?,
        percent: r
            .opt_float("percent")?
            .ok_or_else(|| StoreError::Corrupt("rollout percent is null".into()))?,
        auto_rollback: r.opt_bool("auto_rollback")?.unwrap_or(false),
        reward: r.text("reward")?,
        started_at: r.ts("started_at")?,
        updated_at: r.ts("updated_at")?,
    })
}

pub(crate) fn decode_event<R: ColumnRow>(r: &R) -> StoreResult<PromptEvent> {
    let kind = r.text("kind")?;
    Ok(PromptEvent {
        id: r.id("id")?,
        agent_id: r.text("agent_id")?,
        kind: EventKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("event kind {kind:?}")))?,
        version: r.opt_int("version")?,
        rollout_id: r
            .opt_text("rollout_id")?
            .map(|s| {
                s.parse()
                    .map_err(|e| StoreError::Corrupt(format!("rollout id {s:?}: {e}")))
            })
            .transpose()?,
        percent: r.opt_float("percent")?,
        actor: r.text("actor")?,
        reason: r.opt_text("reason")?,
        evidence: r.json("evidence")?,
        created_at: r.ts("created_at")?,
    })
}

pub(crate) fn decode_tool<R: ColumnRow>(r: &R) -> StoreResult<ToolErrors> {
    let (calls, errors) = (r.int("calls")?, r.int("errors")?);
    Ok(ToolErrors {
        tool_name: r.text("tool_name")?,
        calls,
        errors,
        error_rate: if calls > 0 {
            errors as f64 / calls as f64
        } else {
            0.0
        },
    })
}

/// `CAST(CASE WHEN col < b1 THEN 0 WHEN col < b2 THEN 1 … ELSE k-1 END AS BIGINT) AS bucket`:
/// the index of the time bucket `col` falls in, given the buckets' start times.
fn push_bucket<DB: Dialect>(qb: &mut QueryBuilder<'_, DB>, col: &str, starts: &[DateTime<Utc>]) {
    if starts.len() < 2 {
        qb.push("CAST(0 AS BIGINT) AS bucket");
        return;
    }
    qb.push("CAST(CASE");
    for (i, start) in starts.iter().enumerate().skip(1) {
        qb.push(format!(" WHEN {col} < "));
        DB::bind_ts(qb, *start);
        qb.push(format!(" THEN {}", i - 1));
    }
    qb.push(format!(
        " ELSE {} END AS BIGINT) AS bucket",
        starts.len().saturating_sub(1)
    ));
}

/// One arm's finished runs per time bucket from `starts[0]` to `until`, success as the reward.
/// Columns: bucket, n, reward_sum, reward_sum_sq (0/1 rewards: the sum of squares is the sum).
pub(crate) fn arm_success_series<'a, DB: Dialect>(
    agent_id: &str,
    version: Option<&str>,
    starts: &[DateTime<Utc>],
    until: DateTime<Utc>,
) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new("SELECT ");
    push_bucket(&mut qb, "t.start_time", starts);
    qb.push(
        ", COUNT(*) AS n, \
         CAST(COALESCE(SUM(CASE WHEN t.status = 'succeeded' THEN 1 ELSE 0 END), 0) AS DOUBLE PRECISION) AS reward_sum, \
         CAST(COALESCE(SUM(CASE WHEN t.status = 'succeeded' THEN 1 ELSE 0 END), 0) AS DOUBLE PRECISION) AS reward_sum_sq \
         FROM trajectories t WHERE",
    );
    push_arm(&mut qb, agent_id, version, starts.first().copied());
    qb.push(" AND t.status <> 'running' AND t.start_time <= ");
    DB::bind_ts(&mut qb, until);
    qb.push(" GROUP BY bucket ORDER BY bucket");
    qb
}

/// Like [`arm_success_series`] with each run's mean score `name` as its reward.
pub(crate) fn arm_score_series<'a, DB: Dialect>(
    agent_id: &str,
    version: Option<&str>,
    starts: &[DateTime<Utc>],
    until: DateTime<Utc>,
    name: &str,
) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new("SELECT ");
    push_bucket(&mut qb, "r.start_time", starts);
    qb.push(
        ", COUNT(*) AS n, COALESCE(SUM(r.reward), 0.0) AS reward_sum, \
         COALESCE(SUM(r.reward * r.reward), 0.0) AS reward_sum_sq \
         FROM (SELECT t.start_time AS start_time, AVG(sc.value_number) AS reward FROM scores sc \
         JOIN trajectories t ON t.id = sc.trajectory_id \
         WHERE sc.value_number IS NOT NULL AND sc.step_number IS NULL AND sc.name = ",
    );
    DB::bind_text(&mut qb, Some(name.to_string()));
    qb.push(" AND");
    push_arm(&mut qb, agent_id, version, starts.first().copied());
    qb.push(" AND t.start_time <= ");
    DB::bind_ts(&mut qb, until);
    qb.push(" GROUP BY sc.trajectory_id, t.start_time) r GROUP BY bucket ORDER BY bucket");
    qb
}
