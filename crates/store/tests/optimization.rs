//! Conformance of the optimization storage (runs, candidates, prompt registry), each case run
//! against SQLite and PostgreSQL.

use std::sync::Arc;

use lightning_core::evidence::Score;
use lightning_core::{
    CandidateEvaluation, CandidateScores, CandidateStatus, Completion, IntervalMethod, NewPrompt,
    NewTrajectory, OptimizationRun, PairedDifference, PromptCandidate, RunEvidence, RunStatus,
    Split, SplitSizes, StatsFilter, TrajectoryFilter, Verdict,
};
use lightning_store::{testing::TestStore, Store, StoreError};
use serde_json::json;
use uuid::Uuid;

lightning_store::test_on_both_backends!(
    run_round_trips_and_updates,
    runs_list_newest_first_per_agent,
    candidates_upsert_keeps_lineage,
    candidates_need_an_existing_run,
    prompt_versions_count_up_per_agent,
    only_one_version_is_promoted,
    latest_is_the_promoted_version_only,
    evidence_and_scores_round_trip,
    evaluations_upsert_and_list_per_run,
    evaluation_runs_are_left_out_of_stats_by_default,
    concurrent_registrations_get_distinct_versions,
    register_checks_the_source_run,
    llm_replies_are_kept_once_per_key_and_occurrence,
);

fn candidate(run: Uuid, parent: Option<Uuid>, round: i64, prompt: &str) -> PromptCandidate {
    PromptCandidate {
        id: Uuid::now_v7(),
        run_id: run,
        parent_id: parent,
        round,
        prompt: prompt.into(),
        critique: None,
        minibatch_score: None,
        validation_score: None,
        evaluations: 0,
        status: CandidateStatus::Seed,
        created_at: lightning_core::time::now(),
        scores: CandidateScores::default(),
    }
}

fn score(mean: f64, n: i64) -> Score {
    Score {
        mean,
        n,
        // Binary fractions, so the JSON round trip is exact.
        low: (mean - 0.125).max(0.0),
        high: (mean + 0.125).min(1.0),
        confidence: 0.95,
        method: IntervalMethod::Wilson,
    }
}

fn evidence() -> RunEvidence {
    RunEvidence {
        evaluator: "command".into(),
        estimate: false,
        split: SplitSizes {
            train: 40,
            validation: 30,
            test: 30,
        },
        confidence: 0.95,
        min_improvement: 0.0,
        baseline_validation: Some(score(0.375, 30)),
        best_validation: Some(score(0.625, 30)),
        baseline_test: score(0.25, 30),
        best_test: score(0.5, 30),
        difference: PairedDifference {
            mean: 0.25,
            n: 30,
            low: 0.05,
            high: 0.42,
            confidence: 0.95,
            method: IntervalMethod::Newcombe,
            wins: 9,
            losses: 1,
            ties: 20,
        },
        significant: true,
        verdict: Verdict::Registered,
    }
}

fn new_prompt(text: &str) -> NewPrompt {
    NewPrompt {
        text: text.into(),
        ..Default::default()
    }
}

async fn run_round_trips_and_updates(t: &TestStore) {
    let store = &t.store;
    let mut run = OptimizationRun::start("agent-a", json!({"beam": 4, "model": "m"}), 120);
    store.create_run(&run).await.unwrap();
    assert_eq!(store.get_run(run.id).await.unwrap(), run);

    run.status = RunStatus::Completed;
    run.finished_at = Some(lightning_core::time::now());
    run.baseline_score = Some(0.25);
    run.best_score = Some(0.75);
    run.best_candidate_id = Some(Uuid::now_v7());
    run.llm_calls = 32;
    run.evaluations = 301;
    run.error = Some("budget exhausted".into());
    store.update_run(&run).await.unwrap();
    assert_eq!(store.get_run(run.id).await.unwrap(), run);

    let unknown = OptimizationRun::start("x", json!({}), 0);
    assert!(matches!(
        store.update_run(&unknown).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        store.get_run(unknown.id).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn runs_list_newest_first_per_agent(t: &TestStore) {
    let store = &t.store;
    let mut ids = Vec::new();
    for (i, agent) in ["a", "b", "a", "a"].iter().enumerate() {
        let mut run = OptimizationRun::start(*agent, json!({}), 10);
        run.started_at += chrono::Duration::seconds(i as i64);
        store.create_run(&run).await.unwrap();
        ids.push(run.id);
    }
    let all = store.list_runs(None, 50).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![ids[3], ids[2], ids[1], ids[0]]
    );
    let a = store.list_runs(Some("a"), 2).await.unwrap();
    assert_eq!(
        a.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![ids[3], ids[2]]
    );
    assert!(store
        .list_runs(Some("nobody"), 10)
        .await
        .unwrap()
        .is_empty());
}

async fn candidates_upsert_keeps_lineage(t: &TestStore) {
    let store = &t.store;
    let run = OptimizationRun::start("a", json!({}), 10);
    store.create_run(&run).await.unwrap();
    let seed = candidate(run.id, None, 0, "You are helpful. {task}");
    let mut child = candidate(
        run.id,
        Some(seed.id),
        1,
        "You are helpful and careful. {task}",
    );
    child.critique = Some("- mention care".into());
    child.status = CandidateStatus::Pruned;
    child.minibatch_score = Some(0.5);
    child.evaluations = 4;
    store
        .save_candidates(&[seed.clone(), child.clone()])
        .await
        .unwrap();
    assert_eq!(
        store.list_candidates(run.id).await.unwrap(),
        vec![seed.clone(), child.clone()]
    );

    // Later the child is scored on validation and kept; the prompt and lineage cannot change.
    let mut updated = child.clone();
    updated.validation_score = Some(0.8);
    updated.evaluations = 34;
    updated.status = CandidateStatus::Best;
    let mut tampered = updated.clone();
    tampered.prompt = "something else".into();
    tampered.parent_id = None;
    store.save_candidates(&[tampered]).await.unwrap();
    let stored = store.list_candidates(run.id).await.unwrap();
    assert_eq!(stored, vec![seed, updated]);
    assert!(store
        .list_candidates(Uuid::now_v7())
        .await
        .unwrap()
        .is_empty());
    store.save_candidates(&[]).await.unwrap();
}

async fn candidates_need_an_existing_run(t: &TestStore) {
    let c = candidate(Uuid::now_v7(), None, 0, "p");
    assert!(matches!(
        t.store.save_candidates(&[c]).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn prompt_versions_count_up_per_agent(t: &TestStore) {
    let store = &t.store;
    assert!(store.list_prompts("a").await.unwrap().is_empty());
    let v1 = store
        .register_prompt("a", &new_prompt("one"))
        .await
        .unwrap();
    let v2 = store
        .register_prompt(
            "a",
            &NewPrompt {
                text: "two".into(),
                note: Some("better".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let other = store
        .register_prompt("b", &new_prompt("b-one"))
        .await
        .unwrap();
    assert_eq!((v1.version, v2.version, other.version), (1, 2, 1));
    assert!(!v1.promoted && !v2.promoted);
    assert_eq!(v2.note.as_deref(), Some("better"));
    let listed = store.list_prompts("a").await.unwrap();
    assert_eq!(listed, vec![v2.clone(), v1.clone()]);
    assert_eq!(store.get_prompt("a", 1).await.unwrap(), v1);
    assert!(matches!(
        store.get_prompt("a", 3).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn only_one_version_is_promoted(t: &TestStore) {
    let store = &t.store;
    for text in ["one", "two", "three"] {
        store.register_prompt("a", &new_prompt(text)).await.unwrap();
    }
    store.register_prompt("b", &new_prompt("b")).await.unwrap();
    store.promote_prompt("b", 1).await.unwrap();
    let p = store.promote_prompt("a", 2).await.unwrap();
    assert!(p.promoted && p.version == 2 && p.text == "two");
    let p = store.promote_prompt("a", 3).await.unwrap();
    assert_eq!(p.version, 3);
    // Promoting the promoted one again is fine.
    store.promote_prompt("a", 3).await.unwrap();
    let promoted: Vec<i64> = store
        .list_prompts("a")
        .await
        .unwrap()
        .iter()
        .filter(|p| p.promoted)
        .map(|p| p.version)
        .collect();
    assert_eq!(promoted, vec![3]);
    // Other agents are untouched.
    assert!(store.get_prompt("b", 1).await.unwrap().promoted);
    assert!(matches!(
        store.promote_prompt("a", 9).await,
        Err(StoreError::NotFound(_))
    ));
    // A failed promotion leaves the previous one in place.
    assert!(store.get_prompt("a", 3).await.unwrap().promoted);

    // Registering with promote moves the flag to the new version.
    let v4 = store
        .register_prompt(
            "a",
            &NewPrompt {
                text: "four".into(),
                promote: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(v4.promoted);
    let promoted: Vec<i64> = store
        .list_prompts("a")
        .await
        .unwrap()
        .iter()
        .filter(|p| p.promoted)
        .map(|p| p.version)
        .collect();
    assert_eq!(promoted, vec![4]);
}

async fn latest_is_the_promoted_version_only(t: &TestStore) {
    let store = &t.store;
    assert_eq!(store.latest_prompt("a").await.unwrap(), None);
    store
        .register_prompt("a", &new_prompt("one"))
        .await
        .unwrap();
    let two = store
        .register_prompt(
            "a",
            &NewPrompt {
                text: "two".into(),
                evaluator: Some("command".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(two.evaluator.as_deref(), Some("command"));
    assert_eq!(store.get_prompt("a", 2).await.unwrap(), two);
    // Registered but unpromoted versions are candidates: nothing is served.
    assert_eq!(store.latest_prompt("a").await.unwrap(), None);
    store.promote_prompt("a", 1).await.unwrap();
    let latest = store.latest_prompt("a").await.unwrap().unwrap();
    assert_eq!((latest.version, latest.promoted), (1, true));
    store.promote_prompt("a", 2).await.unwrap();
    assert_eq!(store.latest_prompt("a").await.unwrap().unwrap().version, 2);
}

async fn evidence_and_scores_round_trip(t: &TestStore) {
    let store = &t.store;
    let mut run = OptimizationRun::start("a", json!({}), 100);
    store.create_run(&run).await.unwrap();
    assert_eq!(store.get_run(run.id).await.unwrap().evidence, None);
    run.evidence = Some(evidence());
    run.status = RunStatus::Completed;
    store.update_run(&run).await.unwrap();
    assert_eq!(store.get_run(run.id).await.unwrap(), run);
    let mut c = candidate(run.id, None, 0, "seed");
    c.scores = CandidateScores {
        minibatch: Some(score(0.5, 4)),
        validation: Some(score(0.375, 30)),
        test: Some(score(0.25, 30)),
    };
    store
        .save_candidates(std::slice::from_ref(&c))
        .await
        .unwrap();
    assert_eq!(
        store.list_candidates(run.id).await.unwrap(),
        vec![c.clone()]
    );
    c.scores.test = None;
    store
        .save_candidates(std::slice::from_ref(&c))
        .await
        .unwrap();
    assert_eq!(
        store.list_candidates(run.id).await.unwrap()[0].scores.test,
        None
    );
}

fn evaluation(run: Uuid, candidate: Uuid, split: Split, reward: f64) -> CandidateEvaluation {
    CandidateEvaluation {
        run_id: run,
        candidate_id: candidate,
        trajectory_id: Uuid::now_v7(),
        split,
        reward,
        feedback: Some("missing: CITE_FILES".into()),
        error: None,
        evaluator: "command".into(),
        duration_ms: 12,
        cost_usd: Some(0.002),
        evaluation_trajectory_id: Some(Uuid::now_v7()),
        created_at: lightning_core::time::now(),
    }
}

async fn evaluations_upsert_and_list_per_run(t: &TestStore) {
    let store = &t.store;
    let run = OptimizationRun::start("a", json!({}), 10);
    let other = OptimizationRun::start("a", json!({}), 10);
    store.create_run(&run).await.unwrap();
    store.create_run(&other).await.unwrap();
    let (c1, c2) = (Uuid::now_v7(), Uuid::now_v7());
    let mut evals: Vec<CandidateEvaluation> = (0..700)
        .map(|i| {
            let split = [Split::Train, Split::Validation, Split::Test][i % 3];
            evaluation(
                run.id,
                if i % 2 == 0 { c1 } else { c2 },
                split,
                (i % 2) as f64,
            )
        })
        .collect();
    evals[1].feedback = None;
    evals[1].error = Some("timed out".into());
    evals[1].cost_usd = None;
    evals[1].evaluation_trajectory_id = None;
    // More than one INSERT chunk, in one call.
    store.save_evaluations(&evals).await.unwrap();
    store
        .save_evaluations(&[evaluation(other.id, c1, Split::Test, 1.0)])
        .await
        .unwrap();
    let listed = store.list_evaluations(run.id).await.unwrap();
    assert_eq!(listed.len(), 700);
    let mut sorted = evals.clone();
    sorted.sort_by_key(|e| (e.created_at, e.candidate_id, e.trajectory_id));
    assert_eq!(listed, sorted);
    // Repeating an evaluation overwrites it.
    let mut again = evals[0].clone();
    again.reward = 0.5;
    again.feedback = Some("retried".into());
    store
        .save_evaluations(std::slice::from_ref(&again))
        .await
        .unwrap();
    let listed = store.list_evaluations(run.id).await.unwrap();
    assert_eq!(listed.len(), 700);
    assert!(listed.contains(&again));
    assert_eq!(store.list_evaluations(other.id).await.unwrap().len(), 1);
    assert!(store
        .list_evaluations(Uuid::now_v7())
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        store
            .save_evaluations(&[evaluation(Uuid::now_v7(), c1, Split::Train, 0.0)])
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn evaluation_runs_are_left_out_of_stats_by_default(t: &TestStore) {
    let store = &t.store;
    for (version, success) in [
        (None, true),
        (Some("3"), false),
        (Some("opt-0190a1b2-candidate"), true),
        (Some("opt-0190a1b2-candidate"), true),
    ] {
        let id = store
            .start_trajectory(&NewTrajectory {
                agent_id: "a".into(),
                prompt_version: version.map(String::from),
                ..Default::default()
            })
            .await
            .unwrap();
        store
            .complete_trajectory(
                id,
                &Completion {
                    success,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let stats = store.stats(&StatsFilter::default()).await.unwrap();
    assert_eq!((stats.trajectories, stats.succeeded), (2, 1));
    assert_eq!(stats.agents[0].trajectories, 2);
    let all = store
        .stats(&StatsFilter {
            include_evaluations: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((all.trajectories, all.succeeded), (4, 3));
    let listed = |exclude| TrajectoryFilter {
        limit: 100,
        exclude_evaluations: exclude,
        ..Default::default()
    };
    let page = store.list_trajectories(&listed(true)).await.unwrap();
    assert_eq!(page.trajectories.len(), 2);
    assert!(page
        .trajectories
        .iter()
        .all(|t| !lightning_core::evidence::is_evaluation_version(t.prompt_version.as_deref())));
    let page = store.list_trajectories(&listed(false)).await.unwrap();
    assert_eq!(page.trajectories.len(), 4);
}

async fn concurrent_registrations_get_distinct_versions(t: &TestStore) {
    let store: Arc<dyn Store> = t.store.clone();
    let tasks: Vec<_> = (0..8u32)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .register_prompt(
                        "a",
                        &NewPrompt {
                            text: format!("v{i}"),
                            promote: i.is_multiple_of(2),
                            ..Default::default()
                        },
                    )
                    .await
            })
        })
        .collect();
    let mut versions = Vec::new();
    for task in tasks {
        versions.push(task.await.unwrap().unwrap().version);
    }
    versions.sort();
    assert_eq!(versions, (1..=8).collect::<Vec<_>>());
    let promoted = store
        .list_prompts("a")
        .await
        .unwrap()
        .iter()
        .filter(|p| p.promoted)
        .count();
    assert_eq!(promoted, 1);
}

async fn register_checks_the_source_run(t: &TestStore) {
    let store = &t.store;
    let missing = NewPrompt {
        text: "x".into(),
        source_run_id: Some(Uuid::now_v7()),
        ..Default::default()
    };
    assert!(matches!(
        store.register_prompt("a", &missing).await,
        Err(StoreError::Conflict(_))
    ));
    let run = OptimizationRun::start("a", json!({}), 1);
    store.create_run(&run).await.unwrap();
    let p = store
        .register_prompt(
            "a",
            &NewPrompt {
                text: "x".into(),
                source_run_id: Some(run.id),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(p.source_run_id, Some(run.id));
    assert_eq!(p.version, 1);
}

async fn llm_replies_are_kept_once_per_key_and_occurrence(t: &TestStore) {
    let store = &t.store;
    let run = OptimizationRun::start("a", json!({}), 10);
    store.create_run(&run).await.unwrap();
    let reply = |key: &str, occurrence: i64, text: &str| lightning_core::StoredLlmReply {
        request_key: key.into(),
        occurrence,
        text: text.into(),
        input_tokens: 12,
        output_tokens: 3,
    };
    store
        .save_llm_reply(run.id, &reply("k1", 0, "first"))
        .await
        .unwrap();
    store
        .save_llm_reply(run.id, &reply("k1", 1, "second"))
        .await
        .unwrap();
    store
        .save_llm_reply(run.id, &reply("k2", 0, "other ✓"))
        .await
        .unwrap();
    // a repeat keeps what was stored first (the reply the search already acted on)
    store
        .save_llm_reply(run.id, &reply("k1", 0, "changed"))
        .await
        .unwrap();
    let got = store.list_llm_replies(run.id).await.unwrap();
    assert_eq!(
        got,
        vec![
            reply("k1", 0, "first"),
            reply("k1", 1, "second"),
            reply("k2", 0, "other ✓")
        ]
    );
    let other = OptimizationRun::start("a", json!({}), 10);
    store.create_run(&other).await.unwrap();
    assert!(store.list_llm_replies(other.id).await.unwrap().is_empty());
    assert!(matches!(
        store
            .save_llm_reply(Uuid::now_v7(), &reply("k", 0, "x"))
            .await,
        Err(lightning_store::StoreError::NotFound(_))
    ));
}
