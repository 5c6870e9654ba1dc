//! `lightning optimize --resume RUN_ID` after the optimizer was SIGKILLed mid-run: the
//! evaluator (which logs every call) sees no stored evaluation again, and the resumed run
//! completes with the verdict.

use std::{
    collections::HashSet,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use lightning_core::RunStatus;
use lightning_optimizer::synthetic;
use lightning_store::{testing::TestStore, Backend};

#[path = "../../optimizer/tests/support/scripted_llm.rs"]
mod scripted_llm;

fn log_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_sigkill_repeats_no_stored_evaluation() {
    let t = TestStore::new(Backend::Sqlite).await;
    synthetic::seed_store(t.store.as_ref(), 120).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let inner = synthetic::eval_script(dir.path(), 9);
    let log = dir.path().join("calls");
    // Every call is logged as (prompt checksum, task) once its reward is known.
    let wrapper = dir.path().join("logged.sh");
    std::fs::write(
        &wrapper,
        format!(
            "sleep 0.05\nout=$({inner})\necho \"$(cksum < \"$LIGHTNING_PROMPT_FILE\" | cut -d' ' -f1) $LIGHTNING_TRAJECTORY_ID\" >> {log}\necho \"$out\"\n",
            log = log.display()
        ),
    )
    .unwrap();
    let eval_cmd = format!("sh {}", wrapper.display());
    let (base, llm_requests) = scripted_llm::scripted_server(synthetic::Variant::Improvable).await;
    let out_file = dir.path().join("best.txt");
    let command = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_lightning"));
        c.args([
            "optimize",
            "--agent",
            synthetic::AGENT,
            "--evaluator",
            "command",
            "--eval-cmd",
            &eval_cmd,
            "--trajectories",
            "120",
            "--rounds",
            "3",
            "--beam",
            "2",
            "--branch",
            "2",
            "--concurrency",
            "4",
            "--seed",
            "9",
            "--out",
            out_file.to_str().unwrap(),
        ])
        .args(extra)
        .env("DATABASE_URL", &t.database_url)
        .env("ANTHROPIC_API_KEY", "sk-test")
        .env("ANTHROPIC_BASE_URL", &base)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        c
    };
    // First run: killed (SIGKILL, no chance to clean up) after 60 evaluations.
    let mut first = command(&[]).spawn().unwrap();
    let started = Instant::now();
    while log_lines(&log).len() < 60 {
        assert!(started.elapsed() < Duration::from_secs(120), "too slow");
        assert!(
            first.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    // Evaluations in flight at the kill finish on their own (their groups outlive a SIGKILL)
    // and log; their results never reached the optimizer.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let runs = t.store.list_runs(Some(synthetic::AGENT), 10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Running);
    let run_id = runs[0].id;
    let before = log_lines(&log);
    let stored_before = t.store.list_evaluations(run_id).await.unwrap().len();
    assert!(
        stored_before >= 50,
        "{stored_before} stored of {}",
        before.len()
    );
    assert!(
        before.len() - stored_before <= 4,
        "more lost than in flight"
    );

    // The LLM replies the first run received were kept with the run (all but those in flight).
    let first_requests = llm_requests.lock().unwrap().clone();
    let kept = t.store.list_llm_replies(run_id).await.unwrap().len();
    assert!(kept >= 1, "no LLM reply kept of {}", first_requests.len());
    assert!(
        first_requests.len() - kept <= 4,
        "{kept} kept of {}",
        first_requests.len()
    );

    let out = command(&["--resume", &run_id.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("completed: "), "{stdout}");
    let after = log_lines(&log);
    let stored_after = t.store.list_evaluations(run_id).await.unwrap().len();
    // The resumed run called the evaluator exactly for the evaluations it added.
    assert_eq!(after.len() - before.len(), stored_after - stored_before);
    // And never for a (prompt, task) the first run had stored: every logged pair is unique
    // except the few lost in flight.
    let unique: HashSet<&String> = after.iter().collect();
    assert!(after.len() - unique.len() <= before.len() - stored_before);
    // The resumed run retraced the search on the kept replies: it asked the model again only
    // for what was in flight at the kill (retracing without them re-sends every request).
    let mut first: std::collections::HashMap<&String, usize> = std::collections::HashMap::new();
    for r in &first_requests {
        *first.entry(r).or_default() += 1;
    }
    let all = llm_requests.lock().unwrap().clone();
    let asked_again = all[first_requests.len()..]
        .iter()
        .filter(|r| match first.get_mut(r) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        })
        .count();
    assert!(
        asked_again <= first_requests.len() - kept,
        "asked the model again {asked_again} times; {kept} of the first run's {} replies were kept",
        first_requests.len()
    );
    assert!(
        all.len() > first_requests.len(),
        "the resumed run made new LLM calls"
    );
    let run = t.store.get_run(run_id).await.unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.evaluations as usize, stored_after);
}
