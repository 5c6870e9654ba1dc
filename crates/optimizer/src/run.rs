//! `optimize` end to end: dataset → analysis → starting prompt → search → stored run,
//! candidates and a new prompt version.

use std::{path::PathBuf, sync::Arc};

use lightning_core::{NewPrompt, OptimizationRun, Prompt, PromptCandidate, RunStatus};
use lightning_store::Store;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    analysis::{analyze, summary, Analysis},
    apo::{ApoConfig, CandidateSink, Progress, Search, SearchResult},
    dataset::{check_size, extract, Dataset, DatasetQuery},
    evaluator::Evaluator,
    llm::{Llm, UsageReport},
    report::unified_diff,
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
    pub analysis: Analysis,
    pub start_prompt: String,
    pub prompt_source: PromptSource,
    /// The registry version the start prompt came from, if any.
    pub start_version: Option<i64>,
    pub warnings: Vec<String>,
}

/// Reads the dataset, checks its size, analyses it, and finds the prompt to start from:
/// `prompt_file` text, else the agent's latest registered version, else the most frequent
/// system prompt among its trajectories.
pub async fn prepare(
    store: &Arc<dyn Store>,
    query: &DatasetQuery,
    validation_fraction: f64,
    seed: u64,
    prompt_file_text: Option<String>,
) -> Result<Prepared> {
    if !(0.05..=0.9).contains(&validation_fraction) {
        return Err(OptimizerError::Config(
            "--validation-fraction must be between 0.05 and 0.9".into(),
        ));
    }
    let (examples, skipped_running) = extract(store, query).await?;
    let mut warnings = Vec::new();
    if let Some(w) = check_size(examples.len(), query)? {
        warnings.push(w);
    }
    let mut dataset = Dataset::split(examples, validation_fraction, seed);
    dataset.skipped_running = skipped_running;
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
    let analysis = analyze(&dataset.examples);
    let (start_prompt, prompt_source, start_version) = match prompt_file_text {
        Some(text) if !text.trim().is_empty() => (text, PromptSource::File, None),
        Some(_) => return Err(OptimizerError::Config("--prompt-file is empty".into())),
        None => match store.latest_prompt(&agent_id).await? {
            Some(p) => (p.text, PromptSource::Registry, Some(p.version)),
            None => match most_common_system_prompt(&dataset) {
                Some(p) => (p, PromptSource::Trajectories, None),
                None => {
                    return Err(OptimizerError::Dataset(format!(
                        "no prompt to start from: agent {agent_id:?} has no registered prompt \
                         and its trajectories record no systemPrompt; pass --prompt-file"
                    )))
                }
            },
        },
    };
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

pub struct OptimizeOptions {
    pub apo: ApoConfig,
    pub templates: Templates,
    /// Stored with the run (the flags it was started with).
    pub config: Value,
    /// Register the best prompt as a new version when it beats the start.
    pub register: bool,
    pub promote: bool,
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
    pub registered: Option<Prompt>,
    pub usage: UsageReport,
    pub failed_evaluations: u64,
    pub evaluation_errors: Vec<String>,
    pub skipped_branches: u64,
    pub stop_reason: Option<String>,
    pub warnings: Vec<String>,
}

struct StoreSink {
    store: Arc<dyn Store>,
    run: tokio::sync::Mutex<OptimizationRun>,
}

#[async_trait::async_trait]
impl CandidateSink for StoreSink {
    async fn save(
        &self,
        candidates: &[PromptCandidate],
        llm_calls: u64,
        evaluations: u64,
    ) -> Result<()> {
        self.store.save_candidates(candidates).await?;
        let mut run = self.run.lock().await;
        run.llm_calls = llm_calls as i64;
        run.evaluations = evaluations as i64;
        if let Some(seed) = candidates.first() {
            run.baseline_score = seed.validation_score;
        }
        self.store.update_run(&run).await?;
        Ok(())
    }
}

/// Runs the search and keeps everything: the run, every candidate, the best prompt in `out`
/// and, when it improved on the start, as a new registered version.
pub async fn optimize(
    store: Arc<dyn Store>,
    prepared: Prepared,
    options: OptimizeOptions,
    llm: Arc<dyn Llm>,
    evaluator: Arc<dyn Evaluator>,
    progress: &dyn Progress,
) -> Result<OptimizeOutcome> {
    options.apo.validate()?;
    options.templates.validate()?;
    let mut run = OptimizationRun::start(
        prepared.agent_id.clone(),
        options.config.clone(),
        prepared.dataset.examples.len() as i64,
    );
    store.create_run(&run).await?;
    let sink = StoreSink {
        store: store.clone(),
        run: tokio::sync::Mutex::new(run.clone()),
    };
    let search = Search {
        config: options.apo.clone(),
        llm: llm.clone(),
        evaluator,
        templates: options.templates.clone(),
        dataset: &prepared.dataset,
        analysis: summary(&prepared.analysis),
        run_id: run.id,
        agent_id: prepared.agent_id.clone(),
        progress,
        sink: Some(&sink),
    };
    let result = search.run(&prepared.start_prompt).await;
    run = sink.run.lock().await.clone();
    let result: SearchResult = match result {
        Ok(r) => r,
        Err(e) => {
            run.status = RunStatus::Failed;
            run.finished_at = Some(lightning_core::time::now());
            run.error = Some(e.to_string());
            if let Err(store_err) = store.update_run(&run).await {
                tracing::error!("could not record the failed run: {store_err}");
            }
            return Err(e);
        }
    };
    let best = result
        .candidates
        .iter()
        .find(|c| c.id == result.best_id)
        .expect("best candidate is among the candidates");
    let best_prompt = best.prompt.clone();
    if let Some(path) = &options.out {
        std::fs::write(path, ensure_newline(&best_prompt))
            .map_err(|e| OptimizerError::io(format!("cannot write {}", path.display()), e))?;
    }
    let improved = result.best_id != result.seed_id && result.best_score > result.baseline_score;
    let registered = if options.register && improved {
        let note = format!(
            "lightning optimize run {}: validation score {:.3} -> {:.3}",
            run.id, result.baseline_score, result.best_score
        );
        Some(
            store
                .register_prompt(
                    &prepared.agent_id,
                    &NewPrompt {
                        text: best_prompt.clone(),
                        note: Some(note),
                        source_run_id: Some(run.id),
                        promote: options.promote,
                    },
                )
                .await?,
        )
    } else {
        None
    };
    run.status = RunStatus::Completed;
    run.finished_at = Some(lightning_core::time::now());
    run.baseline_score = Some(result.baseline_score);
    run.best_score = Some(result.best_score);
    run.best_candidate_id = Some(result.best_id);
    run.llm_calls = result.llm_calls as i64;
    run.evaluations = result.evaluations as i64;
    if let Value::Object(map) = &mut run.config {
        map.insert(
            "stopReason".into(),
            result
                .stop_reason
                .clone()
                .map(Value::String)
                .unwrap_or(Value::Null),
        );
        map.insert(
            "roundsCompleted".into(),
            Value::from(result.rounds_completed as u64),
        );
        map.insert(
            "failedEvaluations".into(),
            Value::from(result.failed_evaluations),
        );
        map.insert(
            "registeredVersion".into(),
            registered
                .as_ref()
                .map(|p| Value::from(p.version))
                .unwrap_or(Value::Null),
        );
    }
    store.update_run(&run).await?;
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
        registered,
        usage: llm.usage(),
        failed_evaluations: result.failed_evaluations,
        evaluation_errors: result.evaluation_errors,
        skipped_branches: result.skipped_branches,
        stop_reason: result.stop_reason,
        warnings: prepared.warnings,
    })
}

fn ensure_newline(s: &str) -> String {
    if s.ends_with('\n') {
        s.to_string()
    } else {
        format!("{s}\n")
    }
}

/// The candidates table printed after a run.
pub fn render_candidates(candidates: &[PromptCandidate]) -> String {
    use crate::report::Table;
    let index: std::collections::HashMap<uuid::Uuid, usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (c.id, i))
        .collect();
    let mut t = Table::new(&[
        "#",
        "round",
        "parent",
        "status",
        "minibatch",
        "validation",
        "evals",
        "prompt",
    ]);
    let score = |s: Option<f64>| s.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
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
            score(c.minibatch_score),
            score(c.validation_score),
            c.evaluations.to_string(),
            first_line,
        ]);
    }
    t.render()
}
