//! `--evaluator command`: runs the user's agent once per (candidate, task).
//!
//! Protocol (see docs/optimizer.md): the command runs under `sh -c` in the current directory
//! with stdin closed and these environment variables:
//!
//! | variable | value |
//! |---|---|
//! | `LIGHTNING_PROMPT_FILE` | file holding the candidate system prompt |
//! | `LIGHTNING_TASK_FILE` | JSON file: `{trajectoryId, agentId, taskType, task, systemPrompt, promptVersion, outcome}` of the recorded run |
//! | `LIGHTNING_TASK` | the task prompt itself |
//! | `LIGHTNING_TASK_TYPE`, `LIGHTNING_TRAJECTORY_ID`, `LIGHTNING_AGENT_ID` | from the recorded run |
//! | `LIGHTNING_RUN_ID`, `LIGHTNING_CANDIDATE_ID` | the optimization run and the candidate |
//! | `LIGHTNING_PROMPT_VERSION` | tag the agent's own trajectories with this `promptVersion` |
//! | `LIGHTNING_WORK_DIR` | a fresh empty directory, deleted afterwards |
//!
//! It prints a JSON object with `"reward"` in [0, 1] (and optionally `"feedback"`, a string
//! saying what went wrong or was missing, `"trajectoryId"`, the id of the trajectory the run
//! recorded, and `"costUsd"`) as its last stdout line. A non-zero exit, a timeout,
//! missing or out-of-range reward scores 0 and is reported.

use std::{path::PathBuf, process::Stdio, time::Duration};

use async_trait::async_trait;
use serde_json::json;

use super::{find_json_with, CandidateRef, Evaluation, Evaluator};
use crate::{dataset::Example, OptimizerError};

pub struct CommandEvaluator {
    pub command: String,
    pub timeout: Duration,
    /// Working directory of the command; `None` inherits the optimizer's.
    pub cwd: Option<PathBuf>,
}

impl CommandEvaluator {
    pub fn new(command: impl Into<String>, timeout: Duration) -> Result<Self, OptimizerError> {
        let command = command.into();
        if command.trim().is_empty() {
            return Err(OptimizerError::Config(
                "--evaluator command needs --eval-cmd (or LIGHTNING_EVAL_CMD)".into(),
            ));
        }
        Ok(Self {
            command,
            timeout,
            cwd: None,
        })
    }

    async fn run(
        &self,
        candidate: &CandidateRef<'_>,
        example: &Example,
    ) -> std::io::Result<Evaluation> {
        let dir = tempfile::Builder::new()
            .prefix("lightning-eval-")
            .tempdir()?;
        let prompt_file = dir.path().join("prompt.txt");
        let task_file = dir.path().join("task.json");
        let work_dir = dir.path().join("work");
        tokio::fs::create_dir(&work_dir).await?;
        tokio::fs::write(&prompt_file, candidate.prompt).await?;
        let task = json!({
            "trajectoryId": example.trajectory_id,
            "agentId": example.agent_id,
            "taskType": example.task_type,
            "task": example.task,
            "systemPrompt": example.system_prompt,
            "promptVersion": example.prompt_version,
            "outcome": example.outcome,
        });
        tokio::fs::write(&task_file, serde_json::to_vec_pretty(&task).expect("json")).await?;

        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(&self.command)
            .env("LIGHTNING_PROMPT_FILE", &prompt_file)
            .env("LIGHTNING_TASK_FILE", &task_file)
            .env("LIGHTNING_TASK", &example.task)
            .env(
                "LIGHTNING_TASK_TYPE",
                example.task_type.as_deref().unwrap_or(""),
            )
            .env("LIGHTNING_TRAJECTORY_ID", example.trajectory_id.to_string())
            .env("LIGHTNING_AGENT_ID", candidate.agent_id)
            .env("LIGHTNING_RUN_ID", candidate.run_id.to_string())
            .env("LIGHTNING_CANDIDATE_ID", candidate.candidate_id.to_string())
            .env("LIGHTNING_PROMPT_VERSION", &candidate.prompt_version)
            .env("LIGHTNING_WORK_DIR", &work_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(cwd) = &self.cwd {
            cmd.current_dir(cwd);
        }
        #[cfg(unix)]
        cmd.process_group(0);
        let child = cmd.spawn()?;
        let pid = child.id();
        // If this future is dropped mid-run (the run is cancelled), the whole process group
        // goes with it, not only `sh`.
        let mut guard = GroupGuard(pid);
        let waited = tokio::time::timeout(self.timeout, child.wait_with_output()).await;
        guard.0 = None;
        let output = match waited {
            Ok(output) => output?,
            Err(_) => {
                kill_group(pid).await;
                return Ok(Evaluation::failed(format!(
                    "timed out after {:?}",
                    self.timeout
                )));
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Ok(Evaluation::failed(format!(
                "{}: {}",
                output.status,
                tail(&stderr, 300)
            )));
        }
        Ok(parse_reward(&stdout))
    }
}

/// Reads `{"reward": x, "feedback": "...", "trajectoryId": "...", "costUsd": y}` from the
/// command's stdout.
pub fn parse_reward(stdout: &str) -> Evaluation {
    let Some(v) = find_json_with(stdout, "reward") else {
        return Evaluation::failed(format!(
            "no JSON object with \"reward\" on stdout: {}",
            tail(stdout, 200)
        ));
    };
    let feedback = v
        .get("feedback")
        .and_then(|f| f.as_str())
        .map(|s| crate::dataset::excerpt(s, 1000));
    let mut evaluation = match v["reward"].as_f64() {
        Some(r) if (0.0..=1.0).contains(&r) => Evaluation::scored(r, feedback),
        _ => Evaluation {
            feedback,
            ..Evaluation::failed(format!(
                "reward must be a number in [0, 1], got {}",
                v["reward"]
            ))
        },
    };
    evaluation.trajectory_id = v
        .get("trajectoryId")
        .and_then(|t| t.as_str())
        .and_then(|t| t.parse().ok());
    evaluation.cost_usd = v
        .get("costUsd")
        .and_then(|c| c.as_f64())
        .filter(|c| c.is_finite() && *c >= 0.0);
    evaluation
}

pub(crate) fn tail(s: &str, max: usize) -> String {
    let s = s.trim();
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let t: String = s.chars().skip(n - max).collect();
    format!("…{t}")
}

/// Kills the process group `pid` leads when dropped while armed.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        #[cfg(unix)]
        if let Some(pid) = self.0.take() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

pub(crate) async fn kill_group(pid: Option<u32>) {
    #[cfg(unix)]
    if let Some(pid) = pid {
        // The command ran in its own process group: end it and anything it started.
        let _ = tokio::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
    #[cfg(not(unix))]
    let _ = pid;
}

#[async_trait]
impl Evaluator for CommandEvaluator {
    fn name(&self) -> &'static str {
        "command"
    }

    async fn evaluate(
        &self,
        candidate: &CandidateRef<'_>,
        example: &Example,
    ) -> Result<Evaluation, OptimizerError> {
        Ok(self
            .run(candidate, example)
            .await
            .unwrap_or_else(|e| Evaluation::failed(format!("could not run the command: {e}"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewards_are_checked() {
        assert_eq!(parse_reward("{\"reward\": 0.25}").reward, 0.25);
        let e = parse_reward("{\"reward\": 2, \"feedback\": \"x\"}");
        assert_eq!(e.reward, 0.0);
        assert!(e.error.unwrap().contains("[0, 1]"));
        assert!(parse_reward("oops").error.is_some());
        let id = uuid::Uuid::now_v7();
        let e = parse_reward(&format!(
            "{{\"reward\": 1, \"trajectoryId\": \"{id}\", \"costUsd\": 0.02}}"
        ));
        assert_eq!((e.trajectory_id, e.cost_usd), (Some(id), Some(0.02)));
    }
}
