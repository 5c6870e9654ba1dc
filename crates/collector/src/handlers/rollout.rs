//! Canary rollouts of prompt versions, assignments, comparisons and the decision history
//! (docs/rollout.md).

use axum::{
    extract::{Path, State},
    Json,
};
use chrono::{DateTime, Utc};
use lightning_core::{
    optimization::validate_agent_id,
    rollout::{
        assign, validate_unit, Assignment, Comparison, Decision, EventKind, NewRollout,
        PromptEvent, Reward, RewardSeries, Rollout, MAX_SERIES_BUCKETS,
    },
    stats::SequentialTest,
};
use lightning_store::{
    compare_rollout, compare_versions, end_rollout_with_evidence, reward_series,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    error::{ApiError, ApiResult},
    extract::{JsonBody, QueryParams},
    openapi::ErrorBody,
    AppState,
};

/// The active rollout with its live comparison; both null when the agent has none.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    pub rollout: Option<Rollout>,
    pub comparison: Option<Comparison>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventsResponse {
    pub events: Vec<PromptEvent>,
}

/// The decision that ended a rollout.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EndedResponse {
    pub event: PromptEvent,
}

fn parse_version(raw: &str) -> ApiResult<i64> {
    raw.parse().ok().filter(|v| *v >= 1).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "invalid version {:?}: expected an integer from 1",
            raw.chars().take(32).collect::<String>()
        ))
    })
}

/// Starts a canary of `version` beside the promoted version, or changes the percentage of the
/// running one (assignments are kept: raising the percentage only adds units).
#[utoipa::path(post, path = "/api/agents/{agentId}/prompts/{version}/rollout", tag = "rollout",
    operation_id = "start_rollout",
    params(("agentId" = String, Path, description = "Agent id", min_length = 1, max_length = 256),
        ("version" = i64, Path, description = "Prompt version", minimum = 1)),
    request_body = NewRollout,
    responses((status = 200, body = Rollout), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn start(
    State(state): State<AppState>,
    Path((agent_id, version)): Path<(String, String)>,
    JsonBody(body): JsonBody<NewRollout>,
) -> ApiResult<Json<Rollout>> {
    validate_agent_id(&agent_id)?;
    let version = parse_version(&version)?;
    body.validate()?;
    let (rollout, _) = state.store.start_rollout(&agent_id, version, &body).await?;
    Ok(Json(rollout))
}

/// How a rollout ends when it is not promoted.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EndParams {
    /// Record the end as a rollback (the candidate was worse) rather than a plain end.
    rollback: Option<bool>,
    /// Who decided (default `api`).
    actor: Option<String>,
    reason: Option<String>,
}

/// Ends the canary of `version`; every unit gets the promoted version again. The comparison at
/// that moment is stored with the event.
#[utoipa::path(delete, path = "/api/agents/{agentId}/prompts/{version}/rollout", tag = "rollout",
    operation_id = "end_rollout",
    params(("agentId" = String, Path, description = "Agent id", min_length = 1, max_length = 256),
        ("version" = i64, Path, description = "Prompt version", minimum = 1), EndParams),
    responses((status = 200, body = EndedResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn end(
    State(state): State<AppState>,
    Path((agent_id, version)): Path<(String, String)>,
    QueryParams(p): QueryParams<EndParams>,
) -> ApiResult<Json<EndedResponse>> {
    validate_agent_id(&agent_id)?;
    let version = parse_version(&version)?;
    let decision = Decision {
        actor: p.actor,
        reason: p.reason,
        evidence: None,
    };
    decision.validate()?;
    let kind = if p.rollback.unwrap_or(false) {
        EventKind::RolledBack
    } else {
        EventKind::RolloutEnded
    };
    let event = end_rollout_with_evidence(&*state.store, &agent_id, version, kind, decision)
        .await?
        .ok_or_else(|| no_rollout(&agent_id, version))?;
    Ok(Json(EndedResponse { event }))
}

fn no_rollout(agent_id: &str, version: i64) -> ApiError {
    ApiError::NotFound(format!(
        "agent {agent_id:?} has no rollout of version {version}"
    ))
}

/// The active rollout and its live comparison with the baseline since it started
/// (`{"rollout": null, "comparison": null}` when there is none).
#[utoipa::path(get, path = "/api/agents/{agentId}/prompts/rollout", tag = "rollout",
    params(("agentId" = String, Path, description = "Agent id", min_length = 1, max_length = 256)),
    responses((status = 200, body = RolloutStatus), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn status(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
) -> ApiResult<Json<RolloutStatus>> {
    validate_agent_id(&agent_id)?;
    let Some(rollout) = state.store.get_rollout(&agent_id).await? else {
        return Ok(Json(RolloutStatus {
            rollout: None,
            comparison: None,
        }));
    };
    let comparison = compare_rollout(&*state.store, &rollout, SequentialTest::default()).await?;
    Ok(Json(RolloutStatus {
        rollout: Some(rollout),
        comparison: Some(comparison),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AssignmentParams {
    /// The key assignments stick to: a session id, a user id, anything stable per unit.
    #[param(min_length = 1, max_length = 256)]
    unit: String,
}

/// The prompt version `unit` should run with: the canary for a sticky, uniform `percent` of
/// units, else the promoted version (arm `fallback` with no text when none is promoted and a
/// canary is running). 404 when the agent has neither: use your own prompt.
#[utoipa::path(get, path = "/api/agents/{agentId}/prompts/assignment", tag = "rollout",
    params(("agentId" = String, Path, description = "Agent id", min_length = 1, max_length = 256),
        AssignmentParams),
    responses((status = 200, body = Assignment), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn assignment(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
    QueryParams(p): QueryParams<AssignmentParams>,
) -> ApiResult<Json<Assignment>> {
    validate_agent_id(&agent_id)?;
    validate_unit(&p.unit)?;
    let prompts = state.store.list_prompts(&agent_id).await?;
    let rollout = state.store.get_rollout(&agent_id).await?;
    assign(&agent_id, &prompts, rollout.as_ref(), &p.unit)
        .map(Json)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "agent {agent_id:?} has no promoted prompt version and no rollout"
            ))
        })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CompareParams {
    /// `baseline,candidate`: two versions, each an integer or `none` (runs recorded without a
    /// version). Default: the active rollout's baseline and canary.
    versions: Option<String>,
    /// Runs that started at or after this time (default: the rollout's start, else all).
    since: Option<DateTime<Utc>>,
    /// `success` (default) or `score:<name>`.
    reward: Option<String>,
}

fn parse_arm(raw: &str) -> ApiResult<Option<i64>> {
    match raw.trim() {
        "none" => Ok(None),
        v => parse_version(v).map(Some).map_err(|_| {
            ApiError::BadRequest(format!(
                "versions: {:?} is neither a version number nor `none`",
                v.chars().take(32).collect::<String>()
            ))
        }),
    }
}

/// Compares two versions' runs: per version runs, reward with its 95 % interval, mean cost,
/// duration and steps, error rate per tool; and candidate − baseline with an always-valid
/// interval and p-value (repeated looks do not inflate false positives; docs/rollout.md).
#[utoipa::path(get, path = "/api/agents/{agentId}/prompts/compare", tag = "rollout",
    params(("agentId" = String, Path, description = "Agent id", min_length = 1, max_length = 256),
        CompareParams),
    responses((status = 200, body = Comparison), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn compare(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
    QueryParams(p): QueryParams<CompareParams>,
) -> ApiResult<Json<Comparison>> {
    validate_agent_id(&agent_id)?;
    let rollout = state.store.get_rollout(&agent_id).await?;
    let versions = match p.versions.as_deref() {
        Some(raw) => match raw.split_once(',') {
            Some((a, b)) if !b.contains(',') => (parse_arm(a)?, parse_arm(b)?),
            _ => {
                return Err(ApiError::BadRequest(
                    "versions: expected two comma-separated versions, e.g. 1,2 or none,3".into(),
                ))
            }
        },
        None => match &rollout {
            Some(r) => (r.baseline_version, Some(r.version)),
            None => {
                return Err(ApiError::BadRequest(format!(
                    "versions: required when agent {agent_id:?} has no active rollout"
                )))
            }
        },
    };
    let reward = match p.reward.as_deref() {
        Some(raw) => Reward::parse(raw)?,
        None => match &rollout {
            Some(r) => Reward::parse(&r.reward)?,
            None => Reward::Success,
        },
    };
    let since = p
        .since
        .map(lightning_core::time::normalize)
        .or_else(|| rollout.as_ref().map(|r| r.started_at));
    let comparison = compare_versions(
        &*state.store,
        &agent_id,
        versions,
        since,
        &reward,
        SequentialTest::default(),
    )
    .await?;
    Ok(Json(comparison))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeriesParams {
    /// Comma-separated versions, each an integer or `none`, at most 4. Default: the active
    /// rollout's baseline and canary.
    versions: Option<String>,
    /// Start of the window (default: the rollout's start).
    since: Option<DateTime<Utc>>,
    /// End of the window (default: now).
    until: Option<DateTime<Utc>>,
    /// `success` (default: the rollout's reward) or `score:<name>`.
    reward: Option<String>,
    /// Number of equal time buckets, 1 to 60 (default 12).
    #[param(minimum = 1, maximum = 60)]
    buckets: Option<u32>,
}

/// Reward over time per version for the canary chart: each time bucket's rewarded runs with
/// the success rate (Wilson 95 % interval) or mean score (normal 95 % interval), aggregated by
/// the store over every run in the window, however many.
#[utoipa::path(get, path = "/api/agents/{agentId}/prompts/series", tag = "rollout",
    params(("agentId" = String, Path, description = "Agent id", min_length = 1, max_length = 256),
        SeriesParams),
    responses((status = 200, body = RewardSeries), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn series(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
    QueryParams(p): QueryParams<SeriesParams>,
) -> ApiResult<Json<RewardSeries>> {
    validate_agent_id(&agent_id)?;
    let rollout = state.store.get_rollout(&agent_id).await?;
    let versions = match p.versions.as_deref() {
        Some(raw) => {
            let versions = raw
                .split(',')
                .map(parse_arm)
                .collect::<ApiResult<Vec<_>>>()?;
            if versions.len() > 4 {
                return Err(ApiError::BadRequest(
                    "versions: at most 4 comma-separated versions".into(),
                ));
            }
            versions
        }
        None => match &rollout {
            Some(r) => vec![r.baseline_version, Some(r.version)],
            None => {
                return Err(ApiError::BadRequest(format!(
                    "versions: required when agent {agent_id:?} has no active rollout"
                )))
            }
        },
    };
    let reward = match (p.reward.as_deref(), &rollout) {
        (Some(raw), _) => Reward::parse(raw)?,
        (None, Some(r)) => Reward::parse(&r.reward)?,
        (None, None) => Reward::Success,
    };
    let buckets = p.buckets.unwrap_or(12);
    if !(1..=MAX_SERIES_BUCKETS).contains(&buckets) {
        return Err(ApiError::BadRequest(format!(
            "buckets must be between 1 and {MAX_SERIES_BUCKETS}"
        )));
    }
    let until = p
        .until
        .map_or_else(lightning_core::time::now, lightning_core::time::normalize);
    let since = match (p.since, &rollout) {
        (Some(since), _) => lightning_core::time::normalize(since),
        (None, Some(r)) => r.started_at,
        (None, None) => {
            return Err(ApiError::BadRequest(format!(
                "since: required when agent {agent_id:?} has no active rollout"
            )))
        }
    };
    if since > until {
        return Err(ApiError::BadRequest(
            "since: must not be after until".into(),
        ));
    }
    let series = reward_series(
        &*state.store,
        &agent_id,
        &versions,
        (since, until),
        buckets,
        &reward,
    )
    .await?;
    Ok(Json(series))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventsParams {
    /// 1 to 1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// Every recorded prompt decision of the agent, newest first: rollouts started, changed and
/// ended, rollbacks (by hand or by the guard) and promotions, with who, when and the evidence.
#[utoipa::path(get, path = "/api/agents/{agentId}/prompts/events", tag = "rollout",
    params(("agentId" = String, Path, description = "Agent id", min_length = 1, max_length = 256),
        EventsParams),
    responses((status = 200, body = EventsResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    Path(agent_id): Path<String>,
    QueryParams(p): QueryParams<EventsParams>,
) -> ApiResult<Json<EventsResponse>> {
    validate_agent_id(&agent_id)?;
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest(
            "limit must be between 1 and 1000".into(),
        ));
    }
    let events = state.store.list_events(&agent_id, limit).await?;
    Ok(Json(EventsResponse { events }))
}
