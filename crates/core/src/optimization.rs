//! Optimization runs, their prompt candidates, and the versioned prompt registry.
//!
//! Wire names are camelCase, as in `docs/api.md` ("Optimization").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::ValidationError;

/// Longest prompt text accepted by the registry (1 MiB).
pub const MAX_PROMPT_LEN: usize = 1024 * 1024;
/// Longest note on a prompt version.
pub const MAX_NOTE_LEN: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    /// Stopped by the user (Ctrl-C); what was stored before stays.
    Cancelled,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "running" => RunStatus::Running,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }
}

/// One `lightning optimize` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct OptimizationRun {
    pub id: Uuid,
    pub agent_id: String,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The flags the run was started with (beam, rounds, evaluator, model, ...).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub config: Value,
    pub baseline_score: Option<f64>,
    pub best_score: Option<f64>,
    pub best_candidate_id: Option<Uuid>,
    /// Trajectories in the dataset.
    pub trajectories: i64,
    pub llm_calls: i64,
    pub evaluations: i64,
    pub error: Option<String>,
    /// The test-set comparison and verdict of a completed run.
    #[serde(default)]
    pub evidence: Option<crate::RunEvidence>,
    /// The last sign of life of the optimizer running it (written at every save).
    #[serde(default)]
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// Spend so far: the optimizer's LLM calls plus the evaluations' reported cost.
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// The optimizer's LLM tokens so far.
    #[serde(default)]
    pub input_tokens: Option<i64>,
    #[serde(default)]
    pub output_tokens: Option<i64>,
    /// Still `running` but no heartbeat (or start) for [`RUN_STALE_AFTER`] when read: its
    /// process died without recording an end. Computed when the run is read, never stored.
    #[serde(default)]
    pub stale: bool,
}

/// How long a running run may go without a heartbeat before it is shown stale.
pub const RUN_STALE_AFTER: chrono::Duration = chrono::Duration::seconds(120);

/// Whether a run with this status, start and last heartbeat is stale at `now`.
pub fn run_is_stale(
    status: RunStatus,
    started_at: DateTime<Utc>,
    heartbeat_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> bool {
    status == RunStatus::Running && now - heartbeat_at.unwrap_or(started_at) > RUN_STALE_AFTER
}

impl OptimizationRun {
    /// A run that has just started.
    pub fn start(agent_id: impl Into<String>, config: Value, trajectories: i64) -> Self {
        Self {
            id: Uuid::now_v7(),
            agent_id: agent_id.into(),
            status: RunStatus::Running,
            started_at: crate::time::now(),
            finished_at: None,
            config,
            baseline_score: None,
            best_score: None,
            best_candidate_id: None,
            trajectories,
            llm_calls: 0,
            evaluations: 0,
            error: None,
            evidence: None,
            heartbeat_at: None,
            cost_usd: None,
            input_tokens: None,
            output_tokens: None,
            stale: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CandidateStatus {
    /// The starting prompt.
    Seed,
    /// Stopped early: failed the minibatch gate or was halved away.
    Pruned,
    /// Scored on the whole validation set but not kept in the beam.
    Evaluated,
    /// In the beam after its last round.
    Kept,
    /// The run's best prompt.
    Best,
}

impl CandidateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CandidateStatus::Seed => "seed",
            CandidateStatus::Pruned => "pruned",
            CandidateStatus::Evaluated => "evaluated",
            CandidateStatus::Kept => "kept",
            CandidateStatus::Best => "best",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "seed" => CandidateStatus::Seed,
            "pruned" => CandidateStatus::Pruned,
            "evaluated" => CandidateStatus::Evaluated,
            "kept" => CandidateStatus::Kept,
            "best" => CandidateStatus::Best,
            _ => return None,
        })
    }
}

/// A prompt proposed during a run, with its lineage and scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PromptCandidate {
    pub id: Uuid,
    pub run_id: Uuid,
    /// `None` for the seed.
    pub parent_id: Option<Uuid>,
    pub round: i64,
    pub prompt: String,
    /// The textual gradient this candidate was edited from.
    pub critique: Option<String>,
    pub minibatch_score: Option<f64>,
    pub validation_score: Option<f64>,
    pub evaluations: i64,
    pub status: CandidateStatus,
    pub created_at: DateTime<Utc>,
    /// Each score with its n and interval.
    #[serde(default)]
    pub scores: crate::CandidateScores,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunWithCandidates {
    #[serde(flatten)]
    pub run: OptimizationRun,
    pub candidates: Vec<PromptCandidate>,
}

/// A version in the prompt registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Prompt {
    pub agent_id: String,
    /// 1, 2, 3, ... per agent.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub version: i64,
    pub text: String,
    pub source_run_id: Option<Uuid>,
    pub note: Option<String>,
    /// At most one version per agent is promoted; `GET …/prompts/latest` serves only that
    /// one. An unpromoted version is a candidate.
    pub promoted: bool,
    pub created_at: DateTime<Utc>,
    /// The evaluator whose evidence the version was registered on (`command`, `judge`), if any.
    #[serde(default)]
    pub evaluator: Option<String>,
}

/// Body of `POST /api/agents/{agentId}/prompts`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewPrompt {
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1048576))]
    pub text: String,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 4096))]
    pub note: Option<String>,
    #[serde(default)]
    pub source_run_id: Option<Uuid>,
    #[serde(default)]
    pub promote: bool,
    /// The evaluator whose evidence this version rests on (`command`, `judge`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 64))]
    pub evaluator: Option<String>,
}

impl NewPrompt {
    /// Rejects empty or oversized text; strips NUL characters (PostgreSQL text cannot hold them).
    pub fn validate(&mut self) -> Result<(), ValidationError> {
        self.text.retain(|c| c != '\0');
        if self.text.trim().is_empty() {
            return Err(ValidationError::new("text", "must not be empty"));
        }
        if self.text.len() > MAX_PROMPT_LEN {
            return Err(ValidationError::new(
                "text",
                format!("must be at most {MAX_PROMPT_LEN} bytes"),
            ));
        }
        if let Some(evaluator) = &mut self.evaluator {
            evaluator.retain(|c| c != '\0');
            if evaluator.len() > 64 {
                return Err(ValidationError::new(
                    "evaluator",
                    "must be at most 64 bytes",
                ));
            }
        }
        if let Some(note) = &mut self.note {
            note.retain(|c| c != '\0');
            if note.len() > MAX_NOTE_LEN {
                return Err(ValidationError::new(
                    "note",
                    format!("must be at most {MAX_NOTE_LEN} bytes"),
                ));
            }
        }
        Ok(())
    }
}

/// Agent ids in paths and prompt registrations: non-empty, at most 256 bytes, no NUL.
pub fn validate_agent_id(agent_id: &str) -> Result<(), ValidationError> {
    if agent_id.trim().is_empty() {
        return Err(ValidationError::new("agentId", "must not be empty"));
    }
    if agent_id.len() > crate::ingest::limits::MAX_NAME_LEN || agent_id.contains('\0') {
        return Err(ValidationError::new(
            "agentId",
            format!(
                "must be at most {} bytes without NUL characters",
                crate::ingest::limits::MAX_NAME_LEN
            ),
        ));
    }
    Ok(())
}

/// One LLM reply an optimization run received, kept so that `--resume` replays it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLlmReply {
    /// SHA-256 (hex) of the request: system prompt, prompt, and the settings that shape a reply.
    pub request_key: String,
    /// 0 for the run's first request with this key, 1 for the second identical one, ...
    pub occurrence: i64,
    pub text: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip() {
        for s in [RunStatus::Running, RunStatus::Completed, RunStatus::Failed] {
            assert_eq!(RunStatus::parse(s.as_str()), Some(s));
        }
        for s in [
            CandidateStatus::Seed,
            CandidateStatus::Pruned,
            CandidateStatus::Evaluated,
            CandidateStatus::Kept,
            CandidateStatus::Best,
        ] {
            assert_eq!(CandidateStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                Value::String(s.as_str().into())
            );
        }
    }

    #[test]
    fn new_prompt_validation() {
        let mut p = NewPrompt {
            text: "  ".into(),
            ..Default::default()
        };
        assert_eq!(p.validate().unwrap_err().field, "text");
        let mut p = NewPrompt {
            text: "a\0b".into(),
            ..Default::default()
        };
        p.validate().unwrap();
        assert_eq!(p.text, "ab");
        assert!(validate_agent_id("").is_err());
        assert!(validate_agent_id("agent-1").is_ok());
    }
}
