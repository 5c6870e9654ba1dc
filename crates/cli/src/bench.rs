//! `lightning bench`: ingest throughput and latency of the collector over HTTP, against the
//! ceiling of the same rows written straight into the store, in one run on this machine.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use lightning_collector::{ApiKey, CollectorConfig, DEFAULT_BODY_LIMIT};
use lightning_core::{NewStep, NewTrajectory};
use lightning_store::{testing::TestStore, Store};
use serde::Serialize;
use serde_json::{json, Value};

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
    #[arg(long, env = "TEST_DATABASE_URL", default_value = lightning_store::testing::DEFAULT_TEST_DATABASE_URL)]
    postgres_url: String,

    /// Print results as JSON instead of a table.
    #[arg(long)]
    json: bool,
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
    /// The same rows through the store directly: the database's ceiling for this workload.
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
}

/// Batches per trajectory before a client starts a new one (~1,000 steps, a long agent run).
const BATCHES_PER_TRAJECTORY: usize = 100;

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.seconds > 0.0 && args.batch > 0,
        "--seconds and --batch must be positive"
    );
    anyhow::ensure!(
        args.concurrency.iter().all(|&c| c > 0),
        "--concurrency values must be positive"
    );
    let runs = args.backend.len() * args.concurrency.len() * 2;
    let progress = ProgressBar::new(runs as u64).with_style(
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    if args.json {
        progress.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut results = Vec::new();
    for &backend in &args.backend {
        for &concurrency in &args.concurrency {
            for path in [Path::Direct, Path::Collector] {
                progress.set_message(format!("{backend:?} {path:?} x{concurrency}"));
                // A fresh store per measurement, so earlier rows do not slow later ones.
                let store = match backend {
                    BenchBackend::Sqlite => TestStore::sqlite().await,
                    BenchBackend::Postgres => TestStore::postgres_at(&args.postgres_url).await,
                };
                results
                    .push(measure(&args, backend, path, concurrency, store.store.clone()).await?);
                progress.inc(1);
            }
        }
    }
    progress.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        print_table(&args, &results);
    }
    Ok(())
}

async fn measure(
    args: &BenchArgs,
    backend: BenchBackend,
    path: Path,
    concurrency: usize,
    store: Arc<dyn Store>,
) -> anyhow::Result<Measurement> {
    let target = match path {
        Path::Direct => Target::Direct(store),
        Path::Collector => Target::Http(HttpTarget::start(store).await?),
    };
    let target = Arc::new(target);
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (target, batch, bytes) = (target.clone(), args.batch, args.step_bytes);
            tokio::spawn(async move { target.drive(deadline, batch, bytes).await })
        })
        .collect();
    let mut latencies = Vec::new();
    for worker in workers {
        latencies.extend(worker.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len().max(1)) - 1;
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    Ok(Measurement {
        backend,
        path,
        concurrency,
        batches: latencies.len(),
        steps_per_sec: (latencies.len() * args.batch) as f64 / elapsed,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    })
}

enum Target {
    Direct(Arc<dyn Store>),
    Http(HttpTarget),
}

struct HttpTarget {
    base: String,
    client: reqwest::Client,
    _shutdown: tokio::sync::oneshot::Sender<()>,
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
            _shutdown: tx,
        })
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
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
}

fn steps(first: i64, count: usize, bytes: usize) -> Vec<NewStep> {
    let output = "x".repeat(bytes);
    (0..count as i64)
        .map(|i| NewStep {
            step_number: first + i,
            timestamp: Some(lightning_core::time::now()),
            tool_name: "Bash".into(),
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
            ..Default::default()
        };
        Ok(match self {
            Target::Direct(store) => store.start_trajectory(&t).await?,
            Target::Http(http) => http
                .post("/api/trajectories/start", &serde_json::to_value(&t)?)
                .await?["trajectoryId"]
                .as_str()
                .ok_or_else(|| anyhow::anyhow!("start returned no trajectoryId"))?
                .parse()?,
        })
    }

    /// Sends batches until the deadline; returns each batch's latency.
    async fn drive(
        &self,
        deadline: Instant,
        batch: usize,
        bytes: usize,
    ) -> anyhow::Result<Vec<Duration>> {
        let mut latencies = Vec::new();
        let mut trajectory = self.start_trajectory().await?;
        let mut sent = 0usize;
        while Instant::now() < deadline {
            if sent == BATCHES_PER_TRAJECTORY {
                trajectory = self.start_trajectory().await?;
                sent = 0;
            }
            let batch_steps = steps((sent * batch) as i64, batch, bytes);
            let began = Instant::now();
            match self {
                Target::Direct(store) => store.append_steps(trajectory, &batch_steps).await?,
                Target::Http(http) => {
                    http.post(
                        &format!("/api/trajectories/{trajectory}/steps/batch"),
                        &json!({"steps": batch_steps}),
                    )
                    .await?;
                }
            }
            latencies.push(began.elapsed());
            sent += 1;
        }
        Ok(latencies)
    }
}

fn print_table(args: &BenchArgs, results: &[Measurement]) {
    println!(
        "Ingest: batches of {} steps of ~{} B, {} s per measurement, client and server on this machine\n",
        args.batch, args.step_bytes, args.seconds
    );
    println!(
        "{:<9} {:>5} {:>14} {:>9} {:>9} {:>14} {:>9} {:>9} {:>8}",
        "backend",
        "conc",
        "http steps/s",
        "p50 ms",
        "p99 ms",
        "direct steps/s",
        "p50 ms",
        "p99 ms",
        "ratio"
    );
    for pair in results.chunks(2) {
        let (direct, http) = (&pair[0], &pair[1]);
        println!(
            "{:<9} {:>5} {:>14.0} {:>9.2} {:>9.2} {:>14.0} {:>9.2} {:>9.2} {:>7.0}%",
            format!("{:?}", http.backend).to_lowercase(),
            http.concurrency,
            http.steps_per_sec,
            http.p50_ms,
            http.p99_ms,
            direct.steps_per_sec,
            direct.p50_ms,
            direct.p99_ms,
            100.0 * http.steps_per_sec / direct.steps_per_sec.max(f64::MIN_POSITIVE),
        );
    }
    println!("\nratio = collector over HTTP / direct store writes (the database ceiling for this workload)");
}
