//! The dataset: the latest completed trajectories, turned into (prompt, actions, outcome)
//! examples, and a deterministic, stratified train/validation/test split.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use lightning_core::{Step, Trajectory, TrajectoryFilter};
use lightning_store::Store;
use rand::{seq::SliceRandom, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{normalize::normalize_error, OptimizerError, Result};

/// The seed's `run_apo.py --trajectories 100`: fewer works but is noisy, so we warn.
pub const RECOMMENDED_TRAJECTORIES: usize = 100;
/// Below this the optimizer refuses to run: too few examples to split and score.
pub const MIN_TRAJECTORIES: usize = 10;
/// Below this many test examples the optimizer refuses to run: a 95% interval on a success
/// rate is then wider than ±0.2 around 50% (Wilson, n = 20: 0.30 to 0.70), so the final
/// comparison could only tell an improvement of more than about 0.3 from noise.
pub const MIN_TEST_EXAMPLES: usize = 20;

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
    /// What counts as a good outcome (`--reward`).
    #[serde(default)]
    pub reward: Reward,
    /// Also learn from optimizer evaluation runs (`promptVersion` starting `opt-`), which are
    /// left out by default.
    #[serde(default)]
    pub include_evaluations: bool,
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

/// The stratum an example is split by: its recorded outcome, so every set sees failures.
fn stratum(e: &Example) -> bool {
    e.outcome.success
}

/// Examples with a seeded split into train (critiques, the minibatch gate), validation
/// (selection) and test (touched once, at the end, for the starting prompt and the best).
#[derive(Debug, Clone)]
pub struct Dataset {
    pub examples: Vec<Example>,
    /// Indices into `examples`.
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
    /// Running trajectories passed over while collecting.
    pub skipped_running: usize,
    /// What the examples' outcomes were judged by: `--reward` with `auto` resolved.
    pub reward: Reward,
}

impl Dataset {
    /// Splits deterministically for `seed`, stratified by outcome (see [`stratum`]): each
    /// stratum gives `validation_fraction` and `test_fraction` of its examples (rounded) to
    /// those sets and the rest, at least one when it has two or more, to train.
    pub fn split(
        examples: Vec<Example>,
        validation_fraction: f64,
        test_fraction: f64,
        seed: u64,
    ) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (mut train, mut validation, mut test) = (Vec::new(), Vec::new(), Vec::new());
        for class in [false, true] {
            let mut idx: Vec<usize> = (0..examples.len())
                .filter(|&i| stratum(&examples[i]) == class)
                .collect();
            idx.sort_by_key(|&i| examples[i].trajectory_id);
            idx.shuffle(&mut rng);
            let len = idx.len();
            let share = |f: f64| ((len as f64) * f).round() as usize;
            let held_max = len.saturating_sub(usize::from(len >= 2));
            let n_test = share(test_fraction).min(held_max);
            let n_val = share(validation_fraction).min(held_max - n_test);
            test.extend_from_slice(&idx[..n_test]);
            validation.extend_from_slice(&idx[n_test..n_test + n_val]);
            train.extend_from_slice(&idx[n_test + n_val..]);
        }
        train.sort_unstable();
        validation.sort_unstable();
        test.sort_unstable();
        Dataset {
            examples,
            train,
            validation,
            test,
            skipped_running: 0,
            reward: Reward::Success,
        }
    }

    /// Refuses a test set too small to say anything (see [`MIN_TEST_EXAMPLES`]), naming what
    /// would fix it.
    pub fn check_test_size(&self, test_fraction: f64) -> Result<()> {
        if self.test.len() >= MIN_TEST_EXAMPLES {
            return Ok(());
        }
        let needed = (MIN_TEST_EXAMPLES as f64 / test_fraction).ceil() as usize;
        Err(OptimizerError::Dataset(format!(
            "the test set would have {} examples ({} trajectories × --test-fraction {}); the \
             final comparison needs at least {MIN_TEST_EXAMPLES} (below that a 95% interval on \
             a success rate is wider than ±0.2, so no realistic improvement could be told from \
             noise). Record more runs (about {needed} at this fraction), raise --trajectories, \
             or raise --test-fraction",
            self.test.len(),
            self.examples.len(),
            test_fraction
        )))
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

/// What [`extract`] read.
#[derive(Debug, Clone)]
pub struct Extracted {
    pub examples: Vec<Example>,
    /// Running trajectories passed over.
    pub skipped_running: usize,
    /// The reward the outcomes were set by: `query.reward` with `auto` resolved to the score
    /// name it picked, or to `success`.
    pub reward: Reward,
}

/// Reads the latest `query.limit` completed trajectories with their steps, newest first.
pub async fn extract(store: &Arc<dyn Store>, query: &DatasetQuery) -> Result<Extracted> {
    let mut filter = TrajectoryFilter {
        agent_id: query.agent_id.clone(),
        task_type: query.task_type.clone(),
        since: query.since,
        limit: TrajectoryFilter::MAX_LIMIT,
        exclude_evaluations: !query.include_evaluations,
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
    let (reward, scores) = resolve_reward(store, &query.reward, &completed).await?;
    let examples: Vec<Option<Example>> = futures::stream::iter(completed.into_iter().map(|t| {
        let (store, reward, scores) = (store.clone(), &reward, &scores);
        async move {
            let steps = all_steps(&store, t.id).await?;
            let example = Example::from_trajectory(&t, &steps);
            Ok::<_, OptimizerError>(apply_reward(example, &t, scores.get(&t.id), reward))
        }
    }))
    .buffered(STEP_FETCH_CONCURRENCY)
    .try_collect()
    .await?;
    let unscored = examples.iter().filter(|e| e.is_none()).count();
    if unscored > 0 {
        tracing::warn!(
            "{unscored} trajectories have no score for --reward {} and are left out",
            reward.describe()
        );
    }
    Ok(Extracted {
        examples: examples.into_iter().flatten().collect(),
        skipped_running,
        reward,
    })
}

pub(crate) async fn all_steps(store: &Arc<dyn Store>, id: Uuid) -> Result<Vec<Step>> {
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

pub(crate) fn value_excerpt(v: &Value, max: usize) -> String {
    match v {
        Value::String(s) => excerpt(s, max),
        other => excerpt(&other.to_string(), max),
    }
}

/// What an example's outcome is: the trajectory's `success`, or one of its scores.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Reward {
    /// The score name most trajectories have (numeric or boolean, on the trajectory itself),
    /// when more than half of them have it; else `success`.
    #[default]
    Auto,
    Success,
    /// Good when the trajectory's `name` score (the mean of its trajectory-level scores of that
    /// name; booleans count 1/0) is at least `threshold` (default 0.5), or, with a
    /// non-numeric threshold, when its latest label equals it. Trajectories without the score
    /// are left out of the dataset.
    Score {
        name: String,
        threshold: Option<String>,
    },
}

/// The default threshold of a numeric or boolean score reward.
pub const DEFAULT_REWARD_THRESHOLD: f64 = 0.5;

impl std::str::FromStr for Reward {
    type Err = String;

    /// `auto`, `success`, `score:<name>` or `score:<name>:<threshold>`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => return Ok(Reward::Auto),
            "success" => return Ok(Reward::Success),
            _ => {}
        }
        let Some(rest) = s.strip_prefix("score:") else {
            return Err(format!(
                "{s:?}: expected success, auto, score:<name> or score:<name>:<threshold>"
            ));
        };
        let (name, threshold) = match rest.split_once(':') {
            Some((n, t)) if !t.is_empty() => (n, Some(t.to_string())),
            Some((n, _)) => (n, None),
            None => (rest, None),
        };
        lightning_core::score::validate_score_name("score name", name)
            .map_err(|e| e.to_string())?;
        if let Some(t) = &threshold {
            if t.parse::<f64>().is_ok_and(|v| !v.is_finite()) {
                return Err(format!("threshold {t:?} must be finite"));
            }
        }
        Ok(Reward::Score {
            name: name.to_string(),
            threshold,
        })
    }
}

impl Reward {
    pub fn describe(&self) -> String {
        match self {
            Reward::Auto => "auto".into(),
            Reward::Success => "success".into(),
            Reward::Score {
                name,
                threshold: Some(t),
            } => format!("score:{name}:{t}"),
            Reward::Score { name, .. } => format!("score:{name}"),
        }
    }
}

type ScoresByTrajectory = std::collections::HashMap<Uuid, Vec<lightning_core::Score>>;

/// Reads the trajectories' scores when the reward may need them, and turns `auto` into the
/// reward it stands for.
async fn resolve_reward(
    store: &Arc<dyn Store>,
    reward: &Reward,
    trajectories: &[Trajectory],
) -> Result<(Reward, ScoresByTrajectory)> {
    if *reward == Reward::Success || trajectories.is_empty() {
        return Ok((Reward::Success, ScoresByTrajectory::new()));
    }
    let ids: Vec<Uuid> = trajectories.iter().map(|t| t.id).collect();
    let mut by_trajectory = ScoresByTrajectory::new();
    for score in store.scores_of(&ids).await? {
        by_trajectory
            .entry(score.trajectory_id)
            .or_default()
            .push(score);
    }
    let resolved = match reward {
        Reward::Auto => auto_reward(&by_trajectory, trajectories.len()),
        other => other.clone(),
    };
    Ok((resolved, by_trajectory))
}

/// The numeric/boolean trajectory-level score name on the most trajectories, if more than half.
fn auto_reward(scores: &ScoresByTrajectory, n: usize) -> Reward {
    let mut coverage: std::collections::BTreeMap<&str, usize> = Default::default();
    for list in scores.values() {
        let names: std::collections::BTreeSet<&str> = list
            .iter()
            .filter(|s| s.step_number.is_none() && s.value.as_f64().is_some())
            .map(|s| s.name.as_str())
            .collect();
        for name in names {
            *coverage.entry(name).or_default() += 1;
        }
    }
    match coverage
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
    {
        Some((name, count)) if count * 2 > n => Reward::Score {
            name: name.to_string(),
            threshold: None,
        },
        _ => Reward::Success,
    }
}

/// Sets the example's outcome from `reward`: `None` when the reward needs a score the
/// trajectory lacks.
pub fn apply_reward(
    mut example: Example,
    t: &Trajectory,
    scores: Option<&Vec<lightning_core::Score>>,
    reward: &Reward,
) -> Option<Example> {
    let Reward::Score { name, threshold } = reward else {
        return Some(example);
    };
    let own: Vec<&lightning_core::Score> = scores
        .into_iter()
        .flatten()
        .filter(|s| s.name == *name && s.step_number.is_none())
        .collect();
    let numeric_threshold = match threshold {
        None => Some(DEFAULT_REWARD_THRESHOLD),
        Some(t) => t.parse::<f64>().ok(),
    };
    let (good, value) = match (numeric_threshold, threshold) {
        (Some(min), _) => {
            let values: Vec<f64> = own.iter().filter_map(|s| s.value.as_f64()).collect();
            if values.is_empty() {
                return None;
            }
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            (mean >= min, Some(mean))
        }
        (None, Some(label)) => {
            let latest = own
                .iter()
                .filter(|s| s.value.label().is_some())
                .max_by_key(|s| s.updated_at)?;
            (latest.value.label() == Some(label.as_str()), None)
        }
        (None, None) => unreachable!("no threshold means the numeric default"),
    };
    example.outcome.success = good;
    if value.is_some() {
        example.outcome.feedback_score = value;
    }
    example.failure_type = (!good).then(|| {
        if example.actions.iter().any(|a| a.error.is_some()) || t.error.is_some() {
            failure_type(t, &example.actions)
        } else {
            format!("low score: {name}")
        }
    });
    Some(example)
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
        let a = Dataset::split(examples.clone(), 0.3, 0.3, 7);
        let b = Dataset::split(examples.clone(), 0.3, 0.3, 7);
        let c = Dataset::split(examples, 0.3, 0.3, 8);
        assert_eq!((a.train.clone(), a.test.clone()), (b.train, b.test));
        assert_ne!(a.validation, c.validation);
        assert_eq!(
            (a.train.len(), a.validation.len(), a.test.len()),
            // 25 successes and 75 failures, 30% of each rounded (7.5 → 8, 22.5 → 23).
            (38, 31, 31)
        );
        let all: std::collections::HashSet<usize> = a
            .train
            .iter()
            .chain(&a.validation)
            .chain(&a.test)
            .copied()
            .collect();
        assert_eq!(all.len(), 100, "disjoint and complete");
        for set in [&a.validation, &a.test] {
            let successes = set
                .iter()
                .filter(|&&i| a.examples[i].outcome.success)
                .count();
            assert_eq!(successes, 8);
        }
        a.check_test_size(0.3).unwrap();
        let small = Dataset::split(
            (0..40).map(|i| example(i, i % 2 == 0)).collect(),
            0.3,
            0.3,
            1,
        );
        let e = small.check_test_size(0.3).unwrap_err().to_string();
        assert!(
            e.contains("would have 12 examples") && e.contains("at least 20") && e.contains("67"),
            "{e}"
        );
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
    fn rewards_parse_and_apply() {
        assert_eq!("success".parse::<Reward>().unwrap(), Reward::Success);
        assert_eq!(
            "score:q:0.8".parse::<Reward>().unwrap(),
            Reward::Score {
                name: "q".into(),
                threshold: Some("0.8".into())
            }
        );
        assert!("score:".parse::<Reward>().is_err());
        assert!("score:a b".parse::<Reward>().is_err());
        assert!("points".parse::<Reward>().is_err());
        let t: Trajectory = serde_json::from_value(serde_json::json!({
            "id": Uuid::from_u128(1), "agentId": "a", "startTime": "2026-01-01T00:00:00Z",
            "status": "succeeded", "success": true, "stepCount": 0, "errorCount": 0,
            "createdAt": "2026-01-01T00:00:00Z", "updatedAt": "2026-01-01T00:00:00Z",
            "taskType": null, "sessionId": null, "prompt": "p", "systemPrompt": null,
            "promptVersion": null, "model": null, "metadata": null, "endTime": null,
            "result": null, "error": null, "totalSteps": null, "durationMs": null,
            "costUsd": null, "usage": null, "numTurns": null
        }))
        .unwrap();
        let score = |name: &str, value: lightning_core::ScoreValue| lightning_core::Score {
            id: name.into(),
            trajectory_id: t.id,
            name: name.into(),
            data_type: value.data_type(),
            value,
            comment: None,
            source: lightning_core::ScoreSource::Code,
            step_number: None,
            metadata: None,
            created_at: t.start_time,
            updated_at: t.start_time,
        };
        let scores = vec![
            score("q", lightning_core::ScoreValue::Number(0.2)),
            score("verdict", lightning_core::ScoreValue::Label("pass".into())),
        ];
        let ex = || Example::from_trajectory(&t, &[]);
        let r = |s: &str| s.parse::<Reward>().unwrap();
        let low = apply_reward(ex(), &t, Some(&scores), &r("score:q")).unwrap();
        assert!(!low.outcome.success, "0.2 < 0.5 although the run succeeded");
        assert_eq!(low.outcome.feedback_score, Some(0.2));
        assert_eq!(low.failure_type.as_deref(), Some("low score: q"));
        assert!(
            apply_reward(ex(), &t, Some(&scores), &r("score:q:0.1"))
                .unwrap()
                .outcome
                .success
        );
        assert!(
            apply_reward(ex(), &t, Some(&scores), &r("score:verdict:pass"))
                .unwrap()
                .outcome
                .success
        );
        assert!(
            !apply_reward(ex(), &t, Some(&scores), &r("score:verdict:fail"))
                .unwrap()
                .outcome
                .success
        );
        assert!(apply_reward(ex(), &t, Some(&scores), &r("score:missing")).is_none());
        assert!(
            apply_reward(ex(), &t, None, &Reward::Success)
                .unwrap()
                .outcome
                .success
        );
        let mut by = ScoresByTrajectory::new();
        by.insert(t.id, scores);
        assert_eq!(auto_reward(&by, 1), r("score:q"));
        assert_eq!(auto_reward(&by, 2), Reward::Success, "half is not most");
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
