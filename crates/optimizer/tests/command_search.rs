//! A synthetic suite for the `command` evaluator whose best prompt is known: the eval command's
//! reward is the share of four required rules the candidate prompt contains, and its feedback
//! names the missing ones. A scripted LLM turns that feedback into critiques and edits (and
//! sometimes into useless edits, which the gate must stop). The search must reach the best
//! prompt within its budget, and the gate must cost fewer evaluations than scoring every child
//! on the whole validation set.

use std::{io::Write, sync::Arc, time::Duration};

use async_trait::async_trait;
use lightning_optimizer::{
    apo::{ApoConfig, NoProgress, Search, SearchResult},
    dataset::{Dataset, Example, Outcome},
    evaluator::{command::CommandEvaluator, Evaluator},
    llm::{Llm, LlmError, LlmRequest, LlmResponse, UsageReport},
    templates::Templates,
};
use uuid::Uuid;

const RULES: [&str; 4] = [
    "ALWAYS_RUN_TESTS",
    "NEVER_FORCE_PUSH",
    "CITE_FILES",
    "ASK_WHEN_UNSURE",
];

/// A deterministic stand-in for the optimizer LLM: the critique picks one missing rule named in
/// the evaluator feedback (which one depends on the tasks shown); the edit appends it, except
/// for one task mix in three, where it appends an irrelevant sentence instead.
struct ScriptedLlm {
    calls: std::sync::atomic::AtomicU64,
}

fn checksum(s: &str) -> usize {
    s.bytes()
        .fold(7usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
}

#[async_trait]
impl Llm for ScriptedLlm {
    async fn complete(&self, request: &LlmRequest) -> Result<LlmResponse, LlmError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = &request.prompt;
        let text = if let Some(start) = p.find("<critique>") {
            // Edit: the current prompt is between the first <prompt> tags.
            let prompt = between(p, "<prompt>\n", "\n</prompt>");
            let critique = &p[start..];
            let addition = RULES
                .iter()
                .find(|r| critique.contains(&format!("Add the rule {r}")))
                .map(|r| r.to_string())
                .unwrap_or_else(|| "Be friendly.".to_string());
            format!("<prompt>\n{prompt}\n{addition}\n</prompt>")
        } else {
            // Critique: one missing rule from the feedback, or (one task mix in three) advice
            // that does not help.
            let prompt = between(p, "<prompt>\n", "\n</prompt>");
            let missing: Vec<&str> = RULES
                .iter()
                .copied()
                .filter(|r| p.contains(&format!(" {r}")) && !prompt.contains(r))
                .collect();
            let mix = checksum(between(p, "<examples>", "</examples>"));
            if missing.is_empty() || mix.is_multiple_of(3) {
                "- Be friendlier to the user.".to_string()
            } else {
                let rule = missing[mix / 3 % missing.len()];
                format!("- Add the rule {rule}: runs failed without it.")
            }
        };
        Ok(LlmResponse {
            text,
            input_tokens: 1,
            output_tokens: 1,
        })
    }

    fn usage(&self) -> UsageReport {
        UsageReport {
            calls: self.calls.load(std::sync::atomic::Ordering::SeqCst),
            ..Default::default()
        }
    }
}

fn between<'a>(s: &'a str, open: &str, close: &str) -> &'a str {
    let Some(a) = s.find(open) else { return "" };
    let rest = &s[a + open.len()..];
    &rest[..rest.find(close).unwrap_or(rest.len())]
}

fn dataset() -> Dataset {
    let examples = (0..60u128)
        .map(|i| Example {
            trajectory_id: Uuid::from_u128(i + 1),
            agent_id: "coder".into(),
            task_type: Some("fix".into()),
            task: format!("Fix bug #{i}"),
            system_prompt: Some("You are a coding agent working on {repo}.".into()),
            prompt_version: None,
            actions: vec![],
            outcome: Outcome {
                success: i.is_multiple_of(5),
                error: (!i.is_multiple_of(5)).then(|| format!("broke the build in step {i}")),
                feedback_score: None,
                result: None,
            },
            failure_type: (!i.is_multiple_of(5))
                .then(|| ["Bash: tests failed", "Git: rejected"][(i % 2) as usize].into()),
        })
        .collect();
    Dataset::split(examples, 0.3, 0.2, 11)
}

fn eval_script(dir: &std::path::Path) -> String {
    let path = dir.join("eval.sh");
    let mut f = std::fs::File::create(&path).unwrap();
    write!(
        f,
        r#"#!/bin/sh
# Reward: share of required rules in the candidate prompt; feedback names the missing ones.
have=0
missing=""
for rule in {rules}; do
  if grep -q "$rule" "$LIGHTNING_PROMPT_FILE"; then have=$((have+1)); else missing="$missing $rule"; fi
done
test -n "$LIGHTNING_TASK" || exit 3
echo "some log line"
echo "{{\"reward\": $(awk "BEGIN {{print $have/4}}"), \"feedback\": \"missing:$missing\"}}"
"#,
        rules = RULES.join(" ")
    )
    .unwrap();
    format!("sh {}", path.display())
}

async fn search(gate: bool, dir: &std::path::Path) -> SearchResult {
    let dataset = dataset();
    let llm: Arc<dyn Llm> = Arc::new(ScriptedLlm {
        calls: Default::default(),
    });
    let evaluator: Arc<dyn Evaluator> =
        Arc::new(CommandEvaluator::new(eval_script(dir), Duration::from_secs(20)).unwrap());
    let s = Search {
        config: ApoConfig {
            beam: 2,
            rounds: 6,
            branch: 3,
            minibatch: 3,
            gate,
            max_llm_calls: Some(80),
            max_evaluations: Some(1500),
            seed: 5,
            concurrency: 8,
            ..Default::default()
        },
        llm,
        evaluator,
        templates: Templates::default(),
        dataset: &dataset,
        analysis: String::new(),
        run_id: Uuid::now_v7(),
        agent_id: "coder".into(),
        progress: &NoProgress,
        sink: None,
    };
    s.run("You are a coding agent working on {repo}.")
        .await
        .unwrap()
}

#[tokio::test]
async fn reaches_the_known_best_prompt_and_the_gate_saves_evaluations() {
    let dir = tempfile::tempdir().unwrap();
    let gated = search(true, dir.path()).await;
    let full = search(false, dir.path()).await;

    for (name, r) in [("gated", &gated), ("ungated", &full)] {
        let best = r.candidates.iter().find(|c| c.id == r.best_id).unwrap();
        assert_eq!(r.best_validation.mean, 1.0, "{name}: {:#?}", best.prompt);
        // The best and the seed on the test set, paired: 1.0 vs 0.0 everywhere.
        assert_eq!((r.test.best.mean, r.test.baseline.mean), (1.0, 0.0));
        assert_eq!(r.test.difference.wins, r.test.difference.n);
        for rule in RULES {
            assert!(best.prompt.contains(rule), "{name}: {rule} missing");
        }
        assert!(best.prompt.contains("{repo}"), "{name}: placeholder lost");
        assert_eq!(r.baseline_validation.mean, 0.0);
        assert!(
            r.llm_calls <= 80 && r.evaluations <= 1500,
            "{name}: over budget"
        );
        assert_eq!(r.failed_evaluations, 0, "{:?}", r.evaluation_errors);
    }
    println!(
        "gated: {} evaluations, {} LLM calls; ungated: {} evaluations, {} LLM calls",
        gated.evaluations, gated.llm_calls, full.evaluations, full.llm_calls
    );
    // Same seed, same LLM: the same children; the gate stops the useless ones on 3 examples
    // instead of scoring them on all 6 validation examples.
    assert!(
        gated.evaluations < full.evaluations,
        "gated {} vs ungated {}",
        gated.evaluations,
        full.evaluations
    );
    // The search is deterministic for a seed and a deterministic LLM and evaluator, so the
    // counts are exact: 18 validation runs for the seed, then per child 3 minibatch runs plus
    // the halving rungs (gated) versus 18 validation runs (ungated), and finally 2 × 12 test
    // runs for the seed and the best.
    assert_eq!((gated.evaluations, full.evaluations), (283, 489));
    assert_eq!((gated.llm_calls, full.llm_calls), (72, 72));
    let pruned = gated
        .candidates
        .iter()
        .filter(|c| c.status == lightning_core::CandidateStatus::Pruned)
        .count();
    assert!(pruned > 0, "the gate pruned nothing");
}

#[tokio::test]
async fn failed_and_timed_out_runs_score_zero_and_are_reported() {
    let ex = &dataset().examples[0];
    let candidate = lightning_optimizer::evaluator::CandidateRef {
        run_id: Uuid::now_v7(),
        candidate_id: Uuid::now_v7(),
        agent_id: "coder",
        prompt_version: "opt-x".into(),
        prompt: "p",
    };
    let crash = CommandEvaluator::new("echo boom >&2; exit 4", Duration::from_secs(10)).unwrap();
    let e = crash.evaluate(&candidate, ex).await.unwrap();
    assert_eq!(e.reward, 0.0);
    assert!(e.error.as_deref().unwrap().contains("boom"), "{e:?}");

    let slow = CommandEvaluator::new(
        "sleep 5; echo '{\"reward\": 1}'",
        Duration::from_millis(300),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let e = slow.evaluate(&candidate, ex).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(e.reward, 0.0);
    assert!(e.error.as_deref().unwrap().contains("timed out"), "{e:?}");

    let env = CommandEvaluator::new(
        "test \"$(cat \"$LIGHTNING_PROMPT_FILE\")\" = p && test \"$LIGHTNING_PROMPT_VERSION\" = opt-x \
         && grep -q '\"task\"' \"$LIGHTNING_TASK_FILE\" && test -d \"$LIGHTNING_WORK_DIR\" \
         && echo '{\"reward\": 0.75, \"feedback\": \"ok\"}'",
        Duration::from_secs(10),
    )
    .unwrap();
    let e = env.evaluate(&candidate, ex).await.unwrap();
    assert_eq!(
        (e.reward, e.feedback.as_deref()),
        (0.75, Some("ok")),
        "{e:?}"
    );
}
