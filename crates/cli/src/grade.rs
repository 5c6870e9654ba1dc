//! `lightning grade`: score stored trajectories with a command or an LLM judge.

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lightning_optimizer::{
    grade::{self, CommandGrader, GradeEvent, GradeOptions, GradeQuery, Grader, JudgeGrader},
    llm::{HttpLlm, Llm},
};

use crate::{
    optimize::{parse_since, LlmArgs},
    store_args::StoreArgs,
};

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    lightning grade --agent coder --name tests_pass --eval-cmd './grade.sh'\n  \
    lightning grade --agent coder --name correctness --judge --only-missing --max-cost 2\n\n\
    The command gets the trajectory (with steps and scores, as in the export) as JSON on stdin \
    and in $LIGHTNING_TRAJECTORY_FILE, and prints {\"value\": <number|true/false|\"label\">, \
    \"comment\": \"...\"}. Each trajectory gets one score per name and source: grading again \
    updates it.")]
pub struct GradeArgs {
    #[command(flatten)]
    store: StoreArgs,

    /// Score name to store, e.g. correctness ([A-Za-z0-9_.:-], at most 64 characters).
    #[arg(long, env = "LIGHTNING_SCORE_NAME")]
    name: String,

    /// Only this agent's trajectories.
    #[arg(long, env = "LIGHTNING_AGENT")]
    agent: Option<String>,

    /// Only trajectories of this task type.
    #[arg(long, env = "LIGHTNING_TASK_TYPE")]
    task_type: Option<String>,

    /// Only trajectories started at or after this time: RFC 3339 or a duration back (90m, 7d).
    #[arg(long, env = "LIGHTNING_SINCE", value_parser = parse_since)]
    since: Option<DateTime<Utc>>,

    /// Skip trajectories that already have a score of this name (resume an interrupted run).
    #[arg(long)]
    only_missing: bool,

    /// Grade at most this many trajectories (newest first).
    #[arg(long, env = "LIGHTNING_GRADE_LIMIT")]
    limit: Option<usize>,

    /// Also grade optimizer evaluation runs (promptVersion starting `opt-`), left out by default.
    #[arg(long, env = "LIGHTNING_INCLUDE_EVALUATIONS")]
    include_evaluations: bool,

    /// Command grading one trajectory, under `sh -c` (stored as `code` scores).
    #[arg(long, env = "LIGHTNING_EVAL_CMD", conflicts_with = "judge")]
    eval_cmd: Option<String>,

    /// Seconds before an --eval-cmd run is killed (the trajectory counts as failed).
    #[arg(long, env = "LIGHTNING_EVAL_TIMEOUT", default_value_t = 300)]
    eval_timeout: u64,

    /// Grade with an LLM judge instead (stored as `llm` scores, the rationale as comment).
    #[arg(long)]
    judge: bool,

    /// What the judge grades (default: whether the agent accomplished its task).
    #[arg(long, env = "LIGHTNING_JUDGE_CRITERIA")]
    criteria: Option<String>,

    /// File replacing the judge's prompt (needs {trajectory}; may use {name} and {criteria}).
    #[arg(long, env = "LIGHTNING_GRADE_TEMPLATE")]
    template: Option<PathBuf>,

    /// With --judge: stop starting new gradings once the estimated cost reaches this many USD.
    #[arg(long, env = "LIGHTNING_MAX_COST")]
    max_cost: Option<f64>,

    /// Gradings in flight at once.
    #[arg(long, env = "LIGHTNING_CONCURRENCY", default_value_t = 4)]
    concurrency: usize,

    #[command(flatten)]
    llm: LlmArgs,

    /// Print what would be graded and stop.
    #[arg(long)]
    dry_run: bool,

    /// Machine-readable report on stdout; no progress bar.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: GradeArgs) -> anyhow::Result<()> {
    lightning_core::score::validate_score_name("--name", &args.name)?;
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    if args.max_cost.is_some_and(|c| !c.is_finite() || c < 0.0) {
        bail!("--max-cost must be a non-negative number of USD");
    }
    let grader: Option<Arc<dyn Grader>> = match (&args.eval_cmd, args.judge) {
        (Some(cmd), false) if cmd.trim().is_empty() => bail!("--eval-cmd is empty"),
        (Some(cmd), false) => Some(Arc::new(CommandGrader {
            command: cmd.clone(),
            timeout: Duration::from_secs(args.eval_timeout.max(1)),
        })),
        (None, true) if args.dry_run => None,
        (None, true) => {
            let config = args.llm.config(args.concurrency)?;
            crate::optimize::require_price(args.max_cost, &config)?;
            let llm: Arc<dyn Llm> = Arc::new(HttpLlm::new(config)?);
            let template = match &args.template {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .with_context(|| format!("cannot read --template {}", p.display()))?,
                ),
                None => None,
            };
            Some(Arc::new(JudgeGrader::new(
                llm,
                args.criteria.clone(),
                template,
            )?))
        }
        (None, false) => bail!("choose a grader: --eval-cmd '<command>' or --judge"),
        (Some(_), true) => unreachable!("clap refuses --eval-cmd with --judge"),
    };
    if args.max_cost.is_some() && !args.judge {
        bail!("--max-cost applies to --judge only");
    }

    let store = args.store.open().await?;
    let query = GradeQuery {
        agent_id: args.agent.clone().filter(|a| !a.is_empty()),
        task_type: args.task_type.clone().filter(|t| !t.is_empty()),
        since: args.since,
        only_missing: args.only_missing,
        limit: args.limit,
        include_evaluations: args.include_evaluations,
    };
    let (selected, running) = grade::select(&store, &query, &args.name).await?;
    let Some(grader) = grader else {
        println!(
            "Dry run: {} finished trajectories would be graded as {:?} ({} running skipped).",
            selected.len(),
            args.name,
            running
        );
        return Ok(());
    };
    if selected.is_empty() {
        if !args.json {
            eprintln!(
                "Nothing to grade: no finished trajectories match{}.",
                if args.only_missing {
                    " that lack this score"
                } else {
                    ""
                }
            );
        } else {
            println!(
                "{}",
                serde_json::json!({"selected": 0, "graded": 0, "failed": 0})
            );
        }
        return Ok(());
    }
    if !args.json {
        eprintln!(
            "Grading {} trajectories as {:?} with {} ({} at once){}",
            selected.len(),
            args.name,
            if args.judge {
                "an LLM judge"
            } else {
                "--eval-cmd"
            },
            args.concurrency,
            if running > 0 {
                format!("; {running} still running skipped")
            } else {
                String::new()
            }
        );
    }
    let progress = Progress::new(!args.json, selected.len() as u64);
    let options = GradeOptions {
        name: args.name.clone(),
        concurrency: args.concurrency,
        max_cost_usd: args.max_cost,
    };
    let mut report = grade::grade(&store, selected, grader.clone(), &options, &|e| {
        progress.event(e)
    })
    .await?;
    report.running = running;
    progress.finish();

    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "Graded {} of {} trajectories as {:?} ({} scores); {} failed, {} skipped.",
            report.graded,
            report.selected,
            report.name,
            report.source,
            report.failed,
            report.skipped
        );
        for e in &report.errors {
            println!("  failed: {e}");
        }
        if let Some(reason) = &report.stop_reason {
            println!("Stopped early: {reason}. Run again with --only-missing to continue.");
        }
        if args.judge {
            if let Some(cost) = grader.cost_usd() {
                println!("Estimated LLM cost: ${cost:.4}");
            }
        }
    }
    if report.failed > 0 {
        bail!(
            "{} trajectories could not be graded; fix the grader and run again with --only-missing",
            report.failed
        );
    }
    Ok(())
}

/// A progress bar on a terminal; a line every tenth of the work otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: std::sync::atomic::AtomicU64,
    failed: std::sync::atomic::AtomicU64,
}

impl Progress {
    fn new(enabled: bool, total: u64) -> Self {
        let bar = enabled.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "grading [{bar:30}] {pos}/{len} {elapsed} eta {eta} {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar
        });
        Self {
            bar,
            total,
            done: 0.into(),
            failed: 0.into(),
        }
    }

    fn event(&self, e: &GradeEvent) {
        use std::sync::atomic::Ordering::SeqCst;
        let done = self.done.fetch_add(1, SeqCst) + 1;
        if matches!(e, GradeEvent::Failed { .. }) {
            self.failed.fetch_add(1, SeqCst);
        }
        let failed = self.failed.load(SeqCst);
        let Some(bar) = &self.bar else { return };
        bar.set_position(done);
        if failed > 0 {
            bar.set_message(format!("{failed} failed"));
        }
        if bar.is_hidden() {
            let step = (self.total / 10).max(1);
            if done.is_multiple_of(step) || done == self.total {
                eprintln!("graded {done}/{} ({failed} failed)", self.total);
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
