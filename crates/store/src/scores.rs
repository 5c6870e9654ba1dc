//! Storage of scores. A supertrait of [`Store`](crate::Store), so `Arc<dyn Store>` offers these
//! methods too; implemented once, generically, for every backend that lends an [`SqlExec`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lightning_core::{time, NewScore, Score, ScoreStats, StatsFilter};
use uuid::Uuid;

use crate::{
    exec::{finish_tx, ColumnRow as _, SqlExec, SqlTx},
    scores_sql as q,
    sql_store::not_found,
    StoreError, StoreResult,
};

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

pub(crate) fn score_not_found(id: &str) -> StoreError {
    StoreError::NotFound(format!("score {id:?}"))
}

#[async_trait]
impl<S: SqlExec> ScoreStore for S {
    async fn upsert_score(&self, trajectory_id: Uuid, score: &NewScore) -> StoreResult<String> {
        let id = score
            .id
            .clone()
            .unwrap_or_else(|| Uuid::now_v7().to_string());
        let now = time::now();
        let mut tx = self.begin().await?;
        let result = upsert_score_in(&mut tx, &id, trajectory_id, score, now).await;
        finish_tx(tx, result).await
    }

    async fn list_scores(&self, trajectory_id: Uuid) -> StoreResult<Vec<Score>> {
        let rows = self.fetch_all(q::list_scores(trajectory_id)).await?;
        rows.iter().map(q::decode_score).collect()
    }

    async fn scores_of(&self, trajectory_ids: &[Uuid]) -> StoreResult<Vec<Score>> {
        let mut scores = Vec::new();
        for chunk in trajectory_ids.chunks(q::ID_CHUNK) {
            for row in &self.fetch_all(q::scores_of(chunk)).await? {
                scores.push(q::decode_score(row)?);
            }
        }
        Ok(scores)
    }

    async fn delete_score(&self, score_id: &str) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let result = delete_score_in(&mut tx, score_id).await;
        finish_tx(tx, result).await
    }

    async fn score_stats(&self, filter: &StatsFilter) -> StoreResult<Vec<ScoreStats>> {
        let bucket = filter.effective_bucket(Utc::now());
        let by_version = self.fetch_all(q::stats_by_version(filter)).await?;
        let labels = self.fetch_all(q::stats_labels(filter)).await?;
        let timeline = self.fetch_all(q::stats_timeline(filter, bucket)).await?;
        q::decode_score_stats(&by_version, &labels, &timeline)
    }
}

/// The score write's transaction: the trajectory's agent, the name's data type (registered by
/// the first score of that name), then the upsert, which affects no row when `id` is another
/// trajectory's score.
async fn upsert_score_in<T: SqlTx>(
    tx: &mut T,
    id: &str,
    trajectory_id: Uuid,
    score: &NewScore,
    now: DateTime<Utc>,
) -> StoreResult<String> {
    let data_type = score.value.data_type();
    let row = tx
        .fetch_optional(q::trajectory_agent(trajectory_id))
        .await?
        .ok_or_else(|| not_found(trajectory_id))?;
    let agent = row.text("agent_id")?;
    let row = tx
        .fetch_one(q::register_name(&agent, &score.name, data_type))
        .await?;
    let stored = row.text("data_type")?;
    if stored != data_type.as_str() {
        return Err(StoreError::Conflict(format!(
            "value: score {:?} is {stored} for agent {agent:?} (earlier scores), this value is {}",
            score.name,
            data_type.as_str()
        )));
    }
    if tx
        .execute(q::upsert_score(id, trajectory_id, score, now))
        .await?
        == 0
    {
        return Err(StoreError::Conflict(format!(
            "id: score {id:?} belongs to another trajectory"
        )));
    }
    Ok(id.to_string())
}

/// The score delete's transaction: the score's name and agent, the delete, then the release of
/// the name's data type when it was the last score of that name.
async fn delete_score_in<T: SqlTx>(tx: &mut T, score_id: &str) -> StoreResult<()> {
    let row = tx
        .fetch_optional(q::score_owner(score_id))
        .await?
        .ok_or_else(|| score_not_found(score_id))?;
    let (name, agent) = (row.text("name")?, row.text("agent_id")?);
    tx.execute(q::delete_score(score_id)).await?;
    tx.execute(q::release_name(&agent, &name)).await?;
    Ok(())
}
