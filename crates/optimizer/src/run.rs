//! `optimize` end to end: dataset and its three-way split → training-set analysis → starting
//! prompt → search → the test comparison and the registration gate → stored run, candidates,
//! evaluations and, when the gate passes, a new prompt version.

use std::{path::PathBuf, sync::Arc};

use lightning_core::{
    CandidateEvaluation, NewPrompt, OptimizationRun, Prompt, PromptCandidate, RunEvidence,
    RunStatus, SplitSizes, Verdict,
};
use lightning_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    analysis::{analyze, summary, Analysis},
    apo::{ApoConfig, CandidateSink, PriorEvaluation, Progress, Search, SearchResult},
    dataset::{check_size, extract, Dataset, DatasetQuery, Extracted},
    evaluator::{Evaluation, Evaluator},
    llm::{Llm, UsageReport},
    report::unified_diff,
    rollout_text::WithTrajectories,
    stats::{format_difference, format_score},
    templates::Templates,
    OptimizerError, Result,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PromptSource {
    File,
    Registry,
    Trajectories,
}

/// Everything decided before any LLM call: used by `--dry-run` and by the real run.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub agent_id: String,
    pub dataset: Dataset,
    /// Failure analysis of the training set only (validation and test stay unseen).
    pub analysis: Analysis,
    pub start_prompt: String,
    pub prompt_source: PromptSource,
    /// The registry version the start prompt came from, if any.
    pub start_version: Option<i64>,
    pub warnings: Vec<String>,
}

/// Shares of the dataset held out for validation (selection) and test (the final comparison).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SplitFractions {
    pub validation: f64,
    pub test: f64,
}

impl Default for SplitFractions {
    fn default() -> Self {
        Self {
            validation: 0.3,
            test: 0.3,
        }
    }
}

impl SplitFractions {
    pub fn validate(&self) -> Result<()> {
        for (name, f) in [
            ("--validation-fraction", self.validation),
            ("--test-fraction", self.test),
        ] {
            if !(0.05..=0.9).contains(&f) {
                return Err(OptimizerError::Config(format!(
                    "{name} must be between 0.05 and 0.9"
                )));
            }
        }
        if self.validation + self.test > 0.9 {
            return Err(OptimizerError::Config(
                "--validation-fraction plus --test-fraction must leave at least 0.1 for training"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// Reads the dataset, checks its size and its test set, analyses the training set, and finds
/// the prompt to start from: `prompt_file` text, else the agent's promoted version, else the
/// most frequent system prompt among its trajectories.
pub async fn prepare(
    store: &Arc<dyn Store>,
    query: &DatasetQuery,
    fractions: SplitFractions,
    seed: u64,
    prompt_file_text: Option<String>,
) -> Result<Prepared> {
    fractions.validate()?;
    let Extracted {
        examples,
        skipped_running,
        reward,
    } = extract(store, query).await?;
    let mut warnings = Vec::new();
    if let Some(w) = check_size(examples.len(), query)? {
        warnings.push(w);
    }
    let mut dataset = Dataset::split(examples, fractions.validation, fractions.test, seed);
    dataset.skipped_running = skipped_running;
    dataset.reward = reward;
    dataset.check_test_size(fractions.test)?;
    let agent_id = match (&query.agent_id, dataset.single_agent()) {
        (Some(a), _) => a.clone(),
        (None, Some(a)) => a.to_string(),
        (None, None) => {
            return Err(OptimizerError::Dataset(
                "the trajectories come from several agents; pick one with --agent".into(),
            ))
        }
    };
    if dataset.failures() == 0 {
        warnings.push(
            "no failed trajectories in the dataset: critiques can only refine what works".into(),
        );
    }
    let train: Vec<_> = dataset
        .train
        .iter()
        .map(|&i| dataset.examples[i].clone())
        .collect();
    let analysis = analyze(&train);
    let (start_prompt, prompt_source, start_version) =
        start_prompt(store, &agent_id, &dataset, prompt_file_text).await?;
    Ok(Prepared {
        agent_id,
        dataset,
        analysis,
        start_prompt,
        prompt_source,
        start_version,
        warnings,
    })
}

async fn start_prompt(
    store: &Arc<dyn Store>,
    agent_id: &str,
    dataset: &Dataset,
    prompt_file_text: Option<String>,
) -> Result<(String, PromptSource, Option<i64>)> {
    Ok(match prompt_file_text {
        Some(text) if !text.trim().is_empty() => (text, PromptSource::File, None),
        Some(_) => return Err(OptimizerError::Config("--prompt-file is empty".into())),
        None => match store.latest_prompt(agent_id).await? {
            Some(p) => (p.text, PromptSource::Registry, Some(p.version)),
            None => match most_common_system_prompt(dataset) {
                Some(p) => (p, PromptSource::Trajectories, None),
                None => {
                    return Err(OptimizerError::Dataset(format!(
                        "no prompt to start from: agent {agent_id:?} has no promoted prompt \
                         and its trajectories record no systemPrompt; pass --prompt-file"
                    )))
                }
            },
        },
    })
}

fn most_common_system_prompt(dataset: &Dataset) -> Option<String> {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for e in &dataset.examples {
        if let Some(p) = e.system_prompt.as_deref().filter(|p| !p.trim().is_empty()) {
            *counts.entry(p).or_default() += 1;
        }
    }
    // Newest-first examples: on a tie, max_by_key keeps the last maximum, so prefer by count
    // then by first appearance.
    let first_seen = |p: &str| {
        dataset
            .examples
            .iter()
            .position(|e| e.system_prompt.as_deref() == Some(p))
            .unwrap_or(usize::MAX)
    };
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(first_seen(b.0).cmp(&first_seen(a.0))))
        .map(|(p, _)| p.to_string())
}

/// When a better prompt may be registered.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistrationGate {
    /// The lower end of the paired difference's interval must exceed this.
    pub min_improvement: f64,
    /// Judge estimates register only when this is set (`--register-judged`).
    pub register_judged: bool,
}

impl Default for RegistrationGate {
    fn default() -> Self {
        Self {
            min_improvement: crate::stats::DEFAULT_MIN_IMPROVEMENT,
            register_judged: false,
        }
    }
}

pub struct OptimizeOptions {
    pub apo: ApoConfig,
    pub templates: Templates,
    /// Stored with the run (the flags it was started with).
    pub config: Value,
    /// Register the best prompt as a new version when it passes the gate.
    pub register: bool,
    /// Promote it too (only ever a version that passed the gate).
    pub promote: bool,
    pub gate: RegistrationGate,
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OptimizeOutcome {
    pub run: OptimizationRun,
    pub candidates: Vec<PromptCandidate>,
    pub start_prompt: String,
    pub best_prompt: String,
    pub diff: String,
    /// The test comparison and the verdict (also stored with the run).
    pub evidence: RunEvidence,
    /// `completed: <verdict>`.
    pub label: String,
    pub registered: Option<Prompt>,
    pub usage: UsageReport,
    /// The judge's own LLM usage, when it is a separate client (filled in by the CLI).
    pub judge_usage: Option<UsageReport>,
    pub failed_evaluations: u64,
    pub evaluation_errors: Vec<String>,
    pub skipped_branches: u64,
    pub stop_reason: Option<String>,
    pub warnings: Vec<String>,
}

struct StoreSink {
    store: Arc<dyn Store>,
    /// For the tokens in the heartbeat.
    llm: Arc<dyn Llm>,
    run: tokio::sync::Mutex<OptimizationRun>,
}

#[async_trait::async_trait]
impl CandidateSink for StoreSink {
    async fn alive(&self, spent_usd: f64) -> Result<()> {
        let usage = self.llm.usage();
        let spend = lightning_store::RunSpend {
            cost_usd: spent_usd,
            input_tokens: usage.input_tokens as i64,
            output_tokens: usage.output_tokens as i64,
        };
        let id = self.run.lock().await.id;
        self.store
            .heartbeat(id, lightning_core::time::now(), &spend)
            .await?;
        Ok(())
    }

    async fn evaluated(&self, evaluation: &CandidateEvaluation) -> Result<()> {
        self.store
            .save_evaluations(std::slice::from_ref(evaluation))
            .await?;
        Ok(())
    }

    async fn save(
        &self,
        candidates: &[PromptCandidate],
        evaluations: &[CandidateEvaluation],
        llm_calls: u64,
        evaluations_total: u64,
    ) -> Result<()> {
        self.store.save_candidates(candidates).await?;
        self.store.save_evaluations(evaluations).await?;
        let mut run = self.run.lock().await;
        run.llm_calls = llm_calls as i64;
        run.evaluations = evaluations_total as i64;
        self.store.update_run(&run).await?;
        Ok(())
    }
}

/// Runs the search and keeps everything: the run, every candidate and evaluation, the best
/// prompt in `out` with its verdict, and, when the gate passes, a new registered version.
pub async fn optimize(
    store: Arc<dyn Store>,
    prepared: Prepared,
    options: OptimizeOptions,
    llm: Arc<dyn Llm>,
    evaluator: Arc<dyn Evaluator>,
    progress: &dyn Progress,
) -> Result<OptimizeOutcome> {
    optimize_until(
        store,
        prepared,
        options,
        llm,
        evaluator,
        progress,
        None,
        std::future::pending(),
    )
    .await
}

/// [`optimize`], stopped when `cancel` completes (Ctrl-C): the search is dropped, which ends
/// every in-flight evaluation (a command's whole process group), and the run is stored
/// `cancelled` with what was saved so far; the error is [`OptimizerError::Cancelled`].
///
/// With `resume`, the stored run of that id (not completed, same agent) continues: its stored
/// evaluations are reused, none is made again (see [`crate::apo::Search::resume`]).
#[allow(
    clippy::too_many_arguments,
    reason = "optimize's inputs plus resume and cancel; optimize keeps the short form"
)]
pub async fn optimize_until(
    store: Arc<dyn Store>,
    prepared: Prepared,
    options: OptimizeOptions,
    llm: Arc<dyn Llm>,
    evaluator: Arc<dyn Evaluator>,
    progress: &dyn Progress,
    resume: Option<uuid::Uuid>,
    cancel: impl std::future::Future<Output = ()>,
) -> Result<OptimizeOutcome> {
    options.apo.validate()?;
    options.templates.validate()?;
    let (run, prior) = match resume {
        None => {
            let run = OptimizationRun::start(
                prepared.agent_id.clone(),
                options.config.clone(),
                prepared.dataset.examples.len() as i64,
            );
            store.create_run(&run).await?;
            (run, Vec::new())
        }
        Some(id) => reopen(&store, id, &prepared.agent_id).await?,
    };
    // Every reply is kept with the run; a resumed run replays them (same candidates as before).
    let replay = Arc::new(crate::llm::replay::ReplayLlm::open(llm, store.clone(), run.id).await?);
    if resume.is_some() {
        tracing::info!(
            "resuming run {}: {} stored LLM replies to replay",
            run.id,
            replay.available()
        );
    }
    let llm: Arc<dyn Llm> = replay;
    let sink = StoreSink {
        store: store.clone(),
        llm: llm.clone(),
        run: tokio::sync::Mutex::new(run.clone()),
    };
    // Critiques read the evaluated rollouts' own trajectories when they were recorded.
    let search_evaluator: Arc<dyn Evaluator> = Arc::new(WithTrajectories {
        inner: evaluator.clone(),
        store: store.clone(),
    });
    let search = Search {
        config: options.apo.clone(),
        llm: llm.clone(),
        evaluator: search_evaluator,
        templates: options.templates.clone(),
        dataset: &prepared.dataset,
        analysis: summary(&prepared.analysis),
        run_id: run.id,
        agent_id: prepared.agent_id.clone(),
        progress,
        sink: Some(&sink),
    };
    let result = tokio::select! {
        r = search.resume(&prepared.start_prompt, prior) => r,
        () = cancel => Err(OptimizerError::Cancelled),
    };
    let mut run = sink.run.lock().await.clone();
    let result: SearchResult = match result {
        Ok(r) => r,
        Err(e) => return Err(record_failure(&store, run, e).await),
    };
    let best_prompt = result
        .candidates
        .iter()
        .find(|c| c.id == result.best_id)
        .expect("best candidate is among the candidates")
        .prompt
        .clone();
    let evidence = judge_evidence(&prepared, &options, evaluator.as_ref(), &result);
    let label = format!("completed: {}", evidence.verdict.label());
    if let Some(path) = &options.out {
        std::fs::write(path, labelled(&best_prompt, &label, run.id, &evidence))
            .map_err(|e| OptimizerError::io(format!("cannot write {}", path.display()), e))?;
    }
    let registered = if evidence.verdict == Verdict::Registered {
        Some(register(&store, &prepared, &options, &run, &evidence, &best_prompt).await?)
    } else {
        None
    };
    finish_run(
        &mut run,
        &result,
        &evidence,
        registered.as_ref(),
        &llm.usage(),
    );
    store.update_run(&run).await?;
    // As stored, with the heartbeat's spend and tokens.
    let run = store.get_run(run.id).await?;
    let diff = unified_diff(
        &ensure_newline(&prepared.start_prompt),
        &ensure_newline(&best_prompt),
        "start",
        "best",
    );
    Ok(OptimizeOutcome {
        run,
        candidates: result.candidates,
        start_prompt: prepared.start_prompt,
        best_prompt,
        diff,
        evidence,
        label,
        registered,
        usage: llm.usage(),
        judge_usage: None,
        failed_evaluations: result.failed_evaluations,
        evaluation_errors: result.evaluation_errors,
        skipped_branches: result.skipped_branches,
        stop_reason: result.stop_reason,
        warnings: prepared.warnings,
    })
}

/// The run to resume, back to `running`, and the evaluations it stored with their prompts.
async fn reopen(
    store: &Arc<dyn Store>,
    id: uuid::Uuid,
    agent_id: &str,
) -> Result<(OptimizationRun, Vec<PriorEvaluation>)> {
    let mut run = store.get_run(id).await?;
    if run.agent_id != agent_id {
        return Err(OptimizerError::Config(format!(
            "--resume {id}: that run optimized agent {:?}, not {agent_id:?}",
            run.agent_id
        )));
    }
    if run.status == RunStatus::Completed {
        return Err(OptimizerError::Config(format!(
            "--resume {id}: that run already completed"
        )));
    }
    let prompts: std::collections::HashMap<uuid::Uuid, String> = store
        .list_candidates(id)
        .await?
        .into_iter()
        .map(|c| (c.id, c.prompt))
        .collect();
    let prior = store
        .list_evaluations(id)
        .await?
        .into_iter()
        .filter_map(|e| {
            Some(PriorEvaluation {
                prompt: prompts.get(&e.candidate_id)?.clone(),
                candidate_id: e.candidate_id,
                trajectory_id: e.trajectory_id,
                evaluation: Evaluation {
                    reward: e.reward,
                    feedback: e.feedback,
                    error: e.error,
                    cost_usd: e.cost_usd,
                    trajectory_id: e.evaluation_trajectory_id,
                    trajectory: None,
                },
            })
        })
        .collect();
    run.status = RunStatus::Running;
    run.finished_at = None;
    run.error = None;
    store.update_run(&run).await?;
    Ok((run, prior))
}

/// Stores the run as failed with the error, and hands the error back.
async fn record_failure(
    store: &Arc<dyn Store>,
    mut run: OptimizationRun,
    e: OptimizerError,
) -> OptimizerError {
    run.status = match e {
        OptimizerError::Cancelled => RunStatus::Cancelled,
        _ => RunStatus::Failed,
    };
    run.finished_at = Some(lightning_core::time::now());
    run.error = Some(e.to_string());
    if let Err(store_err) = store.update_run(&run).await {
        tracing::error!("could not record the failed run: {store_err}");
    }
    e
}

/// The verdict: significant on the paired test comparison, then the judge and registry rules.
fn judge_evidence(
    prepared: &Prepared,
    options: &OptimizeOptions,
    evaluator: &dyn Evaluator,
    result: &SearchResult,
) -> RunEvidence {
    let d = &prepared.dataset;
    let significant = result.best_id != result.seed_id
        && crate::stats::significant(&result.test.difference, options.gate.min_improvement);
    let estimate = evaluator.is_estimate();
    let verdict = if !significant {
        Verdict::NoSignificantImprovement
    } else if estimate && !options.gate.register_judged {
        Verdict::JudgeEstimateNotRegistered
    } else if !options.register {
        Verdict::SignificantNotRegistered
    } else {
        Verdict::Registered
    };
    RunEvidence {
        evaluator: evaluator.name().to_string(),
        estimate,
        split: SplitSizes {
            train: d.train.len() as i64,
            validation: d.validation.len() as i64,
            test: d.test.len() as i64,
        },
        confidence: options.apo.confidence,
        min_improvement: options.gate.min_improvement,
        baseline_validation: Some(result.baseline_validation),
        best_validation: Some(result.best_validation),
        baseline_test: result.test.baseline,
        best_test: result.test.best,
        difference: result.test.difference,
        significant,
        verdict,
    }
}

async fn register(
    store: &Arc<dyn Store>,
    prepared: &Prepared,
    options: &OptimizeOptions,
    run: &OptimizationRun,
    evidence: &RunEvidence,
    best_prompt: &str,
) -> Result<Prompt> {
    let note = format!(
        "lightning optimize run {}: {} test score {} -> {}, difference {}",
        run.id,
        evidence.evaluator,
        format_score(&evidence.baseline_test),
        format_score(&evidence.best_test),
        format_difference(&evidence.difference),
    );
    Ok(store
        .register_prompt(
            &prepared.agent_id,
            &NewPrompt {
                text: best_prompt.to_string(),
                note: Some(note),
                source_run_id: Some(run.id),
                promote: options.promote,
                evaluator: Some(evidence.evaluator.clone()),
            },
        )
        .await?)
}

/// The run's final record: test scores as its scores, counters, and the verdict.
fn finish_run(
    run: &mut OptimizationRun,
    result: &SearchResult,
    evidence: &RunEvidence,
    registered: Option<&Prompt>,
    usage: &UsageReport,
) {
    run.status = RunStatus::Completed;
    run.finished_at = Some(lightning_core::time::now());
    run.baseline_score = Some(evidence.baseline_test.mean);
    run.best_score = Some(evidence.best_test.mean);
    run.best_candidate_id = Some(result.best_id);
    run.llm_calls = result.llm_calls as i64;
    run.evaluations = result.evaluations as i64;
    run.evidence = Some(evidence.clone());
    if let Value::Object(map) = &mut run.config {
        let extras = [
            ("stopReason", result.stop_reason.clone().map(Value::String)),
            (
                "roundsCompleted",
                Some(Value::from(result.rounds_completed as u64)),
            ),
            (
                "failedEvaluations",
                Some(Value::from(result.failed_evaluations)),
            ),
            (
                "registeredVersion",
                registered.map(|p| Value::from(p.version)),
            ),
            // Spend: the optimizer's LLM calls plus the evaluations' reported cost.
            ("costUsd", Some(Value::from(result.spent_usd))),
            ("inputTokens", Some(Value::from(usage.input_tokens))),
            ("outputTokens", Some(Value::from(usage.output_tokens))),
        ];
        for (key, value) in extras {
            map.insert(key.into(), value.unwrap_or(Value::Null));
        }
    }
}

/// First line of the label written above the prompt in `--out`.
pub const OUT_LABEL_PREFIX: &str = "# lightning optimize";

/// The best prompt under a label saying how the run ended, ended by a blank line. `--prompt-file`
/// reads such a file without its label ([`strip_label`]).
fn labelled(prompt: &str, label: &str, run_id: uuid::Uuid, e: &RunEvidence) -> String {
    let estimate = if e.estimate { " (judge estimate)" } else { "" };
    format!(
        "{OUT_LABEL_PREFIX} run {run_id}: {label}\n\
         # test{estimate}: start {}, best {}; difference {}\n\
         # These label lines end at the first blank line and are not part of the prompt.\n\n{}",
        format_score(&e.baseline_test),
        format_score(&e.best_test),
        format_difference(&e.difference),
        ensure_newline(prompt)
    )
}

/// A prompt file without the label `optimize` writes above the prompt in `--out`.
pub fn strip_label(text: &str) -> &str {
    if !text.starts_with(OUT_LABEL_PREFIX) {
        return text;
    }
    match text.find("\n\n") {
        Some(i) => &text[i + 2..],
        None => "",
    }
}

fn ensure_newline(s: &str) -> String {
    if s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

/// A confidence level as a percentage: `95`, `99`, `97.5`.
pub fn percent(confidence: f64) -> String {
    let p = (confidence * 1000.0).round() / 10.0;
    if p.fract() == 0.0 {
        format!("{p:.0}")
    } else {
        format!("{p:.1}")
    }
}

/// The candidates table printed after a run: each score (minibatch, validation, test) with its
/// interval at the run's confidence level and n; with a judge's scores every score column says
/// they are judge estimates.
pub fn render_candidates(candidates: &[PromptCandidate], evidence: &RunEvidence) -> String {
    use crate::report::Table;
    let index: std::collections::HashMap<uuid::Uuid, usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id, i))
        .collect();
    let kind = if evidence.estimate {
        " judge estimate"
    } else {
        ""
    };
    let level = percent(evidence.confidence);
    let header = |set: &str| format!("{set}{kind} [{level}% CI] n");
    let (minibatch, validation, test) = (header("minibatch"), header("validation"), header("test"));
    let mut t = Table::new(&[
        "#",
        "round",
        "parent",
        "status",
        &minibatch,
        &validation,
        &test,
        "evals",
        "prompt",
    ]);
    let score = |s: Option<lightning_core::evidence::Score>| {
        s.map(|x| format_score(&x)).unwrap_or_else(|| "-".into())
    };
    for (i, c) in candidates.iter().enumerate() {
        let first_line: String = c
            .prompt
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .chars()
            .take(48)
            .collect();
        t.row(vec![
            i.to_string(),
            c.round.to_string(),
            c.parent_id
                .and_then(|p| index.get(&p))
                .map(|p| p.to_string())
                .unwrap_or_else(|| "-".into()),
            c.status.as_str().into(),
            score(c.scores.minibatch),
            score(c.scores.validation),
            score(c.scores.test),
            c.evaluations.to_string(),
            first_line,
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_stripped_from_prompt_files() {
        assert_eq!(strip_label("plain prompt\n"), "plain prompt\n");
        let s = lightning_core::evidence::Score {
            mean: 0.5,
            n: 20,
            low: 0.3,
            high: 0.7,
            confidence: 0.95,
            method: lightning_core::IntervalMethod::Wilson,
        };
        let e = RunEvidence {
            evaluator: "command".into(),
            estimate: false,
            split: SplitSizes::default(),
            confidence: 0.95,
            min_improvement: 0.0,
            baseline_validation: None,
            best_validation: None,
            baseline_test: s,
            best_test: s,
            difference: crate::stats::paired_difference(&[1.0, 0.0], &[1.0, 0.0], 0.95, 0).unwrap(),
            significant: false,
            verdict: Verdict::NoSignificantImprovement,
        };
        let text = labelled(
            "Line one.\n\nLine two.",
            "completed: no significant improvement",
            uuid::Uuid::nil(),
            &e,
        );
        assert!(
            text.starts_with("# lightning optimize run 00000000-0000-0000-0000-000000000000: completed: no significant improvement\n"),
            "{text}"
        );
        assert!(text.contains("n=20"), "{text}");
        assert_eq!(strip_label(&text), "Line one.\n\nLine two.\n");
    }

    #[test]
    fn the_candidates_table_shows_every_score_with_its_interval_at_the_runs_level() {
        let at = |mean: f64, n: i64, confidence: f64| lightning_core::evidence::Score {
            mean,
            n,
            low: mean - 0.1,
            high: mean + 0.1,
            confidence,
            method: lightning_core::IntervalMethod::Wilson,
        };
        let seed = PromptCandidate {
            id: uuid::Uuid::now_v7(),
            run_id: uuid::Uuid::nil(),
            parent_id: None,
            round: 0,
            prompt: "Start.".into(),
            critique: None,
            minibatch_score: Some(0.25),
            validation_score: Some(0.3),
            evaluations: 50,
            status: lightning_core::CandidateStatus::Kept,
            created_at: lightning_core::time::now(),
            scores: lightning_core::CandidateScores {
                minibatch: Some(at(0.25, 4, 0.99)),
                validation: Some(at(0.3, 21, 0.99)),
                test: Some(at(0.35, 21, 0.99)),
            },
        };
        let difference =
            crate::stats::paired_difference(&[1.0, 0.0], &[1.0, 0.0], 0.99, 0).unwrap();
        let mut e = RunEvidence {
            evaluator: "command".into(),
            estimate: false,
            split: SplitSizes::default(),
            confidence: 0.99,
            min_improvement: 0.0,
            baseline_validation: None,
            best_validation: None,
            baseline_test: at(0.35, 21, 0.99),
            best_test: at(0.35, 21, 0.99),
            difference,
            significant: false,
            verdict: Verdict::NoSignificantImprovement,
        };
        let table = render_candidates(std::slice::from_ref(&seed), &e);
        let header = table.lines().next().unwrap();
        for h in [
            "minibatch [99% CI] n",
            "validation [99% CI] n",
            "test [99% CI] n",
        ] {
            assert!(header.contains(h), "{table}");
        }
        assert!(
            !table.contains("95%") && !table.contains("estimate"),
            "{table}"
        );
        for cell in [
            "0.250 [0.150, 0.350] n=4",
            "0.300 [0.200, 0.400] n=21",
            "0.350 [0.250, 0.450] n=21",
        ] {
            assert!(table.contains(cell), "{table}");
        }
        e.estimate = true;
        e.evaluator = "judge".into();
        e.confidence = 0.975;
        let table = render_candidates(std::slice::from_ref(&seed), &e);
        let header = table.lines().next().unwrap();
        for h in [
            "minibatch judge estimate [97.5% CI] n",
            "validation judge estimate [97.5% CI] n",
            "test judge estimate [97.5% CI] n",
        ] {
            assert!(header.contains(h), "{table}");
        }
        assert_eq!(percent(0.95), "95");
    }
}
