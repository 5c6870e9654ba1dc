//! `lightning grade`: scores stored trajectories after the fact, with a command (`code` scores)
//! or an LLM judge (`llm` scores, the rationale as comment).
//!
//! Each graded trajectory gets one score with the id `grade:<name>:<trajectoryId>:<source>`, so
//! grading again updates it instead of adding another, and `only_missing` resumes an
//! interrupted run by skipping trajectories that already have a score of that name.
//!
//! Command protocol (docs/optimizer.md, "Grading"): the command runs under `sh -c` with the
//! trajectory (`TrajectoryWithSteps` JSON, as in the export) on stdin and in the file named by
//! `LIGHTNING_TRAJECTORY_FILE`; also `LIGHTNING_TRAJECTORY_ID`, `LIGHTNING_AGENT_ID`,
//! `LIGHTNING_SCORE_NAME`. It prints `{"value": <number|boolean|label>, "comment": "..."}`.

use std::{
    process::Stdio,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use lightning_core::{
    NewScore, ScoreFilter, ScoreSource, ScoreValue, Status, Trajectory, TrajectoryFilter,
    TrajectoryWithSteps,
};
use lightning_store::Store;
use serde::Serialize;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::{
    dataset::{excerpt, Example},
    evaluator::{
        command::{kill_group, tail},
        find_json_with,
    },
    llm::{Llm, LlmRequest},
    templates::render,
    OptimizerError, Result,
};

/// The judge's default prompt: `{name}`, `{criteria}` and `{trajectory}` are filled in.
pub const JUDGE_TEMPLATE: &str = r#"You are grading one recorded run of an AI agent that uses tools.

Criterion "{name}": {criteria}

The run (task, tool calls with their results, outcome):
<run>
{trajectory}
</run>

Grade the run on the criterion only, from what the run shows. Answer with a JSON object and nothing else: {"value": <number from 0 to 1>, "comment": "<one or two sentences of rationale>"}"#;

pub const DEFAULT_CRITERIA: &str =
    "Did the agent accomplish the task it was given, correctly and completely?";

/// What one grader said about one trajectory.
#[derive(Debug, Clone, PartialEq)]
pub struct Grade {
    pub value: ScoreValue,
    pub comment: Option<String>,
}

#[async_trait]
pub trait Grader: Send + Sync {
    /// `code` for commands, `llm` for judges.
    fn source(&self) -> ScoreSource;

    /// Estimated spend so far (judges), for the budget.
    fn cost_usd(&self) -> Option<f64> {
        None
    }

    /// `Err(message)` when this trajectory could not be graded (the run goes on);
    /// `OptimizerError` only for fatal problems (e.g. the judge's key is refused).
    async fn grade(
        &self,
        name: &str,
        t: &TrajectoryWithSteps,
    ) -> Result<std::result::Result<Grade, String>>;
}

/// Reads `{"value": …, "comment": …}` from a command's stdout or a judge's reply.
pub fn parse_grade(text: &str) -> std::result::Result<Grade, String> {
    let Some(v) = find_json_with(text, "value") else {
        return Err(format!(
            "no JSON object with \"value\" in the output: {}",
            tail(text, 200)
        ));
    };
    let value: ScoreValue = serde_json::from_value(v["value"].clone())
        .map_err(|e| format!("\"value\": {e} (got {})", v["value"]))?;
    let comment = match v.get("comment") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => Some(other.to_string()),
    };
    Ok(Grade { value, comment })
}

pub struct CommandGrader {
    pub command: String,
    pub timeout: Duration,
}

impl CommandGrader {
    async fn run(
        &self,
        name: &str,
        t: &TrajectoryWithSteps,
    ) -> std::io::Result<std::result::Result<Grade, String>> {
        let dir = tempfile::Builder::new()
            .prefix("lightning-grade-")
            .tempdir()?;
        let file = dir.path().join("trajectory.json");
        let json = serde_json::to_vec(t).expect("a trajectory serializes");
        tokio::fs::write(&file, &json).await?;
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(&self.command)
            .env("LIGHTNING_TRAJECTORY_FILE", &file)
            .env("LIGHTNING_TRAJECTORY_ID", t.trajectory.id.to_string())
            .env("LIGHTNING_AGENT_ID", &t.trajectory.agent_id)
            .env("LIGHTNING_SCORE_NAME", name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        #[cfg(unix)]
        cmd.process_group(0);
        let mut child = cmd.spawn()?;
        let pid = child.id();
        let mut stdin = child.stdin.take().expect("stdin is piped");
        // A grader that ignores stdin closes it early: that is fine, not an error.
        let feed = tokio::spawn(async move {
            let _ = stdin.write_all(&json).await;
        });
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(output) => output?,
            Err(_) => {
                kill_group(pid).await;
                return Ok(Err(format!("timed out after {:?}", self.timeout)));
            }
        };
        feed.abort();
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Ok(Err(format!("{}: {}", output.status, tail(&stderr, 300))));
        }
        Ok(parse_grade(&stdout))
    }
}

#[async_trait]
impl Grader for CommandGrader {
    fn source(&self) -> ScoreSource {
        ScoreSource::Code
    }

    async fn grade(
        &self,
        name: &str,
        t: &TrajectoryWithSteps,
    ) -> Result<std::result::Result<Grade, String>> {
        Ok(self
            .run(name, t)
            .await
            .unwrap_or_else(|e| Err(format!("could not run the command: {e}"))))
    }
}

pub struct JudgeGrader {
    pub llm: Arc<dyn Llm>,
    pub template: String,
    pub criteria: String,
    /// Tool calls shown per run (failed ones first, then the first and last few).
    pub max_actions: usize,
}

impl JudgeGrader {
    pub fn new(
        llm: Arc<dyn Llm>,
        criteria: Option<String>,
        template: Option<String>,
    ) -> Result<Self> {
        let template = template.unwrap_or_else(|| JUDGE_TEMPLATE.to_string());
        let found = crate::templates::placeholders(&template);
        if !found.contains("trajectory") {
            return Err(OptimizerError::Config(
                "the grading template needs a {trajectory} placeholder".into(),
            ));
        }
        Ok(Self {
            llm,
            template,
            criteria: criteria.unwrap_or_else(|| DEFAULT_CRITERIA.to_string()),
            max_actions: 40,
        })
    }
}

#[async_trait]
impl Grader for JudgeGrader {
    fn source(&self) -> ScoreSource {
        ScoreSource::Llm
    }

    fn cost_usd(&self) -> Option<f64> {
        self.llm.usage().cost_usd
    }

    async fn grade(
        &self,
        name: &str,
        t: &TrajectoryWithSteps,
    ) -> Result<std::result::Result<Grade, String>> {
        let run = Example::from_trajectory(&t.trajectory, &t.steps).render(self.max_actions);
        let prompt = render(
            &self.template,
            &[
                ("name", name),
                ("criteria", &self.criteria),
                ("trajectory", &run),
            ],
        );
        let request = LlmRequest {
            prompt,
            temperature: Some(0.0),
            max_tokens: Some(400),
            ..Default::default()
        };
        match self.llm.complete(&request).await {
            Ok(reply) => Ok(parse_grade(&reply.text)),
            Err(e) if e.is_fatal() => Err(e.into()),
            Err(e) => Ok(Err(e.to_string())),
        }
    }
}

/// Which trajectories to grade.
#[derive(Debug, Clone, Default)]
pub struct GradeQuery {
    pub agent_id: Option<String>,
    pub task_type: Option<String>,
    pub since: Option<DateTime<Utc>>,
    /// Skip trajectories that already have a score of this name (from any source).
    pub only_missing: bool,
    /// Grade at most this many (newest first).
    pub limit: Option<usize>,
    /// Also grade optimizer evaluation runs (`promptVersion` starting `opt-`), left out by
    /// default like every other reader of production data.
    pub include_evaluations: bool,
}

#[derive(Debug, Clone)]
pub struct GradeOptions {
    pub name: String,
    /// Graders running at once.
    pub concurrency: usize,
    /// Stop starting new gradings once the LLM's estimated cost reaches this many USD.
    pub max_cost_usd: Option<f64>,
}

/// What happened to one trajectory, for progress reporting.
#[derive(Debug, Clone, PartialEq)]
pub enum GradeEvent {
    Graded {
        trajectory_id: Uuid,
        value: ScoreValue,
    },
    Failed {
        trajectory_id: Uuid,
        error: String,
    },
    /// Not started: the budget was spent.
    Skipped {
        trajectory_id: Uuid,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GradeReport {
    pub name: String,
    pub source: String,
    /// Trajectories selected.
    pub selected: usize,
    pub graded: usize,
    pub failed: usize,
    /// Not graded because the budget was spent.
    pub skipped: usize,
    /// The first few failures, `<trajectory id>: <reason>`.
    pub errors: Vec<String>,
    /// Running trajectories passed over.
    pub running: usize,
    pub stop_reason: Option<String>,
}

/// The score id a grader writes for a trajectory: grading again updates it.
pub fn grade_score_id(name: &str, trajectory_id: Uuid, source: ScoreSource) -> String {
    format!("grade:{name}:{trajectory_id}:{}", source.as_str())
}

/// The finished trajectories to grade, newest first.
pub async fn select(
    store: &Arc<dyn Store>,
    query: &GradeQuery,
    name: &str,
) -> Result<(Vec<Trajectory>, usize)> {
    let mut filter = TrajectoryFilter {
        agent_id: query.agent_id.clone(),
        task_type: query.task_type.clone(),
        since: query.since,
        limit: TrajectoryFilter::MAX_LIMIT,
        score: query.only_missing.then(|| ScoreFilter {
            name: name.to_string(),
            missing: true,
            ..Default::default()
        }),
        exclude_evaluations: !query.include_evaluations,
        ..Default::default()
    };
    let limit = query.limit.unwrap_or(usize::MAX);
    let (mut selected, mut running) = (Vec::new(), 0);
    while selected.len() < limit {
        let page = store.list_trajectories(&filter).await?;
        for t in page.trajectories {
            if t.status == Status::Running {
                running += 1;
            } else if selected.len() < limit {
                selected.push(t);
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
    Ok((selected, running))
}

async fn with_steps_and_scores(
    store: &Arc<dyn Store>,
    trajectory: Trajectory,
) -> Result<TrajectoryWithSteps> {
    const PAGE: i64 = 10_000;
    let mut steps: Vec<lightning_core::Step> = Vec::new();
    loop {
        let after = steps.last().map(|s| s.step_number);
        let page = store.list_steps(trajectory.id, after, PAGE).await?;
        let done = (page.len() as i64) < PAGE;
        steps.extend(page);
        if done {
            break;
        }
    }
    let scores = store.list_scores(trajectory.id).await?;
    Ok(TrajectoryWithSteps {
        trajectory,
        steps,
        scores,
    })
}

/// Grades `trajectories` with up to `options.concurrency` graders at once and stores each
/// result as a score; `on_event` sees every trajectory as it finishes.
pub async fn grade(
    store: &Arc<dyn Store>,
    trajectories: Vec<Trajectory>,
    grader: Arc<dyn Grader>,
    options: &GradeOptions,
    on_event: &(dyn Fn(&GradeEvent) + Sync),
) -> Result<GradeReport> {
    let source = grader.source();
    let mut report = GradeReport {
        name: options.name.clone(),
        source: source.as_str().to_string(),
        selected: trajectories.len(),
        ..Default::default()
    };
    let stop = AtomicBool::new(false);
    let over_budget = || match (options.max_cost_usd, grader.cost_usd()) {
        (Some(max), Some(spent)) => spent >= max,
        _ => false,
    };
    let results = futures::stream::iter(trajectories.into_iter().map(|t| {
        let (store, grader, stop) = (store, grader.clone(), &stop);
        let over_budget = &over_budget;
        async move {
            let id = t.id;
            if stop.load(Ordering::SeqCst) || over_budget() {
                stop.store(true, Ordering::SeqCst);
                return Ok(GradeEvent::Skipped { trajectory_id: id });
            }
            let full = with_steps_and_scores(store, t).await?;
            match grader.grade(&options.name, &full).await? {
                Err(error) => Ok(GradeEvent::Failed {
                    trajectory_id: id,
                    error,
                }),
                Ok(g) => {
                    let mut score = NewScore::new(options.name.clone(), g.value.clone());
                    score.comment = g
                        .comment
                        .map(|c| excerpt_keep_lines(&c, lightning_core::score::MAX_COMMENT_LEN));
                    score.source = Some(source);
                    score.id = Some(grade_score_id(&options.name, id, source));
                    if let Err(e) = score.validate() {
                        return Ok(GradeEvent::Failed {
                            trajectory_id: id,
                            error: e.to_string(),
                        });
                    }
                    match store.upsert_score(id, &score).await {
                        Ok(_) => Ok(GradeEvent::Graded {
                            trajectory_id: id,
                            value: g.value,
                        }),
                        // e.g. the name already has another data type for this agent.
                        Err(lightning_store::StoreError::Conflict(m)) => Ok(GradeEvent::Failed {
                            trajectory_id: id,
                            error: m,
                        }),
                        Err(e) => Err(OptimizerError::from(e)),
                    }
                }
            }
        }
    }))
    .buffer_unordered(options.concurrency.max(1));
    futures::pin_mut!(results);
    while let Some(event) = results.next().await {
        let event: GradeEvent = event?;
        match &event {
            GradeEvent::Graded { .. } => report.graded += 1,
            GradeEvent::Failed {
                trajectory_id,
                error,
            } => {
                report.failed += 1;
                if report.errors.len() < 10 {
                    report
                        .errors
                        .push(format!("{trajectory_id}: {}", excerpt(error, 300)));
                }
            }
            GradeEvent::Skipped { .. } => report.skipped += 1,
        }
        on_event(&event);
    }
    if report.skipped > 0 {
        report.stop_reason = Some(format!(
            "budget of ${:.4} reached",
            options.max_cost_usd.unwrap_or_default()
        ));
    }
    Ok(report)
}

/// Long comments are cut, keeping their line breaks.
fn excerpt_keep_lines(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut cut: String = s.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grades_are_parsed_with_their_type() {
        let g = parse_grade("log\n{\"value\": 0.5, \"comment\": \"ok\"}\n").unwrap();
        assert_eq!(
            (g.value, g.comment.as_deref()),
            (ScoreValue::Number(0.5), Some("ok"))
        );
        assert_eq!(
            parse_grade("{\"value\": true}").unwrap().value,
            ScoreValue::Boolean(true)
        );
        assert_eq!(
            parse_grade("I'd say {\"value\": \"pass\", \"comment\": {\"a\": 1}}")
                .unwrap()
                .comment
                .as_deref(),
            Some("{\"a\":1}")
        );
        assert!(parse_grade("{\"value\": [1]}")
            .unwrap_err()
            .contains("value"));
        assert!(parse_grade("nothing").is_err());
    }

    #[test]
    fn grade_ids_are_valid_score_ids() {
        let id = grade_score_id(&"n".repeat(64), Uuid::now_v7(), ScoreSource::Code);
        lightning_core::score::validate_score_id("id", &id).unwrap();
    }
}
