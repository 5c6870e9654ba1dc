//! Conformance of run liveness and spend (heartbeat, cost, tokens; migration 0008), each case
//! on SQLite and PostgreSQL.

use lightning_core::{OptimizationRun, RunStatus};
use lightning_store::{shown_status, testing::TestStore, RunSpend, StoreError, STALE_AFTER};
use serde_json::json;
use uuid::Uuid;

lightning_store::test_on_both_backends!(
    heartbeats_store_time_and_spend,
    heartbeat_of_an_unknown_run_is_not_found,
    a_run_whose_heartbeat_stopped_is_stale,
);

async fn heartbeats_store_time_and_spend(t: &TestStore) {
    let run = OptimizationRun::start("agent", json!({}), 10);
    t.store.create_run(&run).await.unwrap();
    let before = t.store.run_liveness(run.id).await.unwrap();
    assert_eq!((before.heartbeat_at, before.spend), (None, None));
    let at = chrono::DateTime::from_timestamp_millis(1_800_000_000_123).unwrap();
    let spend = RunSpend {
        cost_usd: 1.25,
        input_tokens: 12_345_678_901,
        output_tokens: 42,
    };
    t.store.heartbeat(run.id, at, &spend).await.unwrap();
    let after = t.store.run_liveness(run.id).await.unwrap();
    assert_eq!(after.heartbeat_at, Some(at));
    assert_eq!(after.spend, Some(spend));
    // A later heartbeat overwrites; the run's other fields are untouched.
    let later = at + chrono::Duration::seconds(5);
    let more = RunSpend {
        cost_usd: 2.5,
        ..spend
    };
    t.store.heartbeat(run.id, later, &more).await.unwrap();
    let again = t.store.run_liveness(run.id).await.unwrap();
    assert_eq!((again.heartbeat_at, again.spend), (Some(later), Some(more)));
    let stored = t.store.get_run(run.id).await.unwrap();
    assert_eq!(stored.status, RunStatus::Running);
    assert_eq!(stored.agent_id, "agent");
    // The run as read (and served) carries them too.
    assert_eq!(stored.heartbeat_at, Some(later));
    assert_eq!(stored.cost_usd, Some(2.5));
    assert_eq!(
        (stored.input_tokens, stored.output_tokens),
        (Some(12_345_678_901), Some(42))
    );
    // `update_run` (the optimizer's own saves) leaves the heartbeat alone.
    t.store.update_run(&run).await.unwrap();
    let kept = t.store.get_run(run.id).await.unwrap();
    assert_eq!(kept.heartbeat_at, Some(later));
}

async fn heartbeat_of_an_unknown_run_is_not_found(t: &TestStore) {
    let id = Uuid::now_v7();
    let e = t
        .store
        .heartbeat(id, lightning_core::time::now(), &RunSpend::default())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e:?}");
    assert!(matches!(
        t.store.run_liveness(id).await.unwrap_err(),
        StoreError::NotFound(_)
    ));
}

async fn a_run_whose_heartbeat_stopped_is_stale(t: &TestStore) {
    let run = OptimizationRun::start("agent", json!({}), 10);
    t.store.create_run(&run).await.unwrap();
    let beat = run.started_at + chrono::Duration::seconds(30);
    t.store
        .heartbeat(run.id, beat, &RunSpend::default())
        .await
        .unwrap();
    let live = t.store.run_liveness(run.id).await.unwrap();
    let stored = t.store.get_run(run.id).await.unwrap();
    let soon = beat + chrono::Duration::seconds(10);
    let late = beat + STALE_AFTER + chrono::Duration::seconds(1);
    assert_eq!(
        shown_status(stored.status, stored.started_at, live.heartbeat_at, soon),
        "running"
    );
    assert_eq!(
        shown_status(stored.status, stored.started_at, live.heartbeat_at, late),
        "stale"
    );
    // Read now: a run started an hour ago whose last heartbeat is an hour old is stale; one
    // beating now is not; a completed one never is.
    let mut old = OptimizationRun::start("agent", json!({}), 10);
    old.started_at -= chrono::Duration::hours(1);
    t.store.create_run(&old).await.unwrap();
    assert!(t.store.get_run(old.id).await.unwrap().stale);
    t.store
        .heartbeat(old.id, lightning_core::time::now(), &RunSpend::default())
        .await
        .unwrap();
    assert!(!t.store.get_run(old.id).await.unwrap().stale);
    let mut done = OptimizationRun::start("agent", json!({}), 10);
    done.started_at -= chrono::Duration::hours(1);
    done.status = RunStatus::Completed;
    t.store.create_run(&done).await.unwrap();
    let listed = t.store.list_runs(Some("agent"), 10).await.unwrap();
    let of = |id| listed.iter().find(|r| r.id == id).unwrap().stale;
    assert!(!of(done.id) && !of(old.id));
}
