//! `lightning bench`: ingest throughput and latency of the collector over HTTP, against the
//! ceiling of the same rows written straight into the store, in one run on this machine.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::{Args, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use lightning_collector::{ApiKey, CollectorConfig, DEFAULT_BODY_LIMIT};
use lightning_core::{NewStep, NewTrajectory};
use lightning_store::{scratch::ScratchStore, Store};
use serde::Serialize;
use serde_json::{json, Value};

use crate::bench_cpu::{database_is_local, load_runtime, CpuPerStep, CpuSample};

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Backends to measure.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sqlite,postgres"
    )]
    backend: Vec<BenchBackend>,

    /// Concurrent clients, one measurement per value.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    concurrency: Vec<usize>,

    /// Seconds per measurement.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,

    /// Steps per batch (the instrumentation's default batch size).
    #[arg(long, default_value_t = 10)]
    batch: usize,

    /// Approximate bytes of tool output per step.
    #[arg(long, default_value_t = 1024)]
    step_bytes: usize,

    /// PostgreSQL server to use; the bench works in a throwaway schema and drops it.
    #[arg(long, env = "TEST_DATABASE_URL", hide_env_values = true,
        default_value = lightning_store::scratch::DEFAULT_TEST_DATABASE_URL)]
    postgres_url: String,

    /// Print results as JSON instead of a table.
    #[arg(long)]
    json: bool,

    /// What to measure: `ingest` (short trajectories, http vs direct), `long` (8 trajectories
    /// driven past --long-steps, steps/s at start vs end), `raw` (the database's raw ceilings:
    /// multi-row INSERT at 10 and 200 rows/tx, COPY on PostgreSQL), `peer` (the Express
    /// collector of ../shared/peers, PostgreSQL, when Node is available), `reads` (list, deep
    /// cursor, 10,000-step detail and 30-day stats with --read-steps stored).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ingest,long,raw,peer,reads"
    )]
    suite: Vec<Suite>,

    /// Steps per trajectory in the `long` suite.
    #[arg(long, default_value_t = 20_000)]
    long_steps: usize,

    /// Concurrent clients (and PostgreSQL connections) for `long`, `raw` and `peer`.
    #[arg(long, default_value_t = 16)]
    wide_concurrency: usize,

    /// Steps per trajectory for the peer's long-trajectory comparison.
    #[arg(long, default_value_t = 8_000)]
    peer_long_steps: usize,

    /// The Express peer collector (default: ../shared/peers/express-collector next to the repo).
    #[arg(long, env = "LIGHTNING_EXPRESS_PEER")]
    express_peer: Option<std::path::PathBuf>,

    /// Steps stored before the `reads` suite measures.
    #[arg(long, default_value_t = 1_000_000)]
    read_steps: usize,

    /// Bytes of tool output per step in the `reads` data set.
    #[arg(long, default_value_t = 256)]
    read_step_bytes: usize,

    /// Requests per read measurement.
    #[arg(long, default_value_t = 100)]
    read_requests: usize,

    /// Rounds of the `raw` suite: each round measures every ceiling, then the store direct, then
    /// the collector, so machine noise falls on all of them alike; ratios are taken within a
    /// round and reported as median (min–max).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
    rounds: u16,

    /// Concurrent writer transactions on PostgreSQL, as `lightning serve
    /// --group-commit-writers` (default: half the measurement's connections, at most 4).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    writers: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Suite {
    Ingest,
    Long,
    Raw,
    Peer,
    Reads,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum BenchBackend {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Path {
    /// Through `lightning serve`'s HTTP API.
    Collector,
    /// The same rows through the store directly.
    Direct,
}

#[derive(Debug, Serialize)]
struct Measurement {
    backend: BenchBackend,
    path: Path,
    concurrency: usize,
    batches: usize,
    steps_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Mean steps per group-commit transaction during the measurement.
    steps_per_transaction: f64,
    /// Mean wall time of one group-commit transaction, ms.
    transaction_ms: f64,
    /// Processor time per step, where `/proc` can be read.
    cpu: Option<CpuPerStep>,
}

/// Everything one run measured, for `--json`.
#[derive(Debug, Default, Serialize)]
struct Report {
    ingest: Vec<Measurement>,
    long: Vec<LongRun>,
    raw: Vec<RawRow>,
    peer: Vec<PeerRow>,
    peer_skipped: Option<String>,
    reads: Vec<ReadRow>,
}

#[derive(Debug, Serialize)]
struct LongRun {
    target: String,
    trajectories: usize,
    steps_each: usize,
    start_steps_per_sec: f64,
    end_steps_per_sec: f64,
    p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct RawRow {
    backend: BenchBackend,
    /// 1-based round of `--rounds`.
    round: usize,
    what: String,
    concurrency: usize,
    steps_per_sec: f64,
    /// Processor time per step, where `/proc` can be read.
    cpu: Option<CpuPerStep>,
}

#[derive(Debug, Serialize)]
struct PeerRow {
    workload: String,
    lightning_steps_per_sec: f64,
    express_steps_per_sec: f64,
    lightning_p99_ms: f64,
    express_p99_ms: f64,
}

#[derive(Debug, Serialize)]
struct ReadRow {
    backend: BenchBackend,
    what: String,
    requests: usize,
    p50_ms: f64,
    p95_ms: f64,
    max_ms: f64,
    response_bytes: usize,
}

/// Batches per trajectory before a client starts a new one (~1,000 steps, a long agent run).
const BATCHES_PER_TRAJECTORY: usize = 100;

/// Group commit as `lightning serve` configures it for `connections` database connections
/// (`--writers` as its `--group-commit-writers`).
fn group_config(args: &BenchArgs, connections: u32) -> lightning_store::GroupConfig {
    lightning_store::GroupConfig {
        writers: args.writers.map_or_else(
            || lightning_store::GroupConfig::default_writers(connections),
            usize::from,
        ),
        ..Default::default()
    }
}

/// A store of its own for one measurement, removed when dropped.
async fn fresh_store(
    args: &BenchArgs,
    backend: BenchBackend,
    connections: u32,
) -> anyhow::Result<ScratchStore> {
    let group = group_config(args, connections);
    Ok(match backend {
        BenchBackend::Sqlite => ScratchStore::sqlite(group)
            .await
            .context("temporary SQLite store")?,
        BenchBackend::Postgres => ScratchStore::postgres(&args.postgres_url, connections, group)
            .await
            .with_context(|| {
                format!(
                    "throwaway schema in the PostgreSQL at {} (--postgres-url)",
                    lightning_store::redact_url(&args.postgres_url)
                )
            })?,
    })
}

fn progress_bar(args: &BenchArgs, len: u64) -> ProgressBar {
    let progress = ProgressBar::new(len).with_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    if args.json {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    progress
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.seconds > 0.0 && args.batch > 0,
        "--seconds and --batch must be positive"
    );
    anyhow::ensure!(
        args.concurrency.iter().all(|&c| c > 0) && args.wide_concurrency > 0,
        "--concurrency values must be positive"
    );
    let mut report = Report::default();
    let has = |s: Suite| args.suite.contains(&s);
    if has(Suite::Ingest) {
        report.ingest = ingest_suite(&args).await?;
    }
    if has(Suite::Long) {
        report.long = long_suite(&args).await?;
    }
    if has(Suite::Raw) {
        report.raw = raw_suite(&args).await?;
    }
    if has(Suite::Peer) && args.backend.contains(&BenchBackend::Postgres) {
        match peer_suite(&args).await {
            Ok(rows) => report.peer = rows,
            Err(e) => report.peer_skipped = Some(format!("{e:#}")),
        }
    }
    if has(Suite::Reads) {
        report.reads = reads_suite(&args).await?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&args, &report);
    }
    Ok(())
}

async fn ingest_suite(args: &BenchArgs) -> anyhow::Result<Vec<Measurement>> {
    let progress = progress_bar(
        args,
        (args.backend.len() * args.concurrency.len() * 2) as u64,
    );
    let mut results = Vec::new();
    for &backend in &args.backend {
        for &concurrency in &args.concurrency {
            for path in [Path::Direct, Path::Collector] {
                progress.set_message(format!("ingest {backend:?} {path:?} x{concurrency}"));
                // A fresh store per measurement, so earlier rows do not slow later ones.
                let store = fresh_store(args, backend, 10).await?;
                results.push(measure(args, backend, path, concurrency, store.store.clone()).await?);
                progress.inc(1);
            }
        }
    }
    progress.finish_and_clear();
    Ok(results)
}

async fn measure(
    args: &BenchArgs,
    backend: BenchBackend,
    path: Path,
    concurrency: usize,
    store: Arc<dyn Store>,
) -> anyhow::Result<Measurement> {
    let stats = store.clone();
    let target = match path {
        Path::Direct => Target::Direct(store),
        Path::Collector => Target::Http(HttpTarget::start(store).await?),
    };
    let stop = Stop::Deadline(Instant::now() + Duration::from_secs_f64(args.seconds));
    let before = stats.group_commit_stats();
    let cpu = cpu_sample(args, backend);
    let run = drive_all(
        Arc::new(target),
        concurrency,
        args,
        stop,
        BATCHES_PER_TRAJECTORY,
    )
    .await?;
    let cpu = cpu_since(cpu, args, backend, run.latencies.len() * args.batch);
    let after = stats.group_commit_stats();
    let transactions = after
        .transactions
        .saturating_sub(before.transactions)
        .max(1) as f64;
    Ok(Measurement {
        backend,
        path,
        concurrency,
        batches: run.latencies.len(),
        steps_per_sec: run.steps_per_sec(args.batch),
        p50_ms: run.percentile_ms(0.50),
        p99_ms: run.percentile_ms(0.99),
        steps_per_transaction: after.steps.saturating_sub(before.steps) as f64 / transactions,
        transaction_ms: 1e3 * (after.busy_seconds - before.busy_seconds) / transactions,
        cpu,
    })
}

/// CPU used so far; the database's processes are counted when it runs on this machine.
fn cpu_sample(args: &BenchArgs, backend: BenchBackend) -> Option<CpuSample> {
    CpuSample::now(backend == BenchBackend::Postgres && database_is_local(&args.postgres_url))
}

/// CPU used since `before` (a [`cpu_sample`]), per step of the `steps` written.
fn cpu_since(
    before: Option<CpuSample>,
    args: &BenchArgs,
    backend: BenchBackend,
    steps: usize,
) -> Option<CpuPerStep> {
    let after = cpu_sample(args, backend)?;
    Some(before?.per_step(&after, steps as f64))
}

/// Per-batch latencies and completion times of one run.
struct Run {
    started: Instant,
    latencies: Vec<Duration>,
    /// When each batch was acknowledged, sorted.
    done: Vec<Instant>,
}

impl Run {
    fn steps_per_sec(&self, batch: usize) -> f64 {
        let end = self.done.last().copied().unwrap_or(self.started);
        (self.done.len() * batch) as f64 / (end - self.started).as_secs_f64().max(1e-9)
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        let mut l = self.latencies.clone();
        l.sort_unstable();
        percentile(&l, p)
    }

    /// Steps/s over the first and the last `share` of acknowledged batches.
    fn start_and_end_rates(&self, batch: usize, share: f64) -> (f64, f64) {
        let n = ((self.done.len() as f64 * share) as usize).max(1);
        let rate =
            |from: Instant, to: Instant| (n * batch) as f64 / (to - from).as_secs_f64().max(1e-9);
        let last = self.done.len() - 1;
        (
            rate(self.started, self.done[n - 1]),
            rate(self.done[last - n], self.done[last]),
        )
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[derive(Clone, Copy)]
enum Stop {
    Deadline(Instant),
    /// Each client stops after sending this many steps.
    Steps(usize),
}

async fn drive_all(
    target: Arc<Target>,
    concurrency: usize,
    args: &BenchArgs,
    stop: Stop,
    batches_per_trajectory: usize,
) -> anyhow::Result<Run> {
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (target, batch, bytes) = (target.clone(), args.batch, args.step_bytes);
            // On the load generator's own thread: its CPU is reported apart from the server's.
            load_runtime().spawn(async move {
                target
                    .drive(stop, batch, bytes, batches_per_trajectory)
                    .await
            })
        })
        .collect();
    let (mut latencies, mut done) = (Vec::new(), Vec::new());
    for worker in workers {
        for (at, latency) in worker.await?? {
            done.push(at);
            latencies.push(latency);
        }
    }
    done.sort_unstable();
    Ok(Run {
        started,
        latencies,
        done,
    })
}

async fn long_suite(args: &BenchArgs) -> anyhow::Result<Vec<LongRun>> {
    let clients = 8;
    let mut runs = Vec::new();
    for &backend in &args.backend {
        let store = fresh_store(args, backend, args.wide_concurrency as u32).await?;
        let target = Arc::new(Target::Http(HttpTarget::start(store.store.clone()).await?));
        let progress = progress_bar(args, 1);
        progress.set_message(format!(
            "long: {clients} trajectories x {} steps, {backend:?}",
            args.long_steps
        ));
        let run = drive_all(
            target,
            clients,
            args,
            Stop::Steps(args.long_steps),
            usize::MAX,
        )
        .await?;
        progress.finish_and_clear();
        let (start, end) = run.start_and_end_rates(args.batch, 0.1);
        runs.push(LongRun {
            target: format!("lightning {}", backend_name(backend)),
            trajectories: clients,
            steps_each: args.long_steps,
            start_steps_per_sec: start,
            end_steps_per_sec: end,
            p99_ms: run.percentile_ms(0.99),
        });
    }
    Ok(runs)
}

fn backend_name(b: BenchBackend) -> &'static str {
    match b {
        BenchBackend::Sqlite => "sqlite",
        BenchBackend::Postgres => "postgres",
    }
}

async fn raw_suite(args: &BenchArgs) -> anyhow::Result<Vec<RawRow>> {
    let mut rows = Vec::new();
    for &backend in &args.backend {
        let modes = raw_modes(backend);
        let progress = progress_bar(args, (modes.len() as u64 + 2) * u64::from(args.rounds));
        for round in 1..=usize::from(args.rounds) {
            rows.extend(raw_round(args, backend, round, &modes, &progress).await?);
        }
        progress.finish_and_clear();
    }
    Ok(rows)
}

fn raw_modes(backend: BenchBackend) -> Vec<(&'static str, lightning_store::raw_ceiling::RawMode)> {
    use lightning_store::raw_ceiling::RawMode;
    let mut modes = vec![
        ("INSERT 10 rows/tx", RawMode::Insert { rows_per_tx: 10 }),
        ("INSERT 200 rows/tx", RawMode::Insert { rows_per_tx: 200 }),
    ];
    if backend == BenchBackend::Postgres {
        modes.push(("COPY 200 rows/tx", RawMode::Copy { rows_per_tx: 200 }));
    }
    modes
}

/// The raw suite's rows after the ceilings: the store alone, then the collector (the row every
/// ratio divides).
const RAW_DIRECT: &str = "lightning store, direct (no HTTP)";
const RAW_COLLECTOR: &str = "lightning collector (HTTP, batches of --batch)";

/// One round: every ceiling, the store direct, then the collector, each on a fresh store.
async fn raw_round(
    args: &BenchArgs,
    backend: BenchBackend,
    round: usize,
    modes: &[(&'static str, lightning_store::raw_ceiling::RawMode)],
    progress: &ProgressBar,
) -> anyhow::Result<Vec<RawRow>> {
    let duration = Duration::from_secs_f64(args.seconds);
    let clients = match backend {
        BenchBackend::Sqlite => 1,
        BenchBackend::Postgres => args.wide_concurrency,
    };
    let mut rows = Vec::new();
    for &(what, mode) in modes {
        progress.set_message(format!("raw {backend:?} {what} (round {round})"));
        let store = fresh_store(args, backend, args.wide_concurrency as u32).await?;
        let cpu = cpu_sample(args, backend);
        let r = store
            .raw_ceiling(mode, clients, duration, args.step_bytes)
            .await?;
        let cpu = cpu_since(cpu, args, backend, r.steps as usize);
        rows.push(RawRow {
            backend,
            round,
            what: what.into(),
            concurrency: clients,
            steps_per_sec: r.steps_per_sec,
            cpu,
        });
        progress.inc(1);
    }
    // The store's own write path with no HTTP in front, then the collector: same rows, same
    // run, as many clients as the ceilings' connections.
    for (path, what) in [(Path::Direct, RAW_DIRECT), (Path::Collector, RAW_COLLECTOR)] {
        progress.set_message(format!("raw {backend:?} {path:?} (round {round})"));
        let store = fresh_store(args, backend, args.wide_concurrency as u32).await?;
        let m = measure(
            args,
            backend,
            path,
            args.wide_concurrency,
            store.store.clone(),
        )
        .await?;
        rows.push(RawRow {
            backend,
            round,
            what: what.into(),
            concurrency: args.wide_concurrency,
            steps_per_sec: m.steps_per_sec,
            cpu: m.cpu,
        });
        progress.inc(1);
    }
    Ok(rows)
}

/// The Express peer: copied to a temporary directory, `npm ci`, `node server.mjs`.
struct Peer {
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
    base: String,
}

impl Peer {
    async fn start(source: &std::path::Path, database_url: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            source.join("server.mjs").is_file(),
            "no Express peer at {} (pass --express-peer)",
            source.display()
        );
        let node = tokio::process::Command::new("node")
            .arg("--version")
            .output()
            .await
            .context("Node.js is not available")?;
        anyhow::ensure!(node.status.success(), "node --version failed");
        let dir = tempfile::tempdir()?;
        for file in ["server.mjs", "package.json", "package-lock.json"] {
            std::fs::copy(source.join(file), dir.path().join(file))
                .with_context(|| format!("copying the peer's {file}"))?;
        }
        let install = tokio::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(dir.path())
            .output()
            .await
            .context("npm is not available")?;
        anyhow::ensure!(
            install.status.success(),
            "npm ci failed for the peer: {}",
            String::from_utf8_lossy(&install.stderr)
        );
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let child = tokio::process::Command::new("node")
            .arg("server.mjs")
            .current_dir(dir.path())
            .env("DATABASE_URL", database_url)
            .env("API_KEY", BENCH_KEY)
            .env("PORT", port.to_string())
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .context("starting node server.mjs")?;
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..100 {
            if client.get(format!("{base}/health")).send().await.is_ok() {
                return Ok(Self {
                    child,
                    _dir: dir,
                    base,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("the Express peer did not answer /health within 10 s")
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn default_peer_dir() -> std::path::PathBuf {
    // crates/cli -> the repository root -> its sibling `shared/`.
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peers/express-collector")
}

async fn peer_suite(args: &BenchArgs) -> anyhow::Result<Vec<PeerRow>> {
    let source = args.express_peer.clone().unwrap_or_else(default_peer_dir);
    let clients = args.wide_concurrency;
    let connections = clients as u32;
    let mut rows = Vec::new();
    let progress = progress_bar(args, 4);
    for (workload, stop, per_trajectory) in [
        (
            format!(
                "short trajectories ({} steps)",
                BATCHES_PER_TRAJECTORY * args.batch
            ),
            Stop::Deadline(Instant::now()),
            BATCHES_PER_TRAJECTORY,
        ),
        (
            format!("long trajectories ({} steps)", args.peer_long_steps),
            Stop::Steps(args.peer_long_steps),
            usize::MAX,
        ),
    ] {
        let stop_now = |stop: Stop| match stop {
            Stop::Deadline(_) => {
                Stop::Deadline(Instant::now() + Duration::from_secs_f64(args.seconds))
            }
            s @ Stop::Steps(_) => s,
        };
        progress.set_message(format!("peer: lightning, {workload}"));
        let store = fresh_store(args, BenchBackend::Postgres, connections).await?;
        let ours = Arc::new(Target::Http(HttpTarget::start(store.store.clone()).await?));
        let lightning = drive_all(ours, clients, args, stop_now(stop), per_trajectory).await?;
        drop(store);
        progress.inc(1);
        progress.set_message(format!("peer: express, {workload}"));
        let schema = lightning_store::scratch::ScratchSchema::create(&args.postgres_url)
            .await
            .context("empty schema for the Express peer")?;
        let peer = Peer::start(&source, &schema.database_url).await?;
        let theirs = Arc::new(Target::Http(HttpTarget::external(peer.base.clone())));
        let express = drive_all(theirs, clients, args, stop_now(stop), per_trajectory).await?;
        drop(peer);
        progress.inc(1);
        rows.push(PeerRow {
            workload,
            lightning_steps_per_sec: lightning.steps_per_sec(args.batch),
            express_steps_per_sec: express.steps_per_sec(args.batch),
            lightning_p99_ms: lightning.percentile_ms(0.99),
            express_p99_ms: express.percentile_ms(0.99),
        });
    }
    progress.finish_and_clear();
    Ok(rows)
}

async fn reads_suite(args: &BenchArgs) -> anyhow::Result<Vec<ReadRow>> {
    let mut rows = Vec::new();
    for &backend in &args.backend {
        let store = fresh_store(args, backend, 10).await?;
        let big = seed_reads(args, backend, store.store.clone()).await?;
        let http = HttpTarget::start(store.store.clone()).await?;
        // A cursor 100 pages deep, found the way a client would: by paging.
        let mut cursor = String::new();
        for _ in 0..100 {
            let page = http
                .get(&format!("/api/trajectories?limit=50&cursor={cursor}"))
                .await?;
            cursor = page.0["nextCursor"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        }
        let since = (chrono::Utc::now() - chrono::Duration::days(30))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        for (what, path) in [
            (
                "list, first page (50)".to_string(),
                "/api/trajectories?limit=50".to_string(),
            ),
            (
                "list, 100 pages deep".to_string(),
                format!("/api/trajectories?limit=50&cursor={cursor}"),
            ),
            (
                "detail, 10,000 steps".to_string(),
                format!("/api/trajectories/{big}"),
            ),
            (
                "stats, 30 days".to_string(),
                format!("/api/stats?since={since}"),
            ),
        ] {
            let mut latencies = Vec::with_capacity(args.read_requests);
            let mut bytes = 0;
            for _ in 0..args.read_requests {
                let began = Instant::now();
                let (_, len) = http.get(&path).await?;
                latencies.push(began.elapsed());
                bytes = len;
            }
            latencies.sort_unstable();
            rows.push(ReadRow {
                backend,
                what,
                requests: latencies.len(),
                p50_ms: percentile(&latencies, 0.5),
                p95_ms: percentile(&latencies, 0.95),
                max_ms: percentile(&latencies, 1.0),
                response_bytes: bytes,
            });
        }
    }
    Ok(rows)
}

/// Stores `--read-steps` steps: one trajectory of 10,000 steps, the rest in trajectories of
/// 100, started over the last 30 days. Returns the big one's id.
async fn seed_reads(
    args: &BenchArgs,
    backend: BenchBackend,
    store: Arc<dyn Store>,
) -> anyhow::Result<uuid::Uuid> {
    const BIG: usize = 10_000;
    const SMALL: usize = 100;
    let small = args.read_steps.saturating_sub(BIG) / SMALL;
    let progress = progress_bar(args, (small + 1) as u64);
    progress.set_message(format!(
        "reads: storing {} steps in {backend:?}",
        args.read_steps
    ));
    let now = lightning_core::time::now();
    let start = |i: usize| {
        let store = store.clone();
        async move {
            let t = NewTrajectory {
                agent_id: format!("agent-{}", i % 7),
                task_type: Some("bench".into()),
                prompt: Some(format!("task {i}")),
                start_time: Some(
                    now - chrono::Duration::seconds((i as i64 * 2_592_000) / (small as i64 + 1)),
                ),
                ..Default::default()
            };
            store.start_trajectory(&t).await
        }
    };
    let big = start(0).await?;
    for first in (0..BIG).step_by(1000) {
        let chunk = steps(first as i64, (BIG - first).min(1000), args.read_step_bytes);
        store.append_steps(big, chunk).await?;
    }
    progress.inc(1);
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(1));
    futures::stream::iter(1..=small)
        .map(|i| {
            let (store, progress) = (store.clone(), progress.clone());
            let bytes = args.read_step_bytes;
            async move {
                let id = start(i).await?;
                let mut batch = steps(0, SMALL, bytes);
                if i % 5 == 0 {
                    batch[SMALL - 1].error = Some("exit 1".into());
                }
                store.append_steps(id, batch).await?;
                if i % 3 != 0 {
                    let c = lightning_core::Completion {
                        success: i % 4 != 0,
                        ..Default::default()
                    };
                    store.complete_trajectory(id, &c).await?;
                }
                progress.inc(1);
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(8)
        .try_collect::<()>()
        .await?;
    let _ = done;
    progress.finish_and_clear();
    Ok(big)
}

enum Target {
    Direct(Arc<dyn Store>),
    Http(HttpTarget),
}

struct HttpTarget {
    base: String,
    client: reqwest::Client,
    _shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

const BENCH_KEY: &str = "bench-key";

impl HttpTarget {
    async fn start(store: Arc<dyn Store>) -> anyhow::Result<Self> {
        let config = CollectorConfig {
            api_key: ApiKey::new(BENCH_KEY),
            body_limit: DEFAULT_BODY_LIMIT,
            dashboard_dir: None,
            limits: lightning_collector::Limits::default(),
        };
        let limits = config.limits.clone();
        let app = lightning_collector::router(store, config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        // The same server loop and limits as `lightning serve`.
        tokio::spawn(async move {
            let _ = lightning_collector::serve(listener, app, &limits, async move {
                let _ = rx.await;
            })
            .await;
        });
        Ok(Self {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            _shutdown: Some(tx),
        })
    }

    /// A collector running elsewhere (the Express peer), same key, same client.
    fn external(base: String) -> Self {
        Self {
            base,
            client: reqwest::Client::new(),
            _shutdown: None,
        }
    }

    /// Posts `body` serialized straight to bytes (no intermediate `Value`: the load generator
    /// shares the CPUs with the server it measures).
    async fn post(&self, path: &str, body: &impl Serialize) -> anyhow::Result<Value> {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(BENCH_KEY)
            .json(body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        anyhow::ensure!(status.is_success(), "{path}: {status} {body}");
        Ok(body)
    }

    /// The parsed body and its size in bytes.
    async fn get(&self, path: &str) -> anyhow::Result<(Value, usize)> {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(BENCH_KEY)
            .send()
            .await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        let body: Value = serde_json::from_slice(&bytes)?;
        anyhow::ensure!(status.is_success(), "{path}: {status} {body}");
        Ok((body, bytes.len()))
    }
}

fn steps(first: i64, count: usize, bytes: usize) -> Vec<NewStep> {
    let output = "x".repeat(bytes);
    (0..count as i64)
        .map(|i| NewStep {
            step_number: first + i,
            timestamp: Some(lightning_core::time::now()),
            tool_name: if i % 3 == 0 { "Read" } else { "Bash" }.into(),
            tool_input: Some(
                json!({"command": format!("cargo test --package p{i}"), "timeout": 120000}),
            ),
            tool_output: Some(json!(output)),
            duration_ms: Some(15),
            tool_use_id: Some(format!("toolu_{first}_{i}")),
            ..Default::default()
        })
        .collect()
}

impl Target {
    async fn start_trajectory(&self) -> anyhow::Result<uuid::Uuid> {
        let t = NewTrajectory {
            agent_id: "bench".into(),
            task_type: Some("bench".into()),
            start_time: Some(lightning_core::time::now()),
            ..Default::default()
        };
        Ok(match self {
            Target::Direct(store) => store.start_trajectory(&t).await?,
            Target::Http(http) => http.post("/api/trajectories/start", &t).await?["trajectoryId"]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("start returned no trajectoryId"))?
                .parse()?,
        })
    }

    /// Sends batches until `stop`; returns each batch's completion time and latency.
    async fn drive(
        &self,
        stop: Stop,
        batch: usize,
        bytes: usize,
        batches_per_trajectory: usize,
    ) -> anyhow::Result<Vec<(Instant, Duration)>> {
        let mut out = Vec::new();
        let mut trajectory = self.start_trajectory().await?;
        let (mut sent, mut total) = (0usize, 0usize);
        loop {
            match stop {
                Stop::Deadline(d) if Instant::now() >= d => break,
                Stop::Steps(n) if total >= n => break,
                _ => {}
            }
            if sent == batches_per_trajectory {
                trajectory = self.start_trajectory().await?;
                sent = 0;
            }
            let batch_steps = steps((sent * batch) as i64, batch, bytes);
            let began = Instant::now();
            match self {
                Target::Direct(store) => store.append_steps(trajectory, batch_steps).await?,
                Target::Http(http) => {
                    http.post(
                        &format!("/api/trajectories/{trajectory}/steps/batch"),
                        &lightning_core::ingest::StepBatch { steps: batch_steps },
                    )
                    .await?;
                }
            }
            let now = Instant::now();
            out.push((now, now - began));
            sent += 1;
            total += batch;
        }
        Ok(out)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    a / b.max(f64::MIN_POSITIVE)
}

/// Median and range of `values` (not empty).
fn median_range(values: &mut [f64]) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    (median, values[0], values[n - 1])
}

/// `median` alone for one round, else `median (min–max)`.
fn median_and_range(values: &mut [f64], digits: usize, unit: &str) -> String {
    let (median, min, max) = median_range(values);
    if values.len() == 1 {
        format!("{median:.digits$}{unit}")
    } else {
        format!("{median:.digits$}{unit} ({min:.digits$}–{max:.digits$})")
    }
}

/// One line per writer: steps/s and collector/this, each ratio taken within its round.
fn print_raw(args: &BenchArgs, rows: &[RawRow]) {
    let rounds = rows.iter().map(|x| x.round).max().unwrap_or(1);
    println!(
        "Raw ceilings: the same rows into a bare table of the same columns and key, {} s each, \
         {rounds} round(s), median (min–max):",
        args.seconds
    );
    println!(
        "{:<9} {:<48} {:>5} {:>22} {:>22} {:>7} {:>7} {:>7}",
        "backend", "writer", "conn", "steps/s", "collector/this", "load", "server", "db"
    );
    for backend in [BenchBackend::Sqlite, BenchBackend::Postgres] {
        let of_backend: Vec<_> = rows.iter().filter(|x| x.backend == backend).collect();
        let collector = |round: usize| {
            of_backend
                .iter()
                .find(|x| x.round == round && x.what == RAW_COLLECTOR)
                .map(|x| x.steps_per_sec)
        };
        let writers = raw_modes(backend).into_iter().map(|(what, _)| what);
        for what in writers.chain([RAW_DIRECT, RAW_COLLECTOR]) {
            let same: Vec<_> = of_backend.iter().filter(|x| x.what == what).collect();
            let Some(first) = same.first() else {
                continue;
            };
            let mut rates: Vec<f64> = same.iter().map(|x| x.steps_per_sec).collect();
            let mut ratios: Vec<f64> = same
                .iter()
                .filter_map(|x| Some(ratio(collector(x.round)?, x.steps_per_sec)))
                .collect();
            let cpu = |part: fn(&CpuPerStep) -> Option<f64>| {
                let mut us: Vec<f64> = same.iter().filter_map(|x| part(x.cpu.as_ref()?)).collect();
                if us.is_empty() {
                    "-".to_string()
                } else {
                    format!("{:.1}", median_range(&mut us).0)
                }
            };
            println!(
                "{:<9} {:<48} {:>5} {:>22} {:>22} {:>7} {:>7} {:>7}",
                backend_name(backend),
                what,
                first.concurrency,
                median_and_range(&mut rates, 0, ""),
                if ratios.is_empty() {
                    "-".to_string()
                } else {
                    median_and_range(&mut ratios, 2, "x")
                },
                cpu(|c| Some(c.load_us)),
                cpu(|c| Some(c.server_us)),
                cpu(|c| c.database_us),
            );
        }
    }
    println!(
        "load / server / db: CPU µs per stored step (median of rounds) of the load generator's \
         thread, the rest of this process (the collector, or the raw client) and the local \
         PostgreSQL server's processes\n"
    );
}

fn print_report(args: &BenchArgs, r: &Report) {
    println!(
        "Batches of {} steps of ~{} B; client and server on this machine; every ratio compares \
         figures of this run.\n",
        args.batch, args.step_bytes
    );
    if !r.ingest.is_empty() {
        println!(
            "Ingest, short trajectories ({} steps each), {} s per measurement:",
            BATCHES_PER_TRAJECTORY * args.batch,
            args.seconds
        );
        println!(
            "{:<9} {:>5} {:>14} {:>9} {:>9} {:>14} {:>9} {:>9} {:>8} {:>9} {:>7}",
            "backend",
            "conc",
            "http steps/s",
            "p50 ms",
            "p99 ms",
            "direct steps/s",
            "p50 ms",
            "p99 ms",
            "ratio",
            "steps/tx",
            "tx ms"
        );
        for pair in r.ingest.chunks(2) {
            let (direct, http) = (&pair[0], &pair[1]);
            println!(
                "{:<9} {:>5} {:>14.0} {:>9.2} {:>9.2} {:>14.0} {:>9.2} {:>9.2} {:>7.0}% {:>9.1} {:>7.2}",
                backend_name(http.backend),
                http.concurrency,
                http.steps_per_sec,
                http.p50_ms,
                http.p99_ms,
                direct.steps_per_sec,
                direct.p50_ms,
                direct.p99_ms,
                100.0 * ratio(http.steps_per_sec, direct.steps_per_sec),
                http.steps_per_transaction,
                http.transaction_ms,
            );
        }
        println!("ratio = collector over HTTP / direct store writes; steps/tx and tx ms: mean size and wall time of the http run's group-commit transactions\n");
    }
    if !r.long.is_empty() {
        println!("Long trajectories (HTTP, one client per trajectory; start/end = first/last 10 % of batches):");
        println!(
            "{:<22} {:>6} {:>8} {:>14} {:>14} {:>9} {:>8}",
            "target", "traj", "steps", "start steps/s", "end steps/s", "p99 ms", "end/start"
        );
        for l in &r.long {
            println!(
                "{:<22} {:>6} {:>8} {:>14.0} {:>14.0} {:>9.2} {:>8.2}",
                l.target,
                l.trajectories,
                l.steps_each,
                l.start_steps_per_sec,
                l.end_steps_per_sec,
                l.p99_ms,
                ratio(l.end_steps_per_sec, l.start_steps_per_sec)
            );
        }
        println!();
    }
    if !r.raw.is_empty() {
        print_raw(args, &r.raw);
    }
    if let Some(why) = &r.peer_skipped {
        println!("Express peer: skipped ({why})\n");
    }
    if !r.peer.is_empty() {
        println!(
            "Against the Express + pg peer (PostgreSQL, {} clients, same load generator):",
            args.wide_concurrency
        );
        println!(
            "{:<34} {:>16} {:>16} {:>8} {:>10} {:>10}",
            "workload", "lightning st/s", "express st/s", "ratio", "ours p99", "their p99"
        );
        for p in &r.peer {
            println!(
                "{:<34} {:>16.0} {:>16.0} {:>7.2}x {:>10.2} {:>10.2}",
                p.workload,
                p.lightning_steps_per_sec,
                p.express_steps_per_sec,
                ratio(p.lightning_steps_per_sec, p.express_steps_per_sec),
                p.lightning_p99_ms,
                p.express_p99_ms
            );
        }
        println!();
    }
    if !r.reads.is_empty() {
        println!(
            "Reads over HTTP with {} steps stored (~{} B outputs), sequential requests:",
            args.read_steps, args.read_step_bytes
        );
        println!(
            "{:<9} {:<24} {:>5} {:>9} {:>9} {:>9} {:>12}",
            "backend", "request", "n", "p50 ms", "p95 ms", "max ms", "bytes"
        );
        for x in &r.reads {
            println!(
                "{:<9} {:<24} {:>5} {:>9.2} {:>9.2} {:>9.2} {:>12}",
                backend_name(x.backend),
                x.what,
                x.requests,
                x.p50_ms,
                x.p95_ms,
                x.max_ms,
                x.response_bytes
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_range_of_odd_and_even_counts() {
        assert_eq!(median_range(&mut [3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(median_range(&mut [4.0, 1.0, 3.0, 2.0]), (2.5, 1.0, 4.0));
        assert_eq!(median_and_range(&mut [0.5], 2, "x"), "0.50x");
        assert_eq!(
            median_and_range(&mut [0.7, 0.5, 0.6], 2, "x"),
            "0.60x (0.50–0.70)"
        );
    }
}
