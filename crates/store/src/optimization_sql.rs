//! SQL of the optimization tables (`optimization_runs`, `prompt_candidates`, `prompts`), shared by
//! both backends through [`Dialect`]. Every value is a bound parameter.

use chrono::{DateTime, Utc};
use lightning_core::{
    CandidateEvaluation, CandidateStatus, OptimizationRun, Prompt, PromptCandidate, RunStatus,
    Split, StoredLlmReply,
};
use serde::{de::DeserializeOwned, Serialize};
use sqlx::QueryBuilder;
use uuid::Uuid;

use crate::{exec::ColumnRow, sql::Dialect, StoreError, StoreResult};

/// Nullable uuid columns are read as text so both backends decode them the same way.
const RUN_COLUMNS: &str = "id, agent_id, status, started_at, finished_at, config, baseline_score, \
    best_score, CAST(best_candidate_id AS TEXT) AS best_candidate_id, trajectories, llm_calls, evaluations, error, \
    evidence, heartbeat_ms, cost_usd, input_tokens, output_tokens";

const CANDIDATE_COLUMNS: &str =
    "id, run_id, CAST(parent_id AS TEXT) AS parent_id, round, prompt, critique, \
    minibatch_score, validation_score, evaluations, status, created_at, scores";

const PROMPT_COLUMNS: &str =
    "agent_id, version, text, CAST(source_run_id AS TEXT) AS source_run_id, note, promoted, created_at, evaluator";

const EVALUATION_COLUMNS: &str = "run_id, candidate_id, trajectory_id, split, reward, feedback, \
    error, evaluator, duration_ms, cost_usd, CAST(evaluation_trajectory_id AS TEXT) AS evaluation_trajectory_id, created_at";

/// Evaluations per INSERT: 12 binds each.
pub(crate) const EVALUATION_CHUNK: usize = 500;

fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("evidence types serialize")
}

fn from_json<T: DeserializeOwned>(
    value: Option<serde_json::Value>,
    what: &str,
) -> StoreResult<Option<T>> {
    value
        .filter(|v| !v.is_null())
        .map(|v| serde_json::from_value(v).map_err(|e| StoreError::Corrupt(format!("{what}: {e}"))))
        .transpose()
}

/// Candidates per INSERT: 12 binds each.
pub(crate) const CANDIDATE_CHUNK: usize = 500;

pub(crate) fn bind_opt_id<DB: Dialect>(qb: &mut QueryBuilder<'_, DB>, id: Option<Uuid>) {
    match id {
        Some(id) => DB::bind_id(qb, id),
        None => {
            qb.push("NULL");
        }
    }
}

fn bind_opt_ts<DB: Dialect>(qb: &mut QueryBuilder<'_, DB>, ts: Option<DateTime<Utc>>) {
    match ts {
        Some(ts) => DB::bind_ts(qb, ts),
        None => {
            qb.push("NULL");
        }
    }
}

pub(crate) fn insert_run<'a, DB: Dialect>(run: &OptimizationRun) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(
        "INSERT INTO optimization_runs (id, agent_id, status, started_at, finished_at, config, \
         baseline_score, best_score, best_candidate_id, trajectories, llm_calls, evaluations, \
         error, evidence) VALUES (",
    );
    DB::bind_id(&mut qb, run.id);
    qb.push(", ");
    DB::bind_text(&mut qb, Some(run.agent_id.clone()));
    qb.push(", ");
    DB::bind_text(&mut qb, Some(run.status.as_str().to_string()));
    qb.push(", ");
    DB::bind_ts(&mut qb, run.started_at);
    qb.push(", ");
    bind_opt_ts(&mut qb, run.finished_at);
    qb.push(", ");
    DB::bind_json(&mut qb, Some(&run.config));
    qb.push(", ");
    DB::bind_float(&mut qb, run.baseline_score);
    qb.push(", ");
    DB::bind_float(&mut qb, run.best_score);
    qb.push(", ");
    bind_opt_id(&mut qb, run.best_candidate_id);
    for value in [run.trajectories, run.llm_calls, run.evaluations] {
        qb.push(", ");
        DB::bind_int(&mut qb, Some(value));
    }
    qb.push(", ");
    DB::bind_text(&mut qb, run.error.clone());
    qb.push(", ");
    DB::bind_json(&mut qb, run.evidence.as_ref().map(to_json).as_ref());
    qb.push(")");
    qb
}

/// Overwrites everything but the identity and the start.
pub(crate) fn update_run<'a, DB: Dialect>(run: &OptimizationRun) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new("UPDATE optimization_runs SET status = ");
    DB::bind_text(&mut qb, Some(run.status.as_str().to_string()));
    qb.push(", finished_at = ");
    bind_opt_ts(&mut qb, run.finished_at);
    qb.push(", config = ");
    DB::bind_json(&mut qb, Some(&run.config));
    qb.push(", baseline_score = ");
    DB::bind_float(&mut qb, run.baseline_score);
    qb.push(", best_score = ");
    DB::bind_float(&mut qb, run.best_score);
    qb.push(", best_candidate_id = ");
    bind_opt_id(&mut qb, run.best_candidate_id);
    for (column, value) in [
        ("trajectories", run.trajectories),
        ("llm_calls", run.llm_calls),
        ("evaluations", run.evaluations),
    ] {
        qb.push(format_args!(", {column} = "));
        DB::bind_int(&mut qb, Some(value));
    }
    qb.push(", error = ");
    DB::bind_text(&mut qb, run.error.clone());
    qb.push(", evidence = ");
    DB::bind_json(&mut qb, run.evidence.as_ref().map(to_json).as_ref());
    qb.push(" WHERE id = ");
    DB::bind_id(&mut qb, run.id);
    qb
}

pub(crate) fn select_run<'a, DB: Dialect>(id: Uuid) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {RUN_COLUMNS} FROM optimization_runs WHERE id = "
    ));
    DB::bind_id(&mut qb, id);
    qb
}

pub(crate) fn list_runs<'a, DB: Dialect>(
    agent_id: Option<&str>,
    limit: i64,
) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {RUN_COLUMNS} FROM optimization_runs WHERE 1 = 1"
    ));
    if let Some(agent) = agent_id {
        qb.push(" AND agent_id = ");
        DB::bind_text(&mut qb, Some(agent.to_string()));
    }
    qb.push(" ORDER BY started_at DESC, id DESC LIMIT ");
    DB::bind_int(&mut qb, Some(limit));
    qb
}

/// One multi-row upsert: a candidate's scores and status change as the run goes on.
pub(crate) fn upsert_candidates<'a, DB: Dialect>(
    candidates: &[PromptCandidate],
) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(
        "INSERT INTO prompt_candidates (id, run_id, parent_id, round, prompt, critique, \
         minibatch_score, validation_score, evaluations, status, created_at, scores) VALUES ",
    );
    for (i, c) in candidates.iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        qb.push("(");
        DB::bind_id(&mut qb, c.id);
        qb.push(", ");
        DB::bind_id(&mut qb, c.run_id);
        qb.push(", ");
        bind_opt_id(&mut qb, c.parent_id);
        qb.push(", ");
        DB::bind_int(&mut qb, Some(c.round));
        qb.push(", ");
        DB::bind_text(&mut qb, Some(c.prompt.clone()));
        qb.push(", ");
        DB::bind_text(&mut qb, c.critique.clone());
        qb.push(", ");
        DB::bind_float(&mut qb, c.minibatch_score);
        qb.push(", ");
        DB::bind_float(&mut qb, c.validation_score);
        qb.push(", ");
        DB::bind_int(&mut qb, Some(c.evaluations));
        qb.push(", ");
        DB::bind_text(&mut qb, Some(c.status.as_str().to_string()));
        qb.push(", ");
        DB::bind_ts(&mut qb, c.created_at);
        qb.push(", ");
        DB::bind_json(&mut qb, Some(&to_json(&c.scores)));
        qb.push(")");
    }
    qb.push(
        " ON CONFLICT (id) DO UPDATE SET \
         scores = excluded.scores, \
         critique = excluded.critique, \
         minibatch_score = excluded.minibatch_score, \
         validation_score = excluded.validation_score, \
         evaluations = excluded.evaluations, \
         status = excluded.status",
    );
    qb
}

pub(crate) fn list_candidates<'a, DB: Dialect>(run_id: Uuid) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {CANDIDATE_COLUMNS} FROM prompt_candidates WHERE run_id = "
    ));
    DB::bind_id(&mut qb, run_id);
    qb.push(" ORDER BY round, created_at, id");
    qb
}

pub(crate) fn next_prompt_version<'a, DB: Dialect>(agent_id: &str) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(
        "SELECT CAST(COALESCE(MAX(version), 0) + 1 AS BIGINT) AS next_version FROM prompts \
         WHERE agent_id = ",
    );
    DB::bind_text(&mut qb, Some(agent_id.to_string()));
    qb
}

pub(crate) fn insert_prompt<'a, DB: Dialect>(p: &Prompt) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(
        "INSERT INTO prompts (agent_id, version, text, source_run_id, note, promoted, created_at, \
         evaluator) VALUES (",
    );
    DB::bind_text(&mut qb, Some(p.agent_id.clone()));
    qb.push(", ");
    DB::bind_int(&mut qb, Some(p.version));
    qb.push(", ");
    DB::bind_text(&mut qb, Some(p.text.clone()));
    qb.push(", ");
    bind_opt_id(&mut qb, p.source_run_id);
    qb.push(", ");
    DB::bind_text(&mut qb, p.note.clone());
    qb.push(", ");
    DB::bind_bool(&mut qb, Some(p.promoted));
    qb.push(", ");
    DB::bind_ts(&mut qb, p.created_at);
    qb.push(", ");
    DB::bind_text(&mut qb, p.evaluator.clone());
    qb.push(")");
    qb
}

/// Clears the promoted flag of every version of the agent except `keep`.
pub(crate) fn demote_others<'a, DB: Dialect>(
    agent_id: &str,
    keep: Option<i64>,
) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new("UPDATE prompts SET promoted = ");
    DB::bind_bool(&mut qb, Some(false));
    qb.push(" WHERE agent_id = ");
    DB::bind_text(&mut qb, Some(agent_id.to_string()));
    qb.push(" AND promoted = ");
    DB::bind_bool(&mut qb, Some(true));
    if let Some(version) = keep {
        qb.push(" AND version <> ");
        DB::bind_int(&mut qb, Some(version));
    }
    qb
}

pub(crate) fn promote<'a, DB: Dialect>(agent_id: &str, version: i64) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new("UPDATE prompts SET promoted = ");
    DB::bind_bool(&mut qb, Some(true));
    qb.push(" WHERE agent_id = ");
    DB::bind_text(&mut qb, Some(agent_id.to_string()));
    qb.push(" AND version = ");
    DB::bind_int(&mut qb, Some(version));
    qb
}

pub(crate) fn select_prompt<'a, DB: Dialect>(agent_id: &str, version: i64) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {PROMPT_COLUMNS} FROM prompts WHERE agent_id = "
    ));
    DB::bind_text(&mut qb, Some(agent_id.to_string()));
    qb.push(" AND version = ");
    DB::bind_int(&mut qb, Some(version));
    qb
}

pub(crate) fn list_prompts<'a, DB: Dialect>(agent_id: &str) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {PROMPT_COLUMNS} FROM prompts WHERE agent_id = "
    ));
    DB::bind_text(&mut qb, Some(agent_id.to_string()));
    qb.push(" ORDER BY version DESC");
    qb
}

/// The promoted version only: an unpromoted version is a candidate, never served.
pub(crate) fn latest_prompt<'a, DB: Dialect>(agent_id: &str) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {PROMPT_COLUMNS} FROM prompts WHERE agent_id = "
    ));
    DB::bind_text(&mut qb, Some(agent_id.to_string()));
    qb.push(" AND promoted = ");
    DB::bind_bool(&mut qb, Some(true));
    qb.push(" LIMIT 1");
    qb
}

/// One multi-row upsert of evaluations; a repeated (run, candidate, example) overwrites.
pub(crate) fn upsert_evaluations<'a, DB: Dialect>(
    evaluations: &[CandidateEvaluation],
) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "INSERT INTO candidate_evaluations ({}) VALUES ",
        EVALUATION_COLUMNS.replace(
            "CAST(evaluation_trajectory_id AS TEXT) AS evaluation_trajectory_id",
            "evaluation_trajectory_id"
        )
    ));
    for (i, e) in evaluations.iter().enumerate() {
        if i > 0 {
            qb.push(", ");
        }
        qb.push("(");
        DB::bind_id(&mut qb, e.run_id);
        qb.push(", ");
        DB::bind_id(&mut qb, e.candidate_id);
        qb.push(", ");
        DB::bind_id(&mut qb, e.trajectory_id);
        qb.push(", ");
        DB::bind_text(&mut qb, Some(e.split.as_str().to_string()));
        qb.push(", ");
        DB::bind_float(&mut qb, Some(e.reward));
        qb.push(", ");
        DB::bind_text(&mut qb, e.feedback.clone());
        qb.push(", ");
        DB::bind_text(&mut qb, e.error.clone());
        qb.push(", ");
        DB::bind_text(&mut qb, Some(e.evaluator.clone()));
        qb.push(", ");
        DB::bind_int(&mut qb, Some(e.duration_ms));
        qb.push(", ");
        DB::bind_float(&mut qb, e.cost_usd);
        qb.push(", ");
        bind_opt_id(&mut qb, e.evaluation_trajectory_id);
        qb.push(", ");
        DB::bind_ts(&mut qb, e.created_at);
        qb.push(")");
    }
    qb.push(
        " ON CONFLICT (run_id, candidate_id, trajectory_id) DO UPDATE SET \
         split = excluded.split, reward = excluded.reward, feedback = excluded.feedback, \
         error = excluded.error, evaluator = excluded.evaluator, \
         duration_ms = excluded.duration_ms, cost_usd = excluded.cost_usd, \
         evaluation_trajectory_id = excluded.evaluation_trajectory_id",
    );
    qb
}

pub(crate) fn list_evaluations<'a, DB: Dialect>(run_id: Uuid) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(format!(
        "SELECT {EVALUATION_COLUMNS} FROM candidate_evaluations WHERE run_id = "
    ));
    DB::bind_id(&mut qb, run_id);
    qb.push(" ORDER BY created_at, candidate_id, trajectory_id");
    qb
}

pub(crate) fn decode_evaluation<R: ColumnRow>(r: &R) -> StoreResult<CandidateEvaluation> {
    let split = r.text("split")?;
    Ok(CandidateEvaluation {
        run_id: r.id("run_id")?,
        candidate_id: r.id("candidate_id")?,
        trajectory_id: r.id("trajectory_id")?,
        split: Split::parse(&split)
            .ok_or_else(|| StoreError::Corrupt(format!("evaluation split {split:?}")))?,
        reward: r.opt_float("reward")?.unwrap_or(0.0),
        feedback: r.opt_text("feedback")?,
        error: r.opt_text("error")?,
        evaluator: r.text("evaluator")?,
        duration_ms: r.int("duration_ms")?,
        cost_usd: r.opt_float("cost_usd")?,
        evaluation_trajectory_id: opt_uuid(r.opt_text("evaluation_trajectory_id")?)?,
        created_at: r.ts("created_at")?,
    })
}

fn opt_uuid(raw: Option<String>) -> StoreResult<Option<Uuid>> {
    raw.map(|s| {
        s.parse()
            .map_err(|e| StoreError::Corrupt(format!("id {s:?}: {e}")))
    })
    .transpose()
}

pub(crate) fn decode_run<R: ColumnRow>(r: &R) -> StoreResult<OptimizationRun> {
    let status = r.text("status")?;
    let status = RunStatus::parse(&status)
        .ok_or_else(|| StoreError::Corrupt(format!("run status {status:?}")))?;
    let started_at = r.ts("started_at")?;
    let heartbeat_at = r
        .opt_int("heartbeat_ms")?
        .and_then(DateTime::<Utc>::from_timestamp_millis);
    Ok(OptimizationRun {
        id: r.id("id")?,
        agent_id: r.text("agent_id")?,
        status,
        started_at,
        finished_at: r.opt_ts("finished_at")?,
        config: r.json("config")?.unwrap_or(serde_json::Value::Null),
        baseline_score: r.opt_float("baseline_score")?,
        best_score: r.opt_float("best_score")?,
        best_candidate_id: opt_uuid(r.opt_text("best_candidate_id")?)?,
        trajectories: r.int("trajectories")?,
        llm_calls: r.int("llm_calls")?,
        evaluations: r.int("evaluations")?,
        error: r.opt_text("error")?,
        evidence: from_json(r.json("evidence")?, "run evidence")?,
        heartbeat_at,
        cost_usd: r.opt_float("cost_usd")?,
        input_tokens: r.opt_int("input_tokens")?,
        output_tokens: r.opt_int("output_tokens")?,
        stale: lightning_core::optimization::run_is_stale(
            status,
            started_at,
            heartbeat_at,
            lightning_core::time::now(),
        ),
    })
}

pub(crate) fn decode_candidate<R: ColumnRow>(r: &R) -> StoreResult<PromptCandidate> {
    let status = r.text("status")?;
    Ok(PromptCandidate {
        id: r.id("id")?,
        run_id: r.id("run_id")?,
        parent_id: opt_uuid(r.opt_text("parent_id")?)?,
        round: r.int("round")?,
        prompt: r.text("prompt")?,
        critique: r.opt_text("critique")?,
        minibatch_score: r.opt_float("minibatch_score")?,
        validation_score: r.opt_float("validation_score")?,
        evaluations: r.int("evaluations")?,
        status: CandidateStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("candidate status {status:?}")))?,
        created_at: r.ts("created_at")?,
        scores: from_json(r.json("scores")?, "candidate scores")?.unwrap_or_default(),
    })
}

pub(crate) fn decode_prompt<R: ColumnRow>(r: &R) -> StoreResult<Prompt> {
    Ok(Prompt {
        agent_id: r.text("agent_id")?,
        version: r.int("version")?,
        text: r.text("text")?,
        source_run_id: opt_uuid(r.opt_text("source_run_id")?)?,
        note: r.opt_text("note")?,
        promoted: r.opt_bool("promoted")?.unwrap_or(false),
        created_at: r.ts("created_at")?,
        evaluator: r.opt_text("evaluator")?,
    })
}

/// Keeps a reply; a repeated (run, key, occurrence) keeps the first one stored.
pub(crate) fn insert_llm_reply<'a, DB: Dialect>(
    run_id: Uuid,
    reply: &StoredLlmReply,
) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(
        "INSERT INTO optimization_llm_replies (run_id, request_key, occurrence, reply, \
         input_tokens, output_tokens) VALUES (",
    );
    DB::bind_id(&mut qb, run_id);
    qb.push(", ");
    DB::bind_text(&mut qb, Some(reply.request_key.clone()));
    qb.push(", ");
    DB::bind_int(&mut qb, Some(reply.occurrence));
    qb.push(", ");
    DB::bind_text(&mut qb, Some(reply.text.clone()));
    qb.push(", ");
    DB::bind_int(&mut qb, Some(reply.input_tokens));
    qb.push(", ");
    DB::bind_int(&mut qb, Some(reply.output_tokens));
    qb.push(") ON CONFLICT (run_id, request_key, occurrence) DO NOTHING");
    qb
}

pub(crate) fn list_llm_replies<'a, DB: Dialect>(run_id: Uuid) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(
        "SELECT request_key, occurrence, reply, input_tokens, output_tokens \
         FROM optimization_llm_replies WHERE run_id = ",
    );
    DB::bind_id(&mut qb, run_id);
    qb.push(" ORDER BY request_key, occurrence");
    qb
}

pub(crate) fn decode_llm_reply<R: ColumnRow>(r: &R) -> StoreResult<StoredLlmReply> {
    Ok(StoredLlmReply {
        request_key: r.text("request_key")?,
        occurrence: r.int("occurrence")?,
        text: r.text("reply")?,
        input_tokens: r.int("input_tokens")?,
        output_tokens: r.int("output_tokens")?,
    })
}

/// A write lost a race on a unique index (two registrations picking the same version, or two
/// promotions at once): the caller retries.
pub(crate) fn is_unique_violation(e: &StoreError) -> bool {
    matches!(e, StoreError::Database(sqlx::Error::Database(db)) if db.is_unique_violation())
}
