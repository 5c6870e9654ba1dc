//! `--evaluator judge` (default, offline): one LLM call per (candidate, held-out trajectory)
//! asking whether an agent following the candidate would have avoided the recorded failure or
//! kept the recorded success.
//!
//! Bias (documented in docs/optimizer.md): the judge never sees the agent act. It rewards
//! prompts that *mention* a failure's cause, so it favours longer prompts that enumerate rules
//! (verbosity and keyword bias), and when the same model writes and judges prompts it prefers
//! its own phrasing (self-preference). Confirm a judge-selected prompt with real rollouts
//! (`--evaluator command`) or an A/B in production before promoting it.

use std::sync::Arc;

use async_trait::async_trait;

use super::{find_json_with, CandidateRef, Evaluation, Evaluator};
use crate::{
    dataset::Example,
    llm::{Llm, LlmRequest},
    templates::render,
    OptimizerError,
};

pub struct JudgeEvaluator {
    pub llm: Arc<dyn Llm>,
    pub template: String,
    pub max_actions: usize,
}

impl JudgeEvaluator {
    pub fn new(llm: Arc<dyn Llm>, template: String) -> Self {
        Self {
            llm,
            template,
            max_actions: 12,
        }
    }
}

/// `{"score": x, "reason": "..."}` from the judge's reply.
pub fn parse_verdict(reply: &str) -> Evaluation {
    match find_json_with(reply, "score") {
        Some(v) => match v["score"].as_f64() {
            Some(s) if (0.0..=1.0).contains(&s) => Evaluation {
                reward: s,
                feedback: v.get("reason").and_then(|r| r.as_str()).map(str::to_string),
                error: None,
            },
            _ => Evaluation::failed(format!("judge score out of range: {}", v["score"])),
        },
        None => Evaluation::failed(format!(
            "judge reply has no {{\"score\": …}}: {}",
            crate::dataset::excerpt(reply, 200)
        )),
    }
}

#[async_trait]
impl Evaluator for JudgeEvaluator {
    fn name(&self) -> &'static str {
        "judge"
    }

    async fn evaluate(
        &self,
        candidate: &CandidateRef<'_>,
        example: &Example,
    ) -> Result<Evaluation, OptimizerError> {
        let run = example.render(self.max_actions);
        let prompt = render(
            &self.template,
            &[("prompt", candidate.prompt), ("example", &run)],
        );
        let request = LlmRequest {
            prompt,
            temperature: Some(0.0),
            max_tokens: Some(300),
            ..Default::default()
        };
        match self.llm.complete(&request).await {
            Ok(reply) => Ok(parse_verdict(&reply.text)),
            Err(e) if e.is_fatal() => Err(e.into()),
            Err(e) => Ok(Evaluation::failed(e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        let v = parse_verdict("{\"score\": 0.9, \"reason\": \"covers it\"}");
        assert_eq!((v.reward, v.feedback.as_deref()), (0.9, Some("covers it")));
        assert!(parse_verdict("{\"score\": 7}").error.is_some());
        assert!(parse_verdict("yes").error.is_some());
    }
}
