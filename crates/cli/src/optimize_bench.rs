//! `lightning optimize-bench`: the optimizer against a local fake Anthropic server of fixed
//! latency (wall time vs the ideal `calls ÷ concurrency × latency`), and dataset extraction
//! time for many stored trajectories. Methodology and results: docs/optimizer.md.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use axum::{routing::post, Json, Router};
use clap::Args;
use lightning_core::{Completion, NewStep, NewTrajectory};
use lightning_optimizer::{
    apo::{ApoConfig, NoProgress},
    dataset::{extract, DatasetQuery},
    evaluator::{judge::JudgeEvaluator, Evaluator},
    llm::{HttpLlm, Llm, LlmConfig, Provider},
    run::{optimize, prepare, OptimizeOptions},
    templates::Templates,
};
use lightning_store::{
    scratch::{postgres_url_from_env, ScratchStore},
    Store,
};
use serde_json::{json, Value};

#[derive(Debug, Args)]
pub struct OptimizeBenchArgs {
    /// `timing`: wall time against a fake LLM of fixed latency, and extraction speed.
    /// `synthetic`: true score reached vs evaluations spent, per search strategy, on the
    /// synthetic suite with a known optimum.
    #[arg(long, default_value = "timing", value_parser = ["timing", "synthetic"])]
    suite: String,

    #[command(flatten)]
    synthetic: crate::bench_synthetic::SyntheticArgs,

    /// Store to benchmark: `sqlite` (a temporary file) or `postgres` (a fresh schema in the
    /// database at TEST_DATABASE_URL, dropped afterwards).
    #[arg(long, default_value = "sqlite")]
    backend: String,

    /// Trajectories stored for the extraction measurement.
    #[arg(long, default_value_t = 10_000)]
    trajectories: usize,

    /// Steps per stored trajectory.
    #[arg(long, default_value_t = 5)]
    steps: usize,

    /// Latency of every fake LLM reply, in milliseconds.
    #[arg(long, default_value_t = 200)]
    latency_ms: u64,

    /// LLM requests and evaluations in flight.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,

    /// Trajectories the optimizer learns from.
    #[arg(long, default_value_t = 100)]
    dataset: usize,

    #[arg(long, default_value_t = 4)]
    beam: usize,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    #[arg(long, default_value_t = 4)]
    branch: usize,

    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: OptimizeBenchArgs) -> anyhow::Result<()> {
    if args.suite == "synthetic" {
        return crate::bench_synthetic::run(args.synthetic).await;
    }
    let group = lightning_store::GroupConfig::default();
    let test_store = match args.backend.as_str() {
        "sqlite" => ScratchStore::sqlite(group).await?,
        "postgres" => ScratchStore::postgres(&postgres_url_from_env(), 5, group).await?,
        other => anyhow::bail!("--backend must be sqlite or postgres (got {other})"),
    };
    let store = test_store.store.clone();

    eprintln!(
        "seeding {} trajectories × {} steps ({})…",
        args.trajectories, args.steps, args.backend
    );
    let seeded = Instant::now();
    seed(&store, args.trajectories, args.steps).await?;
    let seed_time = seeded.elapsed();

    let started = Instant::now();
    let examples = extract(
        &store,
        &DatasetQuery {
            limit: args.trajectories,
            agent_id: Some("bench-agent".into()),
            ..Default::default()
        },
    )
    .await?
    .examples;
    let extraction = started.elapsed();
    anyhow::ensure!(
        examples.len() == args.trajectories,
        "extracted {}",
        examples.len()
    );

    let latency = Duration::from_millis(args.latency_ms);
    let base_url = fake_llm(latency).await?;
    let mut config = LlmConfig::new(
        Provider::Anthropic,
        Some("fake-model".into()),
        "bench-key".into(),
        Some(base_url),
    );
    config.concurrency = args.concurrency;
    let llm: Arc<dyn Llm> = Arc::new(HttpLlm::new(config)?);
    let evaluator: Arc<dyn Evaluator> =
        Arc::new(JudgeEvaluator::new(llm.clone(), Templates::default().judge));
    let query = DatasetQuery {
        limit: args.dataset,
        agent_id: Some("bench-agent".into()),
        ..Default::default()
    };
    let prepared = prepare(&store, &query, Default::default(), 1, None).await?;
    let out = std::env::temp_dir().join(format!("lightning-bench-{}.txt", uuid::Uuid::new_v4()));
    let options = OptimizeOptions {
        apo: ApoConfig {
            beam: args.beam,
            rounds: args.rounds,
            branch: args.branch,
            concurrency: args.concurrency,
            seed: 1,
            ..Default::default()
        },
        templates: Templates::default(),
        config: json!({"bench": true}),
        register: true,
        promote: false,
        gate: Default::default(),
        out: Some(out.clone()),
    };
    let started = Instant::now();
    let outcome = optimize(
        store.clone(),
        prepared,
        options,
        llm.clone(),
        evaluator,
        &NoProgress,
    )
    .await
    .context("optimize")?;
    let wall = started.elapsed();
    let _ = std::fs::remove_file(&out);
    let calls = llm.usage().calls;
    let ideal = latency.mul_f64(calls as f64 / args.concurrency as f64);
    let results = json!({
        "backend": args.backend,
        "latencyMs": args.latency_ms,
        "concurrency": args.concurrency,
        "llmCalls": calls,
        "optimizerCalls": outcome.run.llm_calls,
        "evaluations": outcome.run.evaluations,
        "candidates": outcome.candidates.len(),
        "wallSeconds": wall.as_secs_f64(),
        "idealSeconds": ideal.as_secs_f64(),
        "efficiency": ideal.as_secs_f64() / wall.as_secs_f64(),
        "storedTrajectories": args.trajectories,
        "stepsPerTrajectory": args.steps,
        "seedSeconds": seed_time.as_secs_f64(),
        "extractionSeconds": extraction.as_secs_f64(),
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&results)?);
    } else {
        println!(
            "optimize ({}, beam {} × branch {} × {} rounds, judge): {} LLM calls ({} critique/edit + {} judge) at {} ms, concurrency {}",
            args.backend,
            args.beam,
            args.branch,
            args.rounds,
            calls,
            outcome.run.llm_calls,
            outcome.run.evaluations,
            args.latency_ms,
            args.concurrency
        );
        println!(
            "  wall {:.2} s, ideal {:.2} s (calls ÷ concurrency × latency), efficiency {:.0}%",
            wall.as_secs_f64(),
            ideal.as_secs_f64(),
            100.0 * ideal.as_secs_f64() / wall.as_secs_f64()
        );
        println!(
            "dataset extraction: {} trajectories × {} steps in {:.2} s ({:.0} trajectories/s; seeding took {:.1} s)",
            args.trajectories,
            args.steps,
            extraction.as_secs_f64(),
            args.trajectories as f64 / extraction.as_secs_f64(),
            seed_time.as_secs_f64()
        );
    }
    Ok(())
}

async fn seed(store: &Arc<dyn Store>, n: usize, steps: usize) -> anyhow::Result<()> {
    use futures::StreamExt;
    let now = lightning_core::time::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let store = store.clone();
            async move {
                let t = NewTrajectory {
                    agent_id: "bench-agent".into(),
                    task_type: Some(["search", "edit", "deploy"][i % 3].into()),
                    prompt: Some(format!("Task {i}: fix the failing build")),
                    system_prompt: Some("You are a careful coding agent.".into()),
                    start_time: Some(now - chrono::Duration::seconds(i as i64)),
                    ..Default::default()
                };
                let id = store.start_trajectory(&t).await?;
                let failed = i.is_multiple_of(3);
                let batch: Vec<NewStep> = (0..steps)
                    .map(|s| NewStep {
                        step_number: s as i64,
                        tool_name: ["Read", "Edit", "Bash"][s % 3].into(),
                        tool_input: Some(json!({"command": format!("step {s}")})),
                        tool_output: Some(json!("ok")),
                        error: (failed && s + 1 == steps)
                            .then(|| format!("exit status {}", 1 + i % 4)),
                        ..Default::default()
                    })
                    .collect();
                store.append_steps(id, batch).await?;
                store
                    .complete_trajectory(
                        id,
                        &Completion {
                            success: !failed,
                            ..Default::default()
                        },
                    )
                    .await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    Ok(())
}

/// A local Anthropic Messages endpoint answering every request after `latency`.
async fn fake_llm(latency: Duration) -> anyhow::Result<String> {
    let app = Router::new().route(
        "/v1/messages",
        post(move |Json(body): Json<Value>| async move {
            tokio::time::sleep(latency).await;
            let prompt = body["messages"][0]["content"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let text = if prompt.contains("\"score\"") {
                let score = (prompt.len() % 10) as f64 / 10.0;
                format!("{{\"score\": {score}, \"reason\": \"fake\"}}")
            } else if prompt.contains("<critique>") {
                format!(
                    "<prompt>You are a careful coding agent.\nRule {}: check exit codes.</prompt>",
                    prompt.len() % 97
                )
            } else {
                "- Check exit codes before continuing.".to_string()
            };
            Json(json!({
                "id": "msg_fake", "type": "message", "role": "assistant", "model": "fake-model",
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": prompt.len() / 4, "output_tokens": text.len() / 4}
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}
