//! The [`Store`] implementation shared by both backends: one blanket impl over [`SqlBackend`],
//! plus the group commit's transaction ([`write_group`]) as plain generic functions over
//! [`SqlTx`]. See [`crate::exec`] for why this is generic over the backend's executor traits
//! rather than a `SqlStore<DB: Database>`.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lightning_core::{
    time, AgentSummary, Completion, NewStep, NewTrajectory, Stats, StatsFilter, Step, StepKind,
    Trajectory, TrajectoryFilter, TrajectoryPage,
};
use sqlx::QueryBuilder;
use uuid::Uuid;

pub(crate) use crate::exec::finish_tx;
use crate::{
    exec::{BeginTx, ColumnRow, SqlExec, SqlTx},
    group::{self, GroupCommit, GroupWriter, StoredStep, TrajectorySteps},
    sql::{self, Dialect},
    Backend, KeyStore, OptimizationStore, PoolStatus, RolloutStore, ScoreStore, Store, StoreError,
    StoreResult,
};

pub(crate) fn not_found(id: Uuid) -> StoreError {
    StoreError::NotFound(format!("trajectory {id}"))
}

/// What a backend adds to [`SqlExec`] to be a [`Store`]: its name, its pools' use, and the
/// group commit its step batches go through.
pub(crate) trait SqlBackend: SqlExec {
    const BACKEND: Backend;

    fn pool_status(&self) -> PoolStatus;

    fn group(&self) -> &GroupCommit;
}

/// Answers `NotFound` for a statement on one trajectory that affected no row.
fn one_trajectory(affected: u64, trajectory_id: Uuid) -> StoreResult<()> {
    match affected {
        0 => Err(not_found(trajectory_id)),
        _ => Ok(()),
    }
}

#[async_trait]
impl<S> Store for S
where
    S: SqlBackend + OptimizationStore + ScoreStore + KeyStore + RolloutStore + 'static,
{
    fn backend(&self) -> Backend {
        S::BACKEND
    }

    fn pool_status(&self) -> PoolStatus {
        SqlBackend::pool_status(self)
    }

    fn group_commit_stats(&self) -> crate::GroupCommitStats {
        self.group().stats()
    }

    async fn ping(&self) -> StoreResult<()> {
        self.fetch_optional(QueryBuilder::new("SELECT 1")).await?;
        Ok(())
    }

    async fn start_trajectory(&self, trajectory: &NewTrajectory) -> StoreResult<Uuid> {
        let id = trajectory.trajectory_id.unwrap_or_else(Uuid::now_v7);
        self.execute(sql::insert_trajectory(id, trajectory, time::now()))
            .await?;
        Ok(id)
    }

    async fn append_steps(&self, trajectory_id: Uuid, steps: Vec<NewStep>) -> StoreResult<()> {
        self.group().submit(trajectory_id, steps).await
    }

    async fn abandon_idle(&self, idle_since: DateTime<Utc>) -> StoreResult<u64> {
        self.execute(sql::abandon_idle(idle_since)).await
    }

    async fn complete_trajectory(
        &self,
        trajectory_id: Uuid,
        completion: &Completion,
    ) -> StoreResult<()> {
        let affected = self
            .execute(sql::complete_trajectory(
                trajectory_id,
                completion,
                time::now(),
            ))
            .await?;
        one_trajectory(affected, trajectory_id)
    }

    async fn get_trajectory(&self, trajectory_id: Uuid) -> StoreResult<Trajectory> {
        let row = self
            .fetch_optional(sql::select_trajectory(trajectory_id))
            .await?
            .ok_or_else(|| not_found(trajectory_id))?;
        sql::decode_trajectory(&row)
    }

    async fn list_steps(
        &self,
        trajectory_id: Uuid,
        after: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<Step>> {
        let rows = self
            .fetch_all(sql::select_steps(trajectory_id, after, limit))
            .await?;
        rows.iter().map(sql::decode_step).collect()
    }

    async fn list_trajectories(&self, filter: &TrajectoryFilter) -> StoreResult<TrajectoryPage> {
        let rows = self.fetch_all(sql::list_trajectories(filter)).await?;
        let trajectories = rows
            .iter()
            .map(sql::decode_trajectory)
            .collect::<StoreResult<_>>()?;
        Ok(sql::into_page(trajectories, filter.limit))
    }

    async fn stats(&self, filter: &StatsFilter) -> StoreResult<Stats> {
        let bucket = filter.effective_bucket(Utc::now());
        let summary = self.fetch_all(sql::stats_summary(filter)).await?;
        let tools = self.fetch_all(sql::stats_tools(filter)).await?;
        let agents = self.fetch_all(sql::stats_agents(filter)).await?;
        let timeline = self.fetch_all(sql::stats_timeline(filter, bucket)).await?;
        let summary = summary
            .first()
            .ok_or_else(|| StoreError::Corrupt("empty aggregate".into()))?;
        sql::decode_stats(summary, &tools, &agents, &timeline, bucket)
    }

    async fn agents(&self) -> StoreResult<Vec<AgentSummary>> {
        let rows = self.fetch_all(sql::agents()).await?;
        rows.iter().map(sql::decode_agent).collect()
    }

    /// The trajectory row first: a group writing its steps holds that row's lock, so this
    /// waits for the group, and the steps statement (a new snapshot) then sees its rows; a
    /// group after it finds no trajectory and writes nothing.
    async fn delete_trajectory(&self, trajectory_id: Uuid) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let result = async {
            let affected = tx.execute(sql::delete_trajectory(trajectory_id)).await?;
            tx.execute(sql::delete_steps(trajectory_id)).await?;
            one_trajectory(affected, trajectory_id)
        }
        .await;
        finish_tx(tx, result).await
    }
}

/// A backend's writer pool writes the group commit's transactions.
#[async_trait]
impl<P> GroupWriter for P
where
    P: BeginTx + 'static,
{
    async fn write_group(&self, batches: &[(Uuid, &[NewStep])]) -> StoreResult<HashSet<Uuid>> {
        let now = time::now();
        let folded = group::fold(batches);
        if append_only(self, &folded, now).await? {
            return Ok(HashSet::new());
        }
        let mut tx = self.begin_tx().await?;
        let result = write_group(&mut tx, &folded, now).await;
        finish_tx(tx, result).await
    }
}

/// The usual group (every trajectory exists, every step is past its stored maximum) in one
/// statement where the backend has one ([`Dialect::append_only`]); `false` when it wrote
/// nothing and the group needs [`write_group`].
async fn append_only<P: BeginTx>(
    pool: &P,
    folded: &[TrajectorySteps<'_>],
    now: DateTime<Utc>,
) -> StoreResult<bool> {
    if !<<P::Tx as SqlTx>::Db as Dialect>::APPEND_ONLY {
        return Ok(false);
    }
    let nothing_stored: HashMap<Uuid, Option<i64>> = folded.iter().map(|t| (t.id, None)).collect();
    let plan = group::plan(folded, &nothing_stored, &HashMap::new());
    let parts = sql::PlanParts {
        new: &plan.rows,
        merged: &[],
        counters: &plan.counters,
        tools: &plan.tools,
    };
    let guard = sql::AppendGuard {
        ids: folded.iter().map(|t| t.id).collect(),
        least: folded
            .iter()
            .filter_map(|t| t.steps.keys().next().map(|&least| (t.id, least)))
            .collect(),
    };
    let Some(statement) = <<P::Tx as SqlTx>::Db as Dialect>::append_only(&parts, &guard, now)
    else {
        return Ok(false);
    };
    Ok(pool.fetch_one_alone(statement).await?.int("ok")? == 1)
}

/// The group's transaction: lock the trajectories, read the stored state of the steps that may
/// exist, then write the plan. Returns the trajectories that do not exist.
async fn write_group<T: SqlTx>(
    tx: &mut T,
    folded: &[TrajectorySteps<'_>],
    now: DateTime<Utc>,
) -> StoreResult<HashSet<Uuid>> {
    let ids: Vec<Uuid> = folded.iter().map(|t| t.id).collect();
    let max_steps = lock_trajectories(tx, &ids).await?;
    let stored = stored_steps(tx, folded, &max_steps).await?;
    let plan = group::plan(folded, &max_steps, &stored);
    let (merged, new): (Vec<_>, Vec<_>) = plan.rows.into_iter().partition(|row| row.stored);
    let parts = sql::PlanParts {
        new: &new,
        merged: &merged,
        counters: &plan.counters,
        tools: &plan.tools,
    };
    for statement in <T::Db as Dialect>::write_plan(&parts, now) {
        tx.execute(statement).await?;
    }
    Ok(ids
        .into_iter()
        .filter(|id| !max_steps.contains_key(id))
        .collect())
}

/// Locks the existing trajectories among `ids`; answers each one's largest stored step number.
async fn lock_trajectories<T: SqlTx>(
    tx: &mut T,
    ids: &[Uuid],
) -> StoreResult<HashMap<Uuid, Option<i64>>> {
    let mut max_steps = HashMap::new();
    for chunk in ids.chunks(sql::ID_CHUNK) {
        for row in &tx.fetch_all(sql::lock_trajectories(chunk)).await? {
            max_steps.insert(row.id("id")?, row.opt_int("max_step_number")?);
        }
    }
    Ok(max_steps)
}

/// The stored state of the group's steps that may already exist. Only steps at or below the
/// stored maximum can: appending costs no lookup at all, re-sending costs one primary-key probe
/// per re-sent step.
async fn stored_steps<T: SqlTx>(
    tx: &mut T,
    folded: &[TrajectorySteps<'_>],
    max_steps: &HashMap<Uuid, Option<i64>>,
) -> StoreResult<HashMap<(Uuid, i64), StoredStep>> {
    let probes: Vec<(Uuid, Vec<i64>)> = folded
        .iter()
        .filter_map(|t| {
            let max = *max_steps.get(&t.id)?;
            let numbers = group::maybe_stored(t, max);
            (!numbers.is_empty()).then_some((t.id, numbers))
        })
        .collect();
    let mut stored = HashMap::new();
    for (id, numbers) in &probes {
        for chunk in numbers.chunks(sql::ID_CHUNK) {
            for row in &tx.fetch_all(sql::stored_steps(&[(*id, chunk)])).await? {
                stored.insert(
                    (row.id("trajectory_id")?, row.int("step_number")?),
                    decode_stored_step(row)?,
                );
            }
        }
    }
    Ok(stored)
}

/// Decodes a row of [`sql::stored_steps`].
fn decode_stored_step<R: ColumnRow>(row: &R) -> StoreResult<StoredStep> {
    let kind = row.text("kind")?;
    Ok(StoredStep {
        tool_name: row.text("tool_name")?,
        kind: StepKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("step kind {kind:?}")))?,
        has_error: row.int("has_error")? != 0,
        duration_ms: row.opt_int("duration_ms")?,
    })
}

#[cfg(test)]
mod tests {
    use lightning_core::NewTrajectory;

    use super::*;
    use crate::{scratch::ScratchStore, GroupConfig};

    fn step(n: i64) -> NewStep {
        NewStep {
            step_number: n,
            tool_name: "Bash".into(),
            error: (n == 2).then(|| "exit 1".to_string()),
            ..Default::default()
        }
    }

    /// The one-statement path on PostgreSQL writes a group only when all of it is new, and
    /// otherwise writes nothing at all (the group then takes the locking path).
    #[tokio::test]
    async fn the_one_statement_append_writes_all_of_a_new_group_or_nothing() {
        let url = crate::scratch::postgres_url_from_env();
        let scratch = ScratchStore::postgres(&url, 2, GroupConfig::default())
            .await
            .expect("PostgreSQL is required for tests");
        let pool = sqlx::PgPool::connect(&scratch.database_url).await.unwrap();
        let s = &scratch.store;
        let new = NewTrajectory {
            agent_id: "a".into(),
            ..Default::default()
        };
        let id = s.start_trajectory(&new).await.unwrap();
        let other = s.start_trajectory(&new).await.unwrap();
        let now = time::now();
        let append = |batches: Vec<(Uuid, Vec<NewStep>)>| {
            let pool = pool.clone();
            async move {
                let batches: Vec<(Uuid, &[NewStep])> =
                    batches.iter().map(|(id, s)| (*id, s.as_slice())).collect();
                append_only(&pool, &group::fold(&batches), now)
                    .await
                    .unwrap()
            }
        };
        assert!(append(vec![(id, vec![step(1), step(2)]), (other, vec![step(7)])]).await);
        // A re-sent step number, or an unknown trajectory, anywhere in the group: nothing.
        assert!(!append(vec![(other, vec![step(8)]), (id, vec![step(2), step(3)])]).await);
        let missing = Uuid::now_v7();
        assert!(!append(vec![(id, vec![step(3)]), (missing, vec![step(1)])]).await);
        let t = s.get_trajectory(id).await.unwrap();
        assert_eq!((t.step_count, t.error_count), (2, 1));
        let stored: Vec<i64> = s
            .list_steps(id, None, 100)
            .await
            .unwrap()
            .iter()
            .map(|st| st.step_number)
            .collect();
        assert_eq!(stored, [1, 2]);
        assert_eq!(s.get_trajectory(other).await.unwrap().step_count, 1);
        // Past the stored maximum it writes again, and keeps counting exactly.
        assert!(append(vec![(id, vec![step(3)]), (other, vec![step(8)])]).await);
        assert_eq!(s.get_trajectory(id).await.unwrap().step_count, 3);
        assert_eq!(s.get_trajectory(other).await.unwrap().step_count, 2);
        let stats = s.stats(&Default::default()).await.unwrap();
        let bash = stats.tools.iter().find(|t| t.tool_name == "Bash").unwrap();
        assert_eq!((bash.calls, bash.errors), (5, 1));
    }
}
