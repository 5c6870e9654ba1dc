//! The evidence a critique reads about one evaluation rollout: the trajectory the evaluated
//! agent recorded (when the evaluator reported its `trajectoryId`), rendered in full detail and
//! capped in tokens.
//!
//! Rendering, step by step: assistant text (steps of kind `message`), every tool call with its
//! whole input as JSON cut at [`TOOL_INPUT_CHARS`] characters (not one chosen field), its error
//! in full up to [`ERROR_CHARS`], otherwise its output up to [`OUTPUT_CHARS`]; then the final
//! answer (the trajectory's `result`) and the outcome with its error. The whole text is then
//! capped at a token budget by [`cap_tokens`] (4 characters per token; the start and the end
//! are kept).

use std::sync::Arc;

use async_trait::async_trait;
use lightning_core::{Step, StepKind, Trajectory};
use lightning_store::Store;

use crate::{
    dataset::{all_steps, excerpt, value_excerpt, Example},
    evaluator::{CandidateRef, Evaluation, Evaluator},
    OptimizerError,
};

pub const TOOL_INPUT_CHARS: usize = 600;
pub const OUTPUT_CHARS: usize = 300;
pub const ERROR_CHARS: usize = 500;
pub const MESSAGE_CHARS: usize = 800;

/// Caps `text` at about `tokens` tokens, counting 4 characters per token (the usual English
/// ratio for the models' tokenizers): the first two thirds and the last third of the allowed
/// characters are kept around a marker saying how many were cut, so the task (at the start)
/// and the outcome (at the end) both survive.
pub fn cap_tokens(text: &str, tokens: usize) -> String {
    let max = tokens * 4;
    let n = text.chars().count();
    if n <= max {
        return text.to_string();
    }
    let head_len = max * 2 / 3;
    let head: String = text.chars().take(head_len).collect();
    let tail: String = text.chars().skip(n - (max - head_len)).collect();
    format!(
        "{head}\n  … [{} characters cut to stay within {tokens} tokens] …\n{tail}",
        n - head.chars().count() - tail.chars().count()
    )
}

/// A trajectory with its steps as critique evidence (see the module docs).
pub fn render(t: &Trajectory, steps: &[Step]) -> String {
    let mut out = String::new();
    for s in steps {
        match s.kind {
            StepKind::Message => {
                let text = s
                    .tool_output
                    .as_ref()
                    .or(s.tool_input.as_ref())
                    .map(|v| value_excerpt(v, MESSAGE_CHARS))
                    .unwrap_or_default();
                out.push_str(&format!("  assistant: {text}\n"));
            }
            StepKind::Tool => {
                let input = s
                    .tool_input
                    .as_ref()
                    .map(|v| excerpt(&v.to_string(), TOOL_INPUT_CHARS))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "  {}. {}({input})",
                    s.step_number + 1,
                    s.tool_name
                ));
                match (&s.error, &s.tool_output) {
                    (Some(e), _) => out.push_str(&format!(" → ERROR: {}", excerpt(e, ERROR_CHARS))),
                    (None, Some(o)) => {
                        out.push_str(&format!(" → {}", value_excerpt(o, OUTPUT_CHARS)))
                    }
                    (None, None) => {}
                }
                out.push('\n');
            }
            StepKind::Event => {}
        }
    }
    if let Some(r) = &t.result {
        out.push_str(&format!(
            "  final answer: {}\n",
            value_excerpt(r, MESSAGE_CHARS)
        ));
    }
    out.push_str(&format!("  outcome: {}", t.status.as_str()));
    if let Some(e) = &t.error {
        out.push_str(&format!(" — error: {}", excerpt(e, ERROR_CHARS)));
    }
    out.push('\n');
    out
}

/// Wraps an evaluator: when an evaluation reports the trajectory its rollout recorded, that
/// trajectory is read from the store and attached, rendered, for the critiques. A trajectory
/// not (yet) in the store is left out; the evaluation itself is never changed otherwise.
pub struct WithTrajectories {
    pub inner: Arc<dyn Evaluator>,
    pub store: Arc<dyn Store>,
}

#[async_trait]
impl Evaluator for WithTrajectories {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn is_estimate(&self) -> bool {
        self.inner.is_estimate()
    }

    async fn evaluate(
        &self,
        candidate: &CandidateRef<'_>,
        example: &Example,
    ) -> Result<Evaluation, OptimizerError> {
        let mut evaluation = self.inner.evaluate(candidate, example).await?;
        if let Some(id) = evaluation.trajectory_id {
            if let Ok(t) = self.store.get_trajectory(id).await {
                if let Ok(steps) = all_steps(&self.store, id).await {
                    evaluation.trajectory = Some(render(&t, &steps));
                }
            }
        }
        Ok(evaluation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_cap_keeps_both_ends_and_says_what_it_cut() {
        let short = "task\noutcome";
        assert_eq!(cap_tokens(short, 10), short);
        let long = format!("TASK {}OUTCOME", "x".repeat(1000));
        let capped = cap_tokens(&long, 50);
        assert!(capped.starts_with("TASK "), "{capped}");
        assert!(capped.ends_with("OUTCOME"), "{capped}");
        let marker = capped.lines().nth(1).unwrap();
        assert_eq!(
            marker,
            "  … [812 characters cut to stay within 50 tokens] …"
        );
        assert_eq!(capped.chars().count() - marker.chars().count() - 2, 200);
    }
}
