//! `lightning optimize` / `lightning analyze` as a user runs them: flags, environment, output.

use std::process::Command;

use lightning_core::{Completion, NewStep, NewTrajectory};
use lightning_store::{testing::TestStore, Backend};
use serde_json::Value;

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
                &[NewStep {
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

#[tokio::test]
async fn dry_run_prints_the_plan_without_a_key() {
    let t = seeded().await;
    let (ok, out, err) = lightning(
        &["optimize", "--dry-run", "--json", "--agent", "cli-agent"],
        &[("DATABASE_URL", &t.database_url), ("LIGHTNING_BEAM", "2")],
    );
    assert!(ok, "{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["trajectories"], 12);
    assert_eq!(plan["failures"], 4);
    assert_eq!(plan["promptSource"], "trajectories");
    // 3 rounds × beam 2 (from the environment) × branch 4 × (critique + edit).
    assert_eq!(plan["plan"]["llmCalls"], 48);
    assert!(plan["warnings"][0].as_str().unwrap().contains("only 12"));

    let (ok, out, err) = lightning(
        &["optimize", "--dry-run", "--agent", "cli-agent"],
        &[("DATABASE_URL", &t.database_url)],
    );
    assert!(ok, "{err}");
    assert!(out.contains("LLM calls:        96"), "{out}");
    assert!(err.contains("warning: only 12"), "{err}");
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
        "[env: LIGHTNING_BEAM=",
    ] {
        assert!(out.contains(flag), "{flag} missing from optimize --help");
    }
}
