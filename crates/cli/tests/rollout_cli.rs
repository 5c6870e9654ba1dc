//! `lightning rollout` as a user runs it: start a canary, read its status, a promotion refused
//! without evidence and accepted with it, the guard's rollback, the event history.

use std::process::Command;

use lightning_core::{Completion, NewPrompt, NewTrajectory};
use lightning_store::{testing::TestStore, Backend, Store};
use serde_json::Value;

fn lightning(args: &[&str], database_url: &str) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lightning"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env("USER", "tester")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

async fn runs(store: &dyn Store, agent: &str, version: i64, n: usize, successes: usize) {
    for i in 0..n {
        let id = store
            .start_trajectory(&NewTrajectory {
                agent_id: agent.into(),
                prompt_version: Some(version.to_string()),
                ..Default::default()
            })
            .await
            .unwrap();
        store
            .complete_trajectory(
                id,
                &Completion {
                    success: i < successes,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
}

async fn registered(t: &TestStore, agent: &str) {
    for (text, promote) in [("v1", true), ("v2", false)] {
        t.store
            .register_prompt(
                agent,
                &NewPrompt {
                    text: text.into(),
                    promote,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn promote_needs_significant_evidence() {
    let t = TestStore::new(Backend::Sqlite).await;
    registered(&t, "a").await;
    let db = t.database_url.as_str();
    let (ok, out, err) = lightning(
        &[
            "rollout",
            "start",
            "--agent",
            "a",
            "--version",
            "2",
            "--percent",
            "20",
        ],
        db,
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("rollout started: agent a, version 2 at 20%"),
        "{out}"
    );

    runs(&*t.store, "a", 1, 10, 5).await;
    runs(&*t.store, "a", 2, 10, 9).await;
    let (ok, out, err) = lightning(&["rollout", "promote", "--agent", "a"], db);
    assert!(!ok, "promoted on 10 runs per arm: {out}");
    assert!(
        err.contains("not significantly better (not enough runs yet)"),
        "{err}"
    );
    assert!(
        out.contains("reward (95% CI)"),
        "the evidence is shown first: {out}"
    );

    runs(&*t.store, "a", 1, 60, 30).await;
    runs(&*t.store, "a", 2, 60, 54).await;
    let (ok, out, _) = lightning(&["rollout", "status", "--agent", "a", "--json"], db);
    assert!(ok);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["verdict"], "better", "{status}");
    let (ok, out, err) = lightning(
        &[
            "rollout",
            "promote",
            "--agent",
            "a",
            "--reason",
            "clearly better",
        ],
        db,
    );
    assert!(ok, "{err}");
    assert!(out.contains("promoted version 2 of agent a"), "{out}");
    let prompts = t.store.list_prompts("a").await.unwrap();
    assert!(prompts.iter().any(|p| p.version == 2 && p.promoted));

    let (ok, out, _) = lightning(&["rollout", "events", "--agent", "a", "--json"], db);
    assert!(ok);
    let events: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(events[0]["kind"], "promoted");
    assert_eq!(events[0]["actor"], "cli:tester");
    assert_eq!(events[0]["reason"], "clearly better");
    assert_eq!(events[0]["evidence"]["verdict"], "better");
    assert_eq!(events[1]["kind"], "rollout_started");
}

#[tokio::test]
async fn guard_check_rolls_back_a_worse_canary() {
    let t = TestStore::new(Backend::Sqlite).await;
    registered(&t, "b").await;
    let db = t.database_url.as_str();
    let (ok, _, err) = lightning(
        &[
            "rollout",
            "start",
            "--agent",
            "b",
            "--version",
            "2",
            "--percent",
            "50",
            "--auto-rollback",
        ],
        db,
    );
    assert!(ok, "{err}");
    runs(&*t.store, "b", 1, 80, 72).await;
    runs(&*t.store, "b", 2, 80, 40).await;
    let (ok, out, err) = lightning(&["rollout", "check"], db);
    assert!(ok, "{err}");
    assert!(out.contains("1 canary(ies) rolled back"), "{out}");
    let (ok, _, err) = lightning(&["rollout", "status", "--agent", "b"], db);
    assert!(!ok);
    assert!(err.contains("no active rollout"), "{err}");
    let events = t.store.list_events("b", 10).await.unwrap();
    assert_eq!(events[0].actor, "guard");
    let (ok, out, _) = lightning(&["rollout", "--help"], db);
    assert!(
        ok && out.contains("promote") && out.contains("rollback"),
        "{out}"
    );
}
