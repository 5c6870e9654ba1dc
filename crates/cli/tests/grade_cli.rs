//! `lightning grade` as a user runs it: a command grader, and an LLM judge behind a local
//! server speaking the Anthropic Messages API.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{extract::State, http::HeaderMap, routing::post, Json, Router};
use lightning_core::{Completion, NewStep, NewTrajectory, ScoreSource, ScoreValue};
use lightning_store::{testing::TestStore, Backend};
use serde_json::{json, Value};
use uuid::Uuid;

/// Five finished trajectories (the first two failed) and one still running.
async fn seeded(backend: Backend) -> (TestStore, Vec<Uuid>) {
    let t = TestStore::new(backend).await;
    let mut ids = Vec::new();
    for i in 0..6u32 {
        let id = t
            .store
            .start_trajectory(&NewTrajectory {
                agent_id: "grade-agent".into(),
                prompt: Some(format!("fix bug {i}")),
                ..Default::default()
            })
            .await
            .unwrap();
        t.store
            .append_steps(
                id,
                vec![NewStep {
                    step_number: 0,
                    tool_name: "Bash".into(),
                    tool_input: Some(json!({"command": format!("make test-{i}")})),
                    ..Default::default()
                }],
            )
            .await
            .unwrap();
        if i < 5 {
            let c = Completion {
                success: i >= 2,
                ..Default::default()
            };
            t.store.complete_trajectory(id, &c).await.unwrap();
        }
        ids.push(id);
    }
    (t, ids)
}

async fn lightning(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_lightning"));
    cmd.args(args)
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("ANTHROPIC_BASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("DATABASE_URL");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("lightning grade finished")
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// Passes runs whose JSON on stdin says they succeeded; checks the file copy exists.
const GRADER: &str = r#"test -f "$LIGHTNING_TRAJECTORY_FILE" || exit 3
input=$(cat)
case "$input" in
  *'"success":true'*) echo "checking $LIGHTNING_TRAJECTORY_ID"; echo '{"value": true, "comment": "tests <b>pass</b>"}' ;;
  *) echo '{"value": false, "comment": "tests fail"}' ;;
esac"#;

#[tokio::test]
async fn command_grader_stores_code_scores_and_resumes() {
    let (t, ids) = seeded(Backend::Sqlite).await;
    let db = [("DATABASE_URL", t.database_url.as_str())];
    let (code, out, err) = lightning(
        &[
            "grade",
            "--agent",
            "grade-agent",
            "--name",
            "tests_pass",
            "--eval-cmd",
            GRADER,
        ],
        &db,
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Graded 5 of 5"), "{out}");
    assert!(err.contains("1 still running skipped"), "{err}");
    for (i, id) in ids.iter().enumerate() {
        let scores = t.store.list_scores(*id).await.unwrap();
        if i == 5 {
            assert!(scores.is_empty(), "running trajectories are not graded");
            continue;
        }
        assert_eq!(scores.len(), 1, "{scores:?}");
        let s = &scores[0];
        assert_eq!(
            (s.name.as_str(), s.source),
            ("tests_pass", ScoreSource::Code)
        );
        assert_eq!(s.value, ScoreValue::Boolean(i >= 2), "trajectory {i}");
        let comment = if i >= 2 {
            "tests <b>pass</b>"
        } else {
            "tests fail"
        };
        assert_eq!(s.comment.as_deref(), Some(comment));
    }
    // Resuming finds nothing left; grading again updates instead of duplicating.
    let (code, _, err) = lightning(
        &[
            "grade",
            "--name",
            "tests_pass",
            "--only-missing",
            "--eval-cmd",
            "exit 9",
        ],
        &db,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Nothing to grade"), "{err}");
    let (code, out, err) = lightning(
        &[
            "grade",
            "--name",
            "tests_pass",
            "--eval-cmd",
            GRADER,
            "--json",
        ],
        &db,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (report["graded"].as_i64(), report["failed"].as_i64()),
        (Some(5), Some(0))
    );
    let all = t.store.scores_of(&ids).await.unwrap();
    assert_eq!(all.len(), 5);

    // A grader that fails for some runs: the others are stored, the exit code says so, and
    // --only-missing retries exactly the failed ones.
    let flaky = r#"input=$(cat); case "$input" in *'fix bug 0'*) echo boom >&2; exit 1 ;; *) echo '{"value": 0.5}' ;; esac"#;
    let (code, out, err) = lightning(&["grade", "--name", "q", "--eval-cmd", flaky], &db).await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.contains("1 failed") && out.contains("boom"), "{out}");
    assert!(err.contains("--only-missing"), "{err}");
    let (code, out, err) = lightning(
        &[
            "grade",
            "--name",
            "q",
            "--only-missing",
            "--eval-cmd",
            "cat >/dev/null; echo '{\"value\": 0.1}'",
        ],
        &db,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Graded 1 of 1"), "{out}");
    // A value of another type than the name already has is refused per trajectory.
    let (code, out, _) = lightning(
        &[
            "grade",
            "--name",
            "q",
            "--limit",
            "1",
            "--eval-cmd",
            "echo '{\"value\": \"pass\"}'",
        ],
        &db,
    )
    .await;
    assert_eq!(code, 1);
    assert!(out.contains("is numeric"), "{out}");
}

#[tokio::test]
async fn bad_flags_are_named() {
    for (args, expected) in [
        (vec!["grade", "--name", "q"], "choose a grader"),
        (vec!["grade", "--name", "a b", "--eval-cmd", "x"], "--name"),
        (
            vec!["grade", "--name", "q", "--judge"],
            "ANTHROPIC_API_KEY is not set",
        ),
        (
            vec!["grade", "--name", "q", "--judge", "--eval-cmd", "x"],
            "cannot be used with",
        ),
    ] {
        let (code, _, err) = lightning(&args, &[]).await;
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(expected), "{args:?}: {err}");
    }
    let (code, out, _) = lightning(&["grade", "--help"], &[]).await;
    assert_eq!(code, 0);
    for flag in [
        "--eval-cmd",
        "--judge",
        "--only-missing",
        "--since",
        "--max-cost",
        "--concurrency",
    ] {
        assert!(out.contains(flag), "{flag} missing from grade --help");
    }
}

#[derive(Default)]
struct Judge {
    requests: Mutex<Vec<(HeaderMap, Value)>>,
}

/// A server speaking the Anthropic Messages API whose judge passes failed runs at 0.2 and
/// others at 0.9, with a rationale.
async fn anthropic() -> (String, Arc<Judge>) {
    let judge = Arc::new(Judge::default());
    let handler = |State(j): State<Arc<Judge>>, headers: HeaderMap, Json(body): Json<Value>| async move {
        let prompt = body["messages"][0]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        j.requests.lock().unwrap().push((headers, body));
        let text = if prompt.contains("FAILURE") {
            r#"{"value": 0.2, "comment": "the tests still fail"}"#
        } else {
            r#"Looks fine. {"value": 0.9, "comment": "the fix is complete"}"#
        };
        Json(json!({
            "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-test",
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn", "stop_sequence": null,
            "usage": {"input_tokens": 100, "output_tokens": 20}
        }))
    };
    let app = Router::new()
        .route("/v1/messages", post(handler))
        .with_state(judge.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), judge)
}

#[tokio::test]
async fn judge_grades_through_the_anthropic_api_within_budget() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let (t, ids) = seeded(backend).await;
        let (base, judge) = anthropic().await;
        let env = [
            ("DATABASE_URL", t.database_url.as_str()),
            ("ANTHROPIC_API_KEY", "sk-ant-test"),
            ("ANTHROPIC_BASE_URL", base.as_str()),
        ];
        let (code, out, err) = lightning(
            &[
                "grade",
                "--agent",
                "grade-agent",
                "--name",
                "correctness",
                "--judge",
                "--criteria",
                "Are the tests green?",
                "--model",
                "claude-test",
            ],
            &env,
        )
        .await;
        assert_eq!(code, 0, "{backend:?}: {out}\n{err}");
        assert!(out.contains("Graded 5 of 5"), "{out}");
        {
            let requests = judge.requests.lock().unwrap();
            assert_eq!(requests.len(), 5);
            let (headers, body) = &requests[0];
            assert_eq!(headers["x-api-key"], "sk-ant-test");
            assert_eq!(body["model"], "claude-test");
            let prompt = body["messages"][0]["content"].as_str().unwrap();
            assert!(prompt.contains("Are the tests green?"), "{prompt}");
            assert!(
                prompt.contains("make test-"),
                "the run's tool calls are shown: {prompt}"
            );
        }
        for (i, id) in ids.iter().take(5).enumerate() {
            let s = &t.store.list_scores(*id).await.unwrap()[0];
            assert_eq!(s.source, ScoreSource::Llm);
            let (value, comment) = if i < 2 {
                (0.2, "the tests still fail")
            } else {
                (0.9, "the fix is complete")
            };
            assert_eq!(
                s.value,
                ScoreValue::Number(value),
                "{backend:?} trajectory {i}"
            );
            assert_eq!(s.comment.as_deref(), Some(comment));
        }
        // Budget: at $1 per input token... each call costs $100; $150 allows two calls.
        let (code, out, err) = lightning(
            &[
                "grade",
                "--name",
                "second",
                "--judge",
                "--concurrency",
                "1",
                "--max-cost",
                "150",
                "--price-input",
                "1000000",
                "--price-output",
                "0",
            ],
            &env,
        )
        .await;
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(
            out.contains("Graded 2 of 5") && out.contains("3 skipped"),
            "{out}"
        );
        assert!(out.contains("Stopped early: budget"), "{out}");
        let second = t
            .store
            .scores_of(&ids)
            .await
            .unwrap()
            .into_iter()
            .filter(|s| s.name == "second")
            .count();
        assert_eq!(second, 2);
    }
}

#[tokio::test]
async fn judge_budget_without_a_known_price_is_refused() {
    let (t, ids) = seeded(Backend::Sqlite).await;
    let (base, judge) = anthropic().await;
    let env = [
        ("DATABASE_URL", t.database_url.as_str()),
        ("ANTHROPIC_API_KEY", "sk-ant-test"),
        ("ANTHROPIC_BASE_URL", base.as_str()),
    ];
    // `claude-test` has no list price: a budget could not be enforced, so nothing is graded.
    let (code, out, err) = lightning(
        &[
            "grade",
            "--name",
            "priced",
            "--judge",
            "--model",
            "claude-test",
            "--max-cost",
            "2",
        ],
        &env,
    )
    .await;
    assert_ne!(code, 0, "{out}\n{err}");
    assert!(
        err.contains("--max-cost needs a price")
            && err.contains("\"claude-test\"")
            && err.contains("--price-input and --price-output"),
        "{err}"
    );
    assert!(
        judge.requests.lock().unwrap().is_empty(),
        "no LLM call made"
    );
    assert!(t.store.scores_of(&ids).await.unwrap().is_empty());
    // With an explicit price the same budget is accepted and enforced.
    let (code, out, err) = lightning(
        &[
            "grade",
            "--name",
            "priced",
            "--judge",
            "--model",
            "claude-test",
            "--max-cost",
            "2",
            "--price-input",
            "1",
            "--price-output",
            "1",
        ],
        &env,
    )
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Graded 5 of 5"), "{out}");
    assert!(out.contains("Estimated LLM cost: $0.0006"), "{out}");
}

#[tokio::test]
async fn optimizer_evaluation_runs_are_not_graded_unless_asked() {
    let (t, ids) = seeded(Backend::Sqlite).await;
    let eval = t
        .store
        .start_trajectory(&NewTrajectory {
            agent_id: "grade-agent".into(),
            prompt: Some("fix bug 0".into()),
            prompt_version: Some("opt-run7-c1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let done = Completion {
        success: true,
        ..Default::default()
    };
    t.store.complete_trajectory(eval, &done).await.unwrap();
    let db = [("DATABASE_URL", t.database_url.as_str())];
    let args = [
        "grade",
        "--agent",
        "grade-agent",
        "--name",
        "tests_pass",
        "--eval-cmd",
        GRADER,
    ];
    let (code, out, err) = lightning(&args, &db).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Graded 5 of 5"), "{out}");
    assert!(t.store.list_scores(eval).await.unwrap().is_empty());
    assert_eq!(t.store.scores_of(&ids[..5]).await.unwrap().len(), 5);
    let mut with = args.to_vec();
    with.extend(["--include-evaluations", "--only-missing"]);
    let (code, out, err) = lightning(&with, &db).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("Graded 1 of 1"), "{out}");
    let scores = t.store.list_scores(eval).await.unwrap();
    assert_eq!(scores.len(), 1);
    assert_eq!(scores[0].value, ScoreValue::Boolean(true));
}

#[tokio::test]
async fn analyze_splits_by_the_chosen_reward() {
    // Every run "succeeded", but a grader scored four of them low.
    let t = TestStore::new(Backend::Sqlite).await;
    for i in 0..12u32 {
        let id = t
            .store
            .start_trajectory(&NewTrajectory {
                agent_id: "rewarded".into(),
                prompt: Some(format!("task {i}")),
                ..Default::default()
            })
            .await
            .unwrap();
        let c = Completion {
            success: true,
            ..Default::default()
        };
        t.store.complete_trajectory(id, &c).await.unwrap();
        let mut score = lightning_core::NewScore::new(
            "quality",
            ScoreValue::Number(if i < 4 { 0.1 } else { 0.9 }),
        );
        score.validate().unwrap();
        t.store.upsert_score(id, &score).await.unwrap();
    }
    let db = [("DATABASE_URL", t.database_url.as_str())];
    let failed = |out: &str| -> i64 {
        let a: Value = serde_json::from_str(out).unwrap();
        assert_eq!(a["trajectories"], 12, "{a}");
        a["failed"].as_i64().unwrap()
    };
    // Default (auto): every trajectory has a `quality` score, so it is the reward.
    let (code, out, err) = lightning(&["analyze", "--agent", "rewarded", "--json"], &db).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(failed(&out), 4);
    let (code, out, err) = lightning(
        &[
            "analyze", "--agent", "rewarded", "--json", "--reward", "success",
        ],
        &db,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(failed(&out), 0);
    let (code, out, err) = lightning(
        &[
            "analyze",
            "--agent",
            "rewarded",
            "--json",
            "--reward",
            "score:quality:0.95",
        ],
        &db,
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(failed(&out), 12);
    let (code, _, err) = lightning(
        &["analyze", "--agent", "rewarded", "--reward", "points"],
        &db,
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("--reward"), "{err}");
    let (code, _, err) = lightning(
        &[
            "analyze",
            "--agent",
            "rewarded",
            "--reward",
            "score:missing",
        ],
        &db,
    )
    .await;
    assert_ne!(code, 0, "no trajectory has the score: nothing to analyze");
    assert!(err.contains("no completed trajectories"), "{err}");
}
