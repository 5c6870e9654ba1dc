//! Liveness and spend of an optimization run (migration 0008): `lightning optimize` writes a
//! heartbeat with the spend so far at every save; a run still `running` whose heartbeat (or,
//! before the first one, its start) is older than [`STALE_AFTER`] is shown `stale`: its
//! process died without recording an end. A supertrait of [`Store`](crate::Store),
//! implemented once, generically, for every backend that lends an [`SqlExec`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lightning_core::RunStatus;
use serde::{Deserialize, Serialize};
use sqlx::QueryBuilder;
use uuid::Uuid;

use crate::{
    exec::{ColumnRow as _, SqlExec},
    optimization::run_not_found,
    sql::Dialect,
    StoreResult,
};

/// How long a running run may go without a heartbeat before it is shown `stale`.
pub const STALE_AFTER: chrono::Duration = lightning_core::optimization::RUN_STALE_AFTER;

/// What a run has spent: the optimizer's LLM calls plus the evaluations' reported cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSpend {
    pub cost_usd: f64,
    pub input_tokens: i64,
    pub output_tokens: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunLiveness {
    pub heartbeat_at: Option<DateTime<Utc>>,
    /// `None` until the first heartbeat.
    pub spend: Option<RunSpend>,
}

/// `stale` for a running run without a heartbeat (or start) in [`STALE_AFTER`], else the status.
pub fn shown_status(
    status: RunStatus,
    started_at: DateTime<Utc>,
    heartbeat_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> &'static str {
    if lightning_core::optimization::run_is_stale(status, started_at, heartbeat_at, now) {
        "stale"
    } else {
        status.as_str()
    }
}

#[async_trait]
pub trait RunOpsStore: Send + Sync {
    /// Records that the run is alive now, with its spend so far. `NotFound` for no such run.
    async fn heartbeat(&self, run_id: Uuid, at: DateTime<Utc>, spend: &RunSpend)
        -> StoreResult<()>;

    /// The run's last heartbeat and spend. `NotFound` for no such run.
    async fn run_liveness(&self, run_id: Uuid) -> StoreResult<RunLiveness>;
}

fn update_heartbeat<'a, DB: Dialect>(
    run_id: Uuid,
    at: DateTime<Utc>,
    spend: &RunSpend,
) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new("UPDATE optimization_runs SET heartbeat_ms = ");
    DB::bind_int(&mut qb, Some(at.timestamp_millis()));
    qb.push(", cost_usd = ");
    DB::bind_float(&mut qb, Some(spend.cost_usd));
    qb.push(", input_tokens = ");
    DB::bind_int(&mut qb, Some(spend.input_tokens));
    qb.push(", output_tokens = ");
    DB::bind_int(&mut qb, Some(spend.output_tokens));
    qb.push(" WHERE id = ");
    DB::bind_id(&mut qb, run_id);
    qb
}

fn select_liveness<'a, DB: Dialect>(run_id: Uuid) -> QueryBuilder<'a, DB> {
    let mut qb = QueryBuilder::new(
        "SELECT heartbeat_ms, cost_usd, input_tokens, output_tokens FROM optimization_runs \
         WHERE id = ",
    );
    DB::bind_id(&mut qb, run_id);
    qb
}

#[async_trait]
impl<S> RunOpsStore for S
where
    S: SqlExec,
{
    async fn heartbeat(
        &self,
        run_id: Uuid,
        at: DateTime<Utc>,
        spend: &RunSpend,
    ) -> StoreResult<()> {
        if self.execute(update_heartbeat(run_id, at, spend)).await? > 0 {
            Ok(())
        } else {
            Err(run_not_found(run_id))
        }
    }

    async fn run_liveness(&self, run_id: Uuid) -> StoreResult<RunLiveness> {
        let row = self
            .fetch_optional(select_liveness(run_id))
            .await?
            .ok_or_else(|| run_not_found(run_id))?;
        let heartbeat_at = row
            .opt_int("heartbeat_ms")?
            .and_then(DateTime::<Utc>::from_timestamp_millis);
        let spend = match row.opt_float("cost_usd")? {
            Some(cost_usd) => Some(RunSpend {
                cost_usd,
                input_tokens: row.opt_int("input_tokens")?.unwrap_or(0),
                output_tokens: row.opt_int("output_tokens")?.unwrap_or(0),
            }),
            None => None,
        };
        Ok(RunLiveness {
            heartbeat_at,
            spend,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_run_without_a_recent_heartbeat_is_stale() {
        let start = DateTime::<Utc>::from_timestamp(1_000_000, 0).unwrap();
        let late = start + STALE_AFTER + chrono::Duration::seconds(1);
        assert_eq!(
            shown_status(RunStatus::Running, start, None, start),
            "running"
        );
        assert_eq!(shown_status(RunStatus::Running, start, None, late), "stale");
        assert_eq!(
            shown_status(RunStatus::Running, start, Some(late), late),
            "running"
        );
        assert_eq!(
            shown_status(RunStatus::Completed, start, None, late),
            "completed"
        );
        assert_eq!(
            shown_status(RunStatus::Cancelled, start, None, late),
            "cancelled"
        );
    }
}
