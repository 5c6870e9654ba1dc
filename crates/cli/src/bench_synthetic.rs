//! `lightning optimize-bench --suite synthetic`: search efficiency on the synthetic task suite
//! (`lightning_optimizer::synthetic`), whose optimum is known. For each strategy and seed the
//! search runs in process (synthetic noisy evaluator, scripted LLM that turns feedback into
//! rules) under the same evaluation budget; after every phase the candidate the search would
//! pick (best validation mean) is scored by its *true* success rate, averaged over the four
//! task kinds (start 0.20, optimum 0.90). The table is the true score reached vs evaluations
//! spent, mean, standard deviation and range over seeds. Methodology and results:
//! docs/optimizer.md.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use clap::Args;
use lightning_core::{CandidateEvaluation, CandidateStatus, PromptCandidate};
use lightning_optimizer::{
    apo::{ApoConfig, CandidateSink, NoProgress, Search, Strategy},
    dataset::Dataset,
    evaluator::Evaluator,
    llm::{Llm, LlmError, LlmRequest, LlmResponse, UsageReport},
    synthetic::{self, SyntheticEvaluator, Variant},
    templates::Templates,
};

#[derive(Debug, Args, Clone)]
pub struct SyntheticArgs {
    /// Seeds per strategy (split, minibatches and evaluator noise all follow the seed).
    #[arg(long, default_value_t = 10)]
    pub seeds: u64,

    /// Evaluation budget of every search (`--max-evaluations`).
    #[arg(long, default_value_t = 600)]
    pub budget: u64,

    /// Recorded runs in the suite (30% validation, 30% test).
    #[arg(long, default_value_t = 120)]
    pub examples: usize,

    /// Curve resolution: a row every this many evaluations.
    #[arg(long, default_value_t = 50)]
    pub every: u64,

    /// `improvable`: the scripted LLM proposes the rules the feedback names (the curve);
    /// `hopeless`: only neutral or harmful rules, so every registration would be a false one.
    #[arg(long, default_value = "improvable", value_parser = ["improvable", "hopeless"])]
    pub variant: String,
}

/// The scripted optimizer LLM of the suite, in process.
struct Scripted(Variant);

#[async_trait]
impl Llm for Scripted {
    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        Ok(LlmResponse {
            text: synthetic::scripted_reply(&request.prompt, self.0),
            input_tokens: 0,
            output_tokens: 0,
        })
    }

    fn usage(&self) -> UsageReport {
        UsageReport::default()
    }
}

/// True success rate of a prompt over the task kinds.
fn true_score(prompt: &str) -> f64 {
    (0..synthetic::KINDS.len())
        .map(|k| synthetic::true_success(prompt, k))
        .sum::<f64>()
        / synthetic::KINDS.len() as f64
}

/// Records (evaluations so far, true score of the current pick) at every save.
#[derive(Default)]
struct Trace {
    points: Mutex<Vec<(u64, f64)>>,
}

#[async_trait]
impl CandidateSink for Trace {
    async fn save(
        &self,
        candidates: &[PromptCandidate],
        _evaluations: &[CandidateEvaluation],
        _llm_calls: u64,
        evaluations_total: u64,
    ) -> lightning_optimizer::Result<()> {
        let pick = candidates
            .iter()
            .filter(|c| c.status != CandidateStatus::Pruned)
            .filter_map(|c| c.validation_score.map(|v| (v, c)))
            .fold(None::<(f64, &PromptCandidate)>, |best, (v, c)| match best {
                Some((bv, _)) if bv >= v => best,
                _ => Some((v, c)),
            });
        if let Some((_, c)) = pick {
            self.points
                .lock()
                .expect("trace")
                .push((evaluations_total, true_score(&c.prompt)));
        }
        Ok(())
    }
}

struct RunTrace {
    points: Vec<(u64, f64)>,
    llm_calls: u64,
    evaluations: u64,
    /// The run would register: best ≠ start and the paired test difference is significant.
    registers: bool,
}

async fn run_one(strategy: Strategy, seed: u64, args: &SyntheticArgs) -> anyhow::Result<RunTrace> {
    let dataset = Dataset::split(synthetic::examples(args.examples), 0.3, 0.3, seed);
    let variant = match args.variant.as_str() {
        "hopeless" => Variant::Hopeless,
        _ => Variant::Improvable,
    };
    let llm: Arc<dyn Llm> = Arc::new(Scripted(variant));
    let evaluator: Arc<dyn Evaluator> = Arc::new(SyntheticEvaluator { noise_seed: seed });
    let trace = Trace::default();
    let search = Search {
        config: ApoConfig {
            strategy,
            // Rounds enough for the evaluation budget to bind for both strategies.
            rounds: 50,
            max_evaluations: Some(args.budget),
            seed,
            concurrency: 8,
            ..Default::default()
        },
        llm,
        evaluator,
        templates: Templates::default(),
        dataset: &dataset,
        analysis: String::new(),
        run_id: uuid::Uuid::now_v7(),
        agent_id: synthetic::AGENT.into(),
        progress: &NoProgress,
        sink: Some(&trace),
    };
    let result = search.run(synthetic::START_PROMPT).await?;
    let mut points = trace.points.into_inner().expect("trace");
    // The last save comes after the test-set scoring, which the budget does not count.
    points.pop();
    Ok(RunTrace {
        points,
        llm_calls: result.llm_calls,
        evaluations: points_last(&result, &dataset),
        registers: result.best_id != result.seed_id
            && lightning_optimizer::stats::significant(&result.test.difference, 0.0),
    })
}

/// Evaluations the search spent, without the final test scoring.
fn points_last(r: &lightning_optimizer::apo::SearchResult, d: &Dataset) -> u64 {
    let test = if r.best_id == r.seed_id { 1 } else { 2 } * d.test.len() as u64;
    r.evaluations.saturating_sub(test)
}

/// The true score of the pick after at most `e` evaluations (the start before any pick).
fn at(points: &[(u64, f64)], e: u64) -> f64 {
    points
        .iter()
        .take_while(|(n, _)| *n <= e)
        .last()
        .map(|(_, s)| *s)
        .unwrap_or_else(|| true_score(synthetic::START_PROMPT))
}

fn stats(xs: &[f64]) -> (f64, f64, f64, f64) {
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let sd = if xs.len() > 1 {
        (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
    } else {
        0.0
    };
    let min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let max = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (mean, sd, min, max)
}

pub async fn run(args: SyntheticArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.seeds >= 1, "--seeds must be at least 1");
    anyhow::ensure!(args.every >= 1, "--every must be at least 1");
    let strategies = [Strategy::Apo, Strategy::Gepa];
    let mut traces: Vec<Vec<RunTrace>> = Vec::new();
    for &strategy in &strategies {
        let mut runs = Vec::new();
        for seed in 0..args.seeds {
            eprint!("\r{} seed {seed}…   ", strategy.as_str());
            runs.push(run_one(strategy, seed, &args).await?);
        }
        traces.push(runs);
    }
    eprintln!();
    let optimum = 0.90;
    println!(
        "synthetic suite ({}): {} recorded runs (30% validation, 30% test), start {:.2}, optimum {optimum:.2}; \
         {} seeds per strategy, budget {} evaluations",
        args.variant,
        args.examples,
        true_score(synthetic::START_PROMPT),
        args.seeds,
        args.budget
    );
    println!("true score of the search's pick (best validation mean) vs evaluations spent: mean ± sd [min, max] over seeds\n");
    print!("{:>6}", "evals");
    for s in &strategies {
        print!("  {:<28}", s.as_str());
    }
    println!();
    let mut means = Vec::new();
    let mut e = args.every;
    while e <= args.budget {
        print!("{e:>6}");
        let mut row = Vec::new();
        for runs in &traces {
            let xs: Vec<f64> = runs.iter().map(|r| at(&r.points, e)).collect();
            let (m, sd, lo, hi) = stats(&xs);
            row.push(m);
            print!("  {:<28}", format!("{m:.3} ± {sd:.3} [{lo:.2}, {hi:.2}]"));
        }
        println!();
        means.push((e, row));
        e += args.every;
    }
    println!();
    for (s, runs) in strategies.iter().zip(&traces) {
        let reach: Vec<Option<u64>> = runs
            .iter()
            .map(|r| {
                r.points
                    .iter()
                    .find(|(_, v)| *v >= optimum - 1e-9)
                    .map(|(n, _)| *n)
            })
            .collect();
        let mut hits: Vec<u64> = reach.iter().flatten().copied().collect();
        hits.sort_unstable();
        let median = hits.get(hits.len() / 2).copied();
        let within = |cap: u64| reach.iter().filter(|r| r.is_some_and(|n| n <= cap)).count();
        let (calls, _, _, _) = stats(&runs.iter().map(|r| r.llm_calls as f64).collect::<Vec<_>>());
        let (evals, _, _, _) = stats(
            &runs
                .iter()
                .map(|r| r.evaluations as f64)
                .collect::<Vec<_>>(),
        );
        let k = runs.iter().filter(|r| r.registers).count() as u64;
        let (lo, hi) = lightning_optimizer::stats::wilson(k, runs.len() as u64, 0.95);
        println!(
            "{:<5} would register (significant on test at 95%) in {k}/{} seeds (Wilson 95% CI {:.1}%–{:.1}%)",
            s.as_str(),
            runs.len(),
            100.0 * lo,
            100.0 * hi
        );
        println!(
            "{:<5} reached the optimum in {}/{} seeds ({} within 300 evaluations); median evaluations to it {}; \
             mean LLM calls {calls:.0}, mean evaluations spent {evals:.0}",
            s.as_str(),
            hits.len(),
            runs.len(),
            within(300),
            median.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
        );
    }
    println!("\nmean true score (a = apo, g = gepa; 0.2 … 0.9 across):");
    for (e, row) in &means {
        for (s, m) in strategies.iter().zip(row) {
            let width = (((m - 0.2) / 0.7).clamp(0.0, 1.0) * 50.0).round() as usize;
            println!(
                "{e:>6} {} |{}{}",
                &s.as_str()[..1],
                "#".repeat(width),
                " ".repeat(50 - width)
            );
        }
    }
    Ok(())
}
