//! `lightning optimize` and `lightning analyze`.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use lightning_optimizer::{
    analysis,
    apo::{plan, ApoConfig, Progress, Strategy},
    dataset::{self, DatasetQuery},
    evaluator::{command::CommandEvaluator, judge::JudgeEvaluator, Evaluator},
    llm::{HttpLlm, Llm, LlmConfig, Price, Provider},
    run::{
        optimize_until, percent, prepare, render_candidates, strip_label, OptimizeOptions,
        OptimizeOutcome, Prepared, PromptSource, RegistrationGate, SplitFractions,
    },
    stats::{format_difference, format_score},
    templates::Templates,
};
use serde_json::{json, Value};

use crate::store_args::StoreArgs;

/// Which trajectories to read.
#[derive(Debug, Clone, Args)]
pub struct DatasetArgs {
    /// Latest N completed trajectories to learn from.
    #[arg(long, env = "LIGHTNING_TRAJECTORIES", default_value_t = 100)]
    pub trajectories: usize,

    /// Only this agent's trajectories (required when several agents are stored).
    #[arg(long, env = "LIGHTNING_AGENT")]
    pub agent: Option<String>,

    /// Only trajectories of this task type.
    #[arg(long, env = "LIGHTNING_TASK_TYPE")]
    pub task_type: Option<String>,

    /// Only trajectories started at or after this time: RFC 3339 (2026-11-01T00:00:00Z) or a
    /// duration back from now (90m, 36h, 7d).
    #[arg(long, env = "LIGHTNING_SINCE", value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,

    /// What a good outcome is: `success` (the run's own flag), `score:<name>[:threshold]` (a
    /// stored score at least the threshold, default 0.5, or equal to a label threshold), or
    /// `auto`: the score most trajectories have when more than half have one, else success.
    #[arg(long, env = "LIGHTNING_REWARD", default_value = "auto")]
    pub reward: dataset::Reward,
    /// Also use optimizer evaluation runs (promptVersion starting `opt-`), left out by default.
    #[arg(long, env = "LIGHTNING_INCLUDE_EVALUATIONS")]
    pub include_evaluations: bool,
}

impl DatasetArgs {
    fn query(&self) -> DatasetQuery {
        DatasetQuery {
            limit: self.trajectories,
            agent_id: self.agent.clone().filter(|a| !a.is_empty()),
            task_type: self.task_type.clone().filter(|t| !t.is_empty()),
            since: self.since,
            reward: self.reward.clone(),
            include_evaluations: self.include_evaluations,
        }
    }
}

pub(crate) fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = lightning_core::time::parse(s) {
        return Ok(t);
    }
    let (n, unit) = s.split_at(s.trim_end_matches(char::is_alphabetic).len());
    let n: i64 = n
        .parse()
        .map_err(|_| format!("{s:?} is neither RFC 3339 nor a duration like 7d"))?;
    let d = match unit {
        "m" => chrono::Duration::minutes(n),
        "h" => chrono::Duration::hours(n),
        "d" => chrono::Duration::days(n),
        "w" => chrono::Duration::weeks(n),
        _ => return Err(format!("unknown unit in {s:?}: use m, h, d or w")),
    };
    Ok(lightning_core::time::now() - d)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvaluatorKind {
    /// Offline: an LLM judges each held-out trajectory (no agent runs; see docs for its bias).
    Judge,
    /// Real rollouts: runs --eval-cmd per (candidate, task) and reads a reward from its stdout.
    Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProviderArg {
    /// Anthropic Messages API (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL).
    Anthropic,
    /// OpenAI-compatible Chat Completions (OPENAI_API_KEY, OPENAI_BASE_URL): OpenAI, Ollama,
    /// vLLM, llama.cpp.
    Openai,
}

impl From<ProviderArg> for Provider {
    fn from(p: ProviderArg) -> Self {
        match p {
            ProviderArg::Anthropic => Provider::Anthropic,
            ProviderArg::Openai => Provider::OpenAi,
        }
    }
}

/// The optimizer's LLM.
#[derive(Debug, Clone, Args)]
pub struct LlmArgs {
    /// LLM API for critiques, edits and the judge.
    #[arg(
        long,
        env = "LIGHTNING_PROVIDER",
        value_enum,
        default_value = "anthropic"
    )]
    pub provider: ProviderArg,

    /// Model name (default: claude-sonnet-4-5 for anthropic, gpt-4o-mini for openai).
    #[arg(long, env = "LIGHTNING_MODEL")]
    pub model: Option<String>,

    /// Seconds before an LLM request is abandoned (and retried).
    #[arg(long, env = "LIGHTNING_LLM_TIMEOUT", default_value_t = 120)]
    pub llm_timeout: u64,

    /// Retries of an LLM request on 429, 5xx, timeouts and connection errors.
    #[arg(long, env = "LIGHTNING_LLM_RETRIES", default_value_t = 5)]
    pub llm_retries: u32,

    /// USD per million input tokens, for the cost estimate (default: known list prices).
    #[arg(long, env = "LIGHTNING_PRICE_INPUT")]
    pub price_input: Option<f64>,

    /// USD per million output tokens, for the cost estimate.
    #[arg(long, env = "LIGHTNING_PRICE_OUTPUT")]
    pub price_output: Option<f64>,
}

impl LlmArgs {
    /// Reads the API key first: a missing key fails here, before any other work.
    pub fn config(&self, concurrency: usize) -> anyhow::Result<LlmConfig> {
        let mut config = LlmConfig::from_env(self.provider.into(), self.model.clone())?;
        config.timeout = Duration::from_secs(self.llm_timeout.max(1));
        config.max_retries = self.llm_retries;
        config.concurrency = concurrency.max(1);
        match (self.price_input, self.price_output) {
            (Some(i), Some(o)) => {
                config.price = Some(Price {
                    input_per_mtok: i,
                    output_per_mtok: o,
                })
            }
            (None, None) => {}
            _ => bail!("--price-input and --price-output go together"),
        }
        Ok(config)
    }
}

#[derive(Debug, Args)]
pub struct OptimizeArgs {
    #[command(flatten)]
    store: StoreArgs,

    #[command(flatten)]
    data: DatasetArgs,

    #[command(flatten)]
    llm: LlmArgs,

    /// Search strategy: `gepa` (Pareto front over validation examples, reflections on the
    /// parent's own rollouts, merges, budget-aware validation) or `apo` (beam search with
    /// textual gradients). GEPA runs `--rounds × --beam × --branch` proposals.
    #[arg(long, env = "LIGHTNING_STRATEGY", value_enum, default_value = "gepa")]
    strategy: StrategyArg,

    /// Seed for the split, minibatches and validation order: same seed, same plan.
    #[arg(long, env = "LIGHTNING_SEED", default_value_t = 0)]
    seed: u64,

    /// Share of trajectories held out for validation (selecting candidates).
    #[arg(long, env = "LIGHTNING_VALIDATION_FRACTION", default_value_t = 0.3)]
    validation_fraction: f64,

    /// Share held out for the test set: touched once, at the end, to compare the best
    /// candidate with the starting prompt. It must hold at least 20 trajectories.
    #[arg(long, env = "LIGHTNING_TEST_FRACTION", default_value_t = 0.3)]
    test_fraction: f64,

    /// Level of every interval shown and of the registration gate.
    #[arg(long, env = "LIGHTNING_CONFIDENCE", default_value_t = 0.95)]
    confidence: f64,

    /// Register only when the lower end of the interval of (best − start) on the test set is
    /// above this (0: any significant improvement).
    #[arg(long, env = "LIGHTNING_MIN_IMPROVEMENT", default_value_t = 0.0)]
    min_improvement: f64,

    /// Prompts kept after each round.
    #[arg(long, env = "LIGHTNING_BEAM", default_value_t = 4)]
    beam: usize,

    /// Rounds of critique → edit → selection.
    #[arg(long, env = "LIGHTNING_ROUNDS", default_value_t = 3)]
    rounds: usize,

    /// Children per beam member per round.
    #[arg(long, env = "LIGHTNING_BRANCH", default_value_t = 4)]
    branch: usize,

    /// Runs shown to each critique, and the size of the gate's minibatch.
    #[arg(long, env = "LIGHTNING_MINIBATCH", default_value_t = 4)]
    minibatch: usize,

    /// Paraphrases of each edited prompt, as extra children.
    #[arg(long, env = "LIGHTNING_PARAPHRASES", default_value_t = 0)]
    paraphrases: usize,

    /// Score every child on the whole validation set (no minibatch gate, no halving).
    #[arg(long, env = "LIGHTNING_NO_GATE")]
    no_gate: bool,

    /// Most critique/edit/paraphrase LLM calls (judge calls count as evaluations).
    #[arg(long, env = "LIGHTNING_MAX_LLM_CALLS")]
    max_llm_calls: Option<u64>,

    /// Most evaluations (judge calls or --eval-cmd runs).
    #[arg(long, env = "LIGHTNING_MAX_EVALUATIONS")]
    max_evaluations: Option<u64>,

    /// Most USD to spend: the optimizer's LLM calls (at list price or --price-input/output)
    /// plus the evaluations' reported cost (`costUsd` of --eval-cmd, judge tokens). No call or
    /// evaluation starts whose projected cost, at the mean so far and with the final test
    /// scoring reserved, would pass it.
    #[arg(long, env = "LIGHTNING_MAX_COST")]
    max_cost: Option<f64>,

    /// Continue the stored run RUN_ID (after a crash, a kill or Ctrl-C) with the same flags:
    /// its stored evaluations are reused and none is made again; LLM calls are made again.
    #[arg(long, value_name = "RUN_ID")]
    resume: Option<uuid::Uuid>,

    /// Prompt to start from (default: the agent's promoted version, never an unpromoted
    /// candidate, else the most frequent system prompt recorded in its trajectories).
    #[arg(long, env = "LIGHTNING_PROMPT_FILE")]
    prompt_file: Option<PathBuf>,

    /// Where to write the best prompt.
    #[arg(long, env = "LIGHTNING_OUT", default_value = "optimized-prompt.txt")]
    out: PathBuf,

    /// How candidates are scored.
    #[arg(long, env = "LIGHTNING_EVALUATOR", value_enum, default_value = "judge")]
    evaluator: EvaluatorKind,

    /// With --evaluator command: the command to run per (candidate, task), under `sh -c`.
    /// See docs/optimizer.md for its environment and output.
    #[arg(long, env = "LIGHTNING_EVAL_CMD")]
    eval_cmd: Option<String>,

    /// Seconds before an --eval-cmd run is killed and scored 0.
    #[arg(long, env = "LIGHTNING_EVAL_TIMEOUT", default_value_t = 300)]
    eval_timeout: u64,

    /// Evaluations and LLM requests in flight at once.
    #[arg(long, env = "LIGHTNING_CONCURRENCY", default_value_t = 4)]
    concurrency: usize,

    /// File replacing the critique template (needs {prompt} and {examples}; may use {analysis}).
    #[arg(long, env = "LIGHTNING_CRITIQUE_TEMPLATE")]
    critique_template: Option<PathBuf>,

    /// File replacing the edit template (needs {prompt} and {critique}).
    #[arg(long, env = "LIGHTNING_EDIT_TEMPLATE")]
    edit_template: Option<PathBuf>,

    /// File replacing the paraphrase template (needs {prompt}).
    #[arg(long, env = "LIGHTNING_PARAPHRASE_TEMPLATE")]
    paraphrase_template: Option<PathBuf>,

    /// File replacing the judge template (needs {prompt}, where the candidate is inserted as
    /// quoted data, and {example}).
    #[arg(long, env = "LIGHTNING_JUDGE_TEMPLATE")]
    judge_template: Option<PathBuf>,

    /// The judge's model (default: claude-haiku-4-5 for anthropic, gpt-4.1-mini for openai,
    /// or the other default when that is the --model proposing edits).
    #[arg(long, env = "LIGHTNING_JUDGE_MODEL")]
    judge_model: Option<String>,

    /// Allow registering on judge estimates (they are an LLM's guess, not observed runs).
    #[arg(long, env = "LIGHTNING_REGISTER_JUDGED")]
    register_judged: bool,

    /// Do not register the best prompt as a new version.
    #[arg(long)]
    no_register: bool,

    /// Promote the registered version (agents fetching the promoted prompt get it at once).
    /// Only a version that passed the registration gate is ever registered or promoted.
    #[arg(long)]
    promote: bool,

    /// Print the plan (dataset, split, LLM calls and evaluations) and stop.
    #[arg(long)]
    dry_run: bool,

    /// Machine-readable output on stdout; no progress bars.
    #[arg(long)]
    json: bool,
}

fn read_file(path: &PathBuf, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {what} {}", path.display()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StrategyArg {
    Apo,
    Gepa,
}

impl From<StrategyArg> for Strategy {
    fn from(s: StrategyArg) -> Self {
        match s {
            StrategyArg::Apo => Strategy::Apo,
            StrategyArg::Gepa => Strategy::Gepa,
        }
    }
}

impl OptimizeArgs {
    fn apo(&self) -> ApoConfig {
        ApoConfig {
            strategy: self.strategy.into(),
            beam: self.beam,
            rounds: self.rounds,
            branch: self.branch,
            minibatch: self.minibatch,
            paraphrases: self.paraphrases,
            gate: !self.no_gate,
            max_llm_calls: self.max_llm_calls,
            max_evaluations: self.max_evaluations,
            max_cost_usd: self.max_cost,
            seed: self.seed,
            concurrency: self.concurrency,
            confidence: self.confidence,
            ..Default::default()
        }
    }

    fn fractions(&self) -> SplitFractions {
        SplitFractions {
            validation: self.validation_fraction,
            test: self.test_fraction,
        }
    }

    /// The flags the run was started with, stored with it.
    fn run_config(&self, prepared: &Prepared, model: &str, judge_model: Option<&str>) -> Value {
        json!({
            "trajectories": self.data.trajectories,
            "agent": self.data.agent,
            "taskType": self.data.task_type,
            "since": self.data.since.map(lightning_core::time::format),
            // The reward the outcomes were judged by (`auto` resolved), and the flag as given.
            "reward": prepared.dataset.reward.describe(),
            "rewardRequested": self.data.reward.describe(),
            "includeEvaluations": self.data.include_evaluations,
            "seed": self.seed,
            "validationFraction": self.validation_fraction,
            "testFraction": self.test_fraction,
            "confidence": self.confidence,
            "minImprovement": self.min_improvement,
            "registerJudged": self.register_judged,
            "strategy": Strategy::from(self.strategy).as_str(),
            "beam": self.beam,
            "rounds": self.rounds,
            "branch": self.branch,
            "minibatch": self.minibatch,
            "paraphrases": self.paraphrases,
            "gate": !self.no_gate,
            "maxLlmCalls": self.max_llm_calls,
            "maxEvaluations": self.max_evaluations,
            "evaluator": match self.evaluator {
                EvaluatorKind::Judge => "judge",
                EvaluatorKind::Command => "command",
            },
            "evalCmd": self.eval_cmd,
            "concurrency": self.concurrency,
            "provider": Provider::from(self.llm.provider).name(),
            "model": model,
            "judgeModel": judge_model,
            "promptSource": prepared.prompt_source,
            "startVersion": prepared.start_version,
            "train": prepared.dataset.train.len(),
            "validation": prepared.dataset.validation.len(),
            "test": prepared.dataset.test.len(),
        })
    }

    fn templates(&self) -> anyhow::Result<Templates> {
        let mut t = Templates::default();
        // A template of your own replaces the built-in variants GEPA would cycle through too.
        if let Some(p) = &self.critique_template {
            t.critique = read_file(p, "critique template")?;
            t.critique_variants.clear();
        }
        if let Some(p) = &self.edit_template {
            t.edit = read_file(p, "edit template")?;
            t.edit_variants.clear();
        }
        if let Some(p) = &self.paraphrase_template {
            t.paraphrase = read_file(p, "paraphrase template")?;
        }
        if let Some(p) = &self.judge_template {
            t.judge = read_file(p, "judge template")?;
        }
        t.validate()?;
        Ok(t)
    }
}

pub async fn run(args: OptimizeArgs) -> anyhow::Result<()> {
    // Everything that can be refused without touching the store or an LLM, first.
    let llm_config = if args.dry_run {
        None
    } else {
        Some(args.llm.config(args.concurrency)?)
    };
    let apo = args.apo();
    apo.validate()?;
    args.fractions().validate()?;
    if !(0.0..1.0).contains(&args.min_improvement) {
        bail!("--min-improvement must be at least 0 and below 1");
    }
    let templates = args.templates()?;
    if args.evaluator == EvaluatorKind::Command && args.eval_cmd.is_none() {
        bail!("--evaluator command needs --eval-cmd (or LIGHTNING_EVAL_CMD)");
    }
    if let Some(config) = &llm_config {
        require_price(args.max_cost, config)?;
        if args.evaluator == EvaluatorKind::Judge {
            require_price(args.max_cost, &judge_config(&args, config))?;
        }
    }
    let prompt_text = match &args.prompt_file {
        Some(p) => Some(strip_label(&read_file(p, "prompt file")?).to_string()),
        None => None,
    };

    let store = args.store.open().await?;
    let prepared = prepare(
        &store,
        &args.data.query(),
        args.fractions(),
        args.seed,
        prompt_text,
    )
    .await?;
    let judge = args.evaluator == EvaluatorKind::Judge;
    let the_plan = plan(&apo, &prepared.dataset, judge);
    if !args.json {
        for w in &prepared.warnings {
            eprintln!("warning: {w}");
        }
    }
    if args.dry_run {
        return dry_run(&args, &prepared, &the_plan);
    }

    let llm_config = llm_config.expect("not a dry run");
    let llm: Arc<dyn Llm> = Arc::new(HttpLlm::new(llm_config.clone())?);
    let (evaluator, judge_llm) = build_evaluator(&args, &llm_config, &templates)?;
    let judge_model = judge_llm.as_ref().map(|j| j.usage().model);
    let config = args.run_config(&prepared, &llm.usage().model, judge_model.as_deref());
    if !args.json {
        announce(&args, &prepared, &the_plan, judge_model.as_deref());
    }
    let bars = Bars::new(
        !args.json,
        args.beam * args.branch,
        the_plan.max_evaluations + the_plan.test_evaluations,
    );
    let options = OptimizeOptions {
        apo,
        templates,
        config,
        register: !args.no_register,
        promote: args.promote,
        gate: RegistrationGate {
            min_improvement: args.min_improvement,
            register_judged: args.register_judged,
        },
        out: Some(args.out.clone()),
    };
    // Ctrl-C: in-flight evaluations (their process groups) are ended, the run is stored
    // `cancelled`, exit code 130.
    let cancel = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let result = optimize_until(
        store,
        prepared,
        options,
        llm,
        evaluator,
        &bars,
        args.resume,
        cancel,
    )
    .await;
    bars.finish();
    let mut outcome = match result {
        Err(lightning_optimizer::OptimizerError::Cancelled) => {
            eprintln!("cancelled: the run is stored as cancelled with its candidates so far");
            std::process::exit(130);
        }
        other => other?,
    };
    outcome.judge_usage = judge_llm.map(|j| j.usage());
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        print_outcome(&args, &outcome);
    }
    Ok(())
}

fn dry_run(
    args: &OptimizeArgs,
    prepared: &Prepared,
    the_plan: &lightning_optimizer::apo::Plan,
) -> anyhow::Result<()> {
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "agentId": prepared.agent_id,
                "trajectories": prepared.dataset.examples.len(),
                "failures": prepared.dataset.failures(),
                "reward": prepared.dataset.reward.describe(),
                "rewardRequested": args.data.reward.describe(),
                "promptSource": prepared.prompt_source,
                "startPrompt": prepared.start_prompt,
                "plan": the_plan,
                "minTestExamples": dataset::MIN_TEST_EXAMPLES,
                "warnings": prepared.warnings,
            }))?
        );
    } else {
        print_plan(args, prepared, the_plan);
    }
    Ok(())
}

/// The judge's own LLM client, when the evaluator is the judge.
type JudgeLlm = Option<Arc<dyn Llm>>;

/// The judge's LLM settings: the proposer's, with `--judge-model` (or the provider's default
/// judge) and that model's list price unless a price was given.
fn judge_config(args: &OptimizeArgs, llm_config: &LlmConfig) -> LlmConfig {
    let mut config = llm_config.clone();
    config.model = args
        .judge_model
        .clone()
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| {
            llm_config
                .provider
                .default_judge_model(&llm_config.model)
                .to_string()
        });
    if config.price == llm_config.price || config.price.is_none() {
        config.price =
            lightning_optimizer::llm::Price::for_model(&config.model).or(llm_config.price);
    }
    config
}

/// `--max-cost` can only be kept when every model it pays for has a price.
pub fn require_price(max_cost: Option<f64>, config: &LlmConfig) -> anyhow::Result<()> {
    if max_cost.is_some() && config.price.is_none() {
        bail!(
            "--max-cost needs a price, and model {:?} has no known list price: pass \
             --price-input and --price-output (USD per million tokens) so the budget can be \
             enforced",
            config.model
        );
    }
    Ok(())
}

/// The evaluator, and the judge's own LLM client when it is the judge.
fn build_evaluator(
    args: &OptimizeArgs,
    llm_config: &LlmConfig,
    templates: &Templates,
) -> anyhow::Result<(Arc<dyn Evaluator>, JudgeLlm)> {
    Ok(match args.evaluator {
        EvaluatorKind::Judge => {
            let config = judge_config(args, llm_config);
            let judge_llm: Arc<dyn Llm> = Arc::new(HttpLlm::new(config.clone())?);
            let mut judge = JudgeEvaluator::new(judge_llm.clone(), templates.judge.clone());
            judge.price = config.price;
            (Arc::new(judge), Some(judge_llm))
        }
        EvaluatorKind::Command => (
            Arc::new(CommandEvaluator::new(
                args.eval_cmd.clone().unwrap_or_default(),
                Duration::from_secs(args.eval_timeout.max(1)),
            )?),
            None,
        ),
    })
}

fn announce(
    args: &OptimizeArgs,
    prepared: &Prepared,
    the_plan: &lightning_optimizer::apo::Plan,
    judge_model: Option<&str>,
) {
    let d = &prepared.dataset;
    eprintln!(
        "Optimizing agent {:?}: {} trajectories, {} failed by reward {}; {} train / {} \
         validation / {} test, starting from {}; {} LLM calls planned, at most {} evaluations + \
         {} on the test set{}",
        prepared.agent_id,
        d.examples.len(),
        d.failures(),
        describe_reward(&args.data.reward, &d.reward),
        d.train.len(),
        d.validation.len(),
        d.test.len(),
        describe_source(prepared.prompt_source, prepared.start_version),
        the_plan.llm_calls,
        the_plan.max_evaluations,
        the_plan.test_evaluations,
        judge_model
            .map(|m| format!("; judge model {m} (scores are judge estimates)"))
            .unwrap_or_default(),
    );
    if args.promote && args.evaluator == EvaluatorKind::Judge && !args.register_judged {
        eprintln!(
            "note: --promote with the judge promotes nothing unless --register-judged is given"
        );
    }
}

fn print_outcome(args: &OptimizeArgs, outcome: &OptimizeOutcome) {
    println!(
        "{}",
        render_candidates(&outcome.candidates, &outcome.evidence)
    );
    if outcome.diff.is_empty() {
        println!("The best prompt is the starting prompt (no candidate beat it on validation).\n");
    } else {
        println!("{}", outcome.diff);
    }
    let run = &outcome.run;
    let e = &outcome.evidence;
    let kind = if e.estimate {
        "judge estimate"
    } else {
        "score"
    };
    println!(
        "Run {}: {} LLM calls for critiques/edits, {} evaluations",
        run.id, run.llm_calls, run.evaluations
    );
    if let (Some(b), Some(v)) = (&e.baseline_validation, &e.best_validation) {
        println!(
            "Validation {kind} (selection; the best is a maximum over candidates): start {}, best {}",
            format_score(b),
            format_score(v)
        );
    }
    println!(
        "Test {kind} ({} held-out examples, {}% intervals): start {}, best {}",
        e.split.test,
        percent(e.confidence),
        format_score(&e.baseline_test),
        format_score(&e.best_test)
    );
    println!(
        "Paired difference on test (best − start): {}; gate: lower end above {}",
        format_difference(&e.difference),
        e.min_improvement
    );
    println!("LLM usage: {}", outcome.usage.summary());
    if let Some(j) = &outcome.judge_usage {
        println!("Judge usage: {}", j.summary());
    }
    if outcome.failed_evaluations > 0 {
        println!(
            "{} evaluations failed and scored 0, e.g.:",
            outcome.failed_evaluations
        );
        for e in outcome.evaluation_errors.iter().take(5) {
            println!("  {e}");
        }
    }
    if outcome.skipped_branches > 0 {
        println!(
            "{} branches produced no usable prompt (LLM error or empty reply)",
            outcome.skipped_branches
        );
    }
    if let Some(reason) = &outcome.stop_reason {
        println!("Stopped early: {reason}");
    }
    println!(
        "Best prompt written to {} (labelled: {})",
        args.out.display(),
        outcome.label
    );
    match &outcome.registered {
        Some(p) if p.promoted => println!(
            "Registered and promoted as version {} of agent {:?}",
            p.version, p.agent_id
        ),
        Some(p) => println!(
            "Registered as candidate version {} of agent {:?}: agents keep their prompt until \
             you promote it (POST /api/agents/{{agentId}}/prompts/{}/promote)",
            p.version, p.agent_id, p.version
        ),
        None => println!("Nothing registered."),
    }
    println!("{}", outcome.label);
}

fn describe_source(source: PromptSource, version: Option<i64>) -> String {
    match (source, version) {
        (PromptSource::File, _) => "--prompt-file".into(),
        (PromptSource::Registry, Some(v)) => format!("registered version {v}"),
        (PromptSource::Registry, None) => "the registry".into(),
        (PromptSource::Trajectories, _) => "the system prompt recorded in trajectories".into(),
    }
}

fn print_plan(
    args: &OptimizeArgs,
    p: &lightning_optimizer::run::Prepared,
    plan: &lightning_optimizer::apo::Plan,
) {
    println!("Dry run: nothing is called, stored or written.\n");
    println!("Agent:            {}", p.agent_id);
    println!(
        "Dataset:          {} completed trajectories ({} failed, {} still running skipped)",
        p.dataset.examples.len(),
        p.dataset.failures(),
        p.dataset.skipped_running
    );
    println!(
        "Reward:           {}",
        describe_reward(&args.data.reward, &p.dataset.reward)
    );
    println!(
        "Split (seed {}):   {} train (critiques, gate) / {} validation (selection) / {} test \
         (final comparison, needs at least {})",
        args.seed,
        plan.train,
        plan.validation,
        plan.test,
        dataset::MIN_TEST_EXAMPLES
    );
    println!(
        "Start prompt:     {} ({} characters)",
        describe_source(p.prompt_source, p.start_version),
        p.start_prompt.chars().count()
    );
    println!(
        "Strategy:         {}",
        match args.strategy {
            StrategyArg::Gepa => format!(
                "gepa: {} proposals (rounds × beam × branch), Pareto parents, merges, \
                 validation races against the parent",
                args.rounds * args.beam * args.branch
            ),
            StrategyArg::Apo => "apo: beam search with textual gradients".to_string(),
        }
    );
    println!(
        "Search:           {} rounds × beam {} × branch {} (+{} paraphrases) = {} children per round, minibatch {}, gate {}",
        args.rounds,
        args.beam,
        args.branch,
        args.paraphrases,
        plan.children_per_round,
        args.minibatch,
        if args.no_gate { "off" } else { "on" }
    );
    println!(
        "LLM calls:        {} (critique + edit{})",
        plan.llm_calls,
        if args.paraphrases > 0 {
            " + paraphrase"
        } else {
            ""
        }
    );
    println!(
        "Evaluations:      at most {} with the gate ({} if every child were scored fully){}",
        plan.max_evaluations,
        plan.ungated_evaluations,
        if plan.evaluations_are_llm_calls {
            "; each is a judge LLM call"
        } else {
            "; each is one --eval-cmd run"
        }
    );
    println!(
        "Test set:         {} evaluations at the end (starting prompt and best candidate)",
        plan.test_evaluations
    );
    println!(
        "Registration:     only if the {}% interval of (best − start) on test is above {}{}",
        percent(args.confidence),
        args.min_improvement,
        match (args.evaluator, args.register_judged) {
            (EvaluatorKind::Judge, false) =>
                "; judge estimates never register without --register-judged",
            _ => "",
        }
    );
    println!(
        "\nFailure analysis (training set only):\n{}",
        analysis::summary(&p.analysis)
    );
}

/// One progress bar per round; its message moves on every evaluation and LLM call.
struct Bars {
    enabled: bool,
    bar: std::sync::Mutex<Option<ProgressBar>>,
    slots: usize,
    /// Planned evaluations (the most the search may run, plus the test scoring).
    planned_evaluations: u64,
    started: std::time::Instant,
}

impl Bars {
    fn new(enabled: bool, slots: usize, planned_evaluations: u64) -> Self {
        Self {
            enabled,
            bar: std::sync::Mutex::new(None),
            slots,
            planned_evaluations,
            started: std::time::Instant::now(),
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.bar.lock().expect("bar").take() {
            bar.finish();
        }
    }
}

/// `evals 120/482 · LLM 24 · best val 0.583 · $0.42 · ETA 3m10s` (the ETA extrapolates the
/// evaluation rate to the planned evaluations, an upper bound when the gate prunes).
fn tick_line(
    t: &lightning_optimizer::apo::Tick,
    planned: u64,
    elapsed: std::time::Duration,
) -> String {
    let best = t
        .best_validation
        .map(|b| format!("{b:.3}"))
        .unwrap_or_else(|| "-".into());
    let eta = if t.evaluations == 0 || t.evaluations >= planned {
        "-".to_string()
    } else {
        let left = elapsed.as_secs_f64() * (planned - t.evaluations) as f64 / t.evaluations as f64;
        let s = left.round() as u64;
        if s >= 60 {
            format!("{}m{:02}s", s / 60, s % 60)
        } else {
            format!("{s}s")
        }
    };
    format!(
        "evals {}/{planned} · LLM {} · best val {best} · ${:.2} · ETA {eta}",
        t.evaluations, t.llm_calls, t.spent_usd
    )
}

impl Progress for Bars {
    fn tick(&self, t: &lightning_optimizer::apo::Tick) {
        if let Some(bar) = self.bar.lock().expect("bar").as_ref() {
            bar.set_message(tick_line(
                t,
                self.planned_evaluations,
                self.started.elapsed(),
            ));
        }
    }

    fn round_started(&self, round: usize, rounds: usize, steps: u64) {
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::new(steps);
        bar.set_style(
            ProgressStyle::with_template(
                "round {prefix} [{bar:30}] {pos}/{len} branches {elapsed} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("{round}/{rounds}"));
        bar.set_message(format!("({} slots)", self.slots));
        *self.bar.lock().expect("bar") = Some(bar);
    }

    fn step(&self) {
        if let Some(bar) = self.bar.lock().expect("bar").as_ref() {
            bar.inc(1);
        }
    }

    fn round_finished(&self, _round: usize, best: Option<f64>) {
        if let Some(bar) = self.bar.lock().expect("bar").take() {
            bar.finish_with_message(match best {
                Some(b) => format!("best validation score {b:.3}"),
                None => String::new(),
            });
        }
    }

    fn note(&self, message: &str) {
        if self.enabled {
            eprintln!("{message}");
        }
    }
}

/// `score:quality (auto)` when `auto` picked it, else the reward as given.
fn describe_reward(requested: &dataset::Reward, resolved: &dataset::Reward) -> String {
    if requested == resolved {
        resolved.describe()
    } else {
        format!("{} ({})", resolved.describe(), requested.describe())
    }
}

#[derive(Debug, Args)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    store: StoreArgs,

    #[command(flatten)]
    data: DatasetArgs,

    /// Machine-readable output on stdout.
    #[arg(long)]
    json: bool,
}

pub async fn analyze(args: AnalyzeArgs) -> anyhow::Result<()> {
    let store = args.store.open().await?;
    let query = args.data.query();
    let dataset::Extracted {
        examples, reward, ..
    } = dataset::extract(&store, &query).await?;
    if !args.json {
        println!("Reward: {}", describe_reward(&query.reward, &reward));
    }
    if examples.is_empty() {
        bail!("no completed trajectories match; check --agent/--task-type/--since");
    }
    let a = analysis::analyze(&examples);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&a)?);
    } else {
        print!("{}", analysis::render_table(&a));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_shows_done_total_best_spend_and_eta() {
        let t = lightning_optimizer::apo::Tick {
            evaluations: 100,
            llm_calls: 12,
            best_validation: Some(0.5833),
            spent_usd: 0.421,
        };
        // 100 of 400 in 60 s: 300 left at the same rate is 180 s.
        assert_eq!(
            tick_line(&t, 400, std::time::Duration::from_secs(60)),
            "evals 100/400 · LLM 12 · best val 0.583 · $0.42 · ETA 3m00s"
        );
        let start = lightning_optimizer::apo::Tick {
            evaluations: 0,
            best_validation: None,
            ..t
        };
        assert_eq!(
            tick_line(&start, 400, std::time::Duration::from_secs(1)),
            "evals 0/400 · LLM 12 · best val - · $0.42 · ETA -"
        );
    }

    #[test]
    fn since_accepts_rfc3339_and_durations() {
        let t = parse_since("2026-01-02T03:04:05Z").unwrap();
        assert_eq!(
            lightning_core::time::format(t),
            "2026-01-02T03:04:05.000000Z"
        );
        let d = parse_since("7d").unwrap();
        let expected = lightning_core::time::now() - chrono::Duration::days(7);
        assert!((d - expected).num_seconds().abs() < 5);
        assert!(parse_since("7y").is_err());
        assert!(parse_since("soon").is_err());
    }
}
