//! `lightning`: the collector, the optimizer and their tools in one binary.

mod bench;
mod bench_cpu;
mod bench_synthetic;
mod dashboard;
mod grade;
mod keys;
mod openapi;
mod optimize;
mod optimize_bench;
mod rollout;
mod serve;
mod store_args;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "lightning",
    version,
    about = "Capture what AI agents do and turn it into better prompts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the collector: the HTTP API, and the dashboard when it is built.
    Serve(serve::ServeArgs),
    /// Manage named API keys with a scope (ingest, read, admin).
    Keys(keys::KeysArgs),
    /// Measure ingest throughput and latency against SQLite and PostgreSQL.
    Bench(bench::BenchArgs),
    /// Improve an agent's system prompt from its stored trajectories (APO: critiques, edits,
    /// beam search, minibatch gate); stores the run and registers the best prompt.
    Optimize(Box<optimize::OptimizeArgs>),
    /// Failure analysis of stored trajectories (no LLM): tool error rates, frequent errors,
    /// steps of successes vs failures, tool sequences over-represented in failures.
    Analyze(optimize::AnalyzeArgs),
    /// Score stored trajectories with a command (--eval-cmd) or an LLM judge (--judge); the
    /// scores feed the dashboard, the stats and `optimize --reward score:<name>`.
    Grade(Box<grade::GradeArgs>),
    /// Benchmark the optimizer against a fake LLM of fixed latency, and dataset extraction.
    OptimizeBench(optimize_bench::OptimizeBenchArgs),
    /// Canary a prompt version beside the promoted one, compare them on the agent's own runs,
    /// promote on significant evidence or roll back (automatically with --auto-rollback).
    Rollout(rollout::RolloutArgs),
    /// Print the collector's OpenAPI document (what `GET /api/openapi.json` serves) as JSON.
    Openapi(openapi::OpenapiArgs),
}

/// `RUST_LOG` overrides `default` (e.g. `RUST_LOG=debug`).
fn init_logging(default: &str) {
    use tracing_subscriber::{fmt, EnvFilter};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
}

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The bench would drown its table in request lines.
    init_logging(match cli.command {
        Command::Bench(_) => "warn,sqlx=warn",
        Command::Optimize(_)
        | Command::Analyze(_)
        | Command::Grade(_)
        | Command::OptimizeBench(_)
        | Command::Keys(_)
        | Command::Rollout(_)
        | Command::Openapi(_) => "warn,sqlx=warn",
        Command::Serve(_) => "info,sqlx=warn",
    });
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Keys(args) => keys::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Optimize(args) => optimize::run(*args).await,
        Command::Analyze(args) => optimize::analyze(args).await,
        Command::Grade(args) => grade::run(*args).await,
        Command::OptimizeBench(args) => optimize_bench::run(args).await,
        Command::Rollout(args) => rollout::run(args).await,
        Command::Openapi(args) => openapi::run(&args),
    }
}
