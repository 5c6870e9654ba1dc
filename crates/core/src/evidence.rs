//! The evidence behind an optimization run's verdict: scores with their sample size and
//! interval, the paired comparison of the best candidate against the starting prompt on the
//! test set, and every (candidate, example) evaluation.
//!
//! Wire names are camelCase, as in `docs/api.md` ("Optimization").

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Prompt versions given to the agent's own runs during an optimizer evaluation start with
/// this (`opt-<candidateId>`); datasets and stats leave those trajectories out by default.
pub const EVALUATION_PROMPT_VERSION_PREFIX: &str = "opt-";

/// Whether a trajectory's `promptVersion` marks it as an optimizer evaluation run.
pub fn is_evaluation_version(prompt_version: Option<&str>) -> bool {
    prompt_version.is_some_and(|v| v.starts_with(EVALUATION_PROMPT_VERSION_PREFIX))
}

/// How an interval was computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum IntervalMethod {
    /// Wilson score interval: every reward was 0 or 1 (a success rate).
    Wilson,
    /// Percentile bootstrap of the mean: rewards between 0 and 1.
    Bootstrap,
    /// Newcombe's method 10 for the difference of two paired success rates.
    Newcombe,
}

/// A mean reward over `n` examples with its interval at `confidence`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// `Score` in the OpenAPI document is a trajectory's score (`crate::score::Score`).
#[cfg_attr(feature = "openapi", schema(as = IntervalScore))]
#[serde(rename_all = "camelCase")]
pub struct Score {
    pub mean: f64,
    pub n: i64,
    pub low: f64,
    pub high: f64,
    pub confidence: f64,
    pub method: IntervalMethod,
}

/// Best minus baseline on the same examples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PairedDifference {
    pub mean: f64,
    pub n: i64,
    pub low: f64,
    pub high: f64,
    pub confidence: f64,
    pub method: IntervalMethod,
    /// Examples where the best candidate scored higher, lower, the same.
    pub wins: i64,
    pub losses: i64,
    pub ties: i64,
}

/// A candidate's scores on each set it was evaluated on (all examples of that set, or the
/// minibatch of its gate).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CandidateScores {
    pub minibatch: Option<Score>,
    pub validation: Option<Score>,
    /// Only the starting prompt and the run's best candidate are scored on the test set.
    pub test: Option<Score>,
}

/// How a finished run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// `Verdict` in the OpenAPI document is a rollout's (`crate::stats::Verdict`).
#[cfg_attr(feature = "openapi", schema(as = RunVerdict))]
#[serde(rename_all = "camelCase")]
pub enum Verdict {
    /// The paired improvement on the test set was significant: the best prompt was registered.
    Registered,
    /// Significant, but `--no-register` was given.
    SignificantNotRegistered,
    /// Significant by the judge's estimate, but judge results register only with
    /// `--register-judged`.
    JudgeEstimateNotRegistered,
    /// No candidate beat the starting prompt by a significant margin on the test set.
    NoSignificantImprovement,
}

impl Verdict {
    /// The label printed after `completed:`.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Registered => "significant improvement, registered",
            Verdict::SignificantNotRegistered => {
                "significant improvement, not registered (--no-register)"
            }
            Verdict::JudgeEstimateNotRegistered => {
                "improvement by judge estimate, not registered (pass --register-judged)"
            }
            Verdict::NoSignificantImprovement => "no significant improvement",
        }
    }
}

/// Sizes of the three sets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SplitSizes {
    pub train: i64,
    pub validation: i64,
    pub test: i64,
}

/// The test-set comparison that decided a run, stored with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct RunEvidence {
    /// `judge` or `command`.
    pub evaluator: String,
    /// True for judge scores: an LLM's estimate of what would happen, not observed runs.
    pub estimate: bool,
    pub split: SplitSizes,
    pub confidence: f64,
    /// The lower end of the difference's interval must exceed this to register.
    pub min_improvement: f64,
    pub baseline_validation: Option<Score>,
    pub best_validation: Option<Score>,
    pub baseline_test: Score,
    pub best_test: Score,
    pub difference: PairedDifference,
    pub significant: bool,
    pub verdict: Verdict,
}

/// Which set an evaluated example belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Validation,
    Test,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Validation => "validation",
            Split::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "train" => Split::Train,
            "validation" => Split::Validation,
            "test" => Split::Test,
            _ => return None,
        })
    }
}

/// One (candidate, example) evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct CandidateEvaluation {
    pub run_id: Uuid,
    /// The first candidate with this prompt text (identical prompts share evaluations).
    pub candidate_id: Uuid,
    /// The recorded trajectory whose task was evaluated.
    pub trajectory_id: Uuid,
    pub split: Split,
    pub reward: f64,
    pub feedback: Option<String>,
    /// Set when the evaluation itself failed (and scored 0).
    pub error: Option<String>,
    /// `judge` or `command`.
    pub evaluator: String,
    pub duration_ms: i64,
    pub cost_usd: Option<f64>,
    /// The trajectory the evaluation run recorded, when the command reported one.
    pub evaluation_trajectory_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluation_versions_and_splits() {
        assert!(is_evaluation_version(Some("opt-0190")));
        assert!(!is_evaluation_version(Some("3")));
        assert!(!is_evaluation_version(None));
        for s in [Split::Train, Split::Validation, Split::Test] {
            assert_eq!(Split::parse(s.as_str()), Some(s));
        }
        assert_eq!(
            serde_json::to_value(Verdict::NoSignificantImprovement).unwrap(),
            "noSignificantImprovement"
        );
    }
}
