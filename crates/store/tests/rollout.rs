//! Conformance of canary rollouts, the decision history and version comparisons, each case run
//! against SQLite and PostgreSQL.

use chrono::Duration;
use lightning_core::{
    rollout::{EventKind, NewRollout, Reward},
    score::{NewScore, ScoreValue},
    stats::{SequentialTest, Sums, Verdict},
    Completion, NewPrompt, NewStep, NewTrajectory,
};
use lightning_store::{
    compare_rollout, compare_versions, guard_rollout, prompt_event, testing::TestStore, Store,
    StoreError,
};
use std::sync::Arc;

lightning_store::test_on_both_backends!(
    rollout_starts_updates_and_refuses_a_second_version,
    rollout_needs_a_registered_unpromoted_version,
    ending_a_rollout_happens_once,
    concurrent_starts_leave_one_rollout,
    comparison_counts_each_arm,
    guard_rolls_back_a_worse_canary_once,
    comparison_by_score_uses_each_runs_mean_score,
    promoting_the_canary_and_ending_it_are_one_transaction,
    promoting_another_version_ends_the_canary_in_the_same_transaction,
    reward_series_counts_every_run_in_its_bucket,
);

async fn register(store: &dyn Store, agent: &str, text: &str, promote: bool) -> i64 {
    store
        .register_prompt(
            agent,
            &NewPrompt {
                text: text.into(),
                promote,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .version
}

fn percent(p: f64) -> NewRollout {
    NewRollout {
        percent: p,
        actor: Some("alice".into()),
        reason: Some("try v2".into()),
        ..Default::default()
    }
}

async fn rollout_starts_updates_and_refuses_a_second_version(t: &TestStore) {
    let store = &*t.store;
    let v1 = register(store, "a", "one", true).await;
    let v2 = register(store, "a", "two", false).await;
    let v3 = register(store, "a", "three", false).await;
    assert!(store.get_rollout("a").await.unwrap().is_none());

    let (started, event) = store.start_rollout("a", v2, &percent(10.0)).await.unwrap();
    assert_eq!((started.version, started.baseline_version), (v2, Some(v1)));
    assert_eq!(started.percent, 10.0);
    assert_eq!(started.reward, "success");
    assert_eq!(event.kind, EventKind::RolloutStarted);
    assert_eq!(event.actor, "alice");
    assert_eq!(store.get_rollout("a").await.unwrap().unwrap(), started);

    // Same version again: the percentage changes, the rollout (and so every assignment) stays.
    let (updated, event) = store
        .start_rollout(
            "a",
            v2,
            &NewRollout {
                percent: 25.0,
                auto_rollback: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.rollout_id, started.rollout_id);
    assert_eq!((updated.percent, updated.auto_rollback), (25.0, true));
    assert_eq!(event.kind, EventKind::RolloutUpdated);
    assert_eq!(event.actor, "api");

    let err = store
        .start_rollout("a", v3, &percent(5.0))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(m) if m.contains("version 2 in canary")),
        "{err:?}"
    );
    let events = store.list_events("a", 10).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EventKind::RolloutUpdated, EventKind::RolloutStarted]
    );
    assert_eq!(events[1].reason.as_deref(), Some("try v2"));
    assert_eq!(events[1].rollout_id, Some(started.rollout_id));
    assert!(store.list_events("other", 10).await.unwrap().is_empty());
}

async fn rollout_needs_a_registered_unpromoted_version(t: &TestStore) {
    let store = &*t.store;
    assert!(matches!(
        store
            .start_rollout("a", 1, &percent(10.0))
            .await
            .unwrap_err(),
        StoreError::NotFound(_)
    ));
    let v1 = register(store, "a", "one", true).await;
    assert!(matches!(
        store.start_rollout("a", v1, &percent(10.0)).await.unwrap_err(),
        StoreError::Conflict(m) if m.contains("already the promoted")
    ));
    // Without a promoted version the baseline is the agent's own prompt.
    let v1 = register(store, "b", "one", false).await;
    let (r, _) = store.start_rollout("b", v1, &percent(50.0)).await.unwrap();
    assert_eq!(r.baseline_version, None);
}

async fn ending_a_rollout_happens_once(t: &TestStore) {
    let store = &*t.store;
    register(store, "a", "one", true).await;
    let v2 = register(store, "a", "two", false).await;
    let (r, _) = store.start_rollout("a", v2, &percent(10.0)).await.unwrap();
    let ended = prompt_event(&r, EventKind::RolloutEnded, "bob", None, None);
    assert!(store.end_rollout("a", r.rollout_id, &ended).await.unwrap());
    let again = prompt_event(&r, EventKind::RolledBack, "guard", None, None);
    assert!(!store.end_rollout("a", r.rollout_id, &again).await.unwrap());
    assert!(store.get_rollout("a").await.unwrap().is_none());
    let kinds: Vec<_> = store
        .list_events("a", 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    // The losing decision left no event behind.
    assert_eq!(kinds, [EventKind::RolloutEnded, EventKind::RolloutStarted]);
}

async fn concurrent_starts_leave_one_rollout(t: &TestStore) {
    let store: Arc<dyn Store> = t.store.clone();
    register(&*store, "a", "one", true).await;
    let v2 = register(&*store, "a", "two", false).await;
    let v3 = register(&*store, "a", "three", false).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let version = if i % 2 == 0 { v2 } else { v3 };
                store.start_rollout("a", version, &percent(10.0)).await
            })
        })
        .collect();
    let mut started = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok((_, e)) if e.kind == EventKind::RolloutStarted => started += 1,
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(started, 1);
    let events = store.list_events("a", 100).await.unwrap();
    let starts = events
        .iter()
        .filter(|e| e.kind == EventKind::RolloutStarted)
        .count();
    assert_eq!(starts, 1, "{events:?}");
}

/// `n` finished runs of `version`, `successes` of them succeeded, each with one Bash step
/// (erroring in failed runs) and cost 0.01.
async fn runs(store: &dyn Store, agent: &str, version: Option<i64>, n: usize, successes: usize) {
    for i in 0..n {
        let id = store
            .start_trajectory(&NewTrajectory {
                agent_id: agent.into(),
                prompt_version: version.map(|v| v.to_string()),
                ..Default::default()
            })
            .await
            .unwrap();
        let ok = i < successes;
        store
            .append_steps(
                id,
                vec![NewStep {
                    step_number: 0,
                    tool_name: "Bash".into(),
                    error: (!ok).then(|| "exit 1".into()),
                    ..Default::default()
                }],
            )
            .await
            .unwrap();
        store
            .complete_trajectory(
                id,
                &Completion {
                    success: ok,
                    cost_usd: Some(0.01),
                    duration: Some(1000.0),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
}

async fn comparison_counts_each_arm(t: &TestStore) {
    let store = &*t.store;
    runs(store, "a", Some(1), 10, 5).await;
    runs(store, "a", Some(2), 8, 6).await;
    runs(store, "a", None, 4, 4).await;
    runs(store, "other", Some(2), 5, 0).await;
    // A running trajectory counts as a run but has no reward yet.
    store
        .start_trajectory(&NewTrajectory {
            agent_id: "a".into(),
            prompt_version: Some("2".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let c = compare_versions(
        store,
        "a",
        (Some(1), Some(2)),
        None,
        &Reward::Success,
        SequentialTest::default(),
    )
    .await
    .unwrap();
    assert_eq!(c.arms[0].version, "1");
    assert_eq!((c.arms[0].runs, c.arms[0].rewarded), (10, 10));
    assert_eq!((c.arms[1].runs, c.arms[1].rewarded), (9, 8));
    let r = c.arms[1].reward.unwrap();
    assert!((r.value - 0.75).abs() < 1e-12 && r.low < 0.75 && r.high > 0.75);
    assert!((c.arms[1].mean_cost_usd.unwrap() - 0.01).abs() < 1e-12);
    assert_eq!(c.arms[1].mean_duration_ms, Some(1000.0));
    assert_eq!(c.arms[1].tools[0].tool_name, "Bash");
    assert_eq!(
        (c.arms[1].tools[0].calls, c.arms[1].tools[0].errors),
        (8, 2)
    );
    let d = c.difference.unwrap();
    assert!((d.estimate - 0.25).abs() < 1e-12);
    assert_eq!(c.verdict, Verdict::InsufficientData);

    let own = compare_versions(
        store,
        "a",
        (None, Some(1)),
        Some(lightning_core::time::now() + Duration::hours(1)),
        &Reward::Success,
        SequentialTest::default(),
    )
    .await
    .unwrap();
    assert_eq!(own.arms[0].version, "none");
    assert_eq!(
        (own.arms[0].runs, own.arms[1].runs),
        (0, 0),
        "since excludes"
    );
    assert!(own.difference.is_none());
}

async fn guard_rolls_back_a_worse_canary_once(t: &TestStore) {
    let store = &*t.store;
    let v1 = register(store, "a", "one", true).await;
    let v2 = register(store, "a", "two", false).await;
    let (r, _) = store
        .start_rollout(
            "a",
            v2,
            &NewRollout {
                percent: 50.0,
                auto_rollback: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let test = SequentialTest::default();
    runs(store, "a", Some(v1), 40, 36).await;
    runs(store, "a", Some(v2), 40, 30).await;
    // 0.90 vs 0.75 over 40 runs each: not significant yet (always-valid p > 0.05).
    let c = compare_rollout(store, &r, test).await.unwrap();
    assert_eq!(c.verdict, Verdict::NoDifferenceYet, "{c:?}");
    assert!(guard_rollout(store, &r, test).await.unwrap().is_none());

    runs(store, "a", Some(v1), 160, 150).await;
    runs(store, "a", Some(v2), 160, 100).await;
    let event = guard_rollout(store, &r, test)
        .await
        .unwrap()
        .expect("rolled back");
    assert_eq!(
        (event.kind, event.actor.as_str()),
        (EventKind::RolledBack, "guard")
    );
    assert!(event.reason.unwrap().contains("significantly worse"));
    assert_eq!(event.evidence.unwrap()["verdict"], "worse");
    assert!(store.get_rollout("a").await.unwrap().is_none());
    // A second guard (another collector) finds nothing to do.
    assert!(guard_rollout(store, &r, test).await.unwrap().is_none());
    let promoted = store.list_prompts("a").await.unwrap();
    assert!(promoted.iter().any(|p| p.version == v1 && p.promoted));
}

async fn scored_run(store: &dyn Store, version: i64, values: &[f64], step_value: Option<f64>) {
    let id = store
        .start_trajectory(&NewTrajectory {
            agent_id: "s".into(),
            prompt_version: Some(version.to_string()),
            ..Default::default()
        })
        .await
        .unwrap();
    let new = |value: f64, step_number: Option<i64>| NewScore {
        name: "quality".into(),
        value: ScoreValue::Number(value),
        comment: None,
        source: None,
        id: None,
        step_number,
        metadata: None,
    };
    for v in values {
        store.upsert_score(id, &new(*v, None)).await.unwrap();
    }
    if let Some(v) = step_value {
        // A step's score is not the run's outcome.
        store.upsert_score(id, &new(v, Some(0))).await.unwrap();
    }
}

async fn comparison_by_score_uses_each_runs_mean_score(t: &TestStore) {
    let store = &*t.store;
    scored_run(store, 1, &[0.2, 0.4], Some(1.0)).await; // mean 0.3
    scored_run(store, 1, &[0.5], None).await;
    scored_run(store, 2, &[0.9], Some(0.0)).await;
    scored_run(store, 2, &[0.7, 0.9], None).await; // mean 0.8
    runs(store, "s", Some(2), 1, 1).await; // no score: no reward
    let c = compare_versions(
        store,
        "s",
        (Some(1), Some(2)),
        None,
        &Reward::Score("quality".into()),
        SequentialTest::default(),
    )
    .await
    .unwrap();
    assert_eq!(c.reward, "score:quality");
    assert_eq!((c.arms[0].runs, c.arms[0].rewarded), (2, 2));
    assert_eq!((c.arms[1].runs, c.arms[1].rewarded), (3, 2));
    assert!(
        (c.arms[0].reward.unwrap().value - 0.4).abs() < 1e-9,
        "{c:?}"
    );
    assert!(
        (c.arms[1].reward.unwrap().value - 0.85).abs() < 1e-9,
        "{c:?}"
    );
    assert!((c.difference.unwrap().estimate - 0.45).abs() < 1e-9);

    // The chart's series under the same reward: each run's mean score, step scores left out.
    let now = chrono::Utc::now();
    let (since, until) = (now - Duration::hours(1), now + Duration::minutes(1));
    let s = lightning_store::reward_series(
        store,
        "s",
        &[Some(1), Some(2)],
        (since, until),
        3,
        &Reward::Score("quality".into()),
    )
    .await
    .unwrap();
    assert_eq!(s.reward, "score:quality");
    let starts = lightning_core::rollout::bucket_starts(since, until, 3);
    for (series, mean, sums) in [
        (&s.series[0], 0.4, Sums::from_values([0.3, 0.5])),
        (&s.series[1], 0.85, Sums::from_values([0.9, 0.8])),
    ] {
        // every run started just now: in the last bucket
        assert_eq!(series.points.len(), 1, "{series:?}");
        let p = &series.points[0];
        assert_eq!((p.n, p.start, p.end), (2, starts[2], until));
        assert!((p.reward.value - mean).abs() < 1e-9, "{p:?}");
        let expected = sums.mean_interval(lightning_core::stats::Z_95).unwrap();
        assert!(
            (p.reward.low - expected.low).abs() < 1e-9
                && (p.reward.high - expected.high).abs() < 1e-9,
            "{p:?}"
        );
    }
}

async fn promoting_the_canary_and_ending_it_are_one_transaction(t: &TestStore) {
    let store = &*t.store;
    let v1 = register(store, "a", "one", true).await;
    let v2 = register(store, "a", "two", false).await;
    let (r, _) = store.start_rollout("a", v2, &percent(50.0)).await.unwrap();

    // A failure after the promotion inside the transaction (here: an event whose id is already
    // taken) leaves everything as it was: v1 promoted, v2 still in canary, no new event.
    let taken = prompt_event(&r, EventKind::RolloutUpdated, "bob", None, None);
    store.record_event(&taken).await.unwrap();
    let err = store
        .promote_and_record("a", v2, Some(r.rollout_id), std::slice::from_ref(&taken))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    let promoted: Vec<_> = store
        .list_prompts("a")
        .await
        .unwrap()
        .into_iter()
        .filter(|p| p.promoted)
        .map(|p| p.version)
        .collect();
    assert_eq!(promoted, [v1]);
    assert_eq!(
        store.get_rollout("a").await.unwrap().map(|r| r.version),
        Some(v2)
    );
    assert_eq!(store.list_events("a", 10).await.unwrap().len(), 2);

    // The rollout ended concurrently (the guard won): the promotion is refused, nothing changes.
    let gone = prompt_event(&r, EventKind::RolledBack, "guard", None, None);
    assert!(store.end_rollout("a", r.rollout_id, &gone).await.unwrap());
    let late = prompt_event(&r, EventKind::Promoted, "alice", None, None);
    let err = store
        .promote_and_record("a", v2, Some(r.rollout_id), &[late])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(store
        .list_prompts("a")
        .await
        .unwrap()
        .iter()
        .all(|p| p.promoted == (p.version == v1)));

    // The normal path: promoted, canary ended, the event with who, why and the evidence.
    let (r, _) = store.start_rollout("a", v2, &percent(50.0)).await.unwrap();
    let decision = lightning_core::rollout::Decision {
        actor: Some("alice".into()),
        reason: Some("better".into()),
        evidence: None,
    };
    let p = lightning_store::promote_with_history(store, "a", v2, decision)
        .await
        .unwrap();
    assert!(p.promoted && p.version == v2);
    assert!(store.get_rollout("a").await.unwrap().is_none());
    let e = &store.list_events("a", 1).await.unwrap()[0];
    assert_eq!(
        (
            e.kind,
            e.version,
            e.rollout_id,
            e.actor.as_str(),
            e.reason.as_deref()
        ),
        (
            EventKind::Promoted,
            Some(v2),
            Some(r.rollout_id),
            "alice",
            Some("better")
        )
    );
    assert_eq!(e.evidence.as_ref().unwrap()["arms"][1]["version"], "2");
}

async fn promoting_another_version_ends_the_canary_in_the_same_transaction(t: &TestStore) {
    let store = &*t.store;
    register(store, "a", "one", true).await;
    let v2 = register(store, "a", "two", false).await;
    let v3 = register(store, "a", "three", false).await;
    let (r, _) = store.start_rollout("a", v2, &percent(50.0)).await.unwrap();
    lightning_store::promote_with_history(store, "a", v3, Default::default())
        .await
        .unwrap();
    assert!(store.get_rollout("a").await.unwrap().is_none());
    let events = store.list_events("a", 2).await.unwrap();
    let kinds: Vec<_> = events.iter().map(|e| (e.kind, e.version)).collect();
    assert!(
        kinds.contains(&(EventKind::Promoted, Some(v3)))
            && kinds.contains(&(EventKind::RolloutEnded, Some(v2))),
        "{kinds:?}"
    );
    let ended = events
        .iter()
        .find(|e| e.kind == EventKind::RolloutEnded)
        .unwrap();
    assert_eq!(ended.rollout_id, Some(r.rollout_id));
    assert_eq!(ended.actor, "api");
    // The same-version case is covered above; the baseline is gone, so no canary remains.
    assert!(store
        .list_prompts("a")
        .await
        .unwrap()
        .iter()
        .all(|p| p.promoted == (p.version == v3)));
}

/// A finished run of `version` that started at `at`.
async fn run_at(
    store: &dyn Store,
    agent: &str,
    version: Option<i64>,
    at: chrono::DateTime<chrono::Utc>,
    ok: Option<bool>,
) {
    let id = store
        .start_trajectory(&NewTrajectory {
            agent_id: agent.into(),
            prompt_version: version.map(|v| v.to_string()),
            start_time: Some(at),
            ..Default::default()
        })
        .await
        .unwrap();
    if let Some(ok) = ok {
        store
            .complete_trajectory(
                id,
                &Completion {
                    success: ok,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
}

async fn reward_series_counts_every_run_in_its_bucket(t: &TestStore) {
    use lightning_core::stats::{wilson, Z_95};
    let store = &*t.store;
    let v1 = register(store, "a", "one", true).await;
    let v2 = register(store, "a", "two", false).await;
    let since = chrono::Utc::now() - Duration::hours(10);
    let until = since + Duration::hours(10);
    // 1,200 finished runs of v1, 120 per hour, half succeeded; 300 of v2 in the last 5 hours,
    // three in four succeeded: more than any page of trajectories holds (1,000).
    for i in 0..1_200i64 {
        let at = since + Duration::seconds(i * 30 + 1);
        run_at(store, "a", Some(v1), at, Some(i % 2 == 0)).await;
    }
    for i in 0..300i64 {
        let at = since + Duration::hours(5) + Duration::seconds(i * 60 + 1);
        run_at(store, "a", Some(v2), at, Some(i % 4 != 0)).await;
    }
    // Not counted: a running run, one before the window, one of another agent.
    run_at(store, "a", Some(v1), since + Duration::minutes(1), None).await;
    run_at(
        store,
        "a",
        Some(v1),
        since - Duration::minutes(1),
        Some(true),
    )
    .await;
    run_at(
        store,
        "b",
        Some(v1),
        since + Duration::minutes(1),
        Some(true),
    )
    .await;

    let s = lightning_store::reward_series(
        store,
        "a",
        &[Some(v1), Some(v2)],
        (since, until),
        10,
        &Reward::Success,
    )
    .await
    .unwrap();
    assert_eq!(s.buckets, 10);
    let [one, two] = &s.series[..] else {
        panic!("{s:?}")
    };
    assert_eq!((one.version.as_str(), two.version.as_str()), ("1", "2"));
    assert_eq!(one.points.len(), 10, "{one:?}");
    assert_eq!(one.points.iter().map(|p| p.n).sum::<i64>(), 1_200);
    for (i, p) in one.points.iter().enumerate() {
        assert_eq!(p.n, 120, "bucket {i}: {p:?}");
        assert_eq!(p.start, since + Duration::hours(i as i64));
        assert_eq!(p.end, since + Duration::hours(i as i64 + 1));
        assert_eq!(p.reward, wilson(60.0, 120.0, Z_95).unwrap());
    }
    assert_eq!(two.points.len(), 5, "{two:?}");
    assert_eq!(two.points[0].start, since + Duration::hours(5));
    for p in &two.points {
        assert_eq!((p.n, p.reward), (60, wilson(45.0, 60.0, Z_95).unwrap()));
    }
    // The window and the resolution are the caller's; no run is lost at any of them.
    let coarse = lightning_store::reward_series(
        store,
        "a",
        &[Some(v1)],
        (since, until),
        1,
        &Reward::Success,
    )
    .await
    .unwrap();
    assert_eq!(coarse.series[0].points[0].n, 1_200);
    assert_eq!(
        coarse.series[0].points[0].reward,
        wilson(600.0, 1200.0, Z_95).unwrap()
    );
}
