//! Evaluators score a candidate prompt on one example with a reward in [0, 1].
//!
//! - [`judge::JudgeEvaluator`] (offline, default): an LLM judges from the recorded run whether
//!   the candidate prompt would have avoided the failure or kept the success.
//! - [`command::CommandEvaluator`]: runs the user's agent (`--eval-cmd`) with the candidate
//!   prompt on the example's task and reads the reward from its stdout.

pub mod command;
pub mod judge;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::dataset::Example;

/// Identifies the candidate being scored, for command evaluators that tag their runs.
#[derive(Debug, Clone, PartialEq)]
pub struct CandidateRef<'a> {
    pub run_id: uuid::Uuid,
    pub candidate_id: uuid::Uuid,
    pub agent_id: &'a str,
    /// `promptVersion` to tag instrumented runs with.
    pub prompt_version: String,
    pub prompt: &'a str,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evaluation {
    /// In [0, 1]; 0 when the evaluation failed.
    pub reward: f64,
    /// Why, or what was missing (the evaluator's side information, fed to the critique).
    pub feedback: Option<String>,
    /// Set when the evaluation itself failed (crash, timeout, unparsable output).
    pub error: Option<String>,
    /// What the evaluation cost, when known (judge tokens at list price, or `costUsd`
    /// reported by the command).
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// The trajectory the evaluation run recorded, when the command reported `trajectoryId`.
    #[serde(default)]
    pub trajectory_id: Option<uuid::Uuid>,
    /// That trajectory rendered for critiques (assistant text, tool calls, errors, final
    /// answer), when it could be read from the store; filled in by [`WithTrajectories`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trajectory: Option<String>,
}

impl Evaluation {
    pub fn scored(reward: f64, feedback: Option<String>) -> Self {
        Self {
            reward,
            feedback,
            error: None,
            cost_usd: None,
            trajectory_id: None,
            trajectory: None,
        }
    }

    pub fn failed(error: impl Into<String>) -> Self {
        Self {
            reward: 0.0,
            feedback: None,
            error: Some(error.into()),
            cost_usd: None,
            trajectory_id: None,
            trajectory: None,
        }
    }
}

#[async_trait]
pub trait Evaluator: Send + Sync {
    /// Short name for logs, the run's config and the stored evidence.
    fn name(&self) -> &'static str;

    /// Whether scores are an estimate (an LLM judging recorded runs) rather than observed
    /// outcomes of real runs.
    fn is_estimate(&self) -> bool {
        false
    }

    /// Scores one (candidate, example). Failures are returned as [`Evaluation::failed`], never
    /// as errors, so one broken run cannot stop the search. `Err` is for fatal problems only
    /// (e.g. the judge's API key is rejected).
    async fn evaluate(
        &self,
        candidate: &CandidateRef<'_>,
        example: &Example,
    ) -> Result<Evaluation, crate::OptimizerError>;
}

/// The first JSON object in `text` that has a numeric `field`, searching from the end
/// (`reward` for commands, `score` for the judge).
pub(crate) fn find_json_with(text: &str, field: &str) -> Option<serde_json::Value> {
    let whole = serde_json::from_str::<serde_json::Value>(text.trim()).ok();
    if let Some(v) = whole.filter(|v| v.get(field).is_some()) {
        return Some(v);
    }
    for line in text.lines().rev() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line.trim()) {
            if v.get(field).is_some() {
                return Some(v);
            }
        }
    }
    // An object embedded in prose: try each '{' up to its matching '}'.
    let bytes = text.as_bytes();
    for (start, _) in text.match_indices('{') {
        let mut depth = 0i32;
        for (i, &b) in bytes.iter().enumerate().skip(start) {
            match b {
                b'{' => depth += 1,
                b'}' => {
                    depth -= 1;
                    if depth == 0 {
                        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&text[start..=i]) {
                            if v.get(field).is_some() {
                                return Some(v);
                            }
                        }
                        break;
                    }
                }
                _ => {}
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_json_in_noisy_output() {
        assert_eq!(
            find_json_with("{\"reward\": 0.5}", "reward").unwrap()["reward"],
            0.5
        );
        assert_eq!(
            find_json_with(
                "log line\n{\"reward\": 1, \"feedback\": \"ok\"}\n",
                "reward"
            )
            .unwrap()["feedback"],
            "ok"
        );
        assert_eq!(
            find_json_with(
                "I think {\"score\": 0.8, \"reason\": \"has {x}\"} overall",
                "score"
            )
            .unwrap()["score"],
            0.8
        );
        assert!(find_json_with("no json", "reward").is_none());
    }
}
