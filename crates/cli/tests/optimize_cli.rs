//! `lightning optimize` / `lightning analyze` as a user runs them: flags, environment, output.

use std::{
    process::Command,
    sync::{Arc, Mutex},
};

use lightning_core::{Completion, NewStep, NewTrajectory};
use lightning_store::{testing::TestStore, Backend};
use serde_json::Value;

#[path = "../../optimizer/tests/support/scripted_llm.rs"]
mod scripted_llm;

async fn seeded() -> TestStore {
    let t = TestStore::new(Backend::Sqlite).await;
    for i in 0..12u32 {
        let id = t
            .store
            .start_trajectory(&NewTrajectory {
                agent_id: "cli-agent".into(),
                prompt: Some(format!("task {i}")),
                system_prompt: Some("You help.".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        let failed = i.is_multiple_of(3);
        t.store
            .append_steps(
                id,
                vec![NewStep {
                    step_number: 0,
                    tool_name: "Bash".into(),
                    error: failed.then(|| format!("exit status {i}")),
                    ..Default::default()
                }],
            )
            .await
            .unwrap();
        t.store
            .complete_trajectory(
                id,
                &Completion {
                    success: !failed,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    t
}

fn lightning(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_lightning"));
    cmd.args(args)
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("OPENAI_API_KEY")
        .env_remove("DATABASE_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn missing_key_is_named_before_the_database_is_touched() {
    let (ok, _, err) = lightning(
        &["optimize", "--agent", "a"],
        &[("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")],
    );
    assert!(!ok);
    assert!(err.contains("ANTHROPIC_API_KEY is not set"), "{err}");
    let (ok, _, err) = lightning(&["optimize", "--provider", "openai"], &[]);
    assert!(!ok);
    assert!(err.contains("OPENAI_API_KEY is not set"), "{err}");
}

#[test]
fn a_budget_without_a_price_is_refused_before_the_database_is_touched() {
    let env = [
        ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"),
        ("ANTHROPIC_API_KEY", "sk-test-not-used"),
        ("LIGHTNING_DB_CONNECT_TIMEOUT", "0"),
    ];
    // The proposer's model has no list price.
    let (ok, _, err) = lightning(
        &[
            "optimize",
            "--agent",
            "a",
            "--model",
            "house-model-7",
            "--max-cost",
            "5",
        ],
        &env,
    );
    assert!(!ok);
    assert!(
        err.contains("--max-cost needs a price") && err.contains("house-model-7"),
        "{err}"
    );
    // With prices given, it gets past the check (and fails later, at the unreachable database).
    let (ok, _, err) = lightning(
        &[
            "optimize",
            "--agent",
            "a",
            "--model",
            "house-model-7",
            "--max-cost",
            "5",
            "--price-input",
            "1",
            "--price-output",
            "2",
        ],
        &env,
    );
    assert!(!ok);
    assert!(!err.contains("--max-cost needs a price"), "{err}");
}

#[tokio::test]
async fn dry_run_refuses_a_test_set_too_small_to_say_anything() {
    let t = seeded().await;
    let (ok, out, err) = lightning(
        &["optimize", "--dry-run", "--agent", "cli-agent"],
        &[("DATABASE_URL", &t.database_url)],
    );
    assert!(!ok, "{out}");
    assert!(
        err.contains("the test set would have 3 examples (12 trajectories")
            && err.contains("at least 20")
            && err.contains("--test-fraction"),
        "{err}"
    );
}

#[tokio::test]
async fn dry_run_prints_the_plan_and_split_without_a_key() {
    let t = TestStore::new(Backend::Sqlite).await;
    lightning_optimizer::synthetic::seed_store(t.store.as_ref(), 70)
        .await
        .unwrap();
    let agent = lightning_optimizer::synthetic::AGENT;
    let (ok, out, err) = lightning(
        &["optimize", "--dry-run", "--json", "--agent", agent],
        &[("DATABASE_URL", &t.database_url), ("LIGHTNING_BEAM", "2")],
    );
    assert!(ok, "{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["trajectories"], 70);
    assert_eq!(plan["promptSource"], "trajectories");
    let p = &plan["plan"];
    assert_eq!(
        (
            p["train"].as_u64(),
            p["validation"].as_u64(),
            p["test"].as_u64()
        ),
        (Some(28), Some(21), Some(21))
    );
    assert_eq!(p["testEvaluations"], 42);
    assert_eq!(plan["minTestExamples"], 20);
    // 3 rounds × beam 2 (from the environment) × branch 4 × (critique + edit).
    assert_eq!(p["llmCalls"], 48);
    assert!(plan["warnings"][0].as_str().unwrap().contains("only 70"));

    let (ok, out, err) = lightning(
        &["optimize", "--dry-run", "--agent", agent],
        &[("DATABASE_URL", &t.database_url)],
    );
    assert!(ok, "{err}");
    assert!(out.contains("LLM calls:        96"), "{out}");
    assert!(
        out.contains("28 train (critiques, gate) / 21 validation (selection) / 21 test"),
        "{out}"
    );
    assert!(out.contains("only if the 95% interval"), "{out}");
    assert!(err.contains("warning: only 70"), "{err}");
}

/// What a user runs: `lightning optimize --evaluator command --promote`, in a child process,
/// on the synthetic suite. Hopeless: exit 0, `completed: no significant improvement`, the
/// labelled best in `--out`, nothing registered or promoted. Improvable: registered and
/// promoted, served as latest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_registers_only_what_the_test_set_confirms() {
    use lightning_optimizer::synthetic::{self, Variant};
    for (variant, seed) in [(Variant::Hopeless, "7"), (Variant::Improvable, "9")] {
        let t = TestStore::new(Backend::Sqlite).await;
        synthetic::seed_store(t.store.as_ref(), 120).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let eval_cmd = synthetic::eval_script(dir.path(), seed.parse().unwrap());
        let out_file = dir.path().join("best.txt");
        let base = scripted_llm::scripted_server(variant).await.0;
        let args = [
            "optimize",
            "--agent",
            synthetic::AGENT,
            "--evaluator",
            "command",
            "--eval-cmd",
            &eval_cmd,
            "--trajectories",
            "120",
            "--rounds",
            "3",
            "--beam",
            "2",
            "--branch",
            "2",
            "--concurrency",
            "8",
            "--seed",
            seed,
            "--promote",
            "--out",
            out_file.to_str().unwrap(),
        ];
        let env = [
            ("DATABASE_URL", t.database_url.as_str()),
            ("ANTHROPIC_API_KEY", "sk-test"),
            ("ANTHROPIC_BASE_URL", base.as_str()),
        ];
        let (ok, out, err) = tokio::task::spawn_blocking({
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            let env: Vec<(String, String)> = env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let env: Vec<(&str, &str)> =
                    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                lightning(&args, &env)
            }
        })
        .await
        .unwrap();
        assert!(ok, "{err}\n{out}");
        println!("{variant:?}:\n{out}");
        assert!(out.contains("test [95% CI] n"), "{out}");
        // Every candidate's minibatch score carries its interval and n too.
        assert!(out.contains("minibatch [95% CI] n"), "{out}");
        assert!(out.contains("] n=4  "), "{out}");
        assert!(
            out.contains("Paired difference on test (best − start): "),
            "{out}"
        );
        assert!(
            err.contains("120 trajectories") && err.contains("/ 36 test"),
            "{err}"
        );
        let written = std::fs::read_to_string(&out_file).unwrap();
        let prompts = t.store.list_prompts(synthetic::AGENT).await.unwrap();
        let latest = t.store.latest_prompt(synthetic::AGENT).await.unwrap();
        match variant {
            Variant::Hopeless => {
                assert_eq!(
                    out.trim_end().lines().last(),
                    Some("completed: no significant improvement"),
                    "{out}"
                );
                assert!(out.contains("Nothing registered."), "{out}");
                assert!(written.contains("completed: no significant improvement"));
                assert!(
                    prompts.is_empty() && latest.is_none(),
                    "--promote obeyed no gate"
                );
            }
            Variant::Improvable => {
                assert_eq!(
                    out.trim_end().lines().last(),
                    Some("completed: significant improvement, registered"),
                    "{out}"
                );
                assert!(
                    out.contains("Registered and promoted as version 1"),
                    "{out}"
                );
                assert_eq!(prompts.len(), 1);
                assert_eq!(latest.unwrap().evaluator.as_deref(), Some("command"));
                assert!(written.contains("completed: significant improvement"));
            }
        }
    }
}

/// A Messages-API server that answers the synthetic suite's critiques and edits and, for judge
/// requests, a score; it records the `model` of every request, by kind.
async fn model_recording_server() -> (String, Arc<Mutex<Vec<(String, bool)>>>) {
    use axum::{routing::post, Json, Router};
    use lightning_optimizer::synthetic::{scripted_reply, Variant};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = Router::new().route(
        "/v1/messages",
        post(move |Json(body): Json<Value>| {
            let log = log.clone();
            async move {
                let prompt = body["messages"][0]["content"].as_str().unwrap_or("");
                let judge = prompt.contains("You are evaluating a candidate system prompt");
                let text = if judge {
                    "{\"score\": 0.5, \"reason\": \"scripted\"}".to_string()
                } else {
                    scripted_reply(prompt, Variant::Improvable)
                };
                let model = body["model"].as_str().unwrap_or("").to_string();
                log.lock().unwrap().push((model.clone(), judge));
                Json(serde_json::json!({
                    "id": "msg_1", "type": "message", "role": "assistant", "model": model,
                    "content": [{"type": "text", "text": text}],
                    "stop_reason": "end_turn",
                    "usage": {"input_tokens": 10, "output_tokens": 5}
                }))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

/// `--evaluator judge` (the default) sends the judge's requests with the judge's model: by
/// default one other than the proposer's (`--model`), else the one `--judge-model` names;
/// critiques and edits keep `--model`. The run records the judge model and, under `--json`,
/// every score with its n and interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn judge_requests_use_the_judge_model() {
    use lightning_optimizer::synthetic;
    let cases: [(&[&str], &str, &str); 3] = [
        (&[], "claude-sonnet-4-5", "claude-haiku-4-5"),
        (
            &["--model", "claude-haiku-4-5"],
            "claude-haiku-4-5",
            "claude-sonnet-4-5",
        ),
        (
            &[
                "--model",
                "claude-haiku-4-5",
                "--judge-model",
                "judge-model-x",
            ],
            "claude-haiku-4-5",
            "judge-model-x",
        ),
    ];
    for (extra, proposer, judge) in cases {
        let t = TestStore::new(Backend::Sqlite).await;
        synthetic::seed_store(t.store.as_ref(), 70).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out_file = dir.path().join("best.txt");
        let (base, seen) = model_recording_server().await;
        let mut args: Vec<String> = [
            "optimize",
            "--agent",
            synthetic::AGENT,
            "--trajectories",
            "70",
            "--strategy",
            "apo",
            "--rounds",
            "1",
            "--beam",
            "1",
            "--branch",
            "1",
            "--concurrency",
            "8",
            "--json",
            "--out",
            out_file.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let env = [
            ("DATABASE_URL".to_string(), t.database_url.clone()),
            ("ANTHROPIC_API_KEY".to_string(), "sk-test".to_string()),
            ("ANTHROPIC_BASE_URL".to_string(), base.clone()),
        ];
        let (ok, out, err) = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            lightning(&args, &env)
        })
        .await
        .unwrap();
        assert!(ok, "{err}\n{out}");
        let seen = seen.lock().unwrap().clone();
        let judged: Vec<&String> = seen.iter().filter(|(_, j)| *j).map(|(m, _)| m).collect();
        let proposed: Vec<&String> = seen.iter().filter(|(_, j)| !*j).map(|(m, _)| m).collect();
        assert!(!judged.is_empty() && !proposed.is_empty(), "{seen:?}");
        assert!(judged.iter().all(|m| *m == judge), "{extra:?}: {judged:?}");
        assert!(
            proposed.iter().all(|m| *m == proposer),
            "{extra:?}: {proposed:?}"
        );
        let outcome: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(outcome["run"]["config"]["judgeModel"], judge, "{extra:?}");
        let e = &outcome["evidence"];
        assert_eq!(e["estimate"], true);
        assert_eq!(e["split"]["test"], 21);
        for s in [&e["baselineTest"], &e["bestTest"], &e["difference"]] {
            assert_eq!(s["n"], 21, "{s}");
            assert!(
                s["low"].as_f64().unwrap() <= s["mean"].as_f64().unwrap(),
                "{s}"
            );
            assert!(
                s["high"].as_f64().unwrap() >= s["mean"].as_f64().unwrap(),
                "{s}"
            );
            assert_eq!(s["confidence"], 0.95, "{s}");
        }
        assert_eq!(outcome["candidates"][0]["scores"]["test"]["n"], 21);
    }
}

#[tokio::test]
async fn analyze_prints_a_table_or_json() {
    let t = seeded().await;
    let (ok, out, err) = lightning(
        &["analyze", "--agent", "cli-agent", "--json"],
        &[("DATABASE_URL", &t.database_url)],
    );
    assert!(ok, "{err}");
    let a: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (a["trajectories"].as_i64(), a["failed"].as_i64()),
        (Some(12), Some(4))
    );
    assert_eq!(a["tools"][0]["tool"], "Bash");
    assert_eq!(a["errors"][0]["message"], "exit status <n>");
    let (ok, out, _) = lightning(
        &["analyze", "--agent", "cli-agent"],
        &[("DATABASE_URL", &t.database_url)],
    );
    assert!(ok);
    assert!(
        out.contains("error rate") && out.contains("exit status <n>"),
        "{out}"
    );
    let (ok, _, err) = lightning(
        &["analyze", "--agent", "nobody"],
        &[("DATABASE_URL", &t.database_url)],
    );
    assert!(!ok);
    assert!(err.contains("no completed trajectories"), "{err}");
}

#[test]
fn every_subcommand_has_help() {
    for sub in ["optimize", "analyze", "optimize-bench"] {
        let (ok, out, _) = lightning(&[sub, "--help"], &[]);
        assert!(ok && out.contains("Usage:"), "{sub}: {out}");
    }
    let (_, out, _) = lightning(&["optimize", "--help"], &[]);
    for flag in [
        "--trajectories",
        "--eval-cmd",
        "--max-evaluations",
        "--test-fraction",
        "--min-improvement",
        "--confidence",
        "--register-judged",
        "--judge-model",
        "--include-evaluations",
        "[env: LIGHTNING_BEAM=",
    ] {
        assert!(out.contains(flag), "{flag} missing from optimize --help");
    }
}

/// `--reward score:<name>` decides which examples count as failures: here every run "succeeded"
/// by its own flag in some cases where a grader scored it low. The run's announced split, the
/// failure analysis the critiques are given, and the stored run config all follow the score;
/// `auto` resolves to it (recorded as such) and `success` ignores it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optimize_reward_score_decides_the_outcomes() {
    use lightning_optimizer::synthetic;
    let t = TestStore::new(Backend::Sqlite).await;
    synthetic::seed_store(t.store.as_ref(), 120).await.unwrap();
    let mut list = t
        .store
        .list_trajectories(&lightning_core::TrajectoryFilter {
            agent_id: Some(synthetic::AGENT.into()),
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .trajectories;
    list.sort_by_key(|x| x.id);
    assert_eq!(list.len(), 120);
    let (mut by_flag, mut by_score, mut low_but_succeeded, mut successes) = (0, 0, 0, 0);
    for tr in &list {
        let succeeded = tr.success == Some(true);
        // A grader fails every other run that its own flag calls a success.
        let good = succeeded && successes % 2 == 0;
        successes += usize::from(succeeded);
        by_flag += usize::from(!succeeded);
        by_score += usize::from(!good);
        low_but_succeeded += usize::from(succeeded && !good);
        let mut s = lightning_core::NewScore::new(
            "quality",
            lightning_core::ScoreValue::Number(if good { 0.9 } else { 0.1 }),
        );
        s.validate().unwrap();
        t.store.upsert_score(tr.id, &s).await.unwrap();
    }
    assert!(low_but_succeeded > 5, "{low_but_succeeded}");

    // Dry runs: the failures counted follow the reward.
    let db = [("DATABASE_URL", t.database_url.as_str())];
    for (reward, failures, shown) in [
        ("success", by_flag, "success"),
        ("score:quality", by_score, "score:quality"),
        ("auto", by_score, "score:quality"),
    ] {
        let (ok, out, err) = lightning(
            &[
                "optimize",
                "--dry-run",
                "--json",
                "--agent",
                synthetic::AGENT,
                "--trajectories",
                "120",
                "--reward",
                reward,
            ],
            &db,
        );
        assert!(ok, "{err}");
        let plan: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(plan["failures"], failures, "{reward}: {plan}");
        assert_eq!(plan["reward"], shown, "{reward}");
    }

    // Real runs: with `success`, then with the default (auto), which resolves to the score,
    // says so, stores it, and gives the critiques a training set split by it.
    let success = optimize_run(&t.database_url, &["--reward", "success"]).await;
    let auto = optimize_run(&t.database_url, &[]).await;
    assert!(
        success.0.contains(&format!(
            "120 trajectories, {by_flag} failed by reward success;"
        )),
        "{}",
        success.0
    );
    assert!(
        auto.0.contains(&format!(
            "120 trajectories, {by_score} failed by reward score:quality (auto);"
        )),
        "{}",
        auto.0
    );
    // The failure analysis of the training set, as the critiques are given it.
    let train_line = |prompts: &[String]| -> (u64, u64, u64) {
        let line = prompts
            .iter()
            .flat_map(|p| p.lines())
            .find(|l| l.contains(" trajectories: ") && l.contains(" succeeded, "))
            .unwrap_or_else(|| panic!("no analysis in {} prompts", prompts.len()))
            .to_string();
        let n: Vec<u64> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|x| !x.is_empty())
            .map(|x| x.parse().unwrap())
            .collect();
        (n[0], n[1], n[2])
    };
    let (n_s, ok_s, bad_s) = train_line(&success.1);
    let (n_a, ok_a, bad_a) = train_line(&auto.1);
    assert_eq!((n_s, n_a), (ok_s + bad_s, ok_a + bad_a));
    // Stratified splits keep each outcome's share: the score's failures are more.
    let share = |bad: u64, n: u64| bad as f64 / n as f64;
    assert!(
        (share(bad_s, n_s) - by_flag as f64 / 120.0).abs() < 0.05,
        "{bad_s}/{n_s}"
    );
    assert!(
        (share(bad_a, n_a) - by_score as f64 / 120.0).abs() < 0.05,
        "{bad_a}/{n_a}"
    );
    assert!(bad_a > bad_s, "{bad_a} vs {bad_s}");
    let runs = t.store.list_runs(Some(synthetic::AGENT), 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    // The config `GET /api/optimization-runs/{id}` serves, as stored (newest first).
    let config = &t.store.get_run(runs[0].id).await.unwrap().config;
    assert_eq!(config["reward"], "score:quality", "{config}");
    assert_eq!(config["rewardRequested"], "auto", "{config}");
    let config = &t.store.get_run(runs[1].id).await.unwrap().config;
    assert_eq!(
        (&config["reward"], &config["rewardRequested"]),
        (&Value::from("success"), &Value::from("success"))
    );
}

/// `lightning optimize` on the synthetic suite (one short round, command evaluator, scripted
/// LLM): its stderr and the prompts the LLM was sent.
async fn optimize_run(database_url: &str, extra: &[&str]) -> (String, Vec<String>) {
    use lightning_optimizer::synthetic::{self, Variant};
    let dir = tempfile::tempdir().unwrap();
    let eval_cmd = synthetic::eval_script(dir.path(), 7);
    let out_file = dir.path().join("best.txt");
    let (base, seen) = scripted_llm::scripted_server(Variant::Hopeless).await;
    let mut args: Vec<String> = [
        "optimize",
        "--agent",
        synthetic::AGENT,
        "--evaluator",
        "command",
        "--eval-cmd",
        &eval_cmd,
        "--trajectories",
        "120",
        "--rounds",
        "1",
        "--beam",
        "1",
        "--branch",
        "1",
        "--concurrency",
        "8",
        "--seed",
        "7",
        "--out",
        out_file.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let env: Vec<(String, String)> = [
        ("DATABASE_URL", database_url),
        ("ANTHROPIC_API_KEY", "sk-test"),
        ("ANTHROPIC_BASE_URL", base.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        lightning(&args, &env)
    })
    .await
    .unwrap();
    assert!(ok, "{err}\n{out}");
    let prompts = seen.lock().unwrap().clone();
    (err, prompts)
}
