//! The seed's three ingest endpoints.

use std::sync::atomic::Ordering::Relaxed;

use axum::{
    extract::{Path, State},
    Json,
};
use lightning_core::{ingest::StepBatch, Completion, NewTrajectory};

use crate::{
    error::ApiResult,
    extract::{trajectory_id, JsonBody},
    openapi::{ErrorBody, StartResponse, SuccessResponse},
    AppState,
};

/// Start a trajectory (idempotent when the client supplies `trajectoryId`).
#[utoipa::path(post, path = "/api/trajectories/start", tag = "ingest",
    request_body = NewTrajectory,
    responses(
        (status = 200, body = StartResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 413, body = ErrorBody),
        (status = 415, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn start(
    State(state): State<AppState>,
    JsonBody(mut body): JsonBody<NewTrajectory>,
) -> ApiResult<Json<StartResponse>> {
    body.validate()?;
    let trajectory_id = state.store.start_trajectory(&body).await?;
    state.metrics.trajectories_started.fetch_add(1, Relaxed);
    Ok(Json(StartResponse { trajectory_id }))
}

/// Add steps in one transaction; re-sent steps merge by `(trajectoryId, stepNumber)`.
#[utoipa::path(post, path = "/api/trajectories/{id}/steps/batch", tag = "ingest",
    params(("id" = uuid::Uuid, Path, description = "Trajectory id")),
    request_body = StepBatch,
    responses(
        (status = 200, body = SuccessResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn steps_batch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<StepBatch>,
) -> ApiResult<Json<SuccessResponse>> {
    let id = trajectory_id(&id)?;
    let steps = body.validate()?;
    if steps.is_empty() {
        // Still 404 for an unknown trajectory, so clients learn about it early.
        state.store.get_trajectory(id).await?;
    } else {
        let count = steps.len() as u64;
        state.store.append_steps(id, steps).await?;
        state.metrics.steps_ingested.fetch_add(count, Relaxed);
    }
    Ok(Json(SuccessResponse::OK))
}

/// Record the outcome; repeating it overwrites the fields the newer call carries.
#[utoipa::path(post, path = "/api/trajectories/{id}/complete", tag = "ingest",
    params(("id" = uuid::Uuid, Path, description = "Trajectory id")),
    request_body = Completion,
    responses(
        (status = 200, body = SuccessResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn complete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(mut body): JsonBody<Completion>,
) -> ApiResult<Json<SuccessResponse>> {
    let id = trajectory_id(&id)?;
    body.validate()?;
    state.store.complete_trajectory(id, &body).await?;
    state.metrics.trajectories_completed.fetch_add(1, Relaxed);
    Ok(Json(SuccessResponse::OK))
}
