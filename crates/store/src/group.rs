//! Group commit for step batches: a bounded queue in front of the writer, so concurrent batches
//! (of any trajectories) are written together in one transaction.
//!
//! - Each caller is answered only after the transaction holding its batch has committed.
//! - A group is flushed when it reaches [`GroupConfig::max_rows`] steps, or when the queue is
//!   empty and [`GroupConfig::linger`] has passed since its first batch (0: whatever queued up
//!   while the previous transaction ran, so a lone client waits for nothing).
//! - Isolation: a batch for an unknown trajectory is answered `NotFound` and writes nothing,
//!   without affecting the rest of its group. Any other failure of a group's transaction rolls
//!   it back whole, then every batch of that group is retried alone in its own transaction, so
//!   only the batch that fails again gets the error.
//! - Backpressure: the queue holds at most [`GroupConfig::queue_steps`] steps; a batch that
//!   does not fit is refused at once with [`StoreError::Overloaded`] (503 + `Retry-After`).
//!
//! The planning half ([`plan`]) is pure: given the group's steps and the stored state of the
//! rows they touch, it computes the rows to upsert and the exact change to each trajectory's
//! counters and per-tool rollup, so a batch costs O(batch), not O(steps already stored).

use std::{
    borrow::Cow,
    collections::{BTreeMap, HashMap, HashSet},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use async_trait::async_trait;
use lightning_core::{NewStep, StepKind};
use tokio::sync::{mpsc, oneshot, Mutex, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::{StoreError, StoreResult};

/// How batches are grouped and how much may wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupConfig {
    /// Steps after which a group is flushed without waiting for more.
    pub max_rows: usize,
    /// How long a group's first batch may wait for company when the queue is empty.
    pub linger: Duration,
    /// Concurrent writer transactions (SQLite always uses one).
    pub writers: usize,
    /// Steps that may wait in the queue before new batches are refused.
    pub queue_steps: usize,
}

impl GroupConfig {
    /// Writer transactions for a pool of `connections` on PostgreSQL when none are configured:
    /// half the pool, leaving connections for reads and the other writes, at most 4.
    pub fn default_writers(connections: u32) -> usize {
        (connections as usize / 2).clamp(1, 4)
    }
}

impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            max_rows: 1000,
            linger: Duration::ZERO,
            writers: 2,
            queue_steps: 50_000,
        }
    }
}

/// One transaction's worth of writing, implemented per backend.
#[async_trait]
pub(crate) trait GroupWriter: Send + Sync + 'static {
    /// Writes every batch in one transaction. Returns the trajectories that do not exist (their
    /// batches wrote nothing); any error means nothing of the group was written.
    async fn write_group(&self, batches: &[(Uuid, &[NewStep])]) -> StoreResult<HashSet<Uuid>>;
}

struct Pending {
    trajectory_id: Uuid,
    steps: Vec<NewStep>,
    done: oneshot::Sender<StoreResult<()>>,
    _permit: OwnedSemaphorePermit,
}

/// The queue's sending side; dropping it stops the writer tasks once the queue is drained.
pub(crate) struct GroupCommit {
    queue: mpsc::UnboundedSender<Pending>,
    permits: Arc<Semaphore>,
    capacity: usize,
    counters: Arc<Counters>,
}

/// What the writers have done, for [`GroupCommit::stats`].
#[derive(Default)]
struct Counters {
    transactions: AtomicU64,
    batches: AtomicU64,
    steps: AtomicU64,
    busy_nanos: AtomicU64,
    split_groups: AtomicU64,
}

impl Counters {
    /// Runs one group transaction, counting it and its wall time.
    async fn timed<T>(&self, transaction: impl std::future::Future<Output = T>) -> T {
        let started = std::time::Instant::now();
        let result = transaction.await;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.busy_nanos.fetch_add(nanos, Ordering::Relaxed);
        self.transactions.fetch_add(1, Ordering::Relaxed);
        result
    }
}

impl GroupCommit {
    pub(crate) fn start(writer: Arc<dyn GroupWriter>, config: GroupConfig) -> Self {
        let (queue, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(Mutex::new(rx));
        let counters = Arc::new(Counters::default());
        for _ in 0..config.writers.max(1) {
            tokio::spawn(run_writer(
                rx.clone(),
                writer.clone(),
                config,
                counters.clone(),
            ));
        }
        let capacity = config.queue_steps.max(1);
        Self {
            queue,
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            counters,
        }
    }

    pub(crate) fn stats(&self) -> crate::GroupCommitStats {
        let c = &self.counters;
        let waiting = self
            .capacity
            .saturating_sub(self.permits.available_permits());
        crate::GroupCommitStats {
            transactions: c.transactions.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            steps: c.steps.load(Ordering::Relaxed),
            busy_seconds: c.busy_nanos.load(Ordering::Relaxed) as f64 / 1e9,
            split_groups: c.split_groups.load(Ordering::Relaxed),
            queued_steps: waiting as u64,
        }
    }

    /// Queues a batch and waits until its transaction has committed (or failed).
    pub(crate) async fn submit(&self, trajectory_id: Uuid, steps: Vec<NewStep>) -> StoreResult<()> {
        let wanted = steps.len().clamp(1, self.capacity) as u32;
        let permit = self
            .permits
            .clone()
            .try_acquire_many_owned(wanted)
            .map_err(|_| {
                StoreError::Overloaded(format!(
                    "{} steps already waiting to be written",
                    self.capacity
                ))
            })?;
        let (done, answer) = oneshot::channel();
        let pending = Pending {
            trajectory_id,
            steps,
            done,
            _permit: permit,
        };
        self.queue
            .send(pending)
            .map_err(|_| StoreError::Overloaded("the writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Overloaded("the writer has stopped".into()))?
    }
}

async fn run_writer(
    rx: Arc<Mutex<mpsc::UnboundedReceiver<Pending>>>,
    writer: Arc<dyn GroupWriter>,
    config: GroupConfig,
    counters: Arc<Counters>,
) {
    loop {
        let group = {
            let mut rx = rx.lock().await;
            collect(&mut rx, &config).await
        };
        match group {
            Some(group) => commit(writer.as_ref(), group, &counters).await,
            None => return,
        }
    }
}

/// Waits for one batch, then takes whatever else is queued, up to the group's size.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<Pending>,
    config: &GroupConfig,
) -> Option<Vec<Pending>> {
    let first = rx.recv().await?;
    let deadline = tokio::time::Instant::now() + config.linger;
    let mut rows = first.steps.len();
    let mut group = vec![first];
    while rows < config.max_rows {
        let next = match rx.try_recv() {
            Ok(p) => p,
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) if config.linger.is_zero() => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(p)) => p,
                    _ => break,
                }
            }
        };
        rows += next.steps.len();
        group.push(next);
    }
    Some(group)
}

async fn commit(writer: &dyn GroupWriter, group: Vec<Pending>, counters: &Counters) {
    let batches: Vec<(Uuid, &[NewStep])> = group
        .iter()
        .map(|p| (p.trajectory_id, p.steps.as_slice()))
        .collect();
    let steps: usize = batches.iter().map(|(_, s)| s.len()).sum();
    counters
        .batches
        .fetch_add(batches.len() as u64, Ordering::Relaxed);
    counters.steps.fetch_add(steps as u64, Ordering::Relaxed);
    let outcome = counters.timed(writer.write_group(&batches)).await;
    drop(batches);
    match outcome {
        Ok(missing) => {
            for p in group {
                let result = if missing.contains(&p.trajectory_id) {
                    Err(crate::sql_store::not_found(p.trajectory_id))
                } else {
                    Ok(())
                };
                let _ = p.done.send(result);
            }
        }
        Err(e) if group.len() == 1 => {
            let _ = group.into_iter().next().map(|p| p.done.send(Err(e)));
        }
        Err(e) => {
            tracing::warn!(error = %e, batches = group.len(), "group of step batches failed; retrying each batch alone");
            counters.split_groups.fetch_add(1, Ordering::Relaxed);
            for p in group {
                let result = counters
                    .timed(writer.write_group(&[(p.trajectory_id, p.steps.as_slice())]))
                    .await
                    .and_then(|missing| match missing.is_empty() {
                        true => Ok(()),
                        false => Err(crate::sql_store::not_found(p.trajectory_id)),
                    });
                let _ = p.done.send(result);
            }
        }
    }
}

/// The steps a group writes to one trajectory, folded by step number in arrival order. A step
/// sent once is borrowed from its batch; only a repeated step number is copied, to merge into.
#[derive(Debug)]
pub(crate) struct TrajectorySteps<'a> {
    pub id: Uuid,
    pub steps: BTreeMap<i64, Cow<'a, NewStep>>,
}

/// Folds the group's batches per trajectory (sorted by id, the order rows are locked in).
/// Repeated step numbers merge by [`NewStep::merge`], as if written one after another.
pub(crate) fn fold<'a>(batches: &[(Uuid, &'a [NewStep])]) -> Vec<TrajectorySteps<'a>> {
    let mut by_id: BTreeMap<Uuid, BTreeMap<i64, Cow<'a, NewStep>>> = BTreeMap::new();
    for &(id, steps) in batches {
        let folded = by_id.entry(id).or_default();
        for step in steps {
            match folded.get_mut(&step.step_number) {
                Some(existing) => existing.to_mut().merge(step.clone()),
                None => {
                    folded.insert(step.step_number, Cow::Borrowed(step));
                }
            }
        }
    }
    by_id
        .into_iter()
        .map(|(id, steps)| TrajectorySteps { id, steps })
        .collect()
}

/// What is stored for a step the group writes again.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredStep {
    pub tool_name: String,
    pub kind: StepKind,
    pub has_error: bool,
    pub duration_ms: Option<i64>,
}

/// A row to upsert, its kind resolved (the new one, else the stored one, else `tool`).
#[derive(Debug)]
pub(crate) struct StepRow<'a> {
    pub trajectory_id: Uuid,
    pub step: &'a NewStep,
    pub kind: StepKind,
    /// A row with this key is stored (the write merges into it); otherwise none can be, as
    /// the group holds the trajectory's lock.
    pub stored: bool,
}

/// Change to one trajectory's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CounterDelta {
    pub trajectory_id: Uuid,
    pub steps: i64,
    pub errors: i64,
    /// The largest step number stored once the group is written.
    pub max_step_number: Option<i64>,
}

/// Change to one `(trajectory, tool)` rollup row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ToolDelta {
    pub calls: i64,
    pub errors: i64,
    pub duration_sum: i64,
    pub duration_count: i64,
}

#[derive(Debug)]
pub(crate) struct Plan<'a> {
    pub rows: Vec<StepRow<'a>>,
    pub counters: Vec<CounterDelta>,
    pub tools: Vec<((Uuid, String), ToolDelta)>,
}

/// Step numbers of `t` that may already be stored (those up to the stored maximum).
pub(crate) fn maybe_stored(t: &TrajectorySteps<'_>, max_step_number: Option<i64>) -> Vec<i64> {
    match max_step_number {
        None => Vec::new(),
        Some(max) => t.steps.range(..=max).map(|(n, _)| *n).collect(),
    }
}

/// Rows, counter changes and rollup changes for the existing trajectories of a group.
/// `stored` holds the current state of every `(trajectory, step)` the group rewrites.
pub(crate) fn plan<'a>(
    trajectories: &'a [TrajectorySteps<'_>],
    max_steps: &HashMap<Uuid, Option<i64>>,
    stored: &HashMap<(Uuid, i64), StoredStep>,
) -> Plan<'a> {
    let mut rows = Vec::new();
    let mut counters = Vec::new();
    let mut tools: BTreeMap<(Uuid, String), ToolDelta> = BTreeMap::new();
    for t in trajectories {
        let Some(&max_before) = max_steps.get(&t.id) else {
            continue;
        };
        let mut delta = CounterDelta {
            trajectory_id: t.id,
            steps: 0,
            errors: 0,
            max_step_number: max_before,
        };
        for (&number, step) in &t.steps {
            let old = stored.get(&(t.id, number));
            if let Some(old) = old.filter(|o| o.kind == StepKind::Tool) {
                delta.steps -= 1;
                delta.errors -= i64::from(old.has_error);
                let d = tools.entry((t.id, old.tool_name.clone())).or_default();
                d.calls -= 1;
                d.errors -= i64::from(old.has_error);
                d.duration_sum -= old.duration_ms.unwrap_or(0);
                d.duration_count -= i64::from(old.duration_ms.is_some());
            }
            let kind = step.kind.or(old.map(|o| o.kind)).unwrap_or(StepKind::Tool);
            if kind == StepKind::Tool {
                // The merged row, exactly as the upsert's COALESCEs will leave it.
                let has_error = step.error.is_some() || old.is_some_and(|o| o.has_error);
                let duration = step.duration_ms.or(old.and_then(|o| o.duration_ms));
                delta.steps += 1;
                delta.errors += i64::from(has_error);
                let d = tools.entry((t.id, step.tool_name.clone())).or_default();
                d.calls += 1;
                d.errors += i64::from(has_error);
                d.duration_sum += duration.unwrap_or(0);
                d.duration_count += i64::from(duration.is_some());
            }
            delta.max_step_number = Some(delta.max_step_number.map_or(number, |m| m.max(number)));
            rows.push(StepRow {
                trajectory_id: t.id,
                step: step.as_ref(),
                kind,
                stored: old.is_some(),
            });
        }
        counters.push(delta);
    }
    let tools = tools
        .into_iter()
        .filter(|(_, d)| *d != ToolDelta::default())
        .collect();
    Plan {
        rows,
        counters,
        tools,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(n: i64, tool: &str) -> NewStep {
        NewStep {
            step_number: n,
            tool_name: tool.into(),
            ..Default::default()
        }
    }

    #[test]
    fn fold_merges_repeats_across_batches_in_order() {
        let id = Uuid::new_v4();
        let mut closed = step(1, "Read");
        closed.error = Some("boom".into());
        let first = [step(1, "Read"), step(2, "Bash")];
        let second = [closed];
        let folded = fold(&[(id, &first), (id, &second)]);
        assert_eq!(folded.len(), 1);
        assert_eq!(folded[0].steps.len(), 2);
        assert_eq!(folded[0].steps[&1].error.as_deref(), Some("boom"));
    }

    #[test]
    fn plan_counts_new_and_merged_rows_exactly() {
        let id = Uuid::new_v4();
        let mut retry = step(5, "Bash");
        retry.duration_ms = Some(7);
        let mut message = step(6, "assistant");
        message.kind = Some(StepKind::Message);
        let mut failing = step(7, "Bash");
        failing.error = Some("exit 1".into());
        let steps = [retry, message, failing, step(9, "Read")];
        let folded = fold(&[(id, &steps)]);
        assert_eq!(maybe_stored(&folded[0], Some(6)), [5, 6]);
        let stored = HashMap::from([(
            (id, 5),
            StoredStep {
                tool_name: "Bash".into(),
                kind: StepKind::Tool,
                has_error: true,
                duration_ms: None,
            },
        )]);
        let plan = plan(&folded, &HashMap::from([(id, Some(6))]), &stored);
        assert_eq!(plan.rows.len(), 4);
        assert_eq!(plan.rows[1].kind, StepKind::Message);
        // Step 5 was already counted (with its error); 7 and 9 are new tools; 6 is a message.
        assert_eq!(
            plan.counters,
            [CounterDelta {
                trajectory_id: id,
                steps: 2,
                errors: 1,
                max_step_number: Some(9),
            }]
        );
        let bash = &plan.tools.iter().find(|(k, _)| k.1 == "Bash").unwrap().1;
        assert_eq!(
            *bash,
            ToolDelta {
                calls: 1,
                errors: 1,
                duration_sum: 7,
                duration_count: 1,
            }
        );
    }

    #[test]
    fn plan_moves_a_renamed_or_rekinded_step() {
        let id = Uuid::new_v4();
        let mut now_event = step(1, "SubagentStart");
        now_event.kind = Some(StepKind::Event);
        let folded = fold(&[(id, std::slice::from_ref(&now_event))]);
        let stored = HashMap::from([(
            (id, 1),
            StoredStep {
                tool_name: "Task".into(),
                kind: StepKind::Tool,
                has_error: false,
                duration_ms: Some(3),
            },
        )]);
        let plan = plan(&folded, &HashMap::from([(id, Some(1))]), &stored);
        assert_eq!((plan.counters[0].steps, plan.counters[0].errors), (-1, 0));
        assert_eq!(plan.tools.len(), 1);
        assert_eq!(plan.tools[0].1.calls, -1);
        assert_eq!(plan.tools[0].1.duration_sum, -3);
    }

    /// A writer that records group sizes and holds each transaction until released.
    struct GatedWriter {
        gate: Semaphore,
        groups: std::sync::Mutex<Vec<usize>>,
    }

    #[async_trait]
    impl GroupWriter for GatedWriter {
        async fn write_group(&self, batches: &[(Uuid, &[NewStep])]) -> StoreResult<HashSet<Uuid>> {
            self.gate.acquire().await.unwrap().forget();
            self.groups.lock().unwrap().push(batches.len());
            Ok(HashSet::new())
        }
    }

    #[tokio::test]
    async fn queue_groups_waiting_batches_and_refuses_when_full() {
        let writer = Arc::new(GatedWriter {
            gate: Semaphore::new(0),
            groups: Default::default(),
        });
        let config = GroupConfig {
            max_rows: 1000,
            linger: Duration::ZERO,
            writers: 1,
            queue_steps: 30,
        };
        let group = Arc::new(GroupCommit::start(writer.clone(), config));
        let batch = || vec![step(1, "Read"); 10];
        let submit = |g: &Arc<GroupCommit>| {
            let (g, b) = (g.clone(), batch());
            tokio::spawn(async move { g.submit(Uuid::new_v4(), b).await })
        };
        // The first batch's transaction is held; two more queue behind it.
        let first = submit(&group);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let queued = [submit(&group), submit(&group)];
        tokio::time::sleep(Duration::from_millis(50)).await;
        // 30 steps are waiting: the next batch is refused at once, not buffered.
        let refused = group.submit(Uuid::new_v4(), batch()).await;
        assert!(
            matches!(refused, Err(StoreError::Overloaded(_))),
            "{refused:?}"
        );
        writer.gate.add_permits(2);
        first.await.unwrap().unwrap();
        for q in queued {
            q.await.unwrap().unwrap();
        }
        assert_eq!(
            *writer.groups.lock().unwrap(),
            [1, 2],
            "the two waiting batches shared one transaction"
        );
        // Space was released with the acknowledgements.
        writer.gate.add_permits(1);
        group.submit(Uuid::new_v4(), batch()).await.unwrap();
    }

    #[test]
    fn unknown_trajectories_are_left_out() {
        let steps = [step(1, "Read")];
        let folded = fold(&[(Uuid::new_v4(), &steps)]);
        let plan = plan(&folded, &HashMap::new(), &HashMap::new());
        assert!(plan.rows.is_empty() && plan.counters.is_empty());
    }
}
