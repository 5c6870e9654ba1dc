//! The seed's three ingest endpoints.

use std::sync::atomic::Ordering::Relaxed;

use axum::{
    extract::{Path, State},
    Json,
};
use lightning_core::{ingest::StepBatch, Completion, NewTrajectory};
use serde_json::{json, Value};

use crate::{
    error::ApiResult,
    extract::{trajectory_id, JsonBody},
    AppState,
};

pub async fn start(
    State(state): State<AppState>,
    JsonBody(mut body): JsonBody<NewTrajectory>,
) -> ApiResult<Json<Value>> {
    body.validate()?;
    let id = state.store.start_trajectory(&body).await?;
    state.metrics.trajectories_started.fetch_add(1, Relaxed);
    Ok(Json(json!({ "trajectoryId": id })))
}

pub async fn steps_batch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<StepBatch>,
) -> ApiResult<Json<Value>> {
    let id = trajectory_id(&id)?;
    let steps = body.validate()?;
    if steps.is_empty() {
        // Still 404 for an unknown trajectory, so clients learn about it early.
        state.store.get_trajectory(id).await?;
    } else {
        state.store.append_steps(id, &steps).await?;
        state.metrics.steps_ingested.fetch_add(steps.len() as u64, Relaxed);
    }
    Ok(Json(json!({ "success": true })))
}

pub async fn complete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(mut body): JsonBody<Completion>,
) -> ApiResult<Json<Value>> {
    let id = trajectory_id(&id)?;
    body.validate()?;
    state.store.complete_trajectory(id, &body).await?;
    state.metrics.trajectories_completed.fetch_add(1, Relaxed);
    Ok(Json(json!({ "success": true })))
}
