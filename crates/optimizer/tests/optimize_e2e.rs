//! The whole `optimize` loop on a seeded store (SQLite and PostgreSQL) with a scripted LLM
//! server speaking the Anthropic wire format, judged offline: candidates, lineage, stored
//! critiques, the registered version, and the collector's HTTP API over the result.

use std::{collections::HashSet, sync::Arc};

use axum::{
    body::Body,
    http::{Request, StatusCode},
    routing::post,
    Json, Router,
};
use http_body_util::BodyExt;
use lightning_core::{CandidateStatus, Completion, NewStep, NewTrajectory, RunStatus};
use lightning_optimizer::{
    apo::{ApoConfig, NoProgress},
    dataset::DatasetQuery,
    evaluator::{judge::JudgeEvaluator, Evaluator},
    llm::{HttpLlm, Llm, LlmConfig, Provider},
    run::{optimize, prepare, OptimizeOptions, PromptSource},
    templates::Templates,
};
use lightning_store::{testing::TestStore, Backend, Store};
use serde_json::{json, Value};
use tower::ServiceExt;

const START: &str = "You are a support agent for {product}. Answer the customer.";
const RULES: [&str; 2] = [
    "Look up the order before answering.",
    "Never promise refunds.",
];

/// Judge: a failed run is "avoided" when the prompt has the rule for its failure; a success is
/// kept either way. Critique: names a missing rule. Edit: appends what the critique names.
async fn scripted_llm() -> String {
    let app = Router::new().route(
        "/v1/messages",
        post(|Json(body): Json<Value>| async move {
            let p = body["messages"][0]["content"]
                .as_str()
                .unwrap_or("")
                .to_string();
            let text = if p.contains("\"score\"") {
                // The judge sees the candidate quoted: a JSON string between nonce markers.
                let open = p.find("<candidate-").expect("quoted candidate");
                let quoted = p[open..].lines().nth(1).unwrap_or("\"\"");
                let prompt: String = serde_json::from_str(quoted).unwrap();
                let score = if p.contains("Outcome: success") {
                    1.0
                } else if p.contains("order not found") {
                    if prompt.contains(RULES[0]) {
                        1.0
                    } else {
                        0.0
                    }
                } else if prompt.contains(RULES[1]) {
                    1.0
                } else {
                    0.0
                };
                format!("Verdict: {{\"score\": {score}, \"reason\": \"scripted\"}}")
            } else if p.contains("<critique>") {
                let prompt = between(&p, "<prompt>\n", "\n</prompt>").to_string();
                let critique = between(&p, "<critique>\n", "\n</critique>");
                let rule = RULES.iter().find(|r| critique.contains(*r));
                match rule {
                    Some(r) => format!("Here it is:\n<prompt>\n{prompt}\n{r}\n</prompt>"),
                    None => format!("<prompt>\n{prompt}\nBe polite.\n</prompt>"),
                }
            } else {
                let prompt = between(&p, "<prompt>\n", "\n</prompt>").to_string();
                let missing: Vec<&str> = RULES
                    .iter()
                    .copied()
                    .filter(|r| !prompt.contains(r))
                    .collect();
                let examples = between(&p, "<examples>", "</examples>");
                match missing.as_slice() {
                    [] => "- Be more polite.".to_string(),
                    [only] => format!("- Add: {only}"),
                    [first, second, ..] => {
                        if examples.matches("order not found").count()
                            >= examples.matches("refund").count()
                        {
                            format!("- Add: {first}")
                        } else {
                            format!("- Add: {second}")
                        }
                    }
                }
            };
            Json(json!({
                "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": p.len() / 4, "output_tokens": text.len() / 4}
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> &'a str {
    let Some(a) = s.find(open) else { return "" };
    let rest = &s[a + open.len()..];
    &rest[..rest.find(close).unwrap_or(rest.len())]
}

async fn seed(store: &Arc<dyn Store>) {
    let now = lightning_core::time::now();
    for i in 0..80i64 {
        let kind = i % 4; // 0, 1: success; 2: order lookup failure; 3: refund failure
        let id = store
            .start_trajectory(&NewTrajectory {
                agent_id: "support-bot".into(),
                task_type: Some("ticket".into()),
                prompt: Some(format!("Customer ticket #{i}")),
                system_prompt: Some(START.into()),
                start_time: Some(now - chrono::Duration::minutes(i)),
                ..Default::default()
            })
            .await
            .unwrap();
        let error = match kind {
            2 => Some(format!("order not found: #{}", 1000 + i)),
            3 => Some("policy violation: promised a refund".to_string()),
            _ => None,
        };
        store
            .append_steps(
                id,
                vec![
                    NewStep {
                        step_number: 0,
                        tool_name: "lookup_order".into(),
                        tool_input: Some(json!({"query": format!("order {i}")})),
                        error: error.clone().filter(|_| kind == 2),
                        ..Default::default()
                    },
                    NewStep {
                        step_number: 1,
                        tool_name: "reply".into(),
                        tool_output: Some(json!("sent")),
                        error: error.clone().filter(|_| kind == 3),
                        ..Default::default()
                    },
                ],
            )
            .await
            .unwrap();
        store
            .complete_trajectory(
                id,
                &Completion {
                    success: error.is_none(),
                    error,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    // A running trajectory is skipped, another agent's is filtered out.
    store
        .start_trajectory(&NewTrajectory {
            agent_id: "support-bot".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    store
        .start_trajectory(&NewTrajectory {
            agent_id: "other".into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

async fn call(app: &Router, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", "Bearer test-key");
    let body = match body {
        Some(b) => {
            req = req.header("content-type", "application/json");
            Body::from(b.to_string())
        }
        None => Body::empty(),
    };
    let res = app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn end_to_end(backend: Backend) {
    let t = TestStore::new(backend).await;
    let store = t.store.clone();
    seed(&store).await;
    let base = scripted_llm().await;
    let mut config = LlmConfig::new(Provider::Anthropic, None, "sk-test".into(), Some(base));
    config.concurrency = 4;
    let llm: Arc<dyn Llm> = Arc::new(HttpLlm::new(config).unwrap());
    let evaluator: Arc<dyn Evaluator> =
        Arc::new(JudgeEvaluator::new(llm.clone(), Templates::default().judge));

    let query = DatasetQuery {
        limit: 100,
        agent_id: Some("support-bot".into()),
        ..Default::default()
    };
    let prepared = prepare(&store, &query, Default::default(), 3, None)
        .await
        .unwrap();
    assert_eq!(prepared.dataset.examples.len(), 80);
    assert_eq!(
        (
            prepared.dataset.train.len(),
            prepared.dataset.validation.len(),
            prepared.dataset.test.len()
        ),
        (32, 24, 24)
    );
    assert_eq!(prepared.dataset.skipped_running, 1);
    assert_eq!(prepared.prompt_source, PromptSource::Trajectories);
    assert_eq!(prepared.start_prompt, START);
    assert!(
        prepared.warnings.iter().any(|w| w.contains("only 80")),
        "{:?}",
        prepared.warnings
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("best.txt");
    let outcome = optimize(
        store.clone(),
        prepared,
        OptimizeOptions {
            apo: ApoConfig {
                beam: 2,
                rounds: 3,
                branch: 2,
                minibatch: 4,
                seed: 3,
                concurrency: 4,
                ..Default::default()
            },
            templates: Templates::default(),
            config: json!({"test": true}),
            register: true,
            promote: false,
            gate: lightning_optimizer::run::RegistrationGate {
                register_judged: true,
                ..Default::default()
            },
            out: Some(out.clone()),
        },
        llm.clone(),
        evaluator,
        &NoProgress,
    )
    .await
    .unwrap();

    // The best prompt has both rules, keeps the placeholder, and scores 1 on the test set,
    // the start 0.5, by the judge's estimate; the run's scores are the test scores.
    let run = &outcome.run;
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.best_score, Some(1.0));
    assert_eq!(run.baseline_score, Some(0.5));
    let e = &outcome.evidence;
    assert!(e.estimate && e.significant, "{e:?}");
    assert_eq!(e.best_validation.unwrap().mean, 1.0);
    assert_eq!((e.difference.wins, e.difference.losses), (12, 0));
    assert_eq!(
        outcome.label,
        "completed: significant improvement, registered"
    );
    for rule in RULES {
        assert!(
            outcome.best_prompt.contains(rule),
            "{}",
            outcome.best_prompt
        );
    }
    assert!(outcome.best_prompt.contains("{product}"));
    let written = std::fs::read_to_string(&out).unwrap();
    assert!(
        written.starts_with("# lightning optimize run "),
        "{written}"
    );
    assert_eq!(
        lightning_optimizer::run::strip_label(&written).trim(),
        outcome.best_prompt
    );
    assert!(
        outcome.diff.contains(&format!("+{}", RULES[0])),
        "{}",
        outcome.diff
    );
    assert!(outcome.usage.calls > 0 && outcome.usage.input_tokens > 0);

    // Everything is stored: the run, each candidate with lineage and critique.
    let stored_run = store.get_run(run.id).await.unwrap();
    assert_eq!(&stored_run, run);
    assert_eq!(stored_run.trajectories, 80);
    let candidates = store.list_candidates(run.id).await.unwrap();
    assert_eq!(candidates, outcome.candidates);
    let ids: HashSet<_> = candidates.iter().map(|c| c.id).collect();
    let seed = &candidates[0];
    assert_eq!(
        (seed.status, seed.parent_id, seed.round),
        (CandidateStatus::Seed, None, 0)
    );
    assert_eq!(seed.validation_score, Some(0.5));
    for c in &candidates[1..] {
        let parent = c.parent_id.expect("children have parents");
        assert!(ids.contains(&parent));
        let p = candidates.iter().find(|x| x.id == parent).unwrap();
        assert!(p.round < c.round, "parent from an earlier round");
        assert!(
            c.critique.as_deref().is_some_and(|s| s.starts_with("- ")),
            "{c:?}"
        );
        assert!(c.minibatch_score.is_some(), "{c:?}");
    }
    assert!(candidates[1..].iter().all(|c| c.round >= 1));
    let best: Vec<_> = candidates
        .iter()
        .filter(|c| c.status == CandidateStatus::Best)
        .collect();
    assert_eq!(best.len(), 1);
    assert_eq!(Some(best[0].id), run.best_candidate_id);

    // The best prompt is version 1, sourced from the run, not promoted.
    let registered = outcome.registered.clone().expect("registered");
    assert_eq!((registered.version, registered.promoted), (1, false));
    assert_eq!(registered.source_run_id, Some(run.id));
    assert_eq!(registered.text, outcome.best_prompt);

    // The HTTP API shows the same.
    let app = lightning_collector::router(
        store.clone(),
        lightning_collector::CollectorConfig {
            api_key: lightning_collector::ApiKey::new("test-key"),
            body_limit: lightning_collector::DEFAULT_BODY_LIMIT,
            dashboard_dir: None,
            limits: lightning_collector::Limits::default(),
        },
    );
    let (status, runs) = call(
        &app,
        "GET",
        "/api/optimization-runs?agentId=support-bot",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(runs["runs"][0]["id"], run.id.to_string());
    assert_eq!(runs["runs"][0]["status"], "completed");
    assert_eq!(runs["runs"][0]["bestScore"], 1.0);
    let (status, detail) = call(
        &app,
        "GET",
        &format!("/api/optimization-runs/{}", run.id),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        detail["candidates"].as_array().unwrap().len(),
        candidates.len()
    );
    assert_eq!(detail["candidates"][0]["status"], "seed");
    assert_eq!(detail["candidates"][1]["parentId"], seed.id.to_string());
    assert!(detail["candidates"][1]["critique"].is_string());
    assert_eq!(detail["llmCalls"], run.llm_calls);
    // Registered, not promoted: a candidate, so latest is still 404.
    let (status, latest) = call(&app, "GET", "/api/agents/support-bot/prompts/latest", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{latest}");
    let (_, listed) = call(&app, "GET", "/api/agents/support-bot/prompts", None).await;
    assert_eq!(listed["prompts"][0]["sourceRunId"], run.id.to_string());
    assert_eq!(listed["prompts"][0]["evaluator"], "judge");
    let (status, created) = call(
        &app,
        "POST",
        "/api/agents/support-bot/prompts",
        Some(json!({"text": "hand-written", "note": "manual"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        (created["version"].as_i64(), created["promoted"].as_bool()),
        (Some(2), Some(false))
    );
    let (status, promoted) = call(
        &app,
        "POST",
        "/api/agents/support-bot/prompts/1/promote",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(promoted["promoted"], true);
    let (_, latest) = call(&app, "GET", "/api/agents/support-bot/prompts/latest", None).await;
    assert_eq!(
        latest["version"], 1,
        "the promoted version wins over the newest"
    );
    let (_, list) = call(&app, "GET", "/api/agents/support-bot/prompts", None).await;
    let versions: Vec<i64> = list["prompts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, vec![2, 1]);
    let (status, _) = call(
        &app,
        "POST",
        "/api/agents/support-bot/prompts/9/promote",
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&app, "GET", "/api/agents/nobody/prompts/latest", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&app, "GET", "/api/optimization-runs/not-a-uuid", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, e) = call(
        &app,
        "POST",
        "/api/agents/support-bot/prompts",
        Some(json!({"text": ""})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{e}");

    // A second run starts from the promoted registry version.
    let prepared = prepare(&store, &query, Default::default(), 3, None)
        .await
        .unwrap();
    assert_eq!(prepared.prompt_source, PromptSource::Registry);
    assert_eq!(prepared.start_version, Some(1));
}

#[tokio::test]
async fn optimize_end_to_end_sqlite() {
    end_to_end(Backend::Sqlite).await;
}

#[tokio::test]
async fn optimize_end_to_end_postgres() {
    end_to_end(Backend::Postgres).await;
}

#[tokio::test]
async fn too_few_trajectories_are_refused_with_a_clear_message() {
    let t = TestStore::new(Backend::Sqlite).await;
    for _ in 0..3 {
        let id = t
            .store
            .start_trajectory(&NewTrajectory {
                agent_id: "tiny".into(),
                system_prompt: Some("p".into()),
                ..Default::default()
            })
            .await
            .unwrap();
        t.store
            .complete_trajectory(
                id,
                &Completion {
                    success: false,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let query = DatasetQuery {
        limit: 100,
        agent_id: Some("tiny".into()),
        ..Default::default()
    };
    let e = prepare(&t.store, &query, Default::default(), 0, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("found 3 completed trajectories") && e.contains("at least 10"),
        "{e}"
    );
}
