//! The automatic rollback guard: every interval, each rollout started with `autoRollback` is
//! compared with its baseline, and ended as `rolled_back` (actor `guard`) once its canary is
//! significantly worse under the always-valid test. Safe with several collectors on one
//! database: the conditional end makes exactly one of them act and record the event.

use std::{sync::Arc, time::Duration};

use lightning_core::stats::SequentialTest;
use lightning_store::{guard_rollout, Store};

/// One pass over every active rollout; returns how many were rolled back.
pub async fn check_once(store: &dyn Store, test: SequentialTest) -> usize {
    let rollouts = match store.list_rollouts().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "rollout guard: cannot list rollouts");
            return 0;
        }
    };
    let mut rolled_back = 0;
    for rollout in rollouts.iter().filter(|r| r.auto_rollback) {
        match guard_rollout(store, rollout, test).await {
            Ok(Some(event)) => {
                rolled_back += 1;
                tracing::warn!(
                    agent = %rollout.agent_id,
                    version = rollout.version,
                    reason = event.reason.as_deref().unwrap_or_default(),
                    "rollout guard: canary rolled back"
                );
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(agent = %rollout.agent_id, error = %e, "rollout guard: check failed")
            }
        }
    }
    rolled_back
}

/// Runs [`check_once`] every `interval` until the task is dropped.
pub async fn run(store: Arc<dyn Store>, interval: Duration, test: SequentialTest) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        check_once(&*store, test).await;
    }
}
