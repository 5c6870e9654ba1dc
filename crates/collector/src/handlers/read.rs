//! Read API for the dashboard and the optimizer.

use axum::{
    body::Body,
    extract::{Path, State},
    http::header,
    response::{IntoResponse, Response},
    Json,
};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use lightning_core::{
    AgentSummary, Cursor, Stats, StatsFilter, Status, Step, TimeBucket, TrajectoryFilter,
    TrajectoryPage, TrajectoryWithSteps,
};
use serde::Deserialize;
use utoipa::IntoParams;

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
    /// Leave out optimizer evaluation runs (`promptVersion` starting `opt-`); default false.
    exclude_evaluations: Option<bool>,
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
        Ok(TrajectoryFilter {
            agent_id: self.agent_id.filter(|s| !s.is_empty()),
            task_type: self.task_type.filter(|s| !s.is_empty()),
            status,
            since: self.since.map(lightning_core::time::normalize),
            until: self.until.map(lightning_core::time::normalize),
            search: self.q.filter(|s| !s.is_empty()),
            cursor,
            limit,
            exclude_evaluations: self.exclude_evaluations.unwrap_or(false),
        })
    }
}

/// Trajectories, newest first, keyset-paginated.
#[utoipa::path(get, path = "/api/trajectories", tag = "read", params(ListParams),
    responses((status = 200, body = TrajectoryPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<ListParams>,
) -> ApiResult<Json<TrajectoryPage>> {
    let filter = params.into_filter()?;
    Ok(Json(state.store.list_trajectories(&filter).await?))
}

/// One trajectory with its outcome and its steps in order.
#[utoipa::path(get, path = "/api/trajectories/{id}", tag = "read",
    params(("id" = uuid::Uuid, Path, description = "Trajectory id")),
    responses((status = 200, body = TrajectoryWithSteps), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TrajectoryWithSteps>> {
    let id = trajectory_id(&id)?;
    let trajectory = state.store.get_trajectory(id).await?;
    let steps = state.store.list_steps(id, None, i64::MAX).await?;
    Ok(Json(TrajectoryWithSteps { trajectory, steps }))
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

/// Steps after a step number, for live tailing.
#[utoipa::path(get, path = "/api/trajectories/{id}/steps", tag = "read",
    params(("id" = uuid::Uuid, Path, description = "Trajectory id"), StepParams),
    responses((status = 200, body = StepsResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn steps(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<StepParams>,
) -> ApiResult<Json<StepsResponse>> {
    let id = trajectory_id(&id)?;
    let limit = params.limit.unwrap_or(1000);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 10000".into(),
        ));
    }
    // Distinguish "no new steps" from "no such trajectory".
    state.store.get_trajectory(id).await?;
    let steps: Vec<Step> = state.store.list_steps(id, params.after, limit).await?;
    Ok(Json(StepsResponse { steps }))
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

/// Aggregates: outcomes, means, per-tool and per-agent figures, and a timeline. Optimizer
/// evaluation runs are left out unless `includeEvaluations=true`.
#[utoipa::path(get, path = "/api/stats", tag = "read", params(StatsParams),
    responses((status = 200, body = Stats), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn stats(
    State(state): State<AppState>,
    QueryParams(p): QueryParams<StatsParams>,
) -> ApiResult<Json<Stats>> {
    let filter = StatsFilter {
        agent_id: p.agent_id.filter(|s| !s.is_empty()),
        since: p.since.map(lightning_core::time::normalize),
        until: p.until.map(lightning_core::time::normalize),
        bucket: p.bucket,
        include_evaluations: p.include_evaluations.unwrap_or(false),
    };
    Ok(Json(state.store.stats(&filter).await?))
}

/// Agents with their counts and when they were last seen.
#[utoipa::path(get, path = "/api/agents", tag = "read",
    responses((status = 200, body = AgentsResponse), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn agents(State(state): State<AppState>) -> ApiResult<Json<AgentsResponse>> {
    let agents: Vec<AgentSummary> = state.store.agents().await?;
    Ok(Json(AgentsResponse { agents }))
}

/// JSONL, one trajectory with its steps per line, streamed page by page.
#[utoipa::path(get, path = "/api/trajectories/export", tag = "read", params(ListParams),
    responses((status = 200, description = "One `TrajectoryWithSteps` per line", content_type = "application/x-ndjson", body = String),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<ListParams>,
) -> ApiResult<Response> {
    let mut filter = params.into_filter()?;
    filter.cursor = None;
    // Fail before the 200 is sent if the database is down.
    state.store.ping().await?;
    let lines = lightning_store::export_stream(state.store.clone(), filter).map(|item| {
        item.map(|t| {
            let mut line = serde_json::to_vec(&t).expect("serializing a trajectory cannot fail");
            line.push(b'\n');
            line
        })
        .map_err(|e| {
            tracing::error!(error = %e, "export aborted");
            std::io::Error::other(e.to_string())
        })
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}
