//! Optimization runs and the prompt registry (see docs/api.md, "Optimization").

use axum::{
    extract::{Path, State},
    http::StatusCode,
    Json,
};
use lightning_core::{
    optimization::validate_agent_id, rollout::DecisionNote, CandidateEvaluation, NewPrompt,
    OptimizationRun, Prompt, RunWithCandidates,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    error::{ApiError, ApiResult},
    extract::{JsonBody, OptionalJsonBody, QueryParams},
    openapi::ErrorBody,
    AppState,
};

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunsResponse {
    pub runs: Vec<OptimizationRun>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EvaluationsResponse {
    pub evaluations: Vec<CandidateEvaluation>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PromptsResponse {
    pub prompts: Vec<Prompt>,
}

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 1000;

/// Filters of the run list. Unknown parameters are refused.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunListParams {
    agent_id: Option<String>,
    /// Default 50.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// Optimization runs, newest first.
#[utoipa::path(get, path = "/api/optimization-runs", tag = "optimization", params(RunListParams),
    responses((status = 200, body = RunsResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn list_runs(
    State(state): State<AppState>,
    QueryParams(p): QueryParams<RunListParams>,
) -> ApiResult<Json<RunsResponse>> {
    let limit = p.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let agent = p.agent_id.filter(|a| !a.is_empty());
    let runs = state.store.list_runs(agent.as_deref(), limit).await?;
    Ok(Json(RunsResponse { runs }))
}

/// One run with every candidate it proposed (lineage, critiques, scores).
#[utoipa::path(get, path = "/api/optimization-runs/{id}", tag = "optimization",
    params(("id" = uuid::Uuid, Path, description = "Run id")),
    responses((status = 200, body = RunWithCandidates), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn get_run(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<RunWithCandidates>> {
    let id = run_id(&id)?;
    let run = state.store.get_run(id).await?;
    let candidates = state.store.list_candidates(id).await?;
    Ok(Json(RunWithCandidates { run, candidates }))
}

/// Every (candidate, example) evaluation of a run: reward, feedback, evaluator, duration, cost,
/// split, and the evaluation run's trajectory when the command reported one.
#[utoipa::path(get, path = "/api/optimization-runs/{id}/evaluations", tag = "optimization",
    params(("id" = uuid::Uuid, Path, description = "Run id")),
    responses((status = 200, body = EvaluationsResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn run_evaluations(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<EvaluationsResponse>> {
    let id = run_id(&id)?;
    state.store.get_run(id).await?;
    let evaluations = state.store.list_evaluations(id).await?;
    Ok(Json(EvaluationsResponse { evaluations }))
}

/// The agent's prompt versions, newest first (empty when it has none).
#[utoipa::path(get, path = "/api/agents/{agentId}/prompts", tag = "optimization",
    params(("agentId" = String, Path, description = "Agent id", min_length = 1, max_length = 256)),
    responses((status = 200, body = PromptsResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn list_prompts(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
) -> ApiResult<Json<PromptsResponse>> {
    validate_agent_id(&agent_id)?;
    let prompts = state.store.list_prompts(&agent_id).await?;
    Ok(Json(PromptsResponse { prompts }))
}

/// The promoted version: what an agent should run with. 404 when none is promoted (a
/// registered but unpromoted version is a candidate), so `prompt(fallback)` falls back.
#[utoipa::path(get, path = "/api/agents/{agentId}/prompts/latest", tag = "optimization",
    params(("agentId" = String, Path, description = "Agent id", min_length = 1, max_length = 256)),
    responses((status = 200, body = Prompt), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn latest_prompt(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
) -> ApiResult<Json<Prompt>> {
    validate_agent_id(&agent_id)?;
    state
        .store
        .latest_prompt(&agent_id)
        .await?
        .map(Json)
        .ok_or_else(|| {
            ApiError::NotFound(format!("agent {agent_id:?} has no promoted prompt version"))
        })
}

/// Registers the agent's next prompt version.
#[utoipa::path(post, path = "/api/agents/{agentId}/prompts", tag = "optimization",
    params(("agentId" = String, Path, description = "Agent id", min_length = 1, max_length = 256)),
    request_body = NewPrompt,
    responses((status = 201, body = Prompt), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn register_prompt(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
    JsonBody(mut body): JsonBody<NewPrompt>,
) -> ApiResult<(StatusCode, Json<Prompt>)> {
    validate_agent_id(&agent_id)?;
    body.validate()?;
    let prompt = state.store.register_prompt(&agent_id, &body).await?;
    Ok((StatusCode::CREATED, Json(prompt)))
}

/// Makes a version the agent's only promoted one and records the decision in the agent's
/// prompt events: a canary of that version ends as `promoted` with its comparison as evidence,
/// a canary of another version ends; both in one transaction with the promotion. The optional
/// body says who promotes and why (actor `api` without one).
#[utoipa::path(post, path = "/api/agents/{agentId}/prompts/{version}/promote", tag = "optimization",
    params(("agentId" = String, Path, description = "Agent id", min_length = 1, max_length = 256),
        ("version" = i64, Path, description = "Prompt version", minimum = 1)),
    request_body(content = Option<DecisionNote>, description = "Optional: who promotes and why"),
    responses((status = 200, body = Prompt), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn promote_prompt(
    State(state): State<AppState>,
    Path((agent_id, version)): Path<(String, String)>,
    OptionalJsonBody(note): OptionalJsonBody<DecisionNote>,
) -> ApiResult<Json<Prompt>> {
    validate_agent_id(&agent_id)?;
    let version: i64 = version.parse().ok().filter(|v| *v >= 1).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "invalid version {:?}: expected an integer from 1",
            version.chars().take(32).collect::<String>()
        ))
    })?;
    note.validate()?;
    let prompt = lightning_store::promote_with_history(
        &*state.store,
        &agent_id,
        version,
        note.into_decision(),
    )
    .await?;
    Ok(Json(prompt))
}

fn run_id(raw: &str) -> Result<Uuid, ApiError> {
    raw.parse().map_err(|_| {
        let shown: String = raw.chars().take(64).collect();
        ApiError::BadRequest(format!("invalid run id {shown:?}: expected a UUID"))
    })
}
