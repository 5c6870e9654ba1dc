//! APO: textual gradients and beam search (ProTeGi, Agent Lightning v0.x), with a GEPA-style
//! minibatch gate and successive halving over the validation set.
//!
//! Each round, every beam member is the parent of `branch` children (in round 1 the seed fills
//! all `beam × branch` slots). For each slot:
//! 1. a minibatch of `minibatch` training examples is drawn, failures first, round-robin over
//!    failure types (each slot starts at a different type);
//! 2. the parent is scored on it (the evaluator's feedback is side information);
//! 3. the LLM writes a critique of the parent from those runs (the "gradient"), then applies it
//!    as an edited prompt, keeping `{placeholders}`; optional paraphrases add siblings;
//! 4. the child is scored on the same minibatch and passes the gate only if it beats its parent.
//!
//! Children that pass race through successive halving on the validation set (rungs of doubling
//! size; a child continues while it is in the better half of the race and at least as good as
//! the beam's weakest member on the same prefix). Survivors are scored on the whole validation
//! set; the beam becomes the top `beam` of old beam and survivors. With `gate = false` every
//! child is scored on the whole validation set instead (the baseline the gate is measured
//! against). Budgets cap LLM calls and evaluations; the search stops cleanly when either runs
//! out.
//!
//! Only training examples feed critiques (runs, scores, evaluator feedback). After the last
//! round the seed and the best candidate are scored once on the held-out test set, the only
//! time it is touched; their paired difference is what `optimize` reports and gates on.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use futures::future::join_all;
use lightning_core::evidence::Score;
use lightning_core::{
    CandidateEvaluation, CandidateStatus, PairedDifference, PromptCandidate, Split,
};
use rand::{seq::SliceRandom, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use uuid::Uuid;

use crate::{
    dataset::Dataset,
    evaluator::{CandidateRef, Evaluation, Evaluator},
    llm::{Llm, LlmRequest},
    stats,
    templates::{extract_prompt, placeholders, render, Templates},
    OptimizerError, Result,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApoConfig {
    /// Beam APO (ProTeGi) or GEPA (`--strategy`).
    #[serde(default)]
    pub strategy: Strategy,
    pub beam: usize,
    pub rounds: usize,
    pub branch: usize,
    pub minibatch: usize,
    /// Paraphrases of each edited prompt (Monte-Carlo siblings); 0 = none.
    pub paraphrases: usize,
    /// GEPA gate plus successive halving; `false` scores every child on all validation examples.
    pub gate: bool,
    /// Cap on optimizer LLM calls (critique, edit, paraphrase). Judge calls count as evaluations.
    pub max_llm_calls: Option<u64>,
    pub max_evaluations: Option<u64>,
    pub seed: u64,
    /// Evaluations in flight at once.
    pub concurrency: usize,
    /// Tool calls shown per run in critiques and judge prompts.
    pub max_actions: usize,
    /// Level of every interval reported (`--confidence`).
    pub confidence: f64,
    /// Cap on the optimizer's LLM cost plus the evaluations' recorded cost, in USD
    /// (`--max-cost`), including the final test scoring.
    #[serde(default)]
    pub max_cost_usd: Option<f64>,
}

/// The search strategy (`--strategy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// Beam search with textual gradients (this module).
    #[default]
    Apo,
    /// Pareto-front reflective evolution ([`crate::gepa`]).
    Gepa,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Apo => "apo",
            Strategy::Gepa => "gepa",
        }
    }
}

impl Default for ApoConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::default(),
            beam: 4,
            rounds: 3,
            branch: 4,
            minibatch: 4,
            paraphrases: 0,
            gate: true,
            max_llm_calls: None,
            max_evaluations: None,
            seed: 0,
            concurrency: 4,
            max_actions: 12,
            confidence: stats::DEFAULT_CONFIDENCE,
            max_cost_usd: None,
        }
    }
}

impl ApoConfig {
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("--beam", self.beam),
            ("--rounds", self.rounds),
            ("--branch", self.branch),
            ("--minibatch", self.minibatch),
            ("--concurrency", self.concurrency),
        ] {
            if v == 0 {
                return Err(OptimizerError::Config(format!("{name} must be at least 1")));
            }
        }
        if self
            .max_cost_usd
            .is_some_and(|c| !(c.is_finite() && c > 0.0))
        {
            return Err(OptimizerError::Config(
                "--max-cost must be a positive number of USD".into(),
            ));
        }
        if !(0.5..1.0).contains(&self.confidence) {
            return Err(OptimizerError::Config(
                "--confidence must be at least 0.5 and below 1".into(),
            ));
        }
        Ok(())
    }

    pub fn slots_per_round(&self) -> usize {
        self.beam * self.branch
    }

    pub fn children_per_round(&self) -> usize {
        self.slots_per_round() * (1 + self.paraphrases)
    }
}

/// What a search would cost, for `--dry-run`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub train: usize,
    pub validation: usize,
    pub test: usize,
    pub rounds: usize,
    pub children_per_round: usize,
    /// Critique + edit + paraphrase calls (capped by the budget).
    pub llm_calls: u64,
    /// Most evaluations with the gate (every child passing and surviving every rung).
    pub max_evaluations: u64,
    /// Evaluations when every child is scored on the whole validation set (no gate).
    pub ungated_evaluations: u64,
    /// The one final scoring of the starting prompt and the best candidate on the test set
    /// (not capped by `--max-evaluations`).
    pub test_evaluations: u64,
    /// With the judge evaluator each evaluation is an LLM call too.
    pub evaluations_are_llm_calls: bool,
}

pub fn plan(config: &ApoConfig, dataset: &Dataset, judge: bool) -> Plan {
    let slots = config.slots_per_round() as u64;
    // GEPA proposes one child per iteration (no paraphrases); APO `1 + paraphrases` per slot.
    let children = match config.strategy {
        Strategy::Apo => config.children_per_round() as u64,
        Strategy::Gepa => slots,
    };
    let paraphrases = match config.strategy {
        Strategy::Apo => config.paraphrases as u64,
        Strategy::Gepa => 0,
    };
    let rounds = config.rounds as u64;
    let mb = config.minibatch.min(dataset.train.len()) as u64;
    let val = dataset.validation.len() as u64;
    let mut llm_calls = rounds * slots * (2 + paraphrases);
    if let Some(cap) = config.max_llm_calls {
        llm_calls = llm_calls.min(cap);
    }
    let parents = rounds * slots * mb;
    let mut max_evaluations = val + parents + rounds * children * (mb + val);
    let mut ungated = val + parents + rounds * children * val;
    if let Some(cap) = config.max_evaluations {
        max_evaluations = max_evaluations.min(cap);
        ungated = ungated.min(cap);
    }
    Plan {
        train: dataset.train.len(),
        validation: dataset.validation.len(),
        test: dataset.test.len(),
        rounds: config.rounds,
        children_per_round: children as usize,
        llm_calls,
        max_evaluations,
        ungated_evaluations: ungated,
        test_evaluations: 2 * dataset.test.len() as u64,
        evaluations_are_llm_calls: judge,
    }
}

/// Hooks for a progress display; every method has a no-op default.
pub trait Progress: Send + Sync {
    /// After every evaluation and every optimizer LLM call.
    fn tick(&self, _tick: &Tick) {}
    fn round_started(&self, _round: usize, _rounds: usize, _steps: u64) {}
    fn step(&self) {}
    fn round_finished(&self, _round: usize, _best: Option<f64>) {}
    fn note(&self, _message: &str) {}
}

/// Where the search stands, for [`Progress::tick`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tick {
    pub evaluations: u64,
    pub llm_calls: u64,
    /// Best validation mean so far (never a test score).
    pub best_validation: Option<f64>,
    /// Optimizer LLM calls (as the client prices them) plus the evaluations' reported cost.
    pub spent_usd: f64,
}

pub struct NoProgress;
impl Progress for NoProgress {}

/// One evaluation an interrupted run stored, for [`Search::resume`].
#[derive(Debug, Clone)]
pub struct PriorEvaluation {
    pub prompt: String,
    pub candidate_id: Uuid,
    pub trajectory_id: Uuid,
    pub evaluation: Evaluation,
}

/// Where candidates and evaluations go as the search proceeds (the store, in `optimize`).
#[async_trait::async_trait]
pub trait CandidateSink: Send + Sync {
    /// Called as each evaluation completes, so a run killed mid-phase keeps it (for
    /// `--resume`); the same evaluation comes again in the next [`CandidateSink::save`].
    async fn evaluated(&self, _evaluation: &CandidateEvaluation) -> Result<()> {
        Ok(())
    }

    /// Called after every [`CandidateSink::save`]: the search is alive and has spent this much
    /// (optimizer LLM calls plus the evaluations' reported cost).
    async fn alive(&self, _spent_usd: f64) -> Result<()> {
        Ok(())
    }

    /// Called after each phase with every candidate so far and the evaluations made since the
    /// previous call.
    async fn save(
        &self,
        candidates: &[PromptCandidate],
        evaluations: &[CandidateEvaluation],
        llm_calls: u64,
        evaluations_total: u64,
    ) -> Result<()>;
}

/// The starting prompt and the best candidate on the test set, scored once after the search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TestComparison {
    pub baseline: Score,
    pub best: Score,
    /// Best minus baseline, example by example.
    pub difference: PairedDifference,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchResult {
    pub candidates: Vec<PromptCandidate>,
    pub seed_id: Uuid,
    pub best_id: Uuid,
    /// Selection scores (validation set); the best one is a maximum over candidates, so it is
    /// optimistic. The test comparison is the figure to report.
    pub baseline_validation: Score,
    pub best_validation: Score,
    pub test: TestComparison,
    pub llm_calls: u64,
    pub evaluations: u64,
    /// Evaluations that failed (crash, timeout, bad output) and scored 0.
    pub failed_evaluations: u64,
    /// A few of those failures, for the report.
    pub evaluation_errors: Vec<String>,
    /// Branches dropped because an LLM call failed or returned nothing usable.
    pub skipped_branches: u64,
    pub rounds_completed: usize,
    /// Why the search stopped early, if it did.
    pub stop_reason: Option<String>,
    /// Optimizer LLM cost plus the evaluations' reported cost, test scoring included.
    #[serde(default)]
    pub spent_usd: f64,
}

pub(crate) struct Cand {
    pub(crate) rec: PromptCandidate,
    pub(crate) prompt_id: usize,
}

pub struct Search<'a> {
    pub config: ApoConfig,
    pub llm: Arc<dyn Llm>,
    pub evaluator: Arc<dyn Evaluator>,
    pub templates: Templates,
    pub dataset: &'a Dataset,
    /// Failure analysis summary (of the training set) given to every critique.
    pub analysis: String,
    pub run_id: Uuid,
    pub agent_id: String,
    pub progress: &'a dyn Progress,
    pub sink: Option<&'a dyn CandidateSink>,
}

struct State {
    prompts: Vec<Arc<str>>,
    prompt_ids: HashMap<Arc<str>, usize>,
    cache: HashMap<(usize, usize), Evaluation>,
    /// Candidate id of the first candidate with each prompt (for CandidateRef).
    owner: HashMap<usize, Uuid>,
    /// Prompts restored from an interrupted run (`--resume`) whose candidate has not been
    /// created again yet: the first new candidate with the prompt takes the stored id.
    restored: HashMap<usize, Uuid>,
    /// Evaluations not yet handed to the sink.
    unsaved: Vec<CandidateEvaluation>,
}

pub(crate) struct Shared<'s> {
    search: &'s Search<'s>,
    state: Mutex<State>,
    /// Which set each example belongs to.
    split_of: HashMap<usize, Split>,
    pub(crate) llm_calls: AtomicU64,
    llm_reserved: AtomicU64,
    pub(crate) evaluations: AtomicU64,
    failed_evaluations: AtomicU64,
    errors: Mutex<Vec<String>>,
    pub(crate) exhausted: AtomicBool,
    eval_permits: Semaphore,
    /// Reported cost of the evaluations so far, and how many reported one.
    eval_cost: Mutex<(f64, u64)>,
    best_validation: Mutex<Option<f64>>,
}

#[derive(Debug)]
pub(crate) struct BudgetExhausted(pub(crate) &'static str);

/// Whether an evaluation counts against `--max-evaluations` (the search) or not (the one
/// final scoring on the test set, planned separately).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Budget {
    Capped,
    Final,
}

impl<'s> Shared<'s> {
    pub(crate) fn new(search: &'s Search<'s>) -> Self {
        let d = search.dataset;
        let split_of = [
            (&d.train, Split::Train),
            (&d.validation, Split::Validation),
            (&d.test, Split::Test),
        ]
        .into_iter()
        .flat_map(|(set, split)| set.iter().map(move |&i| (i, split)))
        .collect();
        Shared {
            search,
            state: Mutex::new(State {
                prompts: Vec::new(),
                prompt_ids: HashMap::new(),
                cache: HashMap::new(),
                owner: HashMap::new(),
                restored: HashMap::new(),
                unsaved: Vec::new(),
            }),
            split_of,
            llm_calls: AtomicU64::new(0),
            llm_reserved: AtomicU64::new(0),
            evaluations: AtomicU64::new(0),
            failed_evaluations: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
            exhausted: AtomicBool::new(false),
            eval_permits: Semaphore::new(search.config.concurrency),
            eval_cost: Mutex::new((0.0, 0)),
            best_validation: Mutex::new(None),
        }
    }

    pub(crate) fn prompt(&self, id: usize) -> Arc<str> {
        self.state.lock().expect("state").prompts[id].clone()
    }

    /// What the search has cost so far: optimizer LLM calls plus evaluations.
    pub(crate) fn spent(&self) -> f64 {
        self.search.llm.usage().cost_usd.unwrap_or(0.0) + self.eval_cost.lock().expect("cost").0
    }

    /// Mean cost of one evaluation and of one LLM call so far (0 while unknown).
    fn unit_costs(&self) -> (f64, f64) {
        let (sum, n) = *self.eval_cost.lock().expect("cost");
        let eval = if n == 0 { 0.0 } else { sum / n as f64 };
        let usage = self.search.llm.usage();
        let llm = match (usage.cost_usd, usage.calls) {
            (Some(c), n) if n > 0 => c / n as f64,
            _ => 0.0,
        };
        (eval, llm)
    }

    /// Whether `evaluations` more evaluations and `llm_calls` more LLM calls would keep the
    /// spend within `--max-cost`, leaving room for the final test scoring (2 × test). Costs are
    /// projected at the mean so far; before any is known only the spend itself is checked.
    fn within_cost(&self, evaluations: u64, llm_calls: u64) -> bool {
        let Some(cap) = self.search.config.max_cost_usd else {
            return true;
        };
        let (eval, llm) = self.unit_costs();
        let test = 2 * self.search.dataset.test.len() as u64;
        let projected = self.spent() + (evaluations + test) as f64 * eval + llm_calls as f64 * llm;
        if projected > cap {
            self.exhausted.store(true, Ordering::SeqCst);
            false
        } else {
            true
        }
    }

    /// Records a candidate's validation mean (for the progress display).
    pub(crate) fn note_validation(&self, score: Option<f64>) {
        let mut best = self.best_validation.lock().expect("best");
        if let Some(s) = score {
            if best.is_none_or(|b| s > b) {
                *best = Some(s);
            }
        }
    }

    fn tick(&self) {
        self.search.progress.tick(&Tick {
            evaluations: self.evaluations.load(Ordering::SeqCst),
            llm_calls: self.llm_calls.load(Ordering::SeqCst),
            best_validation: *self.best_validation.lock().expect("best"),
            spent_usd: self.spent(),
        });
    }

    /// The id for a new candidate with `prompt`: the stored one when an interrupted run had
    /// it (once), else a fresh one.
    pub(crate) fn candidate_id_for(&self, prompt: &str) -> Uuid {
        let mut st = self.state.lock().expect("state");
        let restored = st.prompt_ids.get(prompt).copied();
        restored
            .and_then(|pid| st.restored.remove(&pid))
            .unwrap_or_else(Uuid::now_v7)
    }

    /// Whether some candidate already has this prompt.
    pub(crate) fn is_known(&self, prompt: &str) -> bool {
        self.state
            .lock()
            .expect("state")
            .prompt_ids
            .contains_key(prompt)
    }

    pub(crate) fn intern(&self, prompt: &str, owner: Uuid) -> usize {
        let mut st = self.state.lock().expect("state");
        if let Some(&id) = st.prompt_ids.get(prompt) {
            return id;
        }
        let id = st.prompts.len();
        let text: Arc<str> = Arc::from(prompt);
        st.prompts.push(text.clone());
        st.prompt_ids.insert(text, id);
        st.owner.insert(id, owner);
        id
    }

    /// The rewards of `prompt_id` on `examples`, in order; `None` if one is missing.
    pub(crate) fn rewards(&self, prompt_id: usize, examples: &[usize]) -> Option<Vec<f64>> {
        let st = self.state.lock().expect("state");
        examples
            .iter()
            .map(|e| st.cache.get(&(prompt_id, *e)).map(|ev| ev.reward))
            .collect()
    }

    pub(crate) fn score(&self, prompt_id: usize, examples: &[usize]) -> Option<f64> {
        let r = self.rewards(prompt_id, examples)?;
        Some(if r.is_empty() {
            0.0
        } else {
            r.iter().sum::<f64>() / r.len() as f64
        })
    }

    /// The score with n and interval.
    pub(crate) fn summary(&self, prompt_id: usize, examples: &[usize]) -> Option<Score> {
        let r = self.rewards(prompt_id, examples)?;
        let c = &self.search.config;
        Some(stats::score(&r, c.confidence, c.seed))
    }

    pub(crate) fn evaluation(&self, prompt_id: usize, example: usize) -> Option<Evaluation> {
        self.state
            .lock()
            .expect("state")
            .cache
            .get(&(prompt_id, example))
            .cloned()
    }

    pub(crate) fn covered(&self, prompt_id: usize) -> i64 {
        let st = self.state.lock().expect("state");
        st.cache.keys().filter(|(p, _)| *p == prompt_id).count() as i64
    }

    fn take_unsaved(&self) -> Vec<CandidateEvaluation> {
        std::mem::take(&mut self.state.lock().expect("state").unsaved)
    }

    /// Scores every (prompt, example) pair not yet cached, `concurrency` at a time. All or
    /// nothing: when the evaluation budget cannot cover the missing pairs, none are run.
    pub(crate) async fn evaluate(
        &self,
        pairs: &[(usize, usize)],
        budget: Budget,
    ) -> Result<std::result::Result<(), BudgetExhausted>> {
        let missing: Vec<(usize, usize)> = {
            let st = self.state.lock().expect("state");
            let mut seen = HashSet::new();
            pairs
                .iter()
                .copied()
                .filter(|p| !st.cache.contains_key(p) && seen.insert(*p))
                .collect()
        };
        if missing.is_empty() {
            return Ok(Ok(()));
        }
        if let (Some(cap), Budget::Capped) = (self.search.config.max_evaluations, budget) {
            if self.evaluations.load(Ordering::SeqCst) + missing.len() as u64 > cap {
                self.exhausted.store(true, Ordering::SeqCst);
                return Ok(Err(BudgetExhausted("evaluation budget exhausted")));
            }
        }
        if budget == Budget::Capped && !self.within_cost(missing.len() as u64, 0) {
            return Ok(Err(BudgetExhausted("cost budget (--max-cost) exhausted")));
        }
        let s = self.search;
        let results = join_all(missing.iter().map(|&(p, e)| async move {
            let _permit = self.eval_permits.acquire().await.expect("open");
            let prompt = self.prompt(p);
            let owner = self.state.lock().expect("state").owner[&p];
            let candidate = CandidateRef {
                run_id: s.run_id,
                candidate_id: owner,
                agent_id: &s.agent_id,
                prompt_version: format!(
                    "{}{owner}",
                    lightning_core::evidence::EVALUATION_PROMPT_VERSION_PREFIX
                ),
                prompt: &prompt,
            };
            let started = std::time::Instant::now();
            let outcome = s
                .evaluator
                .evaluate(&candidate, &s.dataset.examples[e])
                .await?;
            let evidence = self.record(p, e, owner, started.elapsed(), outcome);
            if let Some(sink) = s.sink {
                sink.evaluated(&evidence).await?;
            }
            Ok::<(), OptimizerError>(())
        }))
        .await;
        match results.into_iter().find_map(|r| r.err()) {
            Some(err) => Err(err),
            None => Ok(Ok(())),
        }
    }

    /// Evaluations stored by an interrupted run of the same search (`--resume`): cached, and
    /// counted against the budget, so none is made again.
    pub(crate) fn restore(&self, prior: Vec<PriorEvaluation>) {
        let index: HashMap<Uuid, usize> = self
            .search
            .dataset
            .examples
            .iter()
            .enumerate()
            .map(|(i, e)| (e.trajectory_id, i))
            .collect();
        for p in prior {
            let Some(&example) = index.get(&p.trajectory_id) else {
                continue;
            };
            let pid = self.intern(&p.prompt, p.candidate_id);
            let mut st = self.state.lock().expect("state");
            st.restored.entry(pid).or_insert(p.candidate_id);
            if st
                .cache
                .insert((pid, example), p.evaluation.clone())
                .is_none()
            {
                self.evaluations.fetch_add(1, Ordering::SeqCst);
                if let Some(c) = p.evaluation.cost_usd {
                    let mut cost = self.eval_cost.lock().expect("cost");
                    cost.0 += c;
                    cost.1 += 1;
                }
            }
        }
    }

    fn record(
        &self,
        prompt_id: usize,
        example: usize,
        owner: Uuid,
        took: std::time::Duration,
        evaluation: Evaluation,
    ) -> CandidateEvaluation {
        let s = self.search;
        self.evaluations.fetch_add(1, Ordering::SeqCst);
        let ex = &s.dataset.examples[example];
        if let Some(err) = &evaluation.error {
            self.failed_evaluations.fetch_add(1, Ordering::SeqCst);
            let mut errors = self.errors.lock().expect("errors");
            if errors.len() < 20 {
                errors.push(format!("trajectory {}: {err}", ex.trajectory_id));
            }
        }
        let evidence = CandidateEvaluation {
            run_id: s.run_id,
            candidate_id: owner,
            trajectory_id: ex.trajectory_id,
            split: self.split_of.get(&example).copied().unwrap_or(Split::Train),
            reward: evaluation.reward,
            feedback: evaluation.feedback.clone(),
            error: evaluation.error.clone(),
            evaluator: s.evaluator.name().to_string(),
            duration_ms: took.as_millis().min(i64::MAX as u128) as i64,
            cost_usd: evaluation.cost_usd,
            evaluation_trajectory_id: evaluation.trajectory_id,
            created_at: lightning_core::time::now(),
        };
        if let Some(c) = evaluation.cost_usd {
            let mut cost = self.eval_cost.lock().expect("cost");
            cost.0 += c;
            cost.1 += 1;
        }
        {
            let mut st = self.state.lock().expect("state");
            st.unsaved.push(evidence.clone());
            st.cache.insert((prompt_id, example), evaluation);
        }
        self.tick();
        evidence
    }

    /// Reserves `n` LLM calls from the budget.
    pub(crate) fn reserve_llm(&self, n: u64) -> bool {
        if !self.within_cost(0, n) {
            return false;
        }
        match self.search.config.max_llm_calls {
            None => true,
            Some(cap) => {
                let before = self.llm_reserved.fetch_add(n, Ordering::SeqCst);
                if before + n > cap {
                    self.llm_reserved.fetch_sub(n, Ordering::SeqCst);
                    self.exhausted.store(true, Ordering::SeqCst);
                    false
                } else {
                    true
                }
            }
        }
    }

    /// One optimizer LLM call; `Ok(None)` when it failed in a way worth skipping the branch.
    pub(crate) async fn ask(&self, prompt: String) -> Result<Option<String>> {
        self.llm_calls.fetch_add(1, Ordering::SeqCst);
        let reply = self.search.llm.complete(&LlmRequest::new(prompt)).await;
        self.tick();
        match reply {
            Ok(r) if !r.text.trim().is_empty() => Ok(Some(r.text)),
            Ok(_) => Ok(None),
            Err(e) if e.is_fatal() => Err(e.into()),
            Err(e) => {
                tracing::warn!("skipping a branch: {e}");
                Ok(None)
            }
        }
    }
}

/// A slot's outcome: the children it produced (already interned) and its critique.
struct SlotOutput {
    parent: usize,
    minibatch: Vec<usize>,
    critique: Option<String>,
    children: Vec<(String, Option<&'static str>)>,
}

/// Everything the rounds carry from one to the next.
pub(crate) struct Progressing {
    pub(crate) cands: Vec<Cand>,
    pub(crate) beam: Vec<usize>,
    pub(crate) rng: rand::rngs::StdRng,
    /// The validation set in a seeded order: successive halving races on its prefixes.
    pub(crate) val_order: Vec<usize>,
    pub(crate) failure_groups: FailureGroups,
    pub(crate) stop_reason: Option<String>,
    pub(crate) skipped_branches: u64,
    pub(crate) rounds_completed: usize,
}

/// A child to gate: its index in `cands`, its parent's, and the parent's minibatch.
type NewChild = (usize, usize, Vec<usize>);

impl<'a> Search<'a> {
    /// Scores the seed on validation, runs the rounds, then scores the seed and the best
    /// candidate once on the test set.
    pub async fn run(&'a self, seed_prompt: &str) -> Result<SearchResult> {
        self.resume(seed_prompt, Vec::new()).await
    }

    /// [`Search::run`] with the evaluations an interrupted run of the same search stored: the
    /// search retraces its steps on them (same seed, same minibatches; LLM calls are made
    /// again) and evaluates only what they do not cover.
    pub async fn resume(
        &'a self,
        seed_prompt: &str,
        prior: Vec<PriorEvaluation>,
    ) -> Result<SearchResult> {
        self.config.validate()?;
        self.templates.validate()?;
        let shared = Shared::new(self);
        shared.restore(prior);
        let mut st = self.score_seed(&shared, seed_prompt).await?;
        if self.config.strategy == Strategy::Gepa {
            crate::gepa::search(self, &shared, &mut st).await?;
            let test = self.score_on_test(&shared, &mut st).await?;
            return self.finish(&shared, st, test).await;
        }
        for round in 1..=self.config.rounds {
            if shared.exhausted.load(Ordering::SeqCst)
                || !self.round(&shared, &mut st, round).await?
            {
                break;
            }
        }
        if st.stop_reason.is_none() && shared.exhausted.load(Ordering::SeqCst) {
            st.stop_reason = Some("budget exhausted".into());
        }
        let test = self.score_on_test(&shared, &mut st).await?;
        self.finish(&shared, st, test).await
    }

    /// The baseline: the seed on the whole validation set.
    pub(crate) async fn score_seed(
        &self,
        shared: &Shared<'_>,
        seed_prompt: &str,
    ) -> Result<Progressing> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(self.config.seed);
        let mut val_order = self.dataset.validation.clone();
        val_order.shuffle(&mut rng);
        let seed_id = shared.candidate_id_for(seed_prompt);
        let seed_pid = shared.intern(seed_prompt, seed_id);
        let mut cands = vec![Cand {
            rec: new_record(
                self.run_id,
                seed_id,
                None,
                0,
                seed_prompt,
                None,
                CandidateStatus::Seed,
            ),
            prompt_id: seed_pid,
        }];
        let val = &self.dataset.validation;
        let pairs: Vec<(usize, usize)> = val.iter().map(|&e| (seed_pid, e)).collect();
        self.progress
            .note("scoring the starting prompt on the validation set");
        if let Err(BudgetExhausted(why)) = shared.evaluate(&pairs, Budget::Capped).await? {
            return Err(OptimizerError::Config(format!(
                "{why} before the starting prompt could be scored: --max-evaluations must be at \
                 least the validation set size ({})",
                val.len()
            )));
        }
        let rec = &mut cands[0].rec;
        rec.validation_score = shared.score(seed_pid, val);
        shared.note_validation(rec.validation_score);
        rec.scores.validation = shared.summary(seed_pid, val);
        rec.evaluations = shared.covered(seed_pid);
        self.save(&cands, shared).await?;
        Ok(Progressing {
            cands,
            beam: vec![0],
            rng,
            val_order,
            failure_groups: self.failure_groups(),
            stop_reason: None,
            skipped_branches: 0,
            rounds_completed: 0,
        })
    }

    /// One round; `false` when the search must stop (budget, or nothing left to expand).
    async fn round(&self, shared: &Shared<'_>, st: &mut Progressing, round: usize) -> Result<bool> {
        let cfg = &self.config;
        self.progress
            .round_started(round, cfg.rounds, cfg.slots_per_round() as u64 + 1);
        let slot_plan = self.plan_slots(shared, st);
        if slot_plan.is_empty() {
            st.stop_reason = Some("LLM call budget exhausted".to_string());
            return Ok(false);
        }
        // Parents on their minibatches (deduplicated across slots): the critiques' material.
        let parent_pairs: Vec<(usize, usize)> = slot_plan
            .iter()
            .flat_map(|(p, mb)| {
                let pid = st.cands[*p].prompt_id;
                mb.iter().map(move |e| (pid, *e))
            })
            .collect();
        if let Err(BudgetExhausted(why)) = shared.evaluate(&parent_pairs, Budget::Capped).await? {
            st.stop_reason = Some(why.to_string());
            return Ok(false);
        }
        let outputs = self.expand_all(shared, &st.cands, &slot_plan).await?;
        let new_children = self.add_children(shared, st, round, outputs);
        // Children are stored before they are evaluated, so their evaluations can be resumed.
        self.save(&st.cands, shared).await?;
        let challengers = self.gate(shared, st, new_children).await?;
        let survivors = self.validate(shared, st, challengers).await?;
        self.select_beam(shared, st, survivors);
        self.save(&st.cands, shared).await?;
        st.rounds_completed = round;
        self.progress.step();
        self.progress
            .round_finished(round, st.cands[st.beam[0]].rec.validation_score);
        Ok(st.stop_reason.is_none())
    }

    /// Slots: parents cycle through the beam; minibatches are drawn here, in order, so the
    /// seed alone decides them. Stops at the first slot the LLM budget cannot cover.
    fn plan_slots(&self, shared: &Shared<'_>, st: &mut Progressing) -> Vec<(usize, Vec<usize>)> {
        let mut slot_plan = Vec::new();
        for slot in 0..self.config.slots_per_round() {
            let parent = st.beam[slot % st.beam.len()];
            let minibatch = self.draw_minibatch(&mut st.failure_groups, slot, &mut st.rng);
            if !shared.reserve_llm(2 + self.config.paraphrases as u64) {
                break;
            }
            slot_plan.push((parent, minibatch));
        }
        slot_plan
    }

    /// Critique, edit, paraphrase: all slots concurrently.
    async fn expand_all(
        &self,
        shared: &Shared<'_>,
        cands: &[Cand],
        slot_plan: &[(usize, Vec<usize>)],
    ) -> Result<Vec<SlotOutput>> {
        join_all(slot_plan.iter().map(|(parent, mb)| async move {
            let out = self.expand(shared, cands, *parent, mb).await;
            self.progress.step();
            out
        }))
        .await
        .into_iter()
        .collect()
    }

    /// Records every child (pruned until it proves itself); returns those worth gating.
    fn add_children(
        &self,
        shared: &Shared<'_>,
        st: &mut Progressing,
        round: usize,
        outputs: Vec<SlotOutput>,
    ) -> Vec<NewChild> {
        let mut new_children = Vec::new();
        for out in outputs {
            if out.children.is_empty() {
                st.skipped_branches += 1;
                if out.critique.is_none() {
                    continue;
                }
            }
            let parent_rec_id = st.cands[out.parent].rec.id;
            for (prompt, rejection) in out.children {
                let id = shared.candidate_id_for(&prompt);
                let pid = shared.intern(&prompt, id);
                let mut rec = new_record(
                    self.run_id,
                    id,
                    Some(parent_rec_id),
                    round as i64,
                    &prompt,
                    out.critique.clone(),
                    CandidateStatus::Pruned,
                );
                if let Some(reason) = rejection {
                    rec.critique = Some(format!(
                        "{}\n\n[not evaluated: {reason}]",
                        out.critique.clone().unwrap_or_default()
                    ));
                }
                st.cands.push(Cand {
                    rec,
                    prompt_id: pid,
                });
                if rejection.is_none() {
                    new_children.push((st.cands.len() - 1, out.parent, out.minibatch.clone()));
                }
            }
        }
        new_children
    }

    /// The GEPA gate: each child on its parent's minibatch; it goes on only if strictly
    /// better there. Without the gate every child goes on.
    async fn gate(
        &self,
        shared: &Shared<'_>,
        st: &mut Progressing,
        new_children: Vec<NewChild>,
    ) -> Result<Vec<usize>> {
        if !self.config.gate {
            return Ok(new_children.iter().map(|(c, _, _)| *c).collect());
        }
        let pairs: Vec<(usize, usize)> = new_children
            .iter()
            .flat_map(|(c, _, mb)| mb.iter().map(|e| (st.cands[*c].prompt_id, *e)))
            .collect();
        if let Err(BudgetExhausted(why)) = shared.evaluate(&pairs, Budget::Capped).await? {
            st.stop_reason = Some(why.to_string());
        }
        let mut challengers = Vec::new();
        for (c, parent, mb) in &new_children {
            let child_score = shared.score(st.cands[*c].prompt_id, mb);
            let parent_score = shared.score(st.cands[*parent].prompt_id, mb);
            st.cands[*c].rec.minibatch_score = child_score;
            st.cands[*c].rec.scores.minibatch = shared.summary(st.cands[*c].prompt_id, mb);
            if let (Some(cs), Some(ps)) = (child_score, parent_score) {
                if cs > ps {
                    challengers.push(*c);
                }
            }
        }
        Ok(challengers)
    }

    /// Successive halving (gate) or everyone on everything; survivors get validation scores.
    async fn validate(
        &self,
        shared: &Shared<'_>,
        st: &mut Progressing,
        challengers: Vec<usize>,
    ) -> Result<Vec<usize>> {
        let val_all = &self.dataset.validation;
        let outcome = if st.stop_reason.is_some() {
            return Ok(Vec::new());
        } else if self.config.gate {
            self.halving(shared, &st.cands, &st.beam, challengers, &st.val_order)
                .await?
        } else {
            let pairs: Vec<(usize, usize)> = challengers
                .iter()
                .flat_map(|c| val_all.iter().map(|e| (st.cands[*c].prompt_id, *e)))
                .collect();
            shared
                .evaluate(&pairs, Budget::Capped)
                .await?
                .map(|()| challengers)
        };
        let survivors = match outcome {
            Ok(s) => s,
            Err(BudgetExhausted(why)) => {
                st.stop_reason = Some(why.to_string());
                Vec::new()
            }
        };
        for &c in &survivors {
            let pid = st.cands[c].prompt_id;
            st.cands[c].rec.validation_score = shared.score(pid, val_all);
            shared.note_validation(st.cands[c].rec.validation_score);
            st.cands[c].rec.scores.validation = shared.summary(pid, val_all);
            st.cands[c].rec.status = CandidateStatus::Evaluated;
        }
        Ok(survivors)
    }

    /// New beam: best validation scores among the old beam and the survivors; ties go to the
    /// earlier candidate (incumbents first), and identical prompts share one slot.
    fn select_beam(&self, shared: &Shared<'_>, st: &mut Progressing, survivors: Vec<usize>) {
        let cands = &mut st.cands;
        let mut pool: Vec<usize> = st.beam.iter().copied().chain(survivors).collect();
        pool.sort_by(|&a, &b| {
            let (sa, sb) = (
                cands[a].rec.validation_score.unwrap_or(0.0),
                cands[b].rec.validation_score.unwrap_or(0.0),
            );
            sb.total_cmp(&sa).then(a.cmp(&b))
        });
        pool.dedup();
        let mut seen_prompts = HashSet::new();
        pool.retain(|&c| seen_prompts.insert(cands[c].prompt_id));
        let new_beam: Vec<usize> = pool.iter().copied().take(self.config.beam).collect();
        for &c in &pool {
            if cands[c].rec.status != CandidateStatus::Seed {
                cands[c].rec.status = if new_beam.contains(&c) {
                    CandidateStatus::Kept
                } else {
                    CandidateStatus::Evaluated
                };
            }
        }
        st.beam = new_beam;
        for c in cands.iter_mut() {
            c.rec.evaluations = shared.covered(c.prompt_id);
        }
    }

    /// The only use of the test set: the seed and the best candidate, once each.
    pub(crate) async fn score_on_test(
        &self,
        shared: &Shared<'_>,
        st: &mut Progressing,
    ) -> Result<TestComparison> {
        let test = &self.dataset.test;
        let (seed, best) = (st.cands[0].prompt_id, st.cands[st.beam[0]].prompt_id);
        self.progress.note(&format!(
            "scoring the starting prompt{} on the {} test examples",
            if seed == best {
                ""
            } else {
                " and the best candidate"
            },
            test.len()
        ));
        let pairs: Vec<(usize, usize)> = [seed, best]
            .iter()
            .flat_map(|&p| test.iter().map(move |&e| (p, e)))
            .collect();
        // Not budgeted: planned separately (`Plan::test_evaluations`).
        let _ = shared.evaluate(&pairs, Budget::Final).await?;
        let missing = || OptimizerError::Evaluator("a test evaluation is missing".into());
        let base = shared.rewards(seed, test).ok_or_else(missing)?;
        let top = shared.rewards(best, test).ok_or_else(missing)?;
        let cfg = &self.config;
        let comparison = TestComparison {
            baseline: stats::score(&base, cfg.confidence, cfg.seed),
            best: stats::score(&top, cfg.confidence, cfg.seed),
            difference: stats::paired_difference(&top, &base, cfg.confidence, cfg.seed)?,
        };
        st.cands[0].rec.scores.test = Some(comparison.baseline);
        let b = st.beam[0];
        st.cands[b].rec.scores.test = Some(comparison.best);
        Ok(comparison)
    }

    pub(crate) async fn finish(
        &self,
        shared: &Shared<'_>,
        mut st: Progressing,
        test: TestComparison,
    ) -> Result<SearchResult> {
        let best = st.beam[0];
        if st.cands[best].rec.status != CandidateStatus::Seed {
            st.cands[best].rec.status = CandidateStatus::Best;
        }
        for c in st.cands.iter_mut() {
            c.rec.evaluations = shared.covered(c.prompt_id);
        }
        self.save(&st.cands, shared).await?;
        let baseline_validation = st.cands[0].rec.scores.validation.expect("seed scored");
        let best_validation = st.cands[best]
            .rec
            .scores
            .validation
            .unwrap_or(baseline_validation);
        let evaluation_errors = shared.errors.lock().expect("errors").clone();
        Ok(SearchResult {
            seed_id: st.cands[0].rec.id,
            best_id: st.cands[best].rec.id,
            baseline_validation,
            best_validation,
            test,
            llm_calls: shared.llm_calls.load(Ordering::SeqCst),
            evaluations: shared.evaluations.load(Ordering::SeqCst),
            failed_evaluations: shared.failed_evaluations.load(Ordering::SeqCst),
            evaluation_errors,
            skipped_branches: st.skipped_branches,
            rounds_completed: st.rounds_completed,
            stop_reason: st.stop_reason,
            spent_usd: shared.spent(),
            candidates: st.cands.into_iter().map(|c| c.rec).collect(),
        })
    }

    pub(crate) async fn save(&self, cands: &[Cand], shared: &Shared<'_>) -> Result<()> {
        let evaluations = shared.take_unsaved();
        if let Some(sink) = self.sink {
            let recs: Vec<PromptCandidate> = cands.iter().map(|c| c.rec.clone()).collect();
            sink.save(
                &recs,
                &evaluations,
                shared.llm_calls.load(Ordering::SeqCst),
                shared.evaluations.load(Ordering::SeqCst),
            )
            .await?;
            sink.alive(shared.spent()).await?;
        }
        Ok(())
    }

    /// Training failures by failure type (each group shuffled later), and training successes.
    fn failure_groups(&self) -> FailureGroups {
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut successes = Vec::new();
        for &i in &self.dataset.train {
            match &self.dataset.examples[i].failure_type {
                Some(t) if !self.dataset.examples[i].outcome.success => {
                    groups.entry(t.clone()).or_default().push(i)
                }
                _ => successes.push(i),
            }
        }
        FailureGroups {
            groups: groups.into_values().collect(),
            successes,
            cursor: 0,
        }
    }

    pub(crate) fn draw_minibatch(
        &self,
        fg: &mut FailureGroups,
        slot: usize,
        rng: &mut rand::rngs::StdRng,
    ) -> Vec<usize> {
        let size = self.config.minibatch.min(self.dataset.train.len());
        let mut groups: Vec<Vec<usize>> = fg
            .groups
            .iter()
            .map(|g| {
                let mut g = g.clone();
                g.shuffle(rng);
                g
            })
            .collect();
        let mut picked = Vec::new();
        if !groups.is_empty() {
            let start = (fg.cursor + slot) % groups.len();
            let n = groups.len();
            let mut k = 0;
            while picked.len() < size && groups.iter().any(|g| !g.is_empty()) {
                if let Some(e) = groups[(start + k) % n].pop() {
                    picked.push(e);
                }
                k += 1;
            }
        }
        if picked.len() < size {
            let mut s = fg.successes.clone();
            s.shuffle(rng);
            picked.extend(s.into_iter().take(size - picked.len()));
        }
        if slot + 1 == self.config.slots_per_round() {
            fg.cursor += 1;
        }
        picked
    }

    async fn expand(
        &self,
        shared: &Shared<'_>,
        cands: &[Cand],
        parent: usize,
        minibatch: &[usize],
    ) -> Result<SlotOutput> {
        let parent_prompt = shared.prompt(cands[parent].prompt_id);
        let mut examples = String::new();
        for (k, &e) in minibatch.iter().enumerate() {
            let ex = &self.dataset.examples[e];
            let mut block = format!(
                "### Run {} ({})\n{}",
                k + 1,
                ex.failure_type.as_deref().unwrap_or("succeeded"),
                ex.render(self.config.max_actions)
            );
            if let Some(ev) = shared.evaluation(cands[parent].prompt_id, e) {
                block.push_str(&format!("Score of the current prompt: {:.2}", ev.reward));
                if let Some(f) = &ev.feedback {
                    block.push_str(&format!(". Evaluator feedback: {f}"));
                }
                if let Some(err) = &ev.error {
                    block.push_str(&format!(". Evaluation error: {err}"));
                }
                block.push('\n');
                if let Some(t) = &ev.trajectory {
                    block.push_str(&format!("The current prompt's run:\n{t}"));
                }
            }
            examples.push_str(&crate::rollout_text::cap_tokens(
                &block,
                crate::gepa::EXAMPLE_TOKEN_CAP,
            ));
            examples.push('\n');
        }
        let mut out = SlotOutput {
            parent,
            minibatch: minibatch.to_vec(),
            critique: None,
            children: Vec::new(),
        };
        let critique_prompt = render(
            &self.templates.critique,
            &[
                ("prompt", &parent_prompt),
                ("examples", examples.trim_end()),
                ("analysis", self.analysis.trim_end()),
            ],
        );
        let Some(critique) = shared.ask(critique_prompt).await? else {
            return Ok(out);
        };
        let critique = critique.trim().to_string();
        out.critique = Some(critique.clone());
        let edit_prompt = render(
            &self.templates.edit,
            &[("prompt", &parent_prompt), ("critique", &critique)],
        );
        let Some(edited) = shared.ask(edit_prompt).await? else {
            return Ok(out);
        };
        let mut texts = vec![extract_prompt(&edited)];
        for _ in 0..self.config.paraphrases {
            let p = render(&self.templates.paraphrase, &[("prompt", &texts[0])]);
            if let Some(reply) = shared.ask(p).await? {
                texts.push(extract_prompt(&reply));
            }
        }
        let required = placeholders(&parent_prompt);
        for text in texts {
            let rejection = if text.trim().is_empty() {
                continue;
            } else if text.trim() == parent_prompt.trim() {
                Some("identical to its parent")
            } else if !required.is_subset(&placeholders(&text)) {
                Some("dropped a {placeholder} of its parent")
            } else {
                None
            };
            out.children.push((text, rejection));
        }
        Ok(out)
    }

    /// Successive halving of `challengers` over prefixes of `val_order`; returns those scored on
    /// all of it.
    async fn halving(
        &self,
        shared: &Shared<'_>,
        cands: &[Cand],
        beam: &[usize],
        mut alive: Vec<usize>,
        val_order: &[usize],
    ) -> Result<std::result::Result<Vec<usize>, BudgetExhausted>> {
        let total = val_order.len();
        let mut n = self.config.minibatch.max(total.div_ceil(4)).min(total);
        loop {
            if alive.is_empty() {
                return Ok(Ok(alive));
            }
            let prefix = &val_order[..n];
            let pairs: Vec<(usize, usize)> = alive
                .iter()
                .flat_map(|c| prefix.iter().map(|e| (cands[*c].prompt_id, *e)))
                .collect();
            if let Err(b) = shared.evaluate(&pairs, Budget::Capped).await? {
                return Ok(Err(b));
            }
            if n == total {
                return Ok(Ok(alive));
            }
            let mean = |c: usize| shared.score(cands[c].prompt_id, prefix).unwrap_or(0.0);
            alive.sort_by(|&a, &b| mean(b).total_cmp(&mean(a)).then(a.cmp(&b)));
            let keep = alive.len().div_ceil(2);
            let mut incumbents: Vec<f64> = beam.iter().map(|&c| mean(c)).collect();
            incumbents.sort_by(|a, b| b.total_cmp(a));
            let bar =
                (incumbents.len() >= self.config.beam).then(|| incumbents[self.config.beam - 1]);
            alive = alive
                .into_iter()
                .take(keep)
                .filter(|&c| !matches!(bar, Some(b) if mean(c) < b))
                .collect();
            n = (n * 2).min(total);
        }
    }
}

pub(crate) struct FailureGroups {
    groups: Vec<Vec<usize>>,
    successes: Vec<usize>,
    cursor: usize,
}

pub(crate) fn new_record(
    run_id: Uuid,
    id: Uuid,
    parent_id: Option<Uuid>,
    round: i64,
    prompt: &str,
    critique: Option<String>,
    status: CandidateStatus,
) -> PromptCandidate {
    PromptCandidate {
        id,
        run_id,
        parent_id,
        round,
        prompt: prompt.to_string(),
        critique,
        minibatch_score: None,
        validation_score: None,
        evaluations: 0,
        status,
        created_at: lightning_core::time::now(),
        scores: Default::default(),
    }
}
