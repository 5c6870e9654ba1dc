//! Ctrl-C during `lightning optimize`: every in-flight evaluation's whole process group is
//! ended (including what the command started in the background), the run is stored
//! `cancelled`, and the command exits 130.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use lightning_core::RunStatus;
use lightning_optimizer::synthetic;
use lightning_store::{testing::TestStore, Backend};

#[path = "../../optimizer/tests/support/scripted_llm.rs"]
mod scripted_llm;

/// Alive and not a zombie.
fn alive(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        }
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_ends_every_evaluation_process_group_and_stores_the_run_cancelled() {
    let t = TestStore::new(Backend::Sqlite).await;
    synthetic::seed_store(t.store.as_ref(), 120).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    // Each evaluation starts a background grandchild in its process group, records its pid,
    // and hangs.
    let eval_cmd = format!("sleep 300 & echo $! >> {p}; wait", p = pids.display());
    let base = scripted_llm::scripted_server(synthetic::Variant::Improvable)
        .await
        .0;
    let mut child = Command::new(env!("CARGO_BIN_EXE_lightning"))
        .args([
            "optimize",
            "--agent",
            synthetic::AGENT,
            "--evaluator",
            "command",
            "--eval-cmd",
            &eval_cmd,
            "--trajectories",
            "120",
            "--concurrency",
            "4",
            "--out",
            dir.path().join("best.txt").to_str().unwrap(),
        ])
        .env("DATABASE_URL", &t.database_url)
        .env("ANTHROPIC_API_KEY", "sk-test")
        .env("ANTHROPIC_BASE_URL", &base)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let recorded = loop {
        let text = std::fs::read_to_string(&pids).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= 4 {
            break lines;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "evaluations never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        recorded.iter().all(|p| alive(p)),
        "the evaluations are running"
    );
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let waited = Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(
            waited.elapsed() < Duration::from_secs(30),
            "did not stop on Ctrl-C"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stderr = std::io::read_to_string(child.stderr.take().unwrap()).unwrap();
    assert_eq!(code, Some(130), "{stderr}");
    assert!(stderr.contains("cancelled"), "{stderr}");
    // Killed with their group: no grandchild survives (give the kernel a moment).
    let all = std::fs::read_to_string(&pids).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while all.lines().any(alive) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let survivors: Vec<&str> = all.lines().filter(|p| alive(p)).collect();
    assert!(survivors.is_empty(), "still running: {survivors:?}");
    let runs = t.store.list_runs(Some(synthetic::AGENT), 10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Cancelled);
    assert!(runs[0].finished_at.is_some());
}
