//! Storage of scores. A supertrait of [`Store`](crate::Store), so `Arc<dyn Store>` offers these
//! methods too.

use async_trait::async_trait;
use lightning_core::{NewScore, Score, ScoreStats, StatsFilter};
use uuid::Uuid;

use crate::StoreResult;

#[async_trait]
pub trait ScoreStore: Send + Sync {
    /// Stores a validated score and returns its id (the client's `id`, else a new UUIDv7).
    /// Repeating an `id` updates that score: every field the newer write carries wins, absent
    /// optional fields keep their stored value. `NotFound` for an unknown trajectory;
    /// `Conflict` when the value's data type differs from the one the agent's earlier scores of
    /// that name have, or when the `id` belongs to another trajectory's score.
    async fn upsert_score(&self, trajectory_id: Uuid, score: &NewScore) -> StoreResult<String>;

    /// The trajectory's scores (its steps' included), oldest first. Empty for an unknown one.
    async fn list_scores(&self, trajectory_id: Uuid) -> StoreResult<Vec<Score>>;

    /// Scores of many trajectories at once, grouped by trajectory, oldest first within each.
    async fn scores_of(&self, trajectory_ids: &[Uuid]) -> StoreResult<Vec<Score>>;

    /// `NotFound` if there is no such score.
    async fn delete_score(&self, score_id: &str) -> StoreResult<()>;

    /// Per score name: count, mean, label distribution, per prompt version and over time, for
    /// the trajectories `filter` selects.
    async fn score_stats(&self, filter: &StatsFilter) -> StoreResult<Vec<ScoreStats>>;
}

pub(crate) fn score_not_found(id: &str) -> crate::StoreError {
    crate::StoreError::NotFound(format!("score {id:?}"))
}

/// Implements [`ScoreStore`] for a backend with `writer`/`reader` pools, using the helpers
/// `impl_store!` defines on the same type.
macro_rules! impl_score_store {
    ($store:ident, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::ScoreStore for $store {
            async fn upsert_score(
                &self,
                trajectory_id: uuid::Uuid,
                score: &lightning_core::NewScore,
            ) -> $crate::StoreResult<String> {
                use $crate::scores_sql as q;
                let id = score
                    .id
                    .clone()
                    .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
                let now = lightning_core::time::now();
                let data_type = score.value.data_type();
                let mut tx = self.writer.begin().await?;
                let result = async {
                    let row = q::trajectory_agent::<$db>(trajectory_id)
                        .build()
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| $crate::sql_store::not_found(trajectory_id))?;
                    let agent = q::first_text(&row)?;
                    let row = q::register_name::<$db>(&agent, &score.name, data_type)
                        .build()
                        .fetch_one(&mut *tx)
                        .await?;
                    let stored = q::first_text(&row)?;
                    if stored != data_type.as_str() {
                        return Err($crate::StoreError::Conflict(format!(
                            "value: score {:?} is {stored} for agent {agent:?} (earlier scores), \
                             this value is {}",
                            score.name,
                            data_type.as_str()
                        )));
                    }
                    let done = q::upsert_score::<$db>(&id, trajectory_id, score, now)
                        .build()
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() == 0 {
                        return Err($crate::StoreError::Conflict(format!(
                            "id: score {id:?} belongs to another trajectory"
                        )));
                    }
                    Ok(id)
                }
                .await;
                $crate::sql_store::finish_tx(tx, result).await
            }

            async fn list_scores(
                &self,
                trajectory_id: uuid::Uuid,
            ) -> $crate::StoreResult<Vec<lightning_core::Score>> {
                let rows = self
                    .fetch_all($crate::scores_sql::list_scores(trajectory_id))
                    .await?;
                rows.iter().map($crate::scores_sql::decode_score).collect()
            }

            async fn scores_of(
                &self,
                trajectory_ids: &[uuid::Uuid],
            ) -> $crate::StoreResult<Vec<lightning_core::Score>> {
                let mut scores = Vec::new();
                for chunk in trajectory_ids.chunks($crate::scores_sql::ID_CHUNK) {
                    let rows = self.fetch_all($crate::scores_sql::scores_of(chunk)).await?;
                    for row in &rows {
                        scores.push($crate::scores_sql::decode_score(row)?);
                    }
                }
                Ok(scores)
            }

            async fn delete_score(&self, score_id: &str) -> $crate::StoreResult<()> {
                use $crate::scores_sql as q;
                let mut tx = self.writer.begin().await?;
                let result = async {
                    let row = q::score_owner::<$db>(score_id)
                        .build()
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| $crate::scores::score_not_found(score_id))?;
                    let name = $crate::sql::PlainRow::text(&row, 0)?;
                    let agent = $crate::sql::PlainRow::text(&row, 1)?;
                    q::delete_score::<$db>(score_id)
                        .build()
                        .execute(&mut *tx)
                        .await?;
                    q::release_name::<$db>(&agent, &name)
                        .build()
                        .execute(&mut *tx)
                        .await?;
                    Ok(())
                }
                .await;
                $crate::sql_store::finish_tx(tx, result).await
            }

            async fn score_stats(
                &self,
                filter: &lightning_core::StatsFilter,
            ) -> $crate::StoreResult<Vec<lightning_core::ScoreStats>> {
                use $crate::scores_sql as q;
                let bucket = filter.effective_bucket(chrono::Utc::now());
                let by_version = self.fetch_all(q::stats_by_version(filter)).await?;
                let labels = self.fetch_all(q::stats_labels(filter)).await?;
                let timeline = self.fetch_all(q::stats_timeline(filter, bucket)).await?;
                q::decode_score_stats(&by_version, &labels, &timeline)
            }
        }
    };
}

pub(crate) use impl_score_store;
