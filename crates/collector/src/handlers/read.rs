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
use serde_json::{json, Value};

use crate::{
    error::{ApiError, ApiResult},
    extract::{trajectory_id, QueryParams},
    AppState,
};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListParams {
    agent_id: Option<String>,
    task_type: Option<String>,
    status: Option<Status>,
    success: Option<bool>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    q: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
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
        })
    }
}

pub async fn list(
    State(state): State<AppState>,
    QueryParams(params): QueryParams<ListParams>,
) -> ApiResult<Json<TrajectoryPage>> {
    let filter = params.into_filter()?;
    Ok(Json(state.store.list_trajectories(&filter).await?))
}

pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<TrajectoryWithSteps>> {
    let id = trajectory_id(&id)?;
    let trajectory = state.store.get_trajectory(id).await?;
    let steps = state.store.list_steps(id, None, i64::MAX).await?;
    Ok(Json(TrajectoryWithSteps { trajectory, steps }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepParams {
    after: Option<i64>,
    limit: Option<i64>,
}

pub async fn steps(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryParams(params): QueryParams<StepParams>,
) -> ApiResult<Json<Value>> {
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
    Ok(Json(json!({ "steps": steps })))
}

pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = trajectory_id(&id)?;
    state.store.delete_trajectory(id).await?;
    Ok(Json(json!({ "success": true })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatsParams {
    agent_id: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    bucket: Option<TimeBucket>,
}

pub async fn stats(
    State(state): State<AppState>,
    QueryParams(p): QueryParams<StatsParams>,
) -> ApiResult<Json<Stats>> {
    let filter = StatsFilter {
        agent_id: p.agent_id.filter(|s| !s.is_empty()),
        since: p.since.map(lightning_core::time::normalize),
        until: p.until.map(lightning_core::time::normalize),
        bucket: p.bucket,
    };
    Ok(Json(state.store.stats(&filter).await?))
}

pub async fn agents(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let agents: Vec<AgentSummary> = state.store.agents().await?;
    Ok(Json(json!({ "agents": agents })))
}

/// JSONL, one trajectory with its steps per line, streamed page by page.
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
