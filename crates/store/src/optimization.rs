//! Storage of optimization runs, their candidates, and the versioned prompt registry.
//! A supertrait of [`Store`](crate::Store), so `Arc<dyn Store>` offers these methods too.

use async_trait::async_trait;
use lightning_core::{CandidateEvaluation, NewPrompt, OptimizationRun, Prompt, PromptCandidate};
use uuid::Uuid;

use crate::StoreResult;

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
}

pub(crate) fn run_not_found(id: Uuid) -> crate::StoreError {
    crate::StoreError::NotFound(format!("optimization run {id}"))
}

pub(crate) fn prompt_not_found(agent_id: &str, version: i64) -> crate::StoreError {
    crate::StoreError::NotFound(format!("prompt version {version} of agent {agent_id:?}"))
}

/// Implements [`OptimizationStore`] for a backend with `writer`/`reader` pools, using the
/// `fetch_all`/`fetch_optional` helpers that `impl_store!` defines on the same type; invoked
/// inside the backend's module so it can reach the pools.
macro_rules! impl_optimization_store {
    ($store:ident, $db:ty) => {
        impl $store {
            async fn register_prompt_once(
                &self,
                agent_id: &str,
                prompt: &lightning_core::NewPrompt,
            ) -> $crate::StoreResult<lightning_core::Prompt> {
                use $crate::optimization_sql as q;
                let mut tx = self.writer.begin().await?;
                let result = async {
                    if let Some(run_id) = prompt.source_run_id {
                        if q::select_run::<$db>(run_id)
                            .build()
                            .fetch_optional(&mut *tx)
                            .await?
                            .is_none()
                        {
                            return Err($crate::StoreError::Conflict(format!(
                                "sourceRunId {run_id}: no such optimization run"
                            )));
                        }
                    }
                    let row = q::next_prompt_version::<$db>(agent_id)
                        .build()
                        .fetch_one(&mut *tx)
                        .await?;
                    let version = $crate::sql::PlainRow::int(&row, 0)?;
                    let stored = lightning_core::Prompt {
                        agent_id: agent_id.to_string(),
                        version,
                        text: prompt.text.clone(),
                        source_run_id: prompt.source_run_id,
                        note: prompt.note.clone(),
                        promoted: prompt.promote,
                        created_at: lightning_core::time::now(),
                        evaluator: prompt.evaluator.clone(),
                    };
                    if prompt.promote {
                        q::demote_others::<$db>(agent_id, None)
                            .build()
                            .execute(&mut *tx)
                            .await?;
                    }
                    q::insert_prompt::<$db>(&stored)
                        .build()
                        .execute(&mut *tx)
                        .await?;
                    Ok(stored)
                }
                .await;
                $crate::sql_store::finish_tx(tx, result).await
            }

            async fn promote_prompt_once(
                &self,
                agent_id: &str,
                version: i64,
            ) -> $crate::StoreResult<lightning_core::Prompt> {
                use $crate::optimization_sql as q;
                let mut tx = self.writer.begin().await?;
                let result = async {
                    q::demote_others::<$db>(agent_id, Some(version))
                        .build()
                        .execute(&mut *tx)
                        .await?;
                    let promoted = q::promote::<$db>(agent_id, version)
                        .build()
                        .execute(&mut *tx)
                        .await?;
                    if promoted.rows_affected() == 0 {
                        return Err($crate::optimization::prompt_not_found(agent_id, version));
                    }
                    let row = q::select_prompt::<$db>(agent_id, version)
                        .build()
                        .fetch_one(&mut *tx)
                        .await?;
                    q::decode_prompt(&row)
                }
                .await;
                $crate::sql_store::finish_tx(tx, result).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::OptimizationStore for $store {
            async fn create_run(
                &self,
                run: &lightning_core::OptimizationRun,
            ) -> $crate::StoreResult<()> {
                $crate::optimization_sql::insert_run::<$db>(run)
                    .build()
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn update_run(
                &self,
                run: &lightning_core::OptimizationRun,
            ) -> $crate::StoreResult<()> {
                let done = $crate::optimization_sql::update_run::<$db>(run)
                    .build()
                    .execute(&self.writer)
                    .await?;
                match done.rows_affected() {
                    0 => Err($crate::optimization::run_not_found(run.id)),
                    _ => Ok(()),
                }
            }

            async fn get_run(
                &self,
                run_id: uuid::Uuid,
            ) -> $crate::StoreResult<lightning_core::OptimizationRun> {
                let row = self
                    .fetch_optional($crate::optimization_sql::select_run(run_id))
                    .await?
                    .ok_or_else(|| $crate::optimization::run_not_found(run_id))?;
                $crate::optimization_sql::decode_run(&row)
            }

            async fn list_runs(
                &self,
                agent_id: Option<&str>,
                limit: i64,
            ) -> $crate::StoreResult<Vec<lightning_core::OptimizationRun>> {
                let rows = self
                    .fetch_all($crate::optimization_sql::list_runs(agent_id, limit))
                    .await?;
                rows.iter()
                    .map($crate::optimization_sql::decode_run)
                    .collect()
            }

            async fn save_candidates(
                &self,
                candidates: &[lightning_core::PromptCandidate],
            ) -> $crate::StoreResult<()> {
                if candidates.is_empty() {
                    return Ok(());
                }
                let mut tx = self.writer.begin().await?;
                let result = async {
                    let mut runs: Vec<uuid::Uuid> = candidates.iter().map(|c| c.run_id).collect();
                    runs.sort();
                    runs.dedup();
                    for run_id in runs {
                        if $crate::optimization_sql::select_run::<$db>(run_id)
                            .build()
                            .fetch_optional(&mut *tx)
                            .await?
                            .is_none()
                        {
                            return Err($crate::optimization::run_not_found(run_id));
                        }
                    }
                    for chunk in candidates.chunks($crate::optimization_sql::CANDIDATE_CHUNK) {
                        $crate::optimization_sql::upsert_candidates::<$db>(chunk)
                            .build()
                            .execute(&mut *tx)
                            .await?;
                    }
                    Ok(())
                }
                .await;
                $crate::sql_store::finish_tx(tx, result).await
            }

            async fn save_evaluations(
                &self,
                evaluations: &[lightning_core::CandidateEvaluation],
            ) -> $crate::StoreResult<()> {
                if evaluations.is_empty() {
                    return Ok(());
                }
                let mut tx = self.writer.begin().await?;
                let result = async {
                    let mut runs: Vec<uuid::Uuid> = evaluations.iter().map(|e| e.run_id).collect();
                    runs.sort();
                    runs.dedup();
                    for run_id in runs {
                        if $crate::optimization_sql::select_run::<$db>(run_id)
                            .build()
                            .fetch_optional(&mut *tx)
                            .await?
                            .is_none()
                        {
                            return Err($crate::optimization::run_not_found(run_id));
                        }
                    }
                    for chunk in evaluations.chunks($crate::optimization_sql::EVALUATION_CHUNK) {
                        $crate::optimization_sql::upsert_evaluations::<$db>(chunk)
                            .build()
                            .execute(&mut *tx)
                            .await?;
                    }
                    Ok(())
                }
                .await;
                $crate::sql_store::finish_tx(tx, result).await
            }

            async fn list_evaluations(
                &self,
                run_id: uuid::Uuid,
            ) -> $crate::StoreResult<Vec<lightning_core::CandidateEvaluation>> {
                let rows = self
                    .fetch_all($crate::optimization_sql::list_evaluations(run_id))
                    .await?;
                rows.iter()
                    .map($crate::optimization_sql::decode_evaluation)
                    .collect()
            }

            async fn list_candidates(
                &self,
                run_id: uuid::Uuid,
            ) -> $crate::StoreResult<Vec<lightning_core::PromptCandidate>> {
                let rows = self
                    .fetch_all($crate::optimization_sql::list_candidates(run_id))
                    .await?;
                rows.iter()
                    .map($crate::optimization_sql::decode_candidate)
                    .collect()
            }

            async fn register_prompt(
                &self,
                agent_id: &str,
                prompt: &lightning_core::NewPrompt,
            ) -> $crate::StoreResult<lightning_core::Prompt> {
                $crate::exec::retry(
                    $crate::optimization::UNIQUE_RETRIES,
                    $crate::optimization_sql::is_unique_violation,
                    || self.register_prompt_once(agent_id, prompt),
                )
                .await
            }

            async fn list_prompts(
                &self,
                agent_id: &str,
            ) -> $crate::StoreResult<Vec<lightning_core::Prompt>> {
                let rows = self
                    .fetch_all($crate::optimization_sql::list_prompts(agent_id))
                    .await?;
                rows.iter()
                    .map($crate::optimization_sql::decode_prompt)
                    .collect()
            }

            async fn latest_prompt(
                &self,
                agent_id: &str,
            ) -> $crate::StoreResult<Option<lightning_core::Prompt>> {
                self.fetch_optional($crate::optimization_sql::latest_prompt(agent_id))
                    .await?
                    .as_ref()
                    .map($crate::optimization_sql::decode_prompt)
                    .transpose()
            }

            async fn get_prompt(
                &self,
                agent_id: &str,
                version: i64,
            ) -> $crate::StoreResult<lightning_core::Prompt> {
                let row = self
                    .fetch_optional($crate::optimization_sql::select_prompt(agent_id, version))
                    .await?
                    .ok_or_else(|| $crate::optimization::prompt_not_found(agent_id, version))?;
                $crate::optimization_sql::decode_prompt(&row)
            }

            async fn promote_prompt(
                &self,
                agent_id: &str,
                version: i64,
            ) -> $crate::StoreResult<lightning_core::Prompt> {
                $crate::exec::retry(
                    $crate::optimization::UNIQUE_RETRIES,
                    $crate::optimization_sql::is_unique_violation,
                    || self.promote_prompt_once(agent_id, version),
                )
                .await
            }
        }
    };
}

pub(crate) use impl_optimization_store;
