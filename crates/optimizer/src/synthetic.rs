//! A synthetic task suite with a known optimum: the optimizer's evidence tests and
//! `lightning optimize-bench --suite synthetic` run on it (so it ships in the binary).
//!
//! - **Tasks**: `n` recorded runs of a coding agent, each of one of four kinds; a run of kind
//!   `k` fails unless the system prompt holds rule [`RULES`]`[k]`.
//! - **Ground truth**: an agent following prompt `p` succeeds on a task with probability
//!   [`true_success`]: 0.20, plus 0.70 when `p` has the task kind's rule, minus 0.12 per
//!   harmful rule. Neutral rules change nothing. The optimum (every rule, nothing harmful)
//!   succeeds with 0.90.
//! - **Evaluator**: one noisy rollout per (prompt, task): success when a hash of (prompt,
//!   task, noise seed) falls below the true probability. Feedback names the missing rule.
//!   [`SyntheticEvaluator`] does it in process; [`eval_script`] writes the same rule set as a
//!   shell command for `--evaluator command` (with its own hash: `cksum`).
//! - **Scripted LLM** ([`scripted_reply`]): its critiques name a rule and its edits append it.
//!   With [`Variant::Improvable`] it names rules the feedback says are missing; with
//!   [`Variant::Hopeless`] it only ever proposes neutral or harmful rules, so no candidate is
//!   truly better than the start, and every registration is a false one.

use async_trait::async_trait;
use lightning_core::{Completion, NewStep, NewTrajectory};
use lightning_store::Store;
use uuid::Uuid;

use crate::{
    dataset::{Dataset, Example, Outcome},
    evaluator::{CandidateRef, Evaluation, Evaluator},
    OptimizerError,
};

/// The rule each task kind needs.
pub const RULES: [&str; 4] = [
    "ALWAYS_RUN_TESTS",
    "NEVER_FORCE_PUSH",
    "CITE_FILES",
    "ASK_WHEN_UNSURE",
];
pub const KINDS: [&str; 4] = ["tests", "push", "cite", "ask"];
/// Rules that change nothing.
pub const NEUTRAL: [&str; 3] = ["BE_FRIENDLY", "USE_MARKDOWN", "SIGN_OFF_POLITELY"];
/// Rules that make every task less likely to succeed.
pub const HARMFUL: [&str; 2] = ["REFUSE_RISKY_COMMANDS", "SKIP_VERIFICATION"];
pub const START_PROMPT: &str = "You are a coding agent working on {repo}. Fix the issue.";
pub const AGENT: &str = "synthetic-coder";

const BASE: f64 = 0.20;
const RULE_GAIN: f64 = 0.70;
const HARM: f64 = 0.12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The LLM proposes the rules the feedback says are missing: improvement is possible.
    Improvable,
    /// The LLM proposes only neutral or harmful rules: no improvement is possible.
    Hopeless,
}

/// The task text of example `i` (unique: a leaked task is easy to spot).
pub fn task_text(i: usize) -> String {
    format!("Fix issue TK-{i:04} (kind={})", KINDS[i % 4])
}

fn kind_of(task: &str) -> Option<usize> {
    KINDS
        .iter()
        .position(|k| task.contains(&format!("(kind={k})")))
}

/// Probability that an agent following `prompt` succeeds on a task of `kind`.
pub fn true_success(prompt: &str, kind: usize) -> f64 {
    let mut p = BASE;
    if prompt.contains(RULES[kind]) {
        p += RULE_GAIN;
    }
    p -= HARM * HARMFUL.iter().filter(|h| prompt.contains(*h)).count() as f64;
    p.clamp(0.02, 0.98)
}

/// Mean true success of `prompt` over `examples` of `dataset`.
pub fn true_rate(prompt: &str, dataset: &Dataset, examples: &[usize]) -> f64 {
    let total: f64 = examples
        .iter()
        .map(|&i| true_success(prompt, kind_of(&dataset.examples[i].task).unwrap_or(0)))
        .sum();
    total / examples.len().max(1) as f64
}

/// SplitMix64's finalizer: every input bit moves every output bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A hash of the parts mapped to [0, 1): FNV-1a per part, each mixed in with SplitMix64 (plain
/// FNV-1a leaves a per-prompt bias in its high bits, which made some neutral prompts "better").
fn unit_hash(parts: &[&str]) -> f64 {
    let mut h: u64 = 0x9e37_79b9_7f4a_7c15;
    for part in parts {
        let mut f: u64 = 0xcbf2_9ce4_8422_2325;
        for b in part.bytes() {
            f ^= b as u64;
            f = f.wrapping_mul(0x0100_0000_01b3);
        }
        h = mix(h ^ mix(f));
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// One noisy rollout of `prompt` on `task`.
pub fn rollout(prompt: &str, task: &str, trajectory_id: Uuid, noise_seed: u64) -> Evaluation {
    let Some(kind) = kind_of(task) else {
        return Evaluation::failed(format!("not a synthetic task: {task}"));
    };
    let u = unit_hash(&[prompt, &trajectory_id.to_string(), &noise_seed.to_string()]);
    if u < true_success(prompt, kind) {
        Evaluation::scored(1.0, Some("ok".into()))
    } else if !prompt.contains(RULES[kind]) {
        Evaluation::scored(0.0, Some(format!("failed; missing: {}", RULES[kind])))
    } else {
        Evaluation::scored(0.0, Some("failed; flaky run".into()))
    }
}

/// The in-process evaluator (fast: for many-seed sweeps).
pub struct SyntheticEvaluator {
    pub noise_seed: u64,
}

#[async_trait]
impl Evaluator for SyntheticEvaluator {
    fn name(&self) -> &'static str {
        "command"
    }

    async fn evaluate(
        &self,
        candidate: &CandidateRef<'_>,
        example: &Example,
    ) -> Result<Evaluation, OptimizerError> {
        Ok(rollout(
            candidate.prompt,
            &example.task,
            example.trajectory_id,
            self.noise_seed,
        ))
    }
}

/// Writes the evaluator as a shell script in `dir` and returns the `--eval-cmd` for it. The
/// noise comes from `cksum` of (prompt, trajectory id, `noise_seed`); it reports a fresh
/// `trajectoryId` and a `costUsd` as an instrumented agent would.
pub fn eval_script(dir: &std::path::Path, noise_seed: u64) -> String {
    let harmful = HARMFUL.join(" ");
    let rules = RULES.join(" ");
    let kinds = KINDS.join(" ");
    let script = format!(
        r#"#!/bin/sh
# Synthetic rollout: success probability 0.20, +0.70 with the task kind's rule, -0.12 per
# harmful rule; the noise is a checksum of (prompt, trajectory, seed).
set -e
p=20
i=0
kind_rule=""
for k in {kinds}; do
  i=$((i+1))
  case "$LIGHTNING_TASK" in *"(kind=$k)"*) kind_rule=$(echo {rules} | cut -d' ' -f$i) ;; esac
done
test -n "$kind_rule" || {{ echo "not a synthetic task" >&2; exit 3; }}
if grep -q "$kind_rule" "$LIGHTNING_PROMPT_FILE"; then p=$((p+70)); fi
for h in {harmful}; do
  if grep -q "$h" "$LIGHTNING_PROMPT_FILE"; then p=$((p-12)); fi
done
roll=$( (cat "$LIGHTNING_PROMPT_FILE"; printf '|%s|{noise_seed}' "$LIGHTNING_TRAJECTORY_ID") | cksum | cut -d' ' -f1)
roll=$((roll % 100))
id=$(cat /proc/sys/kernel/random/uuid)
echo "agent log line"
if [ "$roll" -lt "$p" ]; then
  echo "{{\"reward\": 1, \"feedback\": \"ok\", \"trajectoryId\": \"$id\", \"costUsd\": 0.001}}"
elif grep -q "$kind_rule" "$LIGHTNING_PROMPT_FILE"; then
  echo "{{\"reward\": 0, \"feedback\": \"failed; flaky run\", \"trajectoryId\": \"$id\", \"costUsd\": 0.001}}"
else
  echo "{{\"reward\": 0, \"feedback\": \"failed; missing: $kind_rule\", \"trajectoryId\": \"$id\", \"costUsd\": 0.001}}"
fi
"#
    );
    let path = dir.join("synthetic-eval.sh");
    std::fs::write(&path, script).expect("write the eval script");
    format!("sh {}", path.display())
}

fn checksum(s: &str) -> usize {
    s.bytes()
        .fold(7usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
}

/// The text between the first `open` and the next `close`.
pub fn between<'a>(s: &'a str, open: &str, close: &str) -> &'a str {
    let Some(a) = s.find(open) else { return "" };
    let rest = &s[a + open.len()..];
    &rest[..rest.find(close).unwrap_or(rest.len())]
}

/// The scripted optimizer LLM's reply to a critique or edit request made from the default
/// templates.
pub fn scripted_reply(request: &str, variant: Variant) -> String {
    let prompt = between(request, "<prompt>\n", "\n</prompt>");
    if request.contains("<critique>") {
        let critique = between(request, "<critique>\n", "\n</critique>");
        let addition = RULES
            .iter()
            .chain(&NEUTRAL)
            .chain(&HARMFUL)
            .find(|r| critique.contains(&format!("Add the rule {r}")))
            .copied()
            .unwrap_or("Be concise.");
        return format!("<prompt>\n{prompt}\n{addition}\n</prompt>");
    }
    let examples = between(request, "<examples>", "</examples>");
    let mix = checksum(examples);
    let rule = match variant {
        Variant::Improvable => {
            let missing: Vec<&str> = RULES
                .iter()
                .copied()
                .filter(|r| examples.contains(&format!("missing: {r}")) && !prompt.contains(r))
                .collect();
            if missing.is_empty() {
                NEUTRAL[mix % NEUTRAL.len()]
            } else {
                missing[mix % missing.len()]
            }
        }
        Variant::Hopeless => {
            let pool: Vec<&str> = NEUTRAL.iter().chain(&HARMFUL).copied().collect();
            pool[mix % pool.len()]
        }
    };
    format!("- Add the rule {rule}: the runs above needed it.")
}

/// The recorded runs as examples (for searches without a store).
pub fn examples(n: usize) -> Vec<Example> {
    (0..n)
        .map(|i| {
            let success = recorded_success(i);
            Example {
                trajectory_id: trajectory_id(i),
                agent_id: AGENT.into(),
                task_type: Some(KINDS[i % 4].into()),
                task: task_text(i),
                system_prompt: Some(START_PROMPT.into()),
                prompt_version: None,
                actions: vec![],
                outcome: Outcome {
                    success,
                    error: (!success).then(|| recorded_error(i)),
                    feedback_score: None,
                    result: None,
                },
                failure_type: (!success).then(|| format!("Bash: {} failed", KINDS[i % 4])),
            }
        })
        .collect()
}

fn trajectory_id(i: usize) -> Uuid {
    Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_5000 + i as u128)
}

/// About 20% of the recorded runs (made with the start prompt) succeeded.
fn recorded_success(i: usize) -> bool {
    unit_hash(&["recorded", &i.to_string()]) < BASE
}

/// Unique per run, so a leaked error message is easy to spot too.
fn recorded_error(i: usize) -> String {
    format!("{} check failed on TK-{i:04}", KINDS[i % 4])
}

/// Stores the `n` recorded runs (one step each) for `agent`.
pub async fn seed_store(store: &dyn Store, n: usize) -> Result<(), lightning_store::StoreError> {
    seed_store_with_errors(store, n, &recorded_error).await
}

/// [`seed_store`] with the error text of failed run `i` (its step's and its outcome's) from
/// `error_of`: the leakage tests plant texts in chosen splits with it. Ids, tasks and outcomes
/// are those of [`seed_store`], so the split of a seed is too.
pub async fn seed_store_with_errors(
    store: &dyn Store,
    n: usize,
    error_of: &(dyn Fn(usize) -> String + Sync),
) -> Result<(), lightning_store::StoreError> {
    let now = lightning_core::time::now();
    for i in 0..n {
        let success = recorded_success(i);
        let id = store
            .start_trajectory(&NewTrajectory {
                // Fixed ids: the evaluator's noise hashes them, so every run of a test sees
                // the same rollouts.
                trajectory_id: Some(trajectory_id(i)),
                agent_id: AGENT.into(),
                task_type: Some(KINDS[i % 4].into()),
                prompt: Some(task_text(i)),
                system_prompt: Some(START_PROMPT.into()),
                start_time: Some(now - chrono::Duration::seconds(i as i64)),
                ..Default::default()
            })
            .await?;
        let error = (!success).then(|| error_of(i));
        store
            .append_steps(
                id,
                vec![NewStep {
                    step_number: 0,
                    tool_name: "Bash".into(),
                    tool_input: Some(
                        serde_json::json!({"command": format!("make {}", KINDS[i % 4])}),
                    ),
                    error: error.clone(),
                    ..Default::default()
                }],
            )
            .await?;
        store
            .complete_trajectory(
                id,
                &Completion {
                    success,
                    error,
                    ..Default::default()
                },
            )
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_optimum_is_known() {
        let all = format!("{START_PROMPT}\n{}", RULES.join("\n"));
        for k in 0..4 {
            assert!((true_success(START_PROMPT, k) - 0.20).abs() < 1e-9);
            assert!((true_success(&all, k) - 0.90).abs() < 1e-9);
            let neutral = format!("{START_PROMPT}\n{}", NEUTRAL.join("\n"));
            assert_eq!(true_success(&neutral, k), true_success(START_PROMPT, k));
            let harmful = format!("{START_PROMPT}\n{}", HARMFUL[0]);
            assert!(true_success(&harmful, k) < true_success(START_PROMPT, k));
        }
        // The noisy rollout succeeds at about the true rate.
        let n = 4000;
        let wins = (0..n)
            .filter(|&i| rollout(&all, &task_text(i), Uuid::from_u128(i as u128), 1).reward == 1.0)
            .count();
        let rate = wins as f64 / n as f64;
        assert!((rate - 0.90).abs() < 0.03, "{rate}");
        let recorded = (0..n).filter(|&i| recorded_success(i)).count() as f64 / n as f64;
        assert!((recorded - 0.20).abs() < 0.03, "{recorded}");
        // No prompt-wide luck: neutral variants of the start succeed at its rate on the same
        // tasks (the bias plain FNV-1a had).
        for v in 0..20 {
            let neutral = format!("{START_PROMPT}\n{} #{v}", NEUTRAL[v % 3]);
            let wins = (0..n)
                .filter(|&i| {
                    rollout(&neutral, &task_text(i), Uuid::from_u128(i as u128), 1).reward == 1.0
                })
                .count();
            let rate = wins as f64 / n as f64;
            assert!((rate - 0.20).abs() < 0.025, "{neutral:?}: {rate}");
        }
    }

    #[test]
    fn the_hopeless_llm_never_proposes_a_needed_rule() {
        for i in 0..200 {
            let request = format!(
                "<prompt>\n{START_PROMPT}\n</prompt>\n<examples>\nrun {i} failed; missing: {}\n</examples>",
                RULES[i % 4]
            );
            let c = scripted_reply(&request, Variant::Hopeless);
            assert!(RULES.iter().all(|r| !c.contains(r)), "{c}");
            let c = scripted_reply(&request, Variant::Improvable);
            assert!(c.contains(RULES[i % 4]), "{c}");
        }
    }
}
