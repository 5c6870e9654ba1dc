//! One conformance suite, each case written once and run against SQLite and PostgreSQL.

use std::{collections::HashSet, sync::Arc};

use chrono::{Duration, TimeZone, Utc};
use futures::TryStreamExt;
use lightning_core::{
    ingest::StepBatch, Completion, CompletionStatus, NewStep, NewTrajectory, StatsFilter, Status,
    StepKind, TimeBucket, TrajectoryFilter, Usage,
};
use lightning_store::{export_stream, testing::TestStore, Backend, Store, StoreError};
use serde_json::json;
use uuid::Uuid;

lightning_store::test_on_both_backends!(
    start_then_get_returns_every_field,
    start_with_client_id_is_idempotent,
    steps_are_stored_in_order_with_counts,
    steps_for_unknown_trajectory_write_nothing,
    resent_steps_merge_instead_of_duplicating,
    concurrent_identical_batches_never_duplicate,
    large_batch_spanning_statements_is_atomic,
    complete_records_outcome_and_merges_repeats,
    complete_unknown_trajectory_is_not_found,
    list_filters_and_paginates_without_gaps,
    search_matches_substrings_and_escapes_wildcards,
    stats_aggregate_outcomes_tools_agents_and_timeline,
    agents_summarize_counts_and_last_seen,
    delete_removes_steps_too,
    deleting_while_steps_arrive_leaves_no_orphan_steps,
    export_streams_every_trajectory_with_steps,
    json_values_round_trip_exactly,
    completion_status_is_stored_filtered_and_counted,
    idle_sweep_abandons_and_late_activity_corrects,
    sweeps_from_two_stores_at_once_mark_each_trajectory_once,
    step_kinds_are_stored_and_only_tools_count,
    counters_and_tool_stats_stay_exact_under_concurrent_merges,
    a_failing_batch_does_not_fail_its_neighbours,
);

fn new_trajectory(agent: &str) -> NewTrajectory {
    NewTrajectory {
        agent_id: agent.into(),
        ..Default::default()
    }
}

fn step(n: i64, tool: &str) -> NewStep {
    NewStep {
        step_number: n,
        tool_name: tool.into(),
        tool_input: Some(json!({"n": n})),
        ..Default::default()
    }
}

async fn start(store: &Arc<dyn Store>, agent: &str) -> Uuid {
    store
        .start_trajectory(&new_trajectory(agent))
        .await
        .unwrap()
}

async fn start_at(store: &Arc<dyn Store>, agent: &str, minutes_ago: i64) -> Uuid {
    let mut t = new_trajectory(agent);
    t.start_time = Some(lightning_core::time::now() - Duration::minutes(minutes_ago));
    store.start_trajectory(&t).await.unwrap()
}

async fn complete(store: &Arc<dyn Store>, id: Uuid, success: bool) {
    let c = Completion {
        success,
        ..Default::default()
    };
    store.complete_trajectory(id, &c).await.unwrap();
}

async fn start_then_get_returns_every_field(t: &TestStore) {
    let s = &t.store;
    let start =
        Utc.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap() + Duration::microseconds(123_456);
    let mut input = NewTrajectory {
        agent_id: "coder".into(),
        task_type: Some("bugfix".into()),
        start_time: Some(start),
        trajectory_id: None,
        session_id: Some("sess-1".into()),
        prompt: Some("Fix the bug ✓".into()),
        system_prompt: Some("You are careful.".into()),
        prompt_version: Some("7".into()),
        model: Some("claude-sonnet".into()),
        metadata: Some(json!({"repo": "x", "nested": {"a": [1, 2]}})),
    };
    input.validate().unwrap();
    let id = s.start_trajectory(&input).await.unwrap();
    let got = s.get_trajectory(id).await.unwrap();
    assert_eq!(got.id, id);
    assert_eq!(got.agent_id, "coder");
    assert_eq!(got.task_type.as_deref(), Some("bugfix"));
    assert_eq!(got.session_id.as_deref(), Some("sess-1"));
    assert_eq!(got.prompt.as_deref(), Some("Fix the bug ✓"));
    assert_eq!(got.system_prompt.as_deref(), Some("You are careful."));
    assert_eq!(got.prompt_version.as_deref(), Some("7"));
    assert_eq!(got.model.as_deref(), Some("claude-sonnet"));
    assert_eq!(got.metadata, input.metadata);
    assert_eq!(got.start_time, start);
    assert_eq!(got.status, Status::Running);
    assert_eq!((got.success, got.end_time, got.step_count), (None, None, 0));
    assert!(got.usage.is_none());
    let missing = s.get_trajectory(Uuid::new_v4()).await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound(_)), "{missing}");
}

async fn start_with_client_id_is_idempotent(t: &TestStore) {
    let s = &t.store;
    let id = Uuid::new_v4();
    let mut first = new_trajectory("a");
    first.trajectory_id = Some(id);
    first.prompt = Some("first".into());
    let mut again = first.clone();
    again.prompt = Some("second".into());
    assert_eq!(s.start_trajectory(&first).await.unwrap(), id);
    assert_eq!(s.start_trajectory(&again).await.unwrap(), id);
    assert_eq!(
        s.get_trajectory(id).await.unwrap().prompt.as_deref(),
        Some("first")
    );
    let page = s
        .list_trajectories(&TrajectoryFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.trajectories.len(), 1);
}

async fn steps_are_stored_in_order_with_counts(t: &TestStore) {
    let s = &t.store;
    let id = start(s, "a").await;
    let mut failing = step(2, "Bash");
    failing.error = Some("exit 1".into());
    failing.duration_ms = Some(42);
    let steps = StepBatch {
        steps: vec![step(3, "Edit"), step(1, "Read"), failing],
    }
    .validate()
    .unwrap();
    s.append_steps(id, steps).await.unwrap();
    let stored = s.list_steps(id, None, 100).await.unwrap();
    let order: Vec<_> = stored
        .iter()
        .map(|s| (s.step_number, s.tool_name.as_str()))
        .collect();
    assert_eq!(order, [(1, "Read"), (2, "Bash"), (3, "Edit")]);
    assert_eq!(stored[1].error.as_deref(), Some("exit 1"));
    assert_eq!(stored[1].duration_ms, Some(42));
    assert_eq!(stored[0].tool_input, Some(json!({"n": 1})));
    let after = s.list_steps(id, Some(1), 1).await.unwrap();
    assert_eq!(after.iter().map(|s| s.step_number).collect::<Vec<_>>(), [2]);
    let got = s.get_trajectory(id).await.unwrap();
    assert_eq!((got.step_count, got.error_count), (3, 1));
}

async fn steps_for_unknown_trajectory_write_nothing(t: &TestStore) {
    let s = &t.store;
    let ghost = Uuid::new_v4();
    let err = s
        .append_steps(ghost, vec![step(1, "Read")])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(ref what) if what.contains(&ghost.to_string())),
        "{err}"
    );
    assert!(s.list_steps(ghost, None, 10).await.unwrap().is_empty());
    // Nothing of the refused batch's transaction is left holding locks.
    t.assert_no_locks_left().await;
}

async fn resent_steps_merge_instead_of_duplicating(t: &TestStore) {
    let s = &t.store;
    let id = start(s, "a").await;
    let opened_at = lightning_core::time::now() - Duration::seconds(5);
    let mut open = step(1, "Read");
    open.timestamp = Some(opened_at);
    s.append_steps(id, vec![open]).await.unwrap();
    let mut closed = NewStep {
        step_number: 1,
        tool_name: "Read".into(),
        tool_output: Some(json!("file contents")),
        duration_ms: Some(12),
        timestamp: Some(opened_at + Duration::seconds(1)),
        ..Default::default()
    };
    s.append_steps(id, vec![closed.clone()]).await.unwrap();
    closed.tool_output = None; // a retry that lost a field must not erase it
    s.append_steps(id, vec![closed]).await.unwrap();
    let stored = s.list_steps(id, None, 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].tool_input, Some(json!({"n": 1})));
    assert_eq!(stored[0].tool_output, Some(json!("file contents")));
    assert_eq!(stored[0].duration_ms, Some(12));
    assert_eq!(
        stored[0].timestamp, opened_at,
        "the first write's timestamp is kept"
    );
    assert_eq!(s.get_trajectory(id).await.unwrap().step_count, 1);
}

async fn concurrent_identical_batches_never_duplicate(t: &TestStore) {
    let s = &t.store;
    let id = start(s, "a").await;
    let batch: Vec<NewStep> = (1..=10).map(|n| step(n, "Read")).collect();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (s, batch) = (s.clone(), batch.clone());
            tokio::spawn(async move { s.append_steps(id, batch).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let stored = s.list_steps(id, None, 100).await.unwrap();
    assert_eq!(stored.len(), 10);
    assert_eq!(s.get_trajectory(id).await.unwrap().step_count, 10);
}

async fn large_batch_spanning_statements_is_atomic(t: &TestStore) {
    let s = &t.store;
    let id = start(s, "a").await;
    let steps: Vec<NewStep> = (0..2500).map(|n| step(n, "Grep")).collect();
    s.append_steps(id, steps.clone()).await.unwrap();
    assert_eq!(s.get_trajectory(id).await.unwrap().step_count, 2500);
    assert_eq!(s.list_steps(id, None, 10_000).await.unwrap().len(), 2500);
    // Steps for a trajectory that is gone are refused as a whole, chunks included.
    let other = start(s, "b").await;
    s.delete_trajectory(other).await.unwrap();
    assert!(s.append_steps(other, steps).await.is_err());
    assert!(s.list_steps(other, None, 10).await.unwrap().is_empty());
    t.assert_no_locks_left().await;
}

async fn complete_records_outcome_and_merges_repeats(t: &TestStore) {
    let s = &t.store;
    let id = start(s, "a").await;
    let end = lightning_core::time::now();
    let first = Completion {
        success: false,
        result: Some(json!({"text": "partial"})),
        error: Some("max turns".into()),
        total_steps: Some(4),
        duration: Some(1234.6),
        end_time: Some(end),
        cost_usd: Some(0.0123),
        usage: Some(Usage {
            input_tokens: Some(100),
            output_tokens: Some(50),
            cache_read_input_tokens: Some(7),
            cache_creation_input_tokens: None,
        }),
        num_turns: Some(3),
        status: None,
    };
    s.complete_trajectory(id, &first).await.unwrap();
    let got = s.get_trajectory(id).await.unwrap();
    assert_eq!(got.status, Status::Failed);
    assert_eq!(got.success, Some(false));
    assert_eq!(got.result, Some(json!({"text": "partial"})));
    assert_eq!(got.error.as_deref(), Some("max turns"));
    assert_eq!(
        (got.total_steps, got.duration_ms, got.num_turns),
        (Some(4), Some(1235), Some(3))
    );
    assert_eq!(got.end_time, Some(end));
    assert_eq!(got.cost_usd, Some(0.0123));
    assert_eq!(got.usage.unwrap().input_tokens, Some(100));
    assert_eq!(got.usage.unwrap().cache_creation_input_tokens, None);
    // A repeat wins for what it carries and keeps the rest.
    let repeat = Completion {
        success: true,
        num_turns: Some(5),
        ..Default::default()
    };
    s.complete_trajectory(id, &repeat).await.unwrap();
    let got = s.get_trajectory(id).await.unwrap();
    assert_eq!(got.status, Status::Succeeded);
    assert_eq!(
        (got.num_turns, got.total_steps, got.cost_usd),
        (Some(5), Some(4), Some(0.0123))
    );
    assert_eq!(got.end_time, Some(end));
}

async fn complete_unknown_trajectory_is_not_found(t: &TestStore) {
    let err = t
        .store
        .complete_trajectory(Uuid::new_v4(), &Completion::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
}

async fn list_filters_and_paginates_without_gaps(t: &TestStore) {
    let s = &t.store;
    let mut ids = Vec::new();
    for i in 0..25 {
        let agent = if i % 2 == 0 { "even" } else { "odd" };
        let id = start_at(s, agent, 100 - i).await;
        if i % 3 == 0 {
            complete(s, id, i % 2 == 0).await;
        }
        ids.push(id);
    }
    // Same start time for several rows: the id breaks ties, so pages never skip or repeat.
    let tied = lightning_core::time::now() - Duration::minutes(1);
    for _ in 0..5 {
        let mut n = new_trajectory("tied");
        n.start_time = Some(tied);
        ids.push(s.start_trajectory(&n).await.unwrap());
    }
    let mut seen = Vec::new();
    let mut filter = TrajectoryFilter {
        limit: 4,
        ..Default::default()
    };
    loop {
        let page = s.list_trajectories(&filter).await.unwrap();
        seen.extend(page.trajectories.iter().map(|t| (t.start_time, t.id)));
        match page.next_cursor {
            Some(c) => filter.cursor = Some(lightning_core::Cursor::decode(&c).unwrap()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 30);
    assert_eq!(seen.iter().map(|x| x.1).collect::<HashSet<_>>().len(), 30);
    assert!(
        seen.windows(2).all(|w| w[0] > w[1]),
        "newest first, strictly ordered"
    );

    let count = |f: TrajectoryFilter| {
        let s = s.clone();
        async move {
            s.list_trajectories(&TrajectoryFilter { limit: 100, ..f })
                .await
                .unwrap()
                .trajectories
                .len()
        }
    };
    assert_eq!(
        count(TrajectoryFilter {
            agent_id: Some("even".into()),
            ..Default::default()
        })
        .await,
        13
    );
    assert_eq!(
        count(TrajectoryFilter {
            status: Some(Status::Succeeded),
            ..Default::default()
        })
        .await,
        5
    );
    assert_eq!(
        count(TrajectoryFilter {
            status: Some(Status::Failed),
            ..Default::default()
        })
        .await,
        4
    );
    assert_eq!(
        count(TrajectoryFilter {
            status: Some(Status::Running),
            ..Default::default()
        })
        .await,
        21
    );
    let since = lightning_core::time::now() - Duration::seconds(80 * 60 + 30);
    let until = lightning_core::time::now() - Duration::minutes(10);
    // i in 20..=24 started 80..76 minutes ago; the bounds keep exactly those.
    assert_eq!(
        count(TrajectoryFilter {
            since: Some(since),
            until: Some(until),
            ..Default::default()
        })
        .await,
        5
    );
    let mut typed = new_trajectory("even");
    typed.task_type = Some("review".into());
    s.start_trajectory(&typed).await.unwrap();
    assert_eq!(
        count(TrajectoryFilter {
            task_type: Some("review".into()),
            ..Default::default()
        })
        .await,
        1
    );
}

async fn search_matches_substrings_and_escapes_wildcards(t: &TestStore) {
    let s = &t.store;
    let mut a = new_trajectory("alpha-agent");
    a.prompt = Some("Refactor the Parser module".into());
    let a = s.start_trajectory(&a).await.unwrap();
    let mut b = new_trajectory("beta");
    b.prompt = Some("100% coverage".into());
    let b = s.start_trajectory(&b).await.unwrap();
    let search = |q: &str| {
        let (s, q) = (s.clone(), q.to_string());
        async move {
            let f = TrajectoryFilter {
                search: Some(q),
                limit: 10,
                ..Default::default()
            };
            s.list_trajectories(&f)
                .await
                .unwrap()
                .trajectories
                .into_iter()
                .map(|t| t.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(search("parser").await, [a]);
    assert_eq!(search("ALPHA").await, [a]);
    assert_eq!(search("0%").await, [b]);
    assert_eq!(search("%").await, [b], "% is literal, not a wildcard");
    assert_eq!(
        search(&b.to_string()[24..]).await,
        [b],
        "UUIDv7 prefixes are shared; the tail is random"
    );
    assert!(search("nothing-like-this").await.is_empty());
}

async fn stats_aggregate_outcomes_tools_agents_and_timeline(t: &TestStore) {
    let s = &t.store;
    for (agent, success, cost) in [
        ("a", Some(true), 1.0),
        ("a", Some(false), 3.0),
        ("b", None, 0.0),
    ] {
        let id = start_at(s, agent, 30).await;
        let mut failing = step(2, "Bash");
        failing.error = Some("boom".into());
        failing.duration_ms = Some(30);
        let mut read = step(1, "Read");
        read.duration_ms = Some(10);
        s.append_steps(id, vec![read, failing]).await.unwrap();
        if let Some(success) = success {
            let c = Completion {
                success,
                cost_usd: Some(cost),
                duration: Some(100.0),
                ..Default::default()
            };
            s.complete_trajectory(id, &c).await.unwrap();
        }
    }
    let stats = s.stats(&StatsFilter::default()).await.unwrap();
    assert_eq!(
        (
            stats.trajectories,
            stats.running,
            stats.succeeded,
            stats.failed
        ),
        (3, 1, 1, 1)
    );
    assert_eq!(stats.success_rate, Some(0.5));
    assert_eq!(stats.mean_steps, Some(2.0));
    assert_eq!(stats.mean_duration_ms, Some(100.0));
    assert_eq!(stats.mean_cost_usd, Some(2.0));
    assert_eq!(stats.total_cost_usd, 4.0);
    let bash = stats.tools.iter().find(|t| t.tool_name == "Bash").unwrap();
    assert_eq!(
        (
            bash.calls,
            bash.errors,
            bash.error_rate,
            bash.mean_duration_ms
        ),
        (3, 3, 1.0, Some(30.0))
    );
    let read = stats.tools.iter().find(|t| t.tool_name == "Read").unwrap();
    assert_eq!((read.calls, read.errors, read.error_rate), (3, 0, 0.0));
    let a = stats.agents.iter().find(|x| x.agent_id == "a").unwrap();
    assert_eq!(
        (a.trajectories, a.succeeded, a.failed, a.success_rate),
        (2, 1, 1, Some(0.5))
    );
    assert_eq!(stats.bucket, TimeBucket::Day);
    assert_eq!(
        stats.timeline.iter().map(|p| p.trajectories).sum::<i64>(),
        3
    );
    let hourly = s
        .stats(&StatsFilter {
            since: Some(Utc::now() - Duration::hours(2)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(hourly.bucket, TimeBucket::Hour);
    let first = hourly.timeline.first().unwrap().bucket;
    assert_eq!(
        first.timestamp() % 3600,
        0,
        "hour buckets start on the hour"
    );
    let only_b = s
        .stats(&StatsFilter {
            agent_id: Some("b".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((only_b.trajectories, only_b.success_rate), (1, None));
    let empty = s
        .stats(&StatsFilter {
            agent_id: Some("none".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (empty.trajectories, empty.mean_steps, empty.total_cost_usd),
        (0, None, 0.0)
    );
}

async fn agents_summarize_counts_and_last_seen(t: &TestStore) {
    let s = &t.store;
    let first = start(s, "old").await;
    complete(s, first, true).await;
    let second = start(s, "new").await;
    complete(s, second, false).await;
    start(s, "new").await;
    let agents = s.agents().await.unwrap();
    assert_eq!(
        agents
            .iter()
            .map(|a| a.agent_id.as_str())
            .collect::<Vec<_>>(),
        ["new", "old"]
    );
    assert_eq!(
        (
            agents[0].trajectories,
            agents[0].succeeded,
            agents[0].failed
        ),
        (2, 0, 1)
    );
    assert!(agents[0].last_seen >= agents[1].last_seen);
}

async fn delete_removes_steps_too(t: &TestStore) {
    let s = &t.store;
    let id = start(s, "a").await;
    s.append_steps(id, vec![step(1, "Read")]).await.unwrap();
    s.delete_trajectory(id).await.unwrap();
    assert!(matches!(
        s.get_trajectory(id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.list_steps(id, None, 10).await.unwrap().is_empty());
    assert_eq!(orphan_steps(t).await, 0);
    assert!(matches!(
        s.delete_trajectory(id).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s
        .stats(&StatsFilter::default())
        .await
        .unwrap()
        .tools
        .is_empty());
}

/// Step rows whose trajectory is gone, counted in the database itself (PostgreSQL has no
/// foreign key on steps since migration 0011: the writer and the delete keep this at zero).
async fn orphan_steps(t: &TestStore) -> i64 {
    use sqlx::Connection;
    const ORPHANS: &str = "SELECT COUNT(*) FROM trajectory_steps s \
        WHERE NOT EXISTS (SELECT 1 FROM trajectories t WHERE t.id = s.trajectory_id)";
    match t.store.backend() {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&t.database_url)
                .await
                .unwrap();
            sqlx::query_scalar(ORPHANS).fetch_one(&mut c).await.unwrap()
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&t.database_url).await.unwrap();
            sqlx::query_scalar(ORPHANS).fetch_one(&mut c).await.unwrap()
        }
    }
}

/// Batches keep arriving while the trajectory is deleted: each is written before the delete
/// (and removed by it) or refused after it; no step row outlives its trajectory.
async fn deleting_while_steps_arrive_leaves_no_orphan_steps(t: &TestStore) {
    let s = &t.store;
    let mut refused = 0;
    for round in 0..6u64 {
        let id = start(s, "a").await;
        let writers: Vec<_> = (0..8i64)
            .map(|w| {
                let s = s.clone();
                tokio::spawn(async move {
                    for b in 0..50i64 {
                        let first = (b * 8 + w) * 10;
                        let steps: Vec<NewStep> =
                            (first..first + 10).map(|n| step(n, "Read")).collect();
                        match s.append_steps(id, steps).await {
                            Ok(()) => {}
                            Err(StoreError::NotFound(_)) => return true,
                            Err(e) => panic!("{e}"),
                        }
                    }
                    false
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(3 * round)).await;
        s.delete_trajectory(id).await.unwrap();
        for w in writers {
            refused += usize::from(w.await.unwrap());
        }
        assert_eq!(orphan_steps(t).await, 0, "round {round}");
    }
    // The delete landed while writers were still sending, more than once.
    assert!(refused > 8, "only {refused} writers saw the delete");
}

async fn export_streams_every_trajectory_with_steps(t: &TestStore) {
    let s = &t.store;
    for i in 0..230 {
        let id = start_at(s, "x", i).await;
        let steps: Vec<NewStep> = (1..=(i % 4)).map(|n| step(n, "Read")).collect();
        if !steps.is_empty() {
            s.append_steps(id, steps).await.unwrap();
        }
    }
    let all: Vec<_> = export_stream(s.clone(), TrajectoryFilter::default())
        .try_collect()
        .await
        .unwrap();
    assert_eq!(all.len(), 230);
    assert_eq!(
        all.iter()
            .map(|t| t.trajectory.id)
            .collect::<HashSet<_>>()
            .len(),
        230
    );
    assert!(all
        .iter()
        .all(|t| t.steps.len() as i64 == t.trajectory.step_count));
    assert_eq!(
        all.iter().map(|t| t.steps.len()).sum::<usize>(),
        (0..230).map(|i| i % 4).sum::<i64>() as usize
    );
    let none: Vec<_> = export_stream(
        s.clone(),
        TrajectoryFilter {
            agent_id: Some("y".into()),
            ..Default::default()
        },
    )
    .try_collect()
    .await
    .unwrap();
    assert!(none.is_empty());
}

async fn json_values_round_trip_exactly(t: &TestStore) {
    let s = &t.store;
    let id = start(s, "a").await;
    let values = [
        json!({"deep": {"list": [1, 2.5, -3, true, null, "é 中 🚀"], "empty": {}}}),
        json!("plain string with \"quotes\" and \\ backslashes\nnewline"),
        json!(9_007_199_254_740_991_i64),
        json!([]),
        json!(false),
    ];
    let steps: Vec<NewStep> = values
        .iter()
        .enumerate()
        .map(|(i, v)| NewStep {
            step_number: i as i64,
            tool_name: "T".into(),
            tool_input: Some(v.clone()),
            tool_output: Some(v.clone()),
            metadata: Some(json!({"agent_id": "sub-1", "agent_type": "Explore"})),
            ..Default::default()
        })
        .collect();
    s.append_steps(id, steps).await.unwrap();
    let stored = s.list_steps(id, None, 10).await.unwrap();
    for (got, want) in stored.iter().zip(&values) {
        assert_eq!(got.tool_input.as_ref(), Some(want));
        assert_eq!(got.tool_output.as_ref(), Some(want));
        assert_eq!(
            got.metadata,
            Some(json!({"agent_id": "sub-1", "agent_type": "Explore"}))
        );
    }
    let _ = Backend::Sqlite;
}

async fn list_status(s: &Arc<dyn Store>, status: Status) -> Vec<Uuid> {
    s.list_trajectories(&TrajectoryFilter {
        status: Some(status),
        limit: 100,
        ..Default::default()
    })
    .await
    .unwrap()
    .trajectories
    .into_iter()
    .map(|t| t.id)
    .collect()
}

async fn completion_status_is_stored_filtered_and_counted(t: &TestStore) {
    let s = &t.store;
    let interrupted = start(s, "a").await;
    let failed = start(s, "a").await;
    let ok = start(s, "a").await;
    let c = Completion {
        success: false,
        status: Some(CompletionStatus::Interrupted),
        error: Some("SIGTERM".into()),
        ..Default::default()
    };
    s.complete_trajectory(interrupted, &c).await.unwrap();
    complete(s, failed, false).await;
    complete(s, ok, true).await;
    let got = s.get_trajectory(interrupted).await.unwrap();
    assert_eq!(
        (got.status, got.success),
        (Status::Interrupted, Some(false))
    );
    assert_eq!(
        s.get_trajectory(failed).await.unwrap().status,
        Status::Failed
    );
    assert_eq!(list_status(s, Status::Interrupted).await, [interrupted]);
    assert_eq!(list_status(s, Status::Failed).await, [failed]);
    let stats = s.stats(&StatsFilter::default()).await.unwrap();
    assert_eq!(
        (
            stats.succeeded,
            stats.failed,
            stats.interrupted,
            stats.abandoned,
            stats.running
        ),
        (1, 2, 1, 0, 0)
    );
    // A repeat without `status` derives it from `success` again.
    complete(s, interrupted, true).await;
    assert_eq!(
        s.get_trajectory(interrupted).await.unwrap().status,
        Status::Succeeded
    );
}

async fn idle_sweep_abandons_and_late_activity_corrects(t: &TestStore) {
    let s = &t.store;
    let idle = start(s, "a").await;
    let stepped = start(s, "a").await;
    let done = start(s, "a").await;
    complete(s, done, true).await;
    // Nothing has been idle since an hour ago.
    let hour_ago = lightning_core::time::now() - Duration::hours(1);
    assert_eq!(s.abandon_idle(hour_ago).await.unwrap(), 0);
    let future = lightning_core::time::now() + Duration::seconds(1);
    assert_eq!(
        s.abandon_idle(future).await.unwrap(),
        2,
        "only running ones"
    );
    assert_eq!(
        s.get_trajectory(idle).await.unwrap().status,
        Status::Abandoned
    );
    assert_eq!(
        s.get_trajectory(done).await.unwrap().status,
        Status::Succeeded
    );
    assert_eq!(list_status(s, Status::Running).await, Vec::<Uuid>::new());
    let stats = s.stats(&StatsFilter::default()).await.unwrap();
    assert_eq!(
        (stats.abandoned, stats.running, stats.success_rate),
        (2, 0, Some(1.0))
    );
    // A late step reopens it, a late completion settles it.
    s.append_steps(stepped, vec![step(1, "Read")])
        .await
        .unwrap();
    let got = s.get_trajectory(stepped).await.unwrap();
    assert_eq!((got.status, got.step_count), (Status::Running, 1));
    complete(s, idle, false).await;
    assert_eq!(s.get_trajectory(idle).await.unwrap().status, Status::Failed);
    assert_eq!(s.abandon_idle(hour_ago).await.unwrap(), 0);
}

async fn sweeps_from_two_stores_at_once_mark_each_trajectory_once(t: &TestStore) {
    let s = &t.store;
    for _ in 0..40 {
        start(s, "a").await;
    }
    let dir = tempfile::tempdir().unwrap();
    let other = lightning_store::open(&lightning_store::StoreConfig::new(
        Some(t.database_url.clone()),
        dir.path(),
    ))
    .await
    .unwrap();
    let future = lightning_core::time::now() + Duration::seconds(1);
    let (a, b) = tokio::join!(s.abandon_idle(future), other.abandon_idle(future));
    assert_eq!(a.unwrap() + b.unwrap(), 40);
    assert_eq!(list_status(s, Status::Abandoned).await.len(), 40);
}

async fn step_kinds_are_stored_and_only_tools_count(t: &TestStore) {
    let s = &t.store;
    let id = start(s, "a").await;
    let mut message = NewStep {
        step_number: 2,
        kind: Some(StepKind::Message),
        tool_name: "assistant".into(),
        tool_output: Some(json!("Let me look at the file.")),
        error: Some("not an error of a tool".into()),
        ..Default::default()
    };
    let event = NewStep {
        step_number: 3,
        kind: Some(StepKind::Event),
        tool_name: "SubagentStart".into(),
        metadata: Some(json!({"agentId": "sub-1", "agentType": "Explore"})),
        ..Default::default()
    };
    let mut failing = step(4, "Bash");
    failing.error = Some("exit 1".into());
    s.append_steps(id, vec![step(1, "Read"), message.clone(), event, failing])
        .await
        .unwrap();
    let stored = s.list_steps(id, None, 10).await.unwrap();
    let kinds: Vec<_> = stored.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            StepKind::Tool,
            StepKind::Message,
            StepKind::Event,
            StepKind::Tool
        ]
    );
    let got = s.get_trajectory(id).await.unwrap();
    assert_eq!((got.step_count, got.error_count), (2, 1));
    // A re-sent message without `kind` keeps its kind (and still does not count).
    message.kind = None;
    message.tool_output = None;
    message.duration_ms = Some(5);
    s.append_steps(id, vec![message]).await.unwrap();
    assert_eq!(
        s.list_steps(id, Some(1), 1).await.unwrap()[0].kind,
        StepKind::Message
    );
    let got = s.get_trajectory(id).await.unwrap();
    assert_eq!((got.step_count, got.error_count), (2, 1));
    let stats = s.stats(&StatsFilter::default()).await.unwrap();
    let tools: Vec<_> = stats.tools.iter().map(|t| t.tool_name.as_str()).collect();
    assert_eq!(tools.len(), 2, "{tools:?}");
    assert!(tools.contains(&"Read") && tools.contains(&"Bash"));
    assert_eq!(stats.mean_steps, Some(2.0));
}

/// Every counter and rollup figure, recomputed from the stored steps.
async fn assert_counters_match_steps(s: &Arc<dyn Store>, ids: &[Uuid]) {
    let mut calls: std::collections::BTreeMap<String, (i64, i64, i64, i64)> = Default::default();
    for &id in ids {
        let steps = s.list_steps(id, None, 100_000).await.unwrap();
        let tools: Vec<_> = steps.iter().filter(|s| s.kind == StepKind::Tool).collect();
        let got = s.get_trajectory(id).await.unwrap();
        assert_eq!(got.step_count, tools.len() as i64, "stepCount of {id}");
        assert_eq!(
            got.error_count,
            tools.iter().filter(|s| s.error.is_some()).count() as i64,
            "errorCount of {id}"
        );
        for step in tools {
            let e = calls.entry(step.tool_name.clone()).or_default();
            e.0 += 1;
            e.1 += i64::from(step.error.is_some());
            e.2 += step.duration_ms.unwrap_or(0);
            e.3 += i64::from(step.duration_ms.is_some());
        }
    }
    let stats = s.stats(&StatsFilter::default()).await.unwrap();
    assert_eq!(stats.tools.len(), calls.len());
    for tool in &stats.tools {
        let (n, errors, sum, count) = calls[&tool.tool_name];
        assert_eq!((tool.calls, tool.errors), (n, errors), "{}", tool.tool_name);
        let mean = (count > 0).then(|| sum as f64 / count as f64);
        assert_eq!(tool.mean_duration_ms, mean, "{}", tool.tool_name);
    }
}

async fn counters_and_tool_stats_stay_exact_under_concurrent_merges(t: &TestStore) {
    let s = &t.store;
    let ids = [
        start(s, "a").await,
        start(s, "b").await,
        start(s, "c").await,
    ];
    // 24 writers, each re-sending overlapping windows of steps: opened, closed with a duration,
    // failed, renamed, turned into a message; every batch lands in some group, in some order.
    let tasks: Vec<_> = (0..24u32)
        .map(|w| {
            let s = s.clone();
            let id = ids[w as usize % 3];
            tokio::spawn(async move {
                for round in 0..5i64 {
                    let batch: Vec<NewStep> = (0..12i64)
                        .map(|i| {
                            let n = (i64::from(w) * 7 + round * 5 + i) % 40;
                            let mut st =
                                step(n, if (n + round) % 5 == 0 { "Grep" } else { "Read" });
                            match (i64::from(w) + i + round) % 4 {
                                0 => st.error = Some(format!("e{w}")),
                                1 => st.duration_ms = Some(n),
                                2 if n % 7 == 0 => st.kind = Some(StepKind::Message),
                                _ => {}
                            }
                            st
                        })
                        .collect();
                    s.append_steps(id, batch).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_counters_match_steps(s, &ids).await;
    // Deleting a trajectory takes its rollup rows with it.
    s.delete_trajectory(ids[0]).await.unwrap();
    assert_counters_match_steps(s, &ids[1..]).await;
}

/// Makes the database itself refuse any step named `poison` (a trigger), as a disk or
/// constraint failure would: the batch fails inside the group's transaction.
async fn install_poison_trigger(t: &TestStore) {
    use sqlx::Connection;
    match t.store.backend() {
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(&t.database_url)
                .await
                .unwrap();
            sqlx::query(
                "CREATE TRIGGER poison BEFORE INSERT ON trajectory_steps \
                 WHEN NEW.tool_name = 'poison' BEGIN SELECT RAISE(ABORT, 'poisoned step'); END",
            )
            .execute(&mut c)
            .await
            .unwrap();
        }
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(&t.database_url).await.unwrap();
            sqlx::query(
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 IF NEW.tool_name = 'poison' THEN RAISE EXCEPTION 'poisoned step'; END IF; \
                 RETURN NEW; END $$",
            )
            .execute(&mut c)
            .await
            .unwrap();
            sqlx::query(
                "CREATE TRIGGER poison BEFORE INSERT ON trajectory_steps \
                 FOR EACH ROW EXECUTE FUNCTION poison()",
            )
            .execute(&mut c)
            .await
            .unwrap();
        }
    }
}

async fn a_failing_batch_does_not_fail_its_neighbours(t: &TestStore) {
    install_poison_trigger(t).await;
    let s = &t.store;
    let mut ids = Vec::new();
    for _ in 0..16 {
        ids.push(start(s, "a").await);
    }
    let ghost = Uuid::new_v4();
    // Sent at once so they queue up together behind one another's transactions.
    let tasks: Vec<_> = ids
        .iter()
        .copied()
        .chain([ghost])
        .enumerate()
        .map(|(i, id)| {
            let s = s.clone();
            tokio::spawn(async move {
                let tool = if i == 5 { "poison" } else { "Read" };
                let steps: Vec<NewStep> = (0..10).map(|n| step(n, tool)).collect();
                s.append_steps(id, steps).await
            })
        })
        .collect();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    for (i, result) in results.iter().enumerate() {
        match i {
            5 => assert!(
                matches!(result, Err(StoreError::Database(e)) if e.to_string().contains("poisoned")),
                "{result:?}"
            ),
            16 => assert!(matches!(result, Err(StoreError::NotFound(_))), "{result:?}"),
            _ => assert!(result.is_ok(), "batch {i}: {result:?}"),
        }
    }
    for (i, &id) in ids.iter().enumerate() {
        let want = if i == 5 { 0 } else { 10 };
        assert_eq!(s.list_steps(id, None, 100).await.unwrap().len(), want);
        assert_eq!(s.get_trajectory(id).await.unwrap().step_count, want as i64);
    }
    t.assert_no_locks_left().await;
}
