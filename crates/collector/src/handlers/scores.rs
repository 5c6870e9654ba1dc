//! Scores on trajectories and steps (see docs/api.md, "Scores").

use axum::{
    extract::{Path, State},
    Json,
};
use lightning_core::{score::validate_score_id, NewScore, Score};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    error::{ApiError, ApiResult},
    extract::{trajectory_id, JsonBody},
    openapi::{ErrorBody, SuccessResponse},
    AppState,
};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScoreIdResponse {
    /// The client's `id`, or the one the server generated.
    pub id: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ScoresResponse {
    pub scores: Vec<Score>,
}

/// Add a score, or update the one with the same `id` (last write wins for every field it carries).
#[utoipa::path(post, path = "/api/trajectories/{id}/scores", tag = "scores",
    operation_id = "create_score",
    params(("id" = uuid::Uuid, Path, description = "Trajectory id")),
    request_body = NewScore,
    responses(
        (status = 200, body = ScoreIdResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    JsonBody(mut body): JsonBody<NewScore>,
) -> ApiResult<Json<ScoreIdResponse>> {
    let id = trajectory_id(&id)?;
    body.validate()?;
    let id = state.store.upsert_score(id, &body).await?;
    Ok(Json(ScoreIdResponse { id }))
}

/// The trajectory's scores (its steps' included), oldest first.
#[utoipa::path(get, path = "/api/trajectories/{id}/scores", tag = "scores",
    operation_id = "list_scores",
    params(("id" = uuid::Uuid, Path, description = "Trajectory id")),
    responses((status = 200, body = ScoresResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<ScoresResponse>> {
    let id = trajectory_id(&id)?;
    // Distinguish "no scores" from "no such trajectory".
    state.store.get_trajectory(id).await?;
    let scores = state.store.list_scores(id).await?;
    Ok(Json(ScoresResponse { scores }))
}

/// Delete one score.
#[utoipa::path(delete, path = "/api/scores/{id}", tag = "scores",
    operation_id = "delete_score",
    params(("id" = String, Path, description = "Score id", min_length = 1, max_length = 128,
        pattern = "^[A-Za-z0-9_.:-]+$")),
    responses((status = 200, body = SuccessResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SuccessResponse>> {
    validate_score_id("score id", &id).map_err(|e| {
        ApiError::BadRequest(format!(
            "invalid score id {:?}: {}",
            id.chars().take(64).collect::<String>(),
            e.message
        ))
    })?;
    state.store.delete_score(&id).await?;
    Ok(Json(SuccessResponse::OK))
}
