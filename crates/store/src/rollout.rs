//! Canary rollouts, the history of prompt decisions, and the per-version aggregates behind a
//! comparison. A supertrait of [`Store`](crate::Store); implemented once, generically, for
//! every backend that lends an [`SqlExec`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lightning_core::{
    rollout::{
        bucket_starts, compare_arms, series_point, ArmData, Comparison, Decision, EventKind,
        NewRollout, PromptEvent, Reward, RewardSeries, Rollout, VersionSeries, MAX_SERIES_BUCKETS,
    },
    stats::{SequentialTest, Sums},
    time,
};
use uuid::Uuid;

use crate::{
    exec::{finish_tx, retry, ColumnRow as _, SqlExec, SqlTx as _},
    optimization::{promote_prompt_in, prompt_not_found, UNIQUE_RETRIES},
    optimization_sql::is_unique_violation,
    rollout_sql as q, OptimizationStore, StoreError, StoreResult,
};

#[async_trait]
pub trait RolloutStore: Send + Sync {
    /// Puts `version` in canary at `body.percent`, or, when that version already is the
    /// canary, changes its percentage, guard and reward (keeping its assignments: a unit in the
    /// canary at 10 % stays in it at 20 %). Records the event. `NotFound` for an unknown
    /// version; `Conflict` when it is the promoted version or another version is in canary.
    async fn start_rollout(
        &self,
        agent_id: &str,
        version: i64,
        body: &NewRollout,
    ) -> StoreResult<(Rollout, PromptEvent)>;

    async fn get_rollout(&self, agent_id: &str) -> StoreResult<Option<Rollout>>;

    /// Every active rollout (for the automatic guard).
    async fn list_rollouts(&self) -> StoreResult<Vec<Rollout>>;

    /// Ends `rollout_id` if it is still the agent's rollout and records `event` with it, in one
    /// transaction; `false` when it had already ended (so concurrent deciders act once).
    async fn end_rollout(
        &self,
        agent_id: &str,
        rollout_id: Uuid,
        event: &PromptEvent,
    ) -> StoreResult<bool>;

    async fn record_event(&self, event: &PromptEvent) -> StoreResult<()>;

    /// Promotes `version`, ends the rollout `ending` (when given) and records `events`, all in
    /// one transaction: after a failure nothing changed, so there is never a canary of a
    /// version that is already promoted. `Conflict` (and nothing changed) when `ending` is no
    /// longer the agent's rollout; `NotFound` for an unknown version.
    async fn promote_and_record(
        &self,
        agent_id: &str,
        version: i64,
        ending: Option<Uuid>,
        events: &[PromptEvent],
    ) -> StoreResult<lightning_core::Prompt>;

    /// Newest first.
    async fn list_events(&self, agent_id: &str, limit: i64) -> StoreResult<Vec<PromptEvent>>;

    /// One agent's runs recorded with `version` (`None`: without a version) that started at or
    /// after `since`, aggregated under `reward`.
    async fn arm_data(
        &self,
        agent_id: &str,
        version: Option<&str>,
        since: Option<DateTime<Utc>>,
        reward: &Reward,
    ) -> StoreResult<ArmData>;

    /// One agent's rewarded runs of `version` (`None`: without one) per time bucket: bucket `i`
    /// holds the runs that started in `[starts[i], starts[i+1])` (the last up to `until`).
    /// Aggregated in the database over every run, whatever their number; empty buckets are
    /// absent. At most [`MAX_SERIES_BUCKETS`] buckets.
    async fn arm_series(
        &self,
        agent_id: &str,
        version: Option<&str>,
        starts: &[DateTime<Utc>],
        until: DateTime<Utc>,
        reward: &Reward,
    ) -> StoreResult<Vec<(usize, Sums)>>;
}

/// A new event for a decision taken now.
pub fn event(
    rollout: &Rollout,
    kind: EventKind,
    actor: &str,
    reason: Option<String>,
    evidence: Option<serde_json::Value>,
) -> PromptEvent {
    PromptEvent {
        id: Uuid::now_v7(),
        agent_id: rollout.agent_id.clone(),
        kind,
        version: Some(rollout.version),
        rollout_id: Some(rollout.rollout_id),
        percent: Some(rollout.percent),
        actor: actor.to_string(),
        reason,
        evidence,
        created_at: time::now(),
    }
}

#[async_trait]
impl<S> RolloutStore for S
where
    S: SqlExec + OptimizationStore,
{
    async fn start_rollout(
        &self,
        agent_id: &str,
        version: i64,
        body: &NewRollout,
    ) -> StoreResult<(Rollout, PromptEvent)> {
        let prompts = self.list_prompts(agent_id).await?;
        if !prompts.iter().any(|p| p.version == version) {
            return Err(prompt_not_found(agent_id, version));
        }
        let promoted = prompts.iter().find(|p| p.promoted).map(|p| p.version);
        if promoted == Some(version) {
            return Err(StoreError::Conflict(format!(
                "version {version} is already the promoted version of agent {agent_id:?}"
            )));
        }
        let actor = body.actor.as_deref().unwrap_or("api");
        let reward = body.reward.clone().unwrap_or_else(|| "success".into());
        let now = time::now();
        let existing = self.get_rollout(agent_id).await?;
        let (rollout, kind, statement) = match existing {
            Some(current) if current.version != version => {
                return Err(StoreError::Conflict(format!(
                    "agent {agent_id:?} already has version {} in canary; end that rollout first",
                    current.version
                )));
            }
            Some(current) => {
                let updated = Rollout {
                    percent: body.percent,
                    auto_rollback: body.auto_rollback,
                    reward,
                    updated_at: now,
                    ..current
                };
                let statement = q::update_rollout(&updated);
                (updated, EventKind::RolloutUpdated, statement)
            }
            None => {
                let new = Rollout {
                    agent_id: agent_id.to_string(),
                    rollout_id: Uuid::now_v7(),
                    version,
                    baseline_version: promoted,
                    percent: body.percent,
                    auto_rollback: body.auto_rollback,
                    reward,
                    started_at: now,
                    updated_at: now,
                };
                let statement = q::insert_rollout(&new);
                (new, EventKind::RolloutStarted, statement)
            }
        };
        let recorded = event(&rollout, kind, actor, body.reason.clone(), None);
        if self
            .write_if(statement, vec![q::insert_event(&recorded)])
            .await?
        {
            Ok((rollout, recorded))
        } else {
            Err(StoreError::Conflict(format!(
                "the rollout of agent {agent_id:?} changed concurrently; retry"
            )))
        }
    }

    async fn get_rollout(&self, agent_id: &str) -> StoreResult<Option<Rollout>> {
        self.fetch_optional(q::select_rollout(agent_id))
            .await?
            .as_ref()
            .map(q::decode_rollout)
            .transpose()
    }

    async fn list_rollouts(&self) -> StoreResult<Vec<Rollout>> {
        let rows = self.fetch_all(q::select_rollouts()).await?;
        rows.iter().map(q::decode_rollout).collect()
    }

    async fn end_rollout(
        &self,
        agent_id: &str,
        rollout_id: Uuid,
        event: &PromptEvent,
    ) -> StoreResult<bool> {
        self.write_if(
            q::delete_rollout(agent_id, rollout_id),
            vec![q::insert_event(event)],
        )
        .await
    }

    async fn record_event(&self, event: &PromptEvent) -> StoreResult<()> {
        // An insert always affects its row; `write_if` is just the write path.
        self.write_if(q::insert_event(event), Vec::new()).await?;
        Ok(())
    }

    async fn promote_and_record(
        &self,
        agent_id: &str,
        version: i64,
        ending: Option<Uuid>,
        events: &[PromptEvent],
    ) -> StoreResult<lightning_core::Prompt> {
        retry(UNIQUE_RETRIES, is_unique_violation, || async {
            let mut tx = self.begin().await?;
            let result = async {
                let prompt = promote_prompt_in(&mut tx, agent_id, version).await?;
                if let Some(rollout_id) = ending {
                    if tx.execute(q::delete_rollout(agent_id, rollout_id)).await? == 0 {
                        return Err(StoreError::Conflict(format!(
                            "the rollout of agent {agent_id:?} ended concurrently; retry"
                        )));
                    }
                }
                for e in events {
                    tx.execute(q::insert_event(e)).await?;
                }
                Ok(prompt)
            }
            .await;
            finish_tx(tx, result).await
        })
        .await
    }

    async fn list_events(&self, agent_id: &str, limit: i64) -> StoreResult<Vec<PromptEvent>> {
        let rows = self.fetch_all(q::list_events(agent_id, limit)).await?;
        rows.iter().map(q::decode_event).collect()
    }

    async fn arm_data(
        &self,
        agent_id: &str,
        version: Option<&str>,
        since: Option<DateTime<Utc>>,
        reward: &Reward,
    ) -> StoreResult<ArmData> {
        let row = self
            .fetch_optional(q::arm_success(agent_id, version, since))
            .await?
            .ok_or_else(|| StoreError::Corrupt("empty aggregate".into()))?;
        let rewards = match reward {
            Reward::Success => {
                let (rewarded, successes) =
                    (row.int("rewarded")? as f64, row.int("successes")? as f64);
                // 0/1 rewards: the sum of squares is the sum.
                Sums {
                    n: rewarded,
                    sum: successes,
                    sum_sq: successes,
                }
            }
            Reward::Score(name) => {
                let sums = self
                    .fetch_optional(q::arm_score_sums(agent_id, version, since, name))
                    .await?
                    .ok_or_else(|| StoreError::Corrupt("empty aggregate".into()))?;
                Sums {
                    n: sums.int("n")? as f64,
                    sum: sums.opt_float("reward_sum")?.unwrap_or(0.0),
                    sum_sq: sums.opt_float("reward_sum_sq")?.unwrap_or(0.0),
                }
            }
        };
        let tools = self
            .fetch_all(q::arm_tools(agent_id, version, since))
            .await?;
        Ok(ArmData {
            runs: row.int("runs")?,
            rewards,
            mean_cost_usd: row.opt_float("mean_cost_usd")?,
            mean_duration_ms: row.opt_float("mean_duration_ms")?,
            mean_steps: row.opt_float("mean_steps")?,
            tools: tools
                .iter()
                .map(q::decode_tool)
                .collect::<StoreResult<_>>()?,
        })
    }
    async fn arm_series(
        &self,
        agent_id: &str,
        version: Option<&str>,
        starts: &[DateTime<Utc>],
        until: DateTime<Utc>,
        reward: &Reward,
    ) -> StoreResult<Vec<(usize, Sums)>> {
        if starts.is_empty() {
            return Ok(Vec::new());
        }
        if starts.len() > MAX_SERIES_BUCKETS as usize {
            return Err(StoreError::Conflict(format!(
                "buckets: at most {MAX_SERIES_BUCKETS}"
            )));
        }
        let rows = match reward {
            Reward::Success => {
                self.fetch_all(q::arm_success_series(agent_id, version, starts, until))
                    .await?
            }
            Reward::Score(name) => {
                self.fetch_all(q::arm_score_series(agent_id, version, starts, until, name))
                    .await?
            }
        };
        rows.iter()
            .map(|r| {
                let bucket = usize::try_from(r.int("bucket")?)
                    .map_err(|_| StoreError::Corrupt("negative bucket".into()))?;
                Ok((
                    bucket,
                    Sums {
                        n: r.int("n")? as f64,
                        sum: r.opt_float("reward_sum")?.unwrap_or(0.0),
                        sum_sq: r.opt_float("reward_sum_sq")?.unwrap_or(0.0),
                    },
                ))
            })
            .collect()
    }
}

fn version_label(version: Option<i64>) -> String {
    version.map_or_else(|| "none".into(), |v| v.to_string())
}

/// Compares two versions' runs since `since` (`None` as a version: runs recorded without one,
/// i.e. the agent's own prompt). Backend-independent: it only reads through the trait.
pub async fn compare_versions<S: RolloutStore + ?Sized>(
    store: &S,
    agent_id: &str,
    (baseline, candidate): (Option<i64>, Option<i64>),
    since: Option<DateTime<Utc>>,
    reward: &Reward,
    test: SequentialTest,
) -> StoreResult<Comparison> {
    let (b, c) = (version_label(baseline), version_label(candidate));
    let baseline_data = store
        .arm_data(agent_id, baseline.map(|_| b.as_str()), since, reward)
        .await?;
    let candidate_data = store
        .arm_data(agent_id, candidate.map(|_| c.as_str()), since, reward)
        .await?;
    Ok(compare_arms(
        agent_id,
        reward,
        since,
        (b, baseline_data),
        (c, candidate_data),
        test,
    ))
}

/// Reward over time of `versions` (`None`: runs without a version) in `buckets` equal time
/// buckets from `since` to `until`, aggregated by the database over every run in the window.
pub async fn reward_series<S: RolloutStore + ?Sized>(
    store: &S,
    agent_id: &str,
    versions: &[Option<i64>],
    (since, until): (DateTime<Utc>, DateTime<Utc>),
    buckets: u32,
    reward: &Reward,
) -> StoreResult<RewardSeries> {
    let starts = bucket_starts(since, until, buckets);
    let mut series = Vec::with_capacity(versions.len());
    for version in versions {
        let label = version_label(*version);
        let cells = store
            .arm_series(
                agent_id,
                version.map(|_| label.as_str()),
                &starts,
                until,
                reward,
            )
            .await?;
        let points = cells
            .iter()
            .filter_map(|(i, sums)| {
                let start = *starts.get(*i)?;
                let end = starts.get(i + 1).copied().unwrap_or(until);
                series_point(reward, start, end, sums)
            })
            .collect();
        series.push(VersionSeries {
            version: label,
            points,
        });
    }
    Ok(RewardSeries {
        agent_id: agent_id.to_string(),
        reward: reward.as_string(),
        since,
        until,
        buckets,
        series,
    })
}

/// The comparison of a rollout's canary with its baseline since the rollout started.
pub async fn compare_rollout<S: RolloutStore + ?Sized>(
    store: &S,
    rollout: &Rollout,
    test: SequentialTest,
) -> StoreResult<Comparison> {
    let reward = Reward::parse(&rollout.reward)
        .map_err(|e| StoreError::Corrupt(format!("rollout reward: {e}")))?;
    compare_versions(
        store,
        &rollout.agent_id,
        (rollout.baseline_version, Some(rollout.version)),
        Some(rollout.started_at),
        &reward,
        test,
    )
    .await
}

/// One pass of the automatic guard over `rollout`: when it has `autoRollback` and its canary is
/// significantly worse, ends it (once, even with several collectors) and returns the event.
pub async fn guard_rollout<S: RolloutStore + ?Sized>(
    store: &S,
    rollout: &Rollout,
    test: SequentialTest,
) -> StoreResult<Option<PromptEvent>> {
    if !rollout.auto_rollback {
        return Ok(None);
    }
    let comparison = compare_rollout(store, rollout, test).await?;
    if !comparison.guard_rolls_back() {
        return Ok(None);
    }
    let reason = comparison.difference.map(|d| {
        format!(
            "canary significantly worse: difference {:+.3} (always-valid 95% CI {:+.3} to {:+.3}, p = {:.4})",
            d.estimate, d.low, d.high, d.p_value
        )
    });
    let recorded = event(
        rollout,
        EventKind::RolledBack,
        "guard",
        reason,
        serde_json::to_value(&comparison).ok(),
    );
    Ok(store
        .end_rollout(&rollout.agent_id, rollout.rollout_id, &recorded)
        .await?
        .then_some(recorded))
}

/// Ends the agent's rollout of `version`, if it is the active one, storing the comparison at
/// this moment (or the evidence the decider passes) with the event; `None` when there was no
/// such rollout or another decider ended it first.
pub async fn end_rollout_with_evidence<S: RolloutStore + ?Sized>(
    store: &S,
    agent_id: &str,
    version: i64,
    kind: EventKind,
    decision: Decision,
) -> StoreResult<Option<PromptEvent>> {
    let Some(rollout) = store
        .get_rollout(agent_id)
        .await?
        .filter(|r| r.version == version)
    else {
        return Ok(None);
    };
    let evidence = match decision.evidence {
        Some(evidence) => evidence,
        None => {
            serde_json::to_value(compare_rollout(store, &rollout, SequentialTest::default()).await?)
                .map_err(|e| StoreError::Corrupt(format!("comparison: {e}")))?
        }
    };
    let recorded = event(
        &rollout,
        kind,
        decision.actor.as_deref().unwrap_or("api"),
        decision.reason,
        Some(evidence),
    );
    Ok(store
        .end_rollout(agent_id, rollout.rollout_id, &recorded)
        .await?
        .then_some(recorded))
}

/// Promotes `version` and records the decision: a canary of that version ends as `promoted`
/// with its comparison (or the evidence the decider passes) as evidence; a canary of another
/// version ends (its baseline is gone); without a canary a `promoted` event is recorded alone.
/// The promotion, the end of the canary and the events are one transaction.
pub async fn promote_with_history<S: RolloutStore + ?Sized>(
    store: &S,
    agent_id: &str,
    version: i64,
    decision: Decision,
) -> StoreResult<lightning_core::Prompt> {
    let actor = decision.actor.unwrap_or_else(|| "api".into());
    let (ending, events) = match store.get_rollout(agent_id).await? {
        Some(r) if r.version == version => {
            let evidence = match decision.evidence {
                Some(evidence) => evidence,
                None => rollout_evidence(store, &r).await?,
            };
            let promoted = event(
                &r,
                EventKind::Promoted,
                &actor,
                decision.reason,
                Some(evidence),
            );
            (Some(r.rollout_id), vec![promoted])
        }
        other => {
            let mut events = Vec::new();
            if let Some(r) = &other {
                let reason = format!("version {version} was promoted instead");
                let evidence = rollout_evidence(store, r).await?;
                events.push(event(
                    r,
                    EventKind::RolloutEnded,
                    &actor,
                    Some(reason),
                    Some(evidence),
                ));
            }
            events.push(PromptEvent {
                id: Uuid::now_v7(),
                agent_id: agent_id.to_string(),
                kind: EventKind::Promoted,
                version: Some(version),
                rollout_id: None,
                percent: None,
                actor: actor.clone(),
                reason: decision.reason,
                evidence: decision.evidence,
                created_at: time::now(),
            });
            (other.map(|r| r.rollout_id), events)
        }
    };
    store
        .promote_and_record(agent_id, version, ending, &events)
        .await
}

async fn rollout_evidence<S: RolloutStore + ?Sized>(
    store: &S,
    rollout: &Rollout,
) -> StoreResult<serde_json::Value> {
    serde_json::to_value(compare_rollout(store, rollout, SequentialTest::default()).await?)
        .map_err(|e| StoreError::Corrupt(format!("comparison: {e}")))
}
