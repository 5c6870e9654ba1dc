//! Storage of optimization runs, their candidates, and the versioned prompt registry.
//! A supertrait of [`Store`](crate::Store), so `Arc<dyn Store>` offers these methods too;
//! implemented once, generically, for every backend that lends an [`SqlExec`].

use async_trait::async_trait;
use lightning_core::{
    time, CandidateEvaluation, NewPrompt, OptimizationRun, Prompt, PromptCandidate, StoredLlmReply,
};
use uuid::Uuid;

use crate::{
    exec::{finish_tx, retry, ColumnRow as _, SqlExec, SqlTx},
    optimization_sql as q, StoreError, StoreResult,
};

/// How often a registration or promotion that lost a race on a unique index is retried.
pub(crate) const UNIQUE_RETRIES: usize = 8;

#[async_trait]
pub trait OptimizationStore: Send + Sync {
    /// Records a new run (normally `status = running`).
    async fn create_run(&self, run: &OptimizationRun) -> StoreResult<()>;

    /// Overwrites the run's mutable fields: status, finish time, config, scores, counters, error.
    /// `NotFound` if the run does not exist.
    async fn update_run(&self, run: &OptimizationRun) -> StoreResult<()>;

    async fn get_run(&self, run_id: Uuid) -> StoreResult<OptimizationRun>;

    /// Newest first, optionally for one agent.
    async fn list_runs(
        &self,
        agent_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<OptimizationRun>>;

    /// Inserts candidates, or updates the scores, critique, evaluations and status of those
    /// already stored (identity, lineage and prompt never change). One transaction;
    /// `NotFound` when a candidate's run does not exist.
    async fn save_candidates(&self, candidates: &[PromptCandidate]) -> StoreResult<()>;

    /// A run's candidates by round, then creation.
    async fn list_candidates(&self, run_id: Uuid) -> StoreResult<Vec<PromptCandidate>>;

    /// Stores the agent's next version (1 for the first). With `promote`, it becomes the only
    /// promoted version. `Conflict` when `source_run_id` names no run.
    async fn register_prompt(&self, agent_id: &str, prompt: &NewPrompt) -> StoreResult<Prompt>;

    /// Newest version first; empty when the agent has none.
    async fn list_prompts(&self, agent_id: &str) -> StoreResult<Vec<Prompt>>;

    /// The promoted version, else `None`: registered but unpromoted versions are candidates
    /// and are never served as the latest.
    async fn latest_prompt(&self, agent_id: &str) -> StoreResult<Option<Prompt>>;

    async fn get_prompt(&self, agent_id: &str, version: i64) -> StoreResult<Prompt>;

    /// Makes `version` the agent's only promoted version; `NotFound` if it does not exist.
    async fn promote_prompt(&self, agent_id: &str, version: i64) -> StoreResult<Prompt>;

    /// Inserts (candidate, example) evaluations, overwriting a repeated (run, candidate,
    /// trajectory). One transaction; `NotFound` when the run does not exist.
    async fn save_evaluations(&self, evaluations: &[CandidateEvaluation]) -> StoreResult<()>;

    /// A run's evaluations in the order they were made.
    async fn list_evaluations(&self, run_id: Uuid) -> StoreResult<Vec<CandidateEvaluation>>;

    /// Keeps an LLM reply of the run (for `--resume`); repeating a (key, occurrence) keeps the
    /// first. `NotFound` when the run does not exist.
    async fn save_llm_reply(&self, run_id: Uuid, reply: &StoredLlmReply) -> StoreResult<()>;

    /// The run's stored LLM replies.
    async fn list_llm_replies(&self, run_id: Uuid) -> StoreResult<Vec<StoredLlmReply>>;
}

pub(crate) fn run_not_found(id: Uuid) -> StoreError {
    StoreError::NotFound(format!("optimization run {id}"))
}

pub(crate) fn prompt_not_found(agent_id: &str, version: i64) -> StoreError {
    StoreError::NotFound(format!("prompt version {version} of agent {agent_id:?}"))
}

#[async_trait]
impl<S: SqlExec> OptimizationStore for S {
    async fn create_run(&self, run: &OptimizationRun) -> StoreResult<()> {
        self.execute(q::insert_run(run)).await?;
        Ok(())
    }

    async fn update_run(&self, run: &OptimizationRun) -> StoreResult<()> {
        match self.execute(q::update_run(run)).await? {
            0 => Err(run_not_found(run.id)),
            _ => Ok(()),
        }
    }

    async fn get_run(&self, run_id: Uuid) -> StoreResult<OptimizationRun> {
        let row = self
            .fetch_optional(q::select_run(run_id))
            .await?
            .ok_or_else(|| run_not_found(run_id))?;
        q::decode_run(&row)
    }

    async fn list_runs(
        &self,
        agent_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<OptimizationRun>> {
        let rows = self.fetch_all(q::list_runs(agent_id, limit)).await?;
        rows.iter().map(q::decode_run).collect()
    }

    async fn save_candidates(&self, candidates: &[PromptCandidate]) -> StoreResult<()> {
        if candidates.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        let result = async {
            require_runs(&mut tx, candidates.iter().map(|c| c.run_id)).await?;
            for chunk in candidates.chunks(q::CANDIDATE_CHUNK) {
                tx.execute(q::upsert_candidates(chunk)).await?;
            }
            Ok(())
        }
        .await;
        finish_tx(tx, result).await
    }

    async fn list_candidates(&self, run_id: Uuid) -> StoreResult<Vec<PromptCandidate>> {
        let rows = self.fetch_all(q::list_candidates(run_id)).await?;
        rows.iter().map(q::decode_candidate).collect()
    }

    async fn register_prompt(&self, agent_id: &str, prompt: &NewPrompt) -> StoreResult<Prompt> {
        retry(UNIQUE_RETRIES, q::is_unique_violation, || async {
            let mut tx = self.begin().await?;
            let result = register_prompt_in(&mut tx, agent_id, prompt).await;
            finish_tx(tx, result).await
        })
        .await
    }

    async fn list_prompts(&self, agent_id: &str) -> StoreResult<Vec<Prompt>> {
        let rows = self.fetch_all(q::list_prompts(agent_id)).await?;
        rows.iter().map(q::decode_prompt).collect()
    }

    async fn latest_prompt(&self, agent_id: &str) -> StoreResult<Option<Prompt>> {
        self.fetch_optional(q::latest_prompt(agent_id))
            .await?
            .as_ref()
            .map(q::decode_prompt)
            .transpose()
    }

    async fn get_prompt(&self, agent_id: &str, version: i64) -> StoreResult<Prompt> {
        let row = self
            .fetch_optional(q::select_prompt(agent_id, version))
            .await?
            .ok_or_else(|| prompt_not_found(agent_id, version))?;
        q::decode_prompt(&row)
    }

    async fn promote_prompt(&self, agent_id: &str, version: i64) -> StoreResult<Prompt> {
        retry(UNIQUE_RETRIES, q::is_unique_violation, || async {
            let mut tx = self.begin().await?;
            let result = promote_prompt_in(&mut tx, agent_id, version).await;
            finish_tx(tx, result).await
        })
        .await
    }

    async fn save_evaluations(&self, evaluations: &[CandidateEvaluation]) -> StoreResult<()> {
        if evaluations.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        let result = async {
            require_runs(&mut tx, evaluations.iter().map(|e| e.run_id)).await?;
            for chunk in evaluations.chunks(q::EVALUATION_CHUNK) {
                tx.execute(q::upsert_evaluations(chunk)).await?;
            }
            Ok(())
        }
        .await;
        finish_tx(tx, result).await
    }

    async fn list_evaluations(&self, run_id: Uuid) -> StoreResult<Vec<CandidateEvaluation>> {
        let rows = self.fetch_all(q::list_evaluations(run_id)).await?;
        rows.iter().map(q::decode_evaluation).collect()
    }

    async fn save_llm_reply(&self, run_id: Uuid, reply: &StoredLlmReply) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let result = async {
            require_runs(&mut tx, std::iter::once(run_id)).await?;
            tx.execute(q::insert_llm_reply(run_id, reply)).await?;
            Ok(())
        }
        .await;
        finish_tx(tx, result).await
    }

    async fn list_llm_replies(&self, run_id: Uuid) -> StoreResult<Vec<StoredLlmReply>> {
        let rows = self.fetch_all(q::list_llm_replies(run_id)).await?;
        rows.iter().map(q::decode_llm_reply).collect()
    }
}

/// `NotFound` for the first of `runs` (each checked once) that is not stored.
async fn require_runs<T: SqlTx>(tx: &mut T, runs: impl Iterator<Item = Uuid>) -> StoreResult<()> {
    let mut runs: Vec<Uuid> = runs.collect();
    runs.sort();
    runs.dedup();
    for run_id in runs {
        if tx.fetch_optional(q::select_run(run_id)).await?.is_none() {
            return Err(run_not_found(run_id));
        }
    }
    Ok(())
}

/// The agent's next version, stored (and made the only promoted one with `promote`). Two
/// concurrent registrations can pick the same version: the loser's insert fails on the
/// primary key and [`OptimizationStore::register_prompt`] runs it again.
async fn register_prompt_in<T: SqlTx>(
    tx: &mut T,
    agent_id: &str,
    prompt: &NewPrompt,
) -> StoreResult<Prompt> {
    if let Some(run_id) = prompt.source_run_id {
        if tx.fetch_optional(q::select_run(run_id)).await?.is_none() {
            return Err(StoreError::Conflict(format!(
                "sourceRunId {run_id}: no such optimization run"
            )));
        }
    }
    let version = tx
        .fetch_one(q::next_prompt_version(agent_id))
        .await?
        .int("next_version")?;
    let stored = Prompt {
        agent_id: agent_id.to_string(),
        version,
        text: prompt.text.clone(),
        source_run_id: prompt.source_run_id,
        note: prompt.note.clone(),
        promoted: prompt.promote,
        created_at: time::now(),
        evaluator: prompt.evaluator.clone(),
    };
    if prompt.promote {
        tx.execute(q::demote_others(agent_id, None)).await?;
    }
    tx.execute(q::insert_prompt(&stored)).await?;
    Ok(stored)
}

/// Demotes the others, promotes `version` (`NotFound` when it does not exist), reads it back.
pub(crate) async fn promote_prompt_in<T: SqlTx>(
    tx: &mut T,
    agent_id: &str,
    version: i64,
) -> StoreResult<Prompt> {
    tx.execute(q::demote_others(agent_id, Some(version)))
        .await?;
    if tx.execute(q::promote(agent_id, version)).await? == 0 {
        return Err(prompt_not_found(agent_id, version));
    }
    let row = tx.fetch_one(q::select_prompt(agent_id, version)).await?;
    q::decode_prompt(&row)
}
