//! `lightning`: the collector, the optimizer and their tools in one binary.

mod bench;
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
    /// Measure ingest throughput and latency against SQLite and PostgreSQL.
    Bench(bench::BenchArgs),
}

fn init_logging() {
    use tracing_subscriber::{fmt, EnvFilter};
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Bench(args) => bench::run(args).await,
    }
}
