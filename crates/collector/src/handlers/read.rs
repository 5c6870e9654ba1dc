//! Read API for the dashboard and the optimizer.

use axum::{
    extract::{Path, State},
    http::header,
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use lightning_core::{score::validate_score_name, Score, ScoreFilter, ScoreStats};
use lightning_core::{
    AgentSummary, Cursor, Stats, StatsFilter, Status, Step, TimeBucket, Trajectory,
    TrajectoryFilter, TrajectoryPage,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    error::{ApiError, ApiResult},
    extract::{trajectory_id, QueryParams},
    openapi::{AgentsResponse, ErrorBody, StepsResponse, SuccessResponse},
    AppState,
};

/// Filters of the trajectory list and the export. Unknown parameters are refused.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    agent_id: Option<String>,
    task_type: Option<String>,
    status: Option<Status>,
    /// Shorthand for `status=succeeded|failed`.
    success: Option<bool>,
    /// Lower bound on `startTime` (inclusive, RFC 3339).
    since: Option<DateTime<Utc>>,
    /// Upper bound on `startTime` (exclusive, RFC 3339).
    until: Option<DateTime<Utc>>,
    /// Case-insensitive substring of id, agent id, task type or prompt.
    q: Option<String>,
    /// 1 to 1000, default 50.
    limit: Option<i64>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
    /// Only trajectories with a score of this name (on the trajectory or one of its steps).
    score_name: Option<String>,
    /// With `scoreName`: a score of at least this value (booleans compare as 1/0).
    min_score: Option<f64>,
    /// With `scoreName`: a score of at most this value (`maxScore=0`: a `false`/thumbs-down).
    max_score: Option<f64>,
    /// With `scoreName`: a score with this label.
    score_label: Option<String>,
    /// List optimizer evaluation runs (`promptVersion` starting `opt-`) too; default false, so
    /// the list and the export hold the agent's own runs only (as `/api/stats` and the
    /// optimizer's dataset do).
    include_evaluations: Option<bool>,
}

impl ListParams {
    fn into_filter(self) -> ApiResult<TrajectoryFilter> {
        let status = match (self.status, self.success) {
            (Some(s), Some(ok)) if s != Status::from_success(Some(ok)) => {
                return Err(ApiError::BadRequest(
                    "status and success contradict each other".into(),
                ))
            }
            (s, ok) => s.or(ok.map(|ok| Status::from_success(Some(ok)))),
        };
        let limit = self.limit.unwrap_or(TrajectoryFilter::DEFAULT_LIMIT);
        if !(1..=TrajectoryFilter::MAX_LIMIT).contains(&limit) {
            return Err(ApiError::BadRequest(format!(
                "limit must be between 1 and {}",
                TrajectoryFilter::MAX_LIMIT
            )));
        }
        let cursor = match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(raw) => Some(Cursor::decode(raw).ok_or_else(|| {
                ApiError::BadRequest("invalid cursor: pass back nextCursor unchanged".into())
            })?),
        };
        let score = score_filter(
            self.score_name,
            self.min_score,
            self.max_score,
            self.score_label,
        )?;
        Ok(TrajectoryFilter {
            score,
            agent_id: self.agent_id.filter(|s| !s.is_empty()),
            task_type: self.task_type.filter(|s| !s.is_empty()),
            status,
            since: self.since.map(lightning_core::time::normalize),
            until: self.until.map(lightning_core::time::normalize),
            search: self.q.filter(|s| !s.is_empty()),
            cursor,
            limit,
            exclude_evaluations: !self.include_evaluations.unwrap_or(false),
        })
    }
}

/// The score conditions of the list filters; bounds and label need a `scoreName`.
fn score_filter(
    name: Option<String>,
    min: Option<f64>,
    max: Option<f64>,
    label: Option<String>,
) -> ApiResult<Option<ScoreFilter>> {
    let label = label.filter(|l| !l.is_empty());
    for (field, value) in [("minScore", min), ("maxScore", max)] {
        if value.is_some_and(|v| !v.is_finite()) {
            return Err(ApiError::BadRequest(format!(
                "{field}: must be a finite number"
            )));
        }
    }
    if let (Some(lo), Some(hi)) = (min, max) {
        if lo > hi {
            return Err(ApiError::BadRequest(format!(
                "minScore ({lo}) must not be greater than maxScore ({hi})"
            )));
        }
    }
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        if min.is_some() || max.is_some() || label.is_some() {
            return Err(ApiError::BadRequest(
                "minScore, maxScore and scoreLabel need scoreName".into(),
            ));
        }
        return Ok(None);
    };
    validate_score_name("scoreName", &name)?;
    Ok(Some(ScoreFilter {
        name,
        min,
        max,
        label,
        missing: false,
    }))
}

/// A page of trajectories and the scores of the trajectories on it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TrajectoryListResponse {
    #[serde(flatten)]
    pub page: TrajectoryPage,
    /// Every score of the listed trajectories (match them by `trajectoryId`).
    pub scores: Vec<Score>,
}

/// Trajectories, newest first, keyset-paginated, with their scores. Optimizer evaluation runs
/// are left out unless `includeEvaluations=true`.
#[utoipa::path(get, path = "/api/trajectories", tag = "read", params(ListParams),
    responses((status = 200, body = TrajectoryListResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<ListParams>,
) -> ApiResult<Json<TrajectoryListResponse>> {
    let filter = params.into_filter()?;
    let page = state.store.list_trajectories(&filter).await?;
    let ids: Vec<uuid::Uuid> = page.trajectories.iter().map(|t| t.id).collect();
    let scores = state.store.scores_of(&ids).await?;
    Ok(Json(TrajectoryListResponse { page, scores }))
}

/// Steps in one answer of `GET /api/trajectories/{id}` unless `stepsLimit` says otherwise, and
/// the most it may say: the answer's size stays bounded however long the trajectory is.
pub const DEFAULT_DETAIL_STEPS: i64 = 500;
pub const MAX_DETAIL_STEPS: i64 = 2000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DetailParams {
    /// Only steps with a greater `stepNumber` (pass `nextStepsAfter` of the previous answer).
    steps_after: Option<i64>,
    /// 1 to 2000, default 500.
    #[param(minimum = 1, maximum = 2000)]
    steps_limit: Option<i64>,
}

/// A trajectory with one page of its steps.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrajectoryDetail {
    #[serde(flatten)]
    pub trajectory: Trajectory,
    pub steps: Vec<Step>,
    /// When more steps follow: the `stepsAfter` that fetches them; else null.
    pub next_steps_after: Option<i64>,
    /// Every score of the trajectory (not paged: a trajectory has few).
    pub scores: Vec<lightning_core::Score>,
}

/// One trajectory with its outcome, its scores and a page of its steps in order (default 500, at most
/// 2000); follow `nextStepsAfter` for the rest.
#[utoipa::path(get, path = "/api/trajectories/{id}", tag = "read",
    params(("id" = uuid::Uuid, Path, description = "Trajectory id"), DetailParams),
    responses((status = 200, body = TrajectoryDetail), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<DetailParams>,
) -> ApiResult<Json<TrajectoryDetail>> {
    let id = trajectory_id(&id)?;
    let limit = params.steps_limit.unwrap_or(DEFAULT_DETAIL_STEPS);
    if !(1..=MAX_DETAIL_STEPS).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "stepsLimit must be between 1 and {MAX_DETAIL_STEPS}"
        )));
    }
    let trajectory = state.store.get_trajectory(id).await?;
    let mut steps = state
        .store
        .list_steps(id, params.steps_after, limit + 1)
        .await?;
    let more = steps.len() as i64 > limit;
    steps.truncate(limit as usize);
    let next_steps_after = more.then(|| steps.last().map(|s| s.step_number)).flatten();
    let scores = state.store.list_scores(id).await?;
    Ok(Json(TrajectoryDetail {
        trajectory,
        steps,
        next_steps_after,
        scores,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StepParams {
    /// Only steps with a greater `stepNumber`.
    after: Option<i64>,
    /// 1 to 10000, default 1000.
    limit: Option<i64>,
}

/// Steps after a step number, for live tailing. The answer is written as the steps are read,
/// 500 at a time, so even 10,000 long steps are never all in memory.
#[utoipa::path(get, path = "/api/trajectories/{id}/steps", tag = "read",
    params(("id" = uuid::Uuid, Path, description = "Trajectory id"), StepParams),
    responses((status = 200, body = StepsResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn steps(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<StepParams>,
) -> ApiResult<Response> {
    let id = trajectory_id(&id)?;
    let limit = params.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 10000".into(),
        ));
    }
    // Distinguish "no new steps" from "no such trajectory".
    state.store.get_trajectory(id).await?;
    // The first page is read before the 200 is sent, so a failing query is an error answer.
    let mut pages = Box::pin(lightning_store::steps_pages(
        state.store.clone(),
        id,
        params.after,
        limit,
    ));
    let first = pages.next().await.transpose()?.unwrap_or_default();
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        crate::streaming::steps_body(first, pages),
    )
        .into_response())
}

/// Delete a trajectory and its steps.
#[utoipa::path(delete, path = "/api/trajectories/{id}", tag = "read",
    params(("id" = uuid::Uuid, Path, description = "Trajectory id")),
    responses((status = 200, body = SuccessResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SuccessResponse>> {
    let id = trajectory_id(&id)?;
    state.store.delete_trajectory(id).await?;
    Ok(Json(SuccessResponse::OK))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsParams {
    agent_id: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    bucket: Option<TimeBucket>,
    /// Count optimizer evaluation runs (`promptVersion` starting `opt-`) too; default false.
    include_evaluations: Option<bool>,
}

/// `Stats` plus per-score-name figures over the same trajectories.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatsResponse {
    #[serde(flatten)]
    pub stats: Stats,
    pub scores: Vec<ScoreStats>,
}

/// Aggregates: outcomes, means, per-tool and per-agent figures, a timeline, and per score name
/// the count, mean, label distribution, per prompt version and over time. Optimizer evaluation
/// runs are left out unless `includeEvaluations=true`.
#[utoipa::path(get, path = "/api/stats", tag = "read", params(StatsParams),
    responses((status = 200, body = StatsResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn stats(
    State(state): State<AppState>,
    QueryParams(p): QueryParams<StatsParams>,
) -> ApiResult<Json<StatsResponse>> {
    let filter = StatsFilter {
        agent_id: p.agent_id.filter(|s| !s.is_empty()),
        since: p.since.map(lightning_core::time::normalize),
        until: p.until.map(lightning_core::time::normalize),
        bucket: p.bucket,
        include_evaluations: p.include_evaluations.unwrap_or(false),
    };
    let stats = state.store.stats(&filter).await?;
    let scores = state.store.score_stats(&filter).await?;
    Ok(Json(StatsResponse { stats, scores }))
}

/// Agents with their counts and when they were last seen.
#[utoipa::path(get, path = "/api/agents", tag = "read",
    responses((status = 200, body = AgentsResponse), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn agents(State(state): State<AppState>) -> ApiResult<Json<AgentsResponse>> {
    let agents: Vec<AgentSummary> = state.store.agents().await?;
    Ok(Json(AgentsResponse { agents }))
}

/// JSONL, one trajectory with its steps and scores per line, streamed page by page. Optimizer
/// evaluation runs are left out unless `includeEvaluations=true`.
#[utoipa::path(get, path = "/api/trajectories/export", tag = "read", params(ListParams),
    responses((status = 200, description = "One `TrajectoryWithSteps` per line", content_type = "application/x-ndjson", body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<ListParams>,
) -> ApiResult<Response> {
    let mut filter = params.into_filter()?;
    filter.cursor = None;
    // The first part is read before the 200 is sent, so a failing query is an error answer,
    // not an empty export; a failure later aborts the stream (the client sees a truncated
    // body, never a clean end). Each trajectory is written as its steps are read, 500 at a
    // time, so a 10,000-step trajectory is never in memory whole.
    let mut parts = Box::pin(lightning_store::export_parts(state.store.clone(), filter));
    let first = parts.next().await.transpose()?;
    let parts = futures::stream::iter(first.map(Ok)).chain(parts);
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        crate::streaming::export_body(parts),
    )
        .into_response())
}
