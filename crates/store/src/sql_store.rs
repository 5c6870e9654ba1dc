//! The [`Store`](crate::Store) implementation shared by both backends. It is a macro rather than
//! a generic impl because sqlx's executor bounds over a generic `Database` do not compose with
//! `async_trait`; each backend supplies its pools (`writer`, `reader`) and its [`Dialect`].

use uuid::Uuid;

use crate::StoreError;

pub(crate) fn not_found(id: Uuid) -> StoreError {
    StoreError::NotFound(format!("trajectory {id}"))
}

/// Commits on success; on failure rolls back at once, so no connection sits idle in a
/// transaction holding locks until the pool happens to reuse it.
pub(crate) async fn finish_tx<DB: sqlx::Database, T>(
    tx: sqlx::Transaction<'_, DB>,
    result: crate::StoreResult<T>,
) -> crate::StoreResult<T> {
    match result {
        Ok(value) => {
            tx.commit().await?;
            Ok(value)
        }
        Err(e) => {
            if let Err(rollback) = tx.rollback().await {
                tracing::warn!(error = %rollback, "rollback failed");
            }
            Err(e)
        }
    }
}

macro_rules! impl_store {
    ($store:ident, $db:ty, $backend:expr) => {
        impl $store {
            async fn fetch_all(
                &self,
                mut qb: sqlx::QueryBuilder<'_, $db>,
            ) -> $crate::StoreResult<Vec<<$db as sqlx::Database>::Row>> {
                Ok(qb.build().fetch_all(&self.reader).await?)
            }

            async fn fetch_optional(
                &self,
                mut qb: sqlx::QueryBuilder<'_, $db>,
            ) -> $crate::StoreResult<Option<<$db as sqlx::Database>::Row>> {
                Ok(qb.build().fetch_optional(&self.reader).await?)
            }

            async fn execute(
                &self,
                mut qb: sqlx::QueryBuilder<'_, $db>,
            ) -> $crate::StoreResult<u64> {
                Ok(qb.build().execute(&self.writer).await?.rows_affected())
            }
        }

        #[async_trait::async_trait]
        impl $crate::group::GroupWriter for sqlx::Pool<$db> {
            async fn write_group(
                &self,
                batches: &[(uuid::Uuid, &[lightning_core::NewStep])],
            ) -> $crate::StoreResult<std::collections::HashSet<uuid::Uuid>> {
                use $crate::sql::{PlainRow, TypedRow};
                let now = lightning_core::time::now();
                let folded = $crate::group::fold(batches);
                let mut tx = self.begin().await?;
                let result = async {
                    let ids: Vec<uuid::Uuid> = folded.iter().map(|t| t.id).collect();
                    let mut max_steps = std::collections::HashMap::new();
                    for chunk in ids.chunks($crate::sql::ID_CHUNK) {
                        let rows = $crate::sql::lock_trajectories::<$db>(chunk)
                            .build()
                            .fetch_all(&mut *tx)
                            .await?;
                        for row in &rows {
                            max_steps.insert(row.id(0)?, row.opt_int(1)?);
                        }
                    }
                    // Only steps at or below the stored maximum can exist: appending costs no
                    // lookup at all, re-sending costs one primary-key probe per re-sent step.
                    let probes: Vec<(uuid::Uuid, Vec<i64>)> = folded
                        .iter()
                        .filter_map(|t| {
                            let max = *max_steps.get(&t.id)?;
                            let numbers = $crate::group::maybe_stored(t, max);
                            (!numbers.is_empty()).then_some((t.id, numbers))
                        })
                        .collect();
                    let mut stored = std::collections::HashMap::new();
                    for (id, numbers) in &probes {
                        for chunk in numbers.chunks($crate::sql::ID_CHUNK) {
                            let rows = $crate::sql::stored_steps::<$db>(&[(*id, chunk)])
                                .build()
                                .fetch_all(&mut *tx)
                                .await?;
                            for row in &rows {
                                let kind = row.text(3)?;
                                stored.insert(
                                    (row.id(0)?, row.int(1)?),
                                    $crate::group::StoredStep {
                                        tool_name: row.text(2)?,
                                        kind: lightning_core::StepKind::parse(&kind).ok_or_else(
                                            || {
                                                $crate::StoreError::Corrupt(format!(
                                                    "step kind {kind:?}"
                                                ))
                                            },
                                        )?,
                                        has_error: row.int(4)? != 0,
                                        duration_ms: row.opt_int(5)?,
                                    },
                                );
                            }
                        }
                    }
                    let plan = $crate::group::plan(&folded, &max_steps, &stored);
                    for chunk in plan.rows.chunks($crate::sql::STEP_CHUNK) {
                        $crate::sql::upsert_steps::<$db>(chunk, now)
                            .build()
                            .execute(&mut *tx)
                            .await?;
                    }
                    for chunk in plan.counters.chunks($crate::sql::ID_CHUNK / 4) {
                        $crate::sql::update_counters::<$db>(chunk, now)
                            .build()
                            .execute(&mut *tx)
                            .await?;
                    }
                    for chunk in plan.tools.chunks($crate::sql::ID_CHUNK) {
                        $crate::sql::upsert_tool_stats::<$db>(chunk)
                            .build()
                            .execute(&mut *tx)
                            .await?;
                    }
                    Ok(ids
                        .into_iter()
                        .filter(|id| !max_steps.contains_key(id))
                        .collect())
                }
                .await;
                $crate::sql_store::finish_tx(tx, result).await
            }
        }

        #[async_trait::async_trait]
        impl $crate::Store for $store {
            fn backend(&self) -> $crate::Backend {
                $backend
            }

            fn pool_status(&self) -> $crate::PoolStatus {
                self.pools()
            }

            async fn ping(&self) -> $crate::StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.reader).await?;
                Ok(())
            }

            async fn start_trajectory(
                &self,
                trajectory: &lightning_core::NewTrajectory,
            ) -> $crate::StoreResult<uuid::Uuid> {
                let id = trajectory.trajectory_id.unwrap_or_else(uuid::Uuid::now_v7);
                self.execute($crate::sql::insert_trajectory(
                    id,
                    trajectory,
                    lightning_core::time::now(),
                ))
                .await?;
                Ok(id)
            }

            async fn append_steps(
                &self,
                trajectory_id: uuid::Uuid,
                steps: &[lightning_core::NewStep],
            ) -> $crate::StoreResult<()> {
                self.group.submit(trajectory_id, steps.to_vec()).await
            }

            async fn abandon_idle(
                &self,
                idle_since: chrono::DateTime<chrono::Utc>,
            ) -> $crate::StoreResult<u64> {
                self.execute($crate::sql::abandon_idle(idle_since)).await
            }

            async fn complete_trajectory(
                &self,
                trajectory_id: uuid::Uuid,
                completion: &lightning_core::Completion,
            ) -> $crate::StoreResult<()> {
                match self
                    .execute($crate::sql::complete_trajectory(
                        trajectory_id,
                        completion,
                        lightning_core::time::now(),
                    ))
                    .await?
                {
                    0 => Err($crate::sql_store::not_found(trajectory_id)),
                    _ => Ok(()),
                }
            }

            async fn get_trajectory(
                &self,
                trajectory_id: uuid::Uuid,
            ) -> $crate::StoreResult<lightning_core::Trajectory> {
                let row = self
                    .fetch_optional($crate::sql::select_trajectory(trajectory_id))
                    .await?;
                $crate::sql::decode_trajectory(
                    &row.ok_or_else(|| $crate::sql_store::not_found(trajectory_id))?,
                )
            }

            async fn list_steps(
                &self,
                trajectory_id: uuid::Uuid,
                after: Option<i64>,
                limit: i64,
            ) -> $crate::StoreResult<Vec<lightning_core::Step>> {
                let rows = self
                    .fetch_all($crate::sql::select_steps(trajectory_id, after, limit))
                    .await?;
                rows.iter().map($crate::sql::decode_step).collect()
            }

            async fn list_trajectories(
                &self,
                filter: &lightning_core::TrajectoryFilter,
            ) -> $crate::StoreResult<lightning_core::TrajectoryPage> {
                let rows = self
                    .fetch_all($crate::sql::list_trajectories(filter))
                    .await?;
                let trajectories = rows
                    .iter()
                    .map($crate::sql::decode_trajectory)
                    .collect::<$crate::StoreResult<_>>()?;
                Ok($crate::sql::into_page(trajectories, filter.limit))
            }

            async fn stats(
                &self,
                filter: &lightning_core::StatsFilter,
            ) -> $crate::StoreResult<lightning_core::Stats> {
                let bucket = filter.effective_bucket(chrono::Utc::now());
                let summary = self.fetch_all($crate::sql::stats_summary(filter)).await?;
                let tools = self.fetch_all($crate::sql::stats_tools(filter)).await?;
                let agents = self.fetch_all($crate::sql::stats_agents(filter)).await?;
                let timeline = self
                    .fetch_all($crate::sql::stats_timeline(filter, bucket))
                    .await?;
                let summary = summary
                    .first()
                    .ok_or_else(|| $crate::StoreError::Corrupt("empty aggregate".into()))?;
                $crate::sql::decode_stats(summary, &tools, &agents, &timeline, bucket)
            }

            async fn agents(&self) -> $crate::StoreResult<Vec<lightning_core::AgentSummary>> {
                let rows = self.fetch_all($crate::sql::agents()).await?;
                rows.iter().map($crate::sql::decode_agent).collect()
            }

            async fn delete_trajectory(
                &self,
                trajectory_id: uuid::Uuid,
            ) -> $crate::StoreResult<()> {
                match self
                    .execute($crate::sql::delete_trajectory(trajectory_id))
                    .await?
                {
                    0 => Err($crate::sql_store::not_found(trajectory_id)),
                    _ => Ok(()),
                }
            }
        }
    };
}

pub(crate) use impl_store;
