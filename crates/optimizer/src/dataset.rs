//! The dataset: the latest completed trajectories, turned into (prompt, actions, outcome)
//! examples, and a deterministic train/validation split.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use lightning_core::{Step, Trajectory, TrajectoryFilter};
use lightning_store::Store;
use rand::{seq::SliceRandom, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{analysis::normalize_error, OptimizerError, Result};

/// The seed's `run_apo.py --trajectories 100`: fewer works but is noisy, so we warn.
pub const RECOMMENDED_TRAJECTORIES: usize = 100;
/// Below this the optimizer refuses to run: too few examples to split and score.
pub const MIN_TRAJECTORIES: usize = 10;

const INPUT_EXCERPT: usize = 120;
const OUTPUT_EXCERPT: usize = 160;
const ERROR_EXCERPT: usize = 240;
/// Steps fetched per trajectory in flight at once while extracting.
const STEP_FETCH_CONCURRENCY: usize = 16;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DatasetQuery {
    /// Latest N completed trajectories.
    pub limit: usize,
    pub agent_id: Option<String>,
    pub task_type: Option<String>,
    pub since: Option<DateTime<Utc>>,
}

/// One tool call, compacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    pub tool: String,
    /// The most telling input field (command, path, query, ...), shortened.
    pub input: Option<String>,
    pub error: Option<String>,
    pub output: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub success: bool,
    pub error: Option<String>,
    /// A user or grader score found in the trajectory's metadata or result, if any.
    pub feedback_score: Option<f64>,
    pub result: Option<String>,
}

/// A (prompt, actions, outcome) example built from one stored trajectory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Example {
    pub trajectory_id: Uuid,
    pub agent_id: String,
    pub task_type: Option<String>,
    /// The task prompt given to the agent.
    pub task: String,
    pub system_prompt: Option<String>,
    pub prompt_version: Option<String>,
    pub actions: Vec<Action>,
    pub outcome: Outcome,
    /// Failures are grouped by this (`"Bash: command not found: <s>"`); `None` for successes.
    pub failure_type: Option<String>,
}

impl Example {
    pub fn from_trajectory(t: &Trajectory, steps: &[Step]) -> Self {
        // Messages and lifecycle events are not actions (steps carry `kind` for that).
        let actions: Vec<Action> = steps
            .iter()
            .filter(|s| s.kind == lightning_core::StepKind::Tool)
            .map(action)
            .collect();
        // `abandoned` (no completion ever came): a failure whose cause is unknown.
        let success = t.status == lightning_core::Status::Succeeded;
        let failure_type = (!success).then(|| failure_type(t, &actions));
        Example {
            trajectory_id: t.id,
            agent_id: t.agent_id.clone(),
            task_type: t.task_type.clone(),
            task: t.prompt.clone().unwrap_or_default(),
            system_prompt: t.system_prompt.clone(),
            prompt_version: t.prompt_version.clone(),
            actions,
            outcome: Outcome {
                success,
                error: t.error.as_deref().map(|e| excerpt(e, ERROR_EXCERPT)),
                feedback_score: feedback_score(t),
                result: t.result.as_ref().map(|r| value_excerpt(r, OUTPUT_EXCERPT)),
            },
            failure_type,
        }
    }

    /// A compact text rendering for LLM prompts: at most `max_actions` actions, keeping every
    /// failed one and the first and last few.
    pub fn render(&self, max_actions: usize) -> String {
        let mut out = String::new();
        out.push_str(&format!("Task: {}\n", excerpt(&self.task, 600)));
        if let Some(tt) = &self.task_type {
            out.push_str(&format!("Task type: {tt}\n"));
        }
        out.push_str(&format!("Actions ({} tool calls):\n", self.actions.len()));
        for line in self.action_lines(max_actions) {
            out.push_str(&line);
            out.push('\n');
        }
        out.push_str(&format!(
            "Outcome: {}",
            if self.outcome.success {
                "success"
            } else {
                "FAILURE"
            }
        ));
        if let Some(e) = &self.outcome.error {
            out.push_str(&format!(" — error: {e}"));
        }
        if let Some(s) = self.outcome.feedback_score {
            out.push_str(&format!(" — feedback score: {s}"));
        }
        out.push('\n');
        out
    }

    fn action_lines(&self, max: usize) -> Vec<String> {
        let n = self.actions.len();
        let keep: Vec<bool> = if n <= max {
            vec![true; n]
        } else {
            let edge = (max / 4).max(1);
            let mut keep: Vec<bool> = (0..n).map(|i| i < edge || i >= n - edge).collect();
            let mut budget = max.saturating_sub(2 * edge);
            for (i, a) in self.actions.iter().enumerate() {
                if budget == 0 {
                    break;
                }
                if !keep[i] && a.error.is_some() {
                    keep[i] = true;
                    budget -= 1;
                }
            }
            keep
        };
        let mut lines = Vec::new();
        let mut skipped = 0;
        for (i, a) in self.actions.iter().enumerate() {
            if !keep[i] {
                skipped += 1;
                continue;
            }
            if skipped > 0 {
                lines.push(format!("  … {skipped} more"));
                skipped = 0;
            }
            let mut line = format!("  {}. {}", i + 1, a.tool);
            if let Some(input) = &a.input {
                line.push_str(&format!("({input})"));
            }
            match (&a.error, &a.output) {
                (Some(e), _) => line.push_str(&format!(" → ERROR: {e}")),
                (None, Some(o)) => line.push_str(&format!(" → {o}")),
                (None, None) => {}
            }
            lines.push(line);
        }
        if skipped > 0 {
            lines.push(format!("  … {skipped} more"));
        }
        lines
    }
}

/// Examples with a seeded split into train (critique minibatches) and validation (scoring).
#[derive(Debug, Clone)]
pub struct Dataset {
    pub examples: Vec<Example>,
    /// Indices into `examples`.
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    /// Running trajectories passed over while collecting.
    pub skipped_running: usize,
}

impl Dataset {
    /// Splits deterministically for `seed`, stratified by outcome so both halves see failures.
    pub fn split(examples: Vec<Example>, validation_fraction: f64, seed: u64) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (mut train, mut validation) = (Vec::new(), Vec::new());
        for success in [false, true] {
            let mut idx: Vec<usize> = (0..examples.len())
                .filter(|&i| examples[i].outcome.success == success)
                .collect();
            idx.sort_by_key(|&i| examples[i].trajectory_id);
            idx.shuffle(&mut rng);
            let n_val = ((idx.len() as f64) * validation_fraction).round() as usize;
            // Keep at least one of each class on the train side when there are two or more.
            let n_val = if idx.len() >= 2 {
                // Both sides get at least one example of each outcome.
                n_val.clamp(usize::from(validation_fraction > 0.0), idx.len() - 1)
            } else {
                n_val.min(idx.len())
            };
            validation.extend_from_slice(&idx[..n_val]);
            train.extend_from_slice(&idx[n_val..]);
        }
        train.sort_unstable();
        validation.sort_unstable();
        Dataset {
            examples,
            train,
            validation,
            skipped_running: 0,
        }
    }

    pub fn failures(&self) -> usize {
        self.examples.iter().filter(|e| !e.outcome.success).count()
    }

    /// The single agent of the dataset, if there is exactly one.
    pub fn single_agent(&self) -> Option<&str> {
        let first = self.examples.first()?.agent_id.as_str();
        self.examples
            .iter()
            .all(|e| e.agent_id == first)
            .then_some(first)
    }
}

/// Whether `n` examples are enough: an error below [`MIN_TRAJECTORIES`], a warning below
/// [`RECOMMENDED_TRAJECTORIES`].
pub fn check_size(n: usize, query: &DatasetQuery) -> Result<Option<String>> {
    let scope = describe(query);
    if n < MIN_TRAJECTORIES {
        return Err(OptimizerError::Dataset(format!(
            "found {n} completed trajectories{scope}; the optimizer needs at least \
             {MIN_TRAJECTORIES} (and works best with {RECOMMENDED_TRAJECTORIES}+). \
             Record more runs, or widen --agent/--task-type/--since"
        )));
    }
    Ok((n < RECOMMENDED_TRAJECTORIES).then(|| {
        format!(
            "only {n} completed trajectories{scope} (the seed's default is \
             {RECOMMENDED_TRAJECTORIES}); scores will be noisy"
        )
    }))
}

fn describe(q: &DatasetQuery) -> String {
    let mut parts = Vec::new();
    if let Some(a) = &q.agent_id {
        parts.push(format!("agent {a:?}"));
    }
    if let Some(t) = &q.task_type {
        parts.push(format!("task type {t:?}"));
    }
    if let Some(s) = q.since {
        parts.push(format!("since {}", lightning_core::time::format(s)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" for {}", parts.join(", "))
    }
}

/// Reads the latest `query.limit` completed trajectories with their steps, newest first.
pub async fn extract(
    store: &Arc<dyn Store>,
    query: &DatasetQuery,
) -> Result<(Vec<Example>, usize)> {
    let mut filter = TrajectoryFilter {
        agent_id: query.agent_id.clone(),
        task_type: query.task_type.clone(),
        since: query.since,
        limit: TrajectoryFilter::MAX_LIMIT,
        ..Default::default()
    };
    let mut completed: Vec<Trajectory> = Vec::new();
    let mut skipped_running = 0;
    while completed.len() < query.limit {
        let page = store.list_trajectories(&filter).await?;
        for t in page.trajectories {
            if t.status == lightning_core::Status::Running {
                skipped_running += 1;
            } else if completed.len() < query.limit {
                completed.push(t);
            }
        }
        match page
            .next_cursor
            .as_deref()
            .and_then(lightning_core::Cursor::decode)
        {
            Some(c) => filter.cursor = Some(c),
            None => break,
        }
    }
    let examples = futures::stream::iter(completed.into_iter().map(|t| {
        let store = store.clone();
        async move {
            let steps = all_steps(&store, t.id).await?;
            Ok::<_, OptimizerError>(Example::from_trajectory(&t, &steps))
        }
    }))
    .buffered(STEP_FETCH_CONCURRENCY)
    .try_collect()
    .await?;
    Ok((examples, skipped_running))
}

async fn all_steps(store: &Arc<dyn Store>, id: Uuid) -> Result<Vec<Step>> {
    const PAGE: i64 = 10_000;
    let mut steps: Vec<Step> = Vec::new();
    loop {
        let after = steps.last().map(|s| s.step_number);
        let page = store.list_steps(id, after, PAGE).await?;
        let done = (page.len() as i64) < PAGE;
        steps.extend(page);
        if done {
            return Ok(steps);
        }
    }
}

fn action(step: &Step) -> Action {
    Action {
        tool: step.tool_name.clone(),
        input: step.tool_input.as_ref().map(key_input),
        error: step.error.as_deref().map(|e| excerpt(e, ERROR_EXCERPT)),
        output: step
            .tool_output
            .as_ref()
            .filter(|v| !v.is_null())
            .map(|v| value_excerpt(v, OUTPUT_EXCERPT)),
    }
}

/// The input field that says most about a call, else the compact JSON.
fn key_input(input: &Value) -> String {
    const KEYS: [&str; 10] = [
        "command",
        "file_path",
        "path",
        "pattern",
        "query",
        "url",
        "prompt",
        "description",
        "name",
        "content",
    ];
    if let Value::Object(map) = input {
        for key in KEYS {
            if let Some(Value::String(s)) = map.get(key) {
                return excerpt(&format!("{key}: {s}"), INPUT_EXCERPT);
            }
        }
    }
    value_excerpt(input, INPUT_EXCERPT)
}

fn feedback_score(t: &Trajectory) -> Option<f64> {
    const PATHS: [&str; 6] = [
        "/feedbackScore",
        "/feedback_score",
        "/feedback/score",
        "/reward",
        "/score",
        "/rating",
    ];
    [t.metadata.as_ref(), t.result.as_ref()]
        .into_iter()
        .flatten()
        .flat_map(|v| PATHS.iter().filter_map(move |p| v.pointer(p)))
        .find_map(Value::as_f64)
}

fn failure_type(t: &Trajectory, actions: &[Action]) -> String {
    if t.status == lightning_core::Status::Abandoned {
        return "abandoned: no completion arrived (unknown cause)".into();
    }
    if let Some(a) = actions.iter().rev().find(|a| a.error.is_some()) {
        let e = a.error.as_deref().unwrap_or_default();
        return format!("{}: {}", a.tool, normalize_error(e));
    }
    match &t.error {
        Some(e) => format!("outcome: {}", normalize_error(e)),
        None => "failed without an error message".into(),
    }
}

pub(crate) fn excerpt(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.chars().count() <= max {
        return s.replace('\n', " ");
    }
    let cut: String = s.chars().take(max).collect();
    format!("{}…", cut.replace('\n', " "))
}

fn value_excerpt(v: &Value, max: usize) -> String {
    match v {
        Value::String(s) => excerpt(s, max),
        other => excerpt(&other.to_string(), max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(status: &str, success: Option<bool>) -> Trajectory {
        serde_json::from_value(serde_json::json!({
            "id": Uuid::from_u128(7), "agentId": "a", "taskType": null, "sessionId": null,
            "prompt": "fix it", "systemPrompt": null, "promptVersion": null, "model": null,
            "metadata": null, "startTime": "2026-01-01T00:00:00Z", "endTime": null,
            "status": status, "success": success, "result": null, "error": null,
            "totalSteps": null, "durationMs": null, "costUsd": null, "usage": null,
            "numTurns": null, "stepCount": 1, "errorCount": 0,
            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z"
        }))
        .unwrap()
    }

    fn stored_step(n: i64, kind: &str, tool: &str) -> Step {
        serde_json::from_value(serde_json::json!({
            "stepNumber": n, "timestamp": "2026-01-01T00:00:00Z", "kind": kind,
            "toolName": tool, "toolInput": null, "toolOutput": "x", "error": null,
            "durationMs": null, "toolUseId": null, "metadata": null
        }))
        .unwrap()
    }

    #[test]
    fn abandoned_is_a_failure_of_unknown_cause_and_messages_are_not_actions() {
        let steps = [
            stored_step(1, "tool", "Read"),
            stored_step(2, "message", "assistant"),
            stored_step(3, "event", "SubagentStart"),
        ];
        let e = Example::from_trajectory(&stored("abandoned", None), &steps);
        assert!(!e.outcome.success);
        assert_eq!(
            e.failure_type.as_deref(),
            Some("abandoned: no completion arrived (unknown cause)")
        );
        assert_eq!(e.actions.len(), 1);
        let e = Example::from_trajectory(&stored("interrupted", Some(false)), &steps);
        assert_eq!(
            e.failure_type.as_deref(),
            Some("failed without an error message")
        );
        assert!(
            Example::from_trajectory(&stored("succeeded", Some(true)), &steps)
                .outcome
                .success
        );
    }

    fn example(i: u128, success: bool) -> Example {
        Example {
            trajectory_id: Uuid::from_u128(i),
            agent_id: "a".into(),
            task_type: None,
            task: format!("task {i}"),
            system_prompt: None,
            prompt_version: None,
            actions: vec![],
            outcome: Outcome {
                success,
                error: None,
                feedback_score: None,
                result: None,
            },
            failure_type: None,
        }
    }

    #[test]
    fn split_is_deterministic_stratified_and_disjoint() {
        let examples: Vec<Example> = (0..100).map(|i| example(i, i.is_multiple_of(4))).collect();
        let a = Dataset::split(examples.clone(), 0.3, 7);
        let b = Dataset::split(examples.clone(), 0.3, 7);
        let c = Dataset::split(examples, 0.3, 8);
        assert_eq!(a.train, b.train);
        assert_ne!(a.validation, c.validation);
        assert_eq!(a.train.len() + a.validation.len(), 100);
        assert!(a.train.iter().all(|i| !a.validation.contains(i)));
        let val_successes = a
            .validation
            .iter()
            .filter(|&&i| a.examples[i].outcome.success)
            .count();
        assert!((7..=8).contains(&val_successes), "{val_successes}");
    }

    #[test]
    fn size_checks() {
        let q = DatasetQuery {
            agent_id: Some("x".into()),
            ..Default::default()
        };
        let e = check_size(3, &q).unwrap_err().to_string();
        assert!(e.contains("found 3") && e.contains("agent \"x\""), "{e}");
        assert!(check_size(50, &q).unwrap().is_some());
        assert!(check_size(100, &q).unwrap().is_none());
    }

    #[test]
    fn key_input_prefers_telling_fields() {
        assert_eq!(
            key_input(&serde_json::json!({"timeout": 5, "command": "ls -la"})),
            "command: ls -la"
        );
        assert_eq!(key_input(&serde_json::json!([1, 2])), "[1,2]");
    }
}
