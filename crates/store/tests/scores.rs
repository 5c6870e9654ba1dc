//! Scores: the same cases on SQLite and PostgreSQL.

use std::{collections::HashSet, sync::Arc};

use chrono::Duration;
use futures::TryStreamExt;
use lightning_core::{
    DataType, NewScore, NewTrajectory, ScoreFilter, ScoreSource, ScoreValue, StatsFilter,
    TrajectoryFilter,
};
use lightning_store::{export_stream, testing::TestStore, Store, StoreError};
use serde_json::json;
use uuid::Uuid;

lightning_store::test_on_both_backends!(
    scores_round_trip_every_field_and_type,
    repeating_an_id_updates_last_write_wins,
    concurrent_repeats_of_one_id_store_one_score,
    data_type_of_a_name_is_fixed_per_agent,
    unknown_trajectory_and_foreign_ids_are_refused,
    delete_score_and_cascade_with_trajectory,
    list_filters_by_score,
    score_stats_count_mean_labels_versions_timeline,
    score_stats_leave_out_evaluation_runs_unless_asked,
    export_and_bulk_read_carry_scores,
);

async fn start(store: &Arc<dyn Store>, agent: &str, version: Option<&str>) -> Uuid {
    let t = NewTrajectory {
        agent_id: agent.into(),
        prompt_version: version.map(String::from),
        start_time: Some(lightning_core::time::now() - Duration::minutes(10)),
        ..Default::default()
    };
    store.start_trajectory(&t).await.unwrap()
}

fn score(name: &str, value: ScoreValue) -> NewScore {
    let mut s = NewScore::new(name, value);
    s.validate().unwrap();
    s
}

async fn scores_round_trip_every_field_and_type(t: &TestStore) {
    let s = &t.store;
    let id = start(s, "a", None).await;
    let mut full = score("correctness", ScoreValue::Number(0.75));
    full.comment = Some("missed one edge case ✓".into());
    full.source = Some(ScoreSource::Llm);
    full.id = Some("client-key-1".into());
    full.step_number = Some(3);
    full.metadata = Some(json!({"model": "judge", "n": [1, 2]}));
    assert_eq!(s.upsert_score(id, &full).await.unwrap(), "client-key-1");
    let generated = s
        .upsert_score(id, &score("resolved", ScoreValue::Boolean(false)))
        .await
        .unwrap();
    assert!(generated.parse::<Uuid>().is_ok(), "{generated}");
    s.upsert_score(id, &score("verdict", ScoreValue::Label("pass".into())))
        .await
        .unwrap();
    let got = s.list_scores(id).await.unwrap();
    assert_eq!(got.len(), 3);
    let c = &got[0];
    assert_eq!(
        (c.id.as_str(), c.trajectory_id, c.name.as_str()),
        ("client-key-1", id, "correctness")
    );
    assert_eq!(
        (&c.value, c.data_type, c.source),
        (
            &ScoreValue::Number(0.75),
            DataType::Numeric,
            ScoreSource::Llm
        )
    );
    assert_eq!(c.comment.as_deref(), Some("missed one edge case ✓"));
    assert_eq!(c.step_number, Some(3));
    assert_eq!(c.metadata, Some(json!({"model": "judge", "n": [1, 2]})));
    assert_eq!(c.created_at, c.updated_at);
    assert_eq!(
        (&got[1].value, got[1].data_type, got[1].source),
        (
            &ScoreValue::Boolean(false),
            DataType::Boolean,
            ScoreSource::Sdk
        )
    );
    assert_eq!(got[1].id, generated);
    assert_eq!(
        (&got[2].value, got[2].data_type),
        (&ScoreValue::Label("pass".into()), DataType::Categorical)
    );
    assert!(s.list_scores(Uuid::new_v4()).await.unwrap().is_empty());
}

async fn repeating_an_id_updates_last_write_wins(t: &TestStore) {
    let s = &t.store;
    let id = start(s, "a", None).await;
    let mut first = score("q", ScoreValue::Number(0.2));
    first.id = Some("k".into());
    first.comment = Some("first".into());
    first.source = Some(ScoreSource::Human);
    first.step_number = Some(1);
    s.upsert_score(id, &first).await.unwrap();
    let created = s.list_scores(id).await.unwrap()[0].created_at;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    // The repeat carries a new value and comment but no source and no step: those are kept.
    let mut repeat = score("q", ScoreValue::Number(0.9));
    repeat.id = Some("k".into());
    repeat.comment = Some("second".into());
    s.upsert_score(id, &repeat).await.unwrap();
    let got = s.list_scores(id).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value, ScoreValue::Number(0.9));
    assert_eq!(got[0].comment.as_deref(), Some("second"));
    assert_eq!(got[0].source, ScoreSource::Human);
    assert_eq!(got[0].step_number, Some(1));
    assert_eq!(got[0].created_at, created);
    assert!(got[0].updated_at > created);
    // A repeat naming a source replaces it.
    repeat.source = Some(ScoreSource::Code);
    s.upsert_score(id, &repeat).await.unwrap();
    assert_eq!(
        s.list_scores(id).await.unwrap()[0].source,
        ScoreSource::Code
    );
}

async fn concurrent_repeats_of_one_id_store_one_score(t: &TestStore) {
    let s = &t.store;
    let id = start(s, "a", None).await;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut sc = score("q", ScoreValue::Number(i as f64));
                sc.id = Some("same-key".into());
                s.upsert_score(id, &sc).await
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap(), "same-key");
    }
    let got = s.list_scores(id).await.unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(matches!(got[0].value, ScoreValue::Number(v) if (0.0..12.0).contains(&v)));
    // Concurrent first scores of one new name with different types: exactly one type wins.
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let v = if i % 2 == 0 {
                    ScoreValue::Boolean(true)
                } else {
                    ScoreValue::Label("x".into())
                };
                s.upsert_score(id, &score("raced", v)).await
            })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict(m)) => assert!(m.contains("raced"), "{m}"),
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(ok, 4);
    let types: HashSet<_> = s
        .list_scores(id)
        .await
        .unwrap()
        .iter()
        .filter(|x| x.name == "raced")
        .map(|x| x.data_type)
        .collect();
    assert_eq!(types.len(), 1);
    t.assert_no_locks_left().await;
}

async fn data_type_of_a_name_is_fixed_per_agent(t: &TestStore) {
    let s = &t.store;
    let a = start(s, "agent-a", None).await;
    let a2 = start(s, "agent-a", None).await;
    let b = start(s, "agent-b", None).await;
    s.upsert_score(a, &score("q", ScoreValue::Number(1.0)))
        .await
        .unwrap();
    let err = s
        .upsert_score(a2, &score("q", ScoreValue::Boolean(true)))
        .await
        .unwrap_err();
    match err {
        StoreError::Conflict(m) => {
            assert!(m.starts_with("value:"), "{m}");
            assert!(m.contains("numeric") && m.contains("boolean"), "{m}");
        }
        other => panic!("{other}"),
    }
    // Another agent may use the name with another type.
    s.upsert_score(b, &score("q", ScoreValue::Boolean(true)))
        .await
        .unwrap();
    // Once the agent's last score of the name is gone, the name is free again.
    let only = s.list_scores(a).await.unwrap()[0].id.clone();
    s.delete_score(&only).await.unwrap();
    s.upsert_score(a2, &score("q", ScoreValue::Boolean(true)))
        .await
        .unwrap();
    t.assert_no_locks_left().await;
}

async fn unknown_trajectory_and_foreign_ids_are_refused(t: &TestStore) {
    let s = &t.store;
    let ghost = Uuid::new_v4();
    let err = s
        .upsert_score(ghost, &score("q", ScoreValue::Number(1.0)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(ref m) if m.contains(&ghost.to_string())),
        "{err}"
    );
    let a = start(s, "a", None).await;
    let b = start(s, "a", None).await;
    let mut keyed = score("q", ScoreValue::Number(1.0));
    keyed.id = Some("mine".into());
    s.upsert_score(a, &keyed).await.unwrap();
    let err = s.upsert_score(b, &keyed).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Conflict(ref m) if m.starts_with("id:")),
        "{err}"
    );
    assert!(s.list_scores(b).await.unwrap().is_empty());
    assert_eq!(s.list_scores(a).await.unwrap()[0].trajectory_id, a);
    t.assert_no_locks_left().await;
}

async fn delete_score_and_cascade_with_trajectory(t: &TestStore) {
    let s = &t.store;
    let id = start(s, "a", None).await;
    let one = s
        .upsert_score(id, &score("q", ScoreValue::Number(1.0)))
        .await
        .unwrap();
    s.upsert_score(id, &score("q", ScoreValue::Number(0.0)))
        .await
        .unwrap();
    s.delete_score(&one).await.unwrap();
    assert_eq!(s.list_scores(id).await.unwrap().len(), 1);
    assert!(matches!(
        s.delete_score(&one).await,
        Err(StoreError::NotFound(_))
    ));
    s.delete_trajectory(id).await.unwrap();
    assert!(s.list_scores(id).await.unwrap().is_empty());
    assert!(s
        .score_stats(&StatsFilter::default())
        .await
        .unwrap()
        .is_empty());
}

async fn list_filters_by_score(t: &TestStore) {
    let s = &t.store;
    let good = start(s, "a", None).await;
    let bad = start(s, "a", None).await;
    let unscored = start(s, "a", None).await;
    let labelled = start(s, "a", None).await;
    s.upsert_score(good, &score("q", ScoreValue::Number(0.9)))
        .await
        .unwrap();
    s.upsert_score(bad, &score("q", ScoreValue::Number(0.1)))
        .await
        .unwrap();
    let mut step_thumb = score("thumbs", ScoreValue::Boolean(false));
    step_thumb.step_number = Some(2);
    s.upsert_score(bad, &step_thumb).await.unwrap();
    s.upsert_score(good, &score("thumbs", ScoreValue::Boolean(true)))
        .await
        .unwrap();
    s.upsert_score(
        labelled,
        &score("verdict", ScoreValue::Label("fail".into())),
    )
    .await
    .unwrap();
    let ids = |f: ScoreFilter| {
        let s = s.clone();
        async move {
            let mut got: Vec<Uuid> = s
                .list_trajectories(&TrajectoryFilter {
                    limit: 100,
                    score: Some(f),
                    ..Default::default()
                })
                .await
                .unwrap()
                .trajectories
                .into_iter()
                .map(|t| t.id)
                .collect();
            got.sort();
            got
        }
    };
    let sorted = |mut v: Vec<Uuid>| {
        v.sort();
        v
    };
    let f = |name: &str| ScoreFilter {
        name: name.into(),
        ..Default::default()
    };
    assert_eq!(ids(f("q")).await, sorted(vec![good, bad]));
    assert_eq!(
        ids(ScoreFilter {
            min: Some(0.5),
            ..f("q")
        })
        .await,
        vec![good]
    );
    assert_eq!(
        ids(ScoreFilter {
            max: Some(0.5),
            ..f("q")
        })
        .await,
        vec![bad]
    );
    assert_eq!(
        ids(ScoreFilter {
            max: Some(0.0),
            ..f("thumbs")
        })
        .await,
        vec![bad],
        "a thumbs-down on a step selects its trajectory"
    );
    assert_eq!(
        ids(ScoreFilter {
            label: Some("fail".into()),
            ..f("verdict")
        })
        .await,
        vec![labelled]
    );
    assert!(ids(ScoreFilter {
        label: Some("pass".into()),
        ..f("verdict")
    })
    .await
    .is_empty());
    assert_eq!(
        ids(ScoreFilter {
            missing: true,
            ..f("q")
        })
        .await,
        sorted(vec![unscored, labelled])
    );
}

async fn score_stats_count_mean_labels_versions_timeline(t: &TestStore) {
    let s = &t.store;
    let v1a = start(s, "a", Some("1")).await;
    let v1b = start(s, "a", Some("1")).await;
    let v2 = start(s, "a", Some("2")).await;
    let other = start(s, "b", Some("1")).await;
    for (id, q) in [(v1a, 0.2), (v1b, 0.4), (v2, 0.9), (other, 0.0)] {
        s.upsert_score(id, &score("q", ScoreValue::Number(q)))
            .await
            .unwrap();
    }
    for (id, ok) in [(v1a, true), (v1b, false), (v2, true)] {
        s.upsert_score(id, &score("thumbs", ScoreValue::Boolean(ok)))
            .await
            .unwrap();
    }
    for (id, l) in [(v1a, "pass"), (v2, "pass"), (v1b, "fail")] {
        s.upsert_score(id, &score("verdict", ScoreValue::Label(l.into())))
            .await
            .unwrap();
    }
    let stats = s
        .score_stats(&StatsFilter {
            agent_id: Some("a".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let names: Vec<_> = stats.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(names, ["q", "thumbs", "verdict"]);
    let q = &stats[0];
    assert_eq!(
        (q.count, q.trajectories, q.data_type),
        (3, 3, DataType::Numeric)
    );
    assert!((q.mean.unwrap() - 0.5).abs() < 1e-9, "{:?}", q.mean);
    assert!(q.labels.is_empty());
    let v: Vec<_> = q
        .by_prompt_version
        .iter()
        .map(|p| (p.prompt_version.as_deref(), p.count))
        .collect();
    assert_eq!(v, [(Some("1"), 2), (Some("2"), 1)]);
    assert!((q.by_prompt_version[0].mean.unwrap() - 0.3).abs() < 1e-9);
    assert_eq!(q.timeline.iter().map(|p| p.count).sum::<i64>(), 3);
    let thumbs = &stats[1];
    assert!((thumbs.mean.unwrap() - 2.0 / 3.0).abs() < 1e-9);
    let labels: Vec<_> = thumbs
        .labels
        .iter()
        .map(|l| (l.label.as_str(), l.count))
        .collect();
    assert_eq!(labels, [("true", 2), ("false", 1)]);
    let verdict = &stats[2];
    assert_eq!(
        (verdict.mean, verdict.data_type),
        (None, DataType::Categorical)
    );
    let labels: Vec<_> = verdict
        .labels
        .iter()
        .map(|l| (l.label.as_str(), l.count))
        .collect();
    assert_eq!(labels, [("pass", 2), ("fail", 1)]);
    let v1 = &verdict.by_prompt_version[0];
    assert_eq!(
        v1.labels
            .iter()
            .map(|l| (l.label.as_str(), l.count))
            .collect::<Vec<_>>(),
        [("fail", 1), ("pass", 1)]
    );
    // Without the agent filter, b's score counts too; a time window excluding all gives nothing.
    let all = s.score_stats(&StatsFilter::default()).await.unwrap();
    assert_eq!(all[0].count, 4);
    let none = s
        .score_stats(&StatsFilter {
            since: Some(lightning_core::time::now()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}

async fn score_stats_leave_out_evaluation_runs_unless_asked(t: &TestStore) {
    let s = &t.store;
    let prod_a = start(s, "a", Some("1")).await;
    let prod_b = start(s, "a", None).await;
    let eval_a = start(s, "a", Some("opt-run1-c0")).await;
    let eval_b = start(s, "a", Some("opt-run1-c1")).await;
    for (id, q) in [(prod_a, 0.2), (prod_b, 0.4), (eval_a, 1.0), (eval_b, 1.0)] {
        s.upsert_score(id, &score("q", ScoreValue::Number(q)))
            .await
            .unwrap();
    }
    for (id, l) in [(prod_a, "pass"), (eval_a, "fail"), (eval_b, "fail")] {
        s.upsert_score(id, &score("verdict", ScoreValue::Label(l.into())))
            .await
            .unwrap();
    }
    let labels = |x: &lightning_core::ScoreStats| -> Vec<(String, i64)> {
        x.labels
            .iter()
            .map(|l| (l.label.clone(), l.count))
            .collect()
    };
    let versions = |x: &lightning_core::ScoreStats| -> Vec<Option<String>> {
        x.by_prompt_version
            .iter()
            .map(|p| p.prompt_version.clone())
            .collect()
    };

    // Default: only the two production runs, like the outcome figures beside them.
    let default = StatsFilter::default();
    let outcome = s.stats(&default).await.unwrap();
    let stats = s.score_stats(&default).await.unwrap();
    assert_eq!(stats.len(), 2, "{stats:?}");
    let q = &stats[0];
    assert_eq!((q.name.as_str(), q.count, q.trajectories), ("q", 2, 2));
    assert!((q.mean.unwrap() - 0.3).abs() < 1e-9, "{:?}", q.mean);
    assert!(!versions(q).iter().flatten().any(|v| v.starts_with("opt-")));
    assert_eq!(q.timeline.iter().map(|p| p.count).sum::<i64>(), 2);
    assert_eq!(labels(&stats[1]), [("pass".to_string(), 1)]);
    assert_eq!(
        outcome.trajectories, q.trajectories,
        "score stats cover the same trajectories as the outcome stats"
    );

    // includeEvaluations: the evaluation runs' scores count too.
    let with = StatsFilter {
        include_evaluations: true,
        ..Default::default()
    };
    let stats = s.score_stats(&with).await.unwrap();
    let q = &stats[0];
    assert_eq!((q.count, q.trajectories), (4, 4));
    assert!((q.mean.unwrap() - 0.65).abs() < 1e-9, "{:?}", q.mean);
    assert_eq!(q.timeline.iter().map(|p| p.count).sum::<i64>(), 4);
    assert!(versions(q).contains(&Some("opt-run1-c0".to_string())));
    assert_eq!(
        labels(&stats[1]),
        [("fail".to_string(), 2), ("pass".to_string(), 1)]
    );
    assert_eq!(s.stats(&with).await.unwrap().trajectories, 4);
}

async fn export_and_bulk_read_carry_scores(t: &TestStore) {
    let s = &t.store;
    let mut ids = Vec::new();
    for i in 0..5 {
        let id = start(s, "x", None).await;
        for j in 0..i {
            s.upsert_score(id, &score("q", ScoreValue::Number(j as f64)))
                .await
                .unwrap();
        }
        ids.push(id);
    }
    let all: Vec<_> = export_stream(s.clone(), TrajectoryFilter::default())
        .try_collect()
        .await
        .unwrap();
    let mut counts: Vec<usize> = all.iter().map(|t| t.scores.len()).collect();
    counts.sort();
    assert_eq!(counts, [0, 1, 2, 3, 4]);
    assert!(all.iter().all(|t| t
        .scores
        .iter()
        .all(|sc| sc.trajectory_id == t.trajectory.id)));
    let bulk = s.scores_of(&ids).await.unwrap();
    assert_eq!(bulk.len(), 10);
    assert!(s.scores_of(&[]).await.unwrap().is_empty());
}
