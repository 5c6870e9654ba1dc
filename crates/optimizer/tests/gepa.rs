//! `--strategy gepa` end to end on the synthetic suite: the real `--evaluator command` path and
//! the scripted LLM behind the Anthropic wire protocol, on SQLite and PostgreSQL, next to APO
//! under the same flags; the held-out rules (validation for selection, test touched once, no
//! held-out example in any LLM request, registration only when the test confirms); and the
//! reflective critique reading the parent's own rollout, with its recorded trajectory.

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use lightning_core::{
    CandidateStatus, Completion, NewStep, NewTrajectory, Split, StepKind, Verdict,
};
use lightning_optimizer::{
    apo::{ApoConfig, NoProgress, Strategy},
    dataset::{DatasetQuery, Example},
    evaluator::{CandidateRef, Evaluation, Evaluator},
    llm::{Llm, LlmError, LlmRequest, LlmResponse, UsageReport},
    run::{optimize, prepare, OptimizeOptions, Prepared, RegistrationGate},
    synthetic::{self, Variant},
    templates::Templates,
};
use lightning_store::{testing::TestStore, Backend};
use serde_json::json;

#[path = "support/scripted_llm.rs"]
mod scripted_llm;
use scripted_llm::scripted_server;

const TRAJECTORIES: usize = 120;

fn options(strategy: Strategy, seed: u64, out: &std::path::Path) -> OptimizeOptions {
    OptimizeOptions {
        apo: ApoConfig {
            strategy,
            beam: 2,
            rounds: 3,
            branch: 2,
            minibatch: 4,
            seed,
            concurrency: 8,
            max_evaluations: Some(400),
            ..Default::default()
        },
        templates: Templates::default(),
        config: json!({"test": "gepa"}),
        register: true,
        promote: false,
        gate: RegistrationGate::default(),
        out: Some(out.to_path_buf()),
    }
}

fn query() -> DatasetQuery {
    DatasetQuery {
        limit: TRAJECTORIES,
        agent_id: Some(synthetic::AGENT.into()),
        ..Default::default()
    }
}

/// "TK-0042" of each example in `set`.
fn ids(p: &Prepared, set: &[usize]) -> Vec<String> {
    set.iter()
        .map(|&i| {
            let task = &p.dataset.examples[i].task;
            task[task.find("TK-").unwrap()..][..7].to_string()
        })
        .collect()
}

fn assert_no_leak(p: &Prepared, requests: &[String]) {
    assert!(!requests.is_empty());
    let held_out: Vec<String> = ids(p, &p.dataset.validation)
        .into_iter()
        .chain(ids(p, &p.dataset.test))
        .collect();
    for r in requests {
        for id in &held_out {
            assert!(
                !r.contains(id.as_str()),
                "{id} (held out) leaked into:\n{r}"
            );
        }
    }
    let train = ids(p, &p.dataset.train);
    assert!(requests
        .iter()
        .any(|r| train.iter().any(|id| r.contains(id.as_str()))));
}

async fn end_to_end(backend: Backend, strategy: Strategy, variant: Variant, seed: u64) {
    let t = TestStore::new(backend).await;
    synthetic::seed_store(t.store.as_ref(), TRAJECTORIES)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (base, seen) = scripted_server(variant).await;
    let llm = scripted_llm::http_llm(base);
    let evaluator = scripted_llm::synthetic_command_evaluator(dir.path(), seed);
    let out = dir.path().join("best.txt");
    let prepared = prepare(&t.store, &query(), Default::default(), seed, None)
        .await
        .unwrap();
    let outcome = optimize(
        t.store.clone(),
        prepared.clone(),
        options(strategy, seed, &out),
        llm.clone(),
        evaluator,
        &NoProgress,
    )
    .await
    .unwrap();
    let requests = seen.lock().unwrap().clone();
    assert_no_leak(&prepared, &requests);
    assert_eq!(
        outcome.failed_evaluations, 0,
        "{:?}",
        outcome.evaluation_errors
    );
    let run = &outcome.run;
    // Search evaluations within the budget; the test scoring (2 × 36) comes on top.
    let test_n = prepared.dataset.test.len() as i64;
    assert!(run.evaluations <= 400 + 2 * test_n, "{}", run.evaluations);
    let evals = t.store.list_evaluations(run.id).await.unwrap();
    assert_eq!(evals.len() as i64, run.evaluations);
    let on_test: HashSet<_> = evals
        .iter()
        .filter(|x| x.split == Split::Test)
        .map(|x| x.candidate_id)
        .collect();
    let best = outcome
        .candidates
        .iter()
        .find(|c| c.id == run.best_candidate_id.unwrap())
        .unwrap();
    let seed_c = outcome
        .candidates
        .iter()
        .find(|c| c.status == CandidateStatus::Seed)
        .unwrap();
    assert!(on_test.iter().all(|c| *c == best.id || *c == seed_c.id));
    let stored = t.store.list_candidates(run.id).await.unwrap();
    assert_eq!(stored.len(), outcome.candidates.len());
    let e = &outcome.evidence;
    let true_best = synthetic::true_rate(&best.prompt, &prepared.dataset, &prepared.dataset.test);
    let true_start = synthetic::true_rate(
        synthetic::START_PROMPT,
        &prepared.dataset,
        &prepared.dataset.test,
    );
    println!(
        "{backend:?} {strategy:?} {variant:?} seed {seed}: {} evaluations, {} LLM calls, {} candidates; \
         test {:.3} → {:.3} (true {:.3} → {:.3}); {}",
        run.evaluations,
        run.llm_calls,
        outcome.candidates.len(),
        e.baseline_test.mean,
        e.best_test.mean,
        true_start,
        true_best,
        outcome.label
    );
    match variant {
        Variant::Hopeless => {
            assert!(outcome.registered.is_none(), "false registration");
            assert_eq!(e.verdict, Verdict::NoSignificantImprovement);
        }
        Variant::Improvable => {
            assert_eq!(e.verdict, Verdict::Registered, "{e:?}");
            assert!(true_best > true_start + 0.3, "{true_start} → {true_best}");
        }
    }
    if strategy == Strategy::Gepa {
        // The critiques read the parent's own rollouts (reward and feedback of this prompt),
        // and the template pairs rotate: the one-change edit is used.
        assert!(requests
            .iter()
            .any(|r| r.contains("Reward of the current prompt:")
                && r.contains("Evaluator feedback: failed; missing:")));
        assert!(requests
            .iter()
            .any(|r| r.contains("Make exactly one change")));
        assert!(outcome.candidates.iter().any(|c| c
            .critique
            .as_deref()
            .is_some_and(|x| x.starts_with("[critique+one-change]"))));
    }
}

#[tokio::test]
async fn gepa_improvable_sqlite() {
    end_to_end(Backend::Sqlite, Strategy::Gepa, Variant::Improvable, 9).await;
}

#[tokio::test]
async fn gepa_improvable_postgres() {
    end_to_end(Backend::Postgres, Strategy::Gepa, Variant::Improvable, 11).await;
}

#[tokio::test]
async fn gepa_hopeless_postgres() {
    end_to_end(Backend::Postgres, Strategy::Gepa, Variant::Hopeless, 7).await;
}

#[tokio::test]
async fn apo_improvable_sqlite() {
    end_to_end(Backend::Sqlite, Strategy::Apo, Variant::Improvable, 9).await;
}

#[tokio::test]
async fn apo_improvable_postgres() {
    end_to_end(Backend::Postgres, Strategy::Apo, Variant::Improvable, 11).await;
}

/// An evaluator whose rollouts each report a trajectory stored beforehand (assistant text, a
/// tool call with a long input and an error, a final answer): both strategies' critiques show
/// it, capped per example.
struct ReportsTrajectory {
    id: uuid::Uuid,
}

#[async_trait]
impl Evaluator for ReportsTrajectory {
    fn name(&self) -> &'static str {
        "command"
    }

    async fn evaluate(
        &self,
        c: &CandidateRef<'_>,
        ex: &Example,
    ) -> Result<Evaluation, lightning_optimizer::OptimizerError> {
        let mut e = synthetic::rollout(c.prompt, &ex.task, ex.trajectory_id, 3);
        e.trajectory_id = Some(self.id);
        Ok(e)
    }
}

struct Recording {
    requests: Mutex<Vec<String>>,
}

#[async_trait]
impl Llm for Recording {
    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        self.requests.lock().unwrap().push(request.prompt.clone());
        Ok(LlmResponse {
            text: synthetic::scripted_reply(&request.prompt, Variant::Improvable),
            input_tokens: 1,
            output_tokens: 1,
        })
    }

    fn usage(&self) -> UsageReport {
        UsageReport::default()
    }
}

#[tokio::test]
async fn critiques_read_the_rollouts_own_trajectory() {
    let t = TestStore::new(Backend::Sqlite).await;
    synthetic::seed_store(t.store.as_ref(), TRAJECTORIES)
        .await
        .unwrap();
    // The rollout's trajectory, by another agent so it is not in the dataset.
    let id = t
        .store
        .start_trajectory(&NewTrajectory {
            agent_id: "rollout-agent".into(),
            prompt: Some("rollout".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let long_input = format!(
        "{{\"command\": \"make test\", \"env\": \"{}\"}}",
        "E".repeat(2000)
    );
    t.store
        .append_steps(
            id,
            vec![
                NewStep {
                    step_number: 0,
                    kind: Some(StepKind::Message),
                    tool_name: "assistant".into(),
                    tool_output: Some(json!("I will skip the tests to save time.")),
                    ..Default::default()
                },
                NewStep {
                    step_number: 1,
                    tool_name: "Bash".into(),
                    tool_input: Some(serde_json::from_str(&long_input).unwrap()),
                    error: Some("exit status 2: 3 tests failed".into()),
                    ..Default::default()
                },
            ],
        )
        .await
        .unwrap();
    t.store
        .complete_trajectory(
            id,
            &Completion {
                success: false,
                result: Some(json!("Done, pushed without testing.")),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for strategy in [Strategy::Gepa, Strategy::Apo] {
        let prepared = prepare(&t.store, &query(), Default::default(), 2, None)
            .await
            .unwrap();
        let llm = Arc::new(Recording {
            requests: Mutex::new(Vec::new()),
        });
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(strategy, 2, &dir.path().join("best.txt"));
        opts.apo.rounds = 1;
        opts.register = false;
        optimize(
            t.store.clone(),
            prepared,
            opts,
            llm.clone(),
            Arc::new(ReportsTrajectory { id }),
            &NoProgress,
        )
        .await
        .unwrap();
        let requests = llm.requests.lock().unwrap();
        let critique = requests
            .iter()
            .find(|r| r.contains("<examples>"))
            .expect("a critique request");
        let marker = match strategy {
            Strategy::Gepa => "Its trajectory:",
            Strategy::Apo => "The current prompt's run:",
        };
        assert!(critique.contains(marker), "{strategy:?}: {critique}");
        assert!(
            critique.contains("assistant: I will skip the tests to save time."),
            "{critique}"
        );
        assert!(
            critique.contains("Bash({\"command\":\"make test\""),
            "{critique}"
        );
        assert!(
            critique.contains("ERROR: exit status 2: 3 tests failed"),
            "{critique}"
        );
        assert!(
            critique.contains("final answer: Done, pushed without testing."),
            "{critique}"
        );
        // The tool input is cut by size, not dropped; each example stays within its token cap.
        assert!(critique.contains("EEEE…"), "{critique}");
        let examples =
            &critique[critique.find("<examples>").unwrap()..critique.find("</examples>").unwrap()];
        for block in examples.split("### Run ").skip(1) {
            assert!(
                block.chars().count() <= lightning_optimizer::gepa::EXAMPLE_TOKEN_CAP * 4 + 120,
                "{} characters",
                block.chars().count()
            );
        }
    }
}

/// The synthetic rollout at a fixed reported cost.
struct Priced {
    usd: f64,
}

#[async_trait]
impl Evaluator for Priced {
    fn name(&self) -> &'static str {
        "command"
    }

    async fn evaluate(
        &self,
        c: &CandidateRef<'_>,
        ex: &Example,
    ) -> Result<Evaluation, lightning_optimizer::OptimizerError> {
        let mut e = synthetic::rollout(c.prompt, &ex.task, ex.trajectory_id, 5);
        e.cost_usd = Some(self.usd);
        Ok(e)
    }
}

/// `--max-cost`: the search stops before the spend (evaluations' reported cost, test scoring
/// included) would pass the cap, says why, and stores the spend on the run.
#[tokio::test]
async fn the_cost_cap_stops_before_it_is_exceeded() {
    for strategy in [Strategy::Gepa, Strategy::Apo] {
        let t = TestStore::new(Backend::Sqlite).await;
        synthetic::seed_store(t.store.as_ref(), TRAJECTORIES)
            .await
            .unwrap();
        let prepared = prepare(&t.store, &query(), Default::default(), 4, None)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut opts = options(strategy, 4, &dir.path().join("best.txt"));
        opts.apo.max_evaluations = None;
        opts.apo.rounds = 20;
        opts.apo.max_cost_usd = Some(2.0);
        let llm = Arc::new(Recording {
            requests: Mutex::new(Vec::new()),
        });
        let outcome = optimize(
            t.store.clone(),
            prepared,
            opts,
            llm,
            Arc::new(Priced { usd: 0.01 }),
            &NoProgress,
        )
        .await
        .unwrap();
        let spent = outcome.run.config["costUsd"].as_f64().unwrap();
        let evals = t.store.list_evaluations(outcome.run.id).await.unwrap();
        let recorded: f64 = evals.iter().filter_map(|e| e.cost_usd).sum();
        println!(
            "{strategy:?}: spent {spent:.2} over {} evaluations; {:?}",
            evals.len(),
            outcome.stop_reason
        );
        assert!((spent - recorded).abs() < 1e-9, "{spent} vs {recorded}");
        assert!(spent <= 2.0 + 1e-9, "{spent}");
        // The cap, not the rounds, ended it, and more than half of it was used (APO's batches
        // are all or nothing, so it may stop further below the cap).
        assert!(
            outcome
                .stop_reason
                .as_deref()
                .unwrap()
                .contains("--max-cost"),
            "{:?}",
            outcome.stop_reason
        );
        assert!(spent > 1.0, "{spent}");
        // The heartbeat carries the same spend, and the run is not stale.
        let live = t.store.run_liveness(outcome.run.id).await.unwrap();
        assert!((live.spend.unwrap().cost_usd - spent).abs() < 1e-9);
        assert!(live.heartbeat_at.is_some());
    }
}
