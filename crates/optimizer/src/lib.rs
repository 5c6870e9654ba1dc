//! Prompt optimization over stored trajectories.
//!
//! - [`dataset`]: the latest N completed trajectories as (prompt, actions, outcome) examples,
//!   split deterministically into train and validation.
//! - [`analysis`]: failure analysis without any LLM (`lightning analyze`).
//! - [`apo`]: textual gradients + beam search with a GEPA-style gate and successive halving.
//! - [`gepa`]: GEPA-class search: per-instance Pareto front ([`pareto`]), reflective
//!   minibatches from the parent's own rollouts, line merges ([`merge`]), budget-aware validation.
//! - [`evaluator`]: the offline LLM judge and the `--eval-cmd` rollout evaluator.
//! - [`grade`]: `lightning grade`, scores for stored trajectories from a command or an LLM judge.
//! - [`llm`]: Anthropic Messages and OpenAI-compatible Chat Completions clients.
//! - [`run`]: `optimize` end to end, storing the run, its candidates and the new prompt version.

pub mod analysis;
pub mod apo;
pub mod dataset;
mod error;
pub mod evaluator;
pub mod gepa;
pub mod grade;
pub mod llm;
pub mod merge;
pub mod normalize;
pub mod pareto;
pub mod report;
pub mod rollout_text;
pub mod run;
pub mod stats;
pub mod synthetic;
pub mod templates;

pub use error::{OptimizerError, Result};
