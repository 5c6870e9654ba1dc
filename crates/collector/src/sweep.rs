//! The idle sweep: trajectories with no activity for `abandon_after` become `abandoned`, so a
//! crashed agent's run does not stay `running` forever. Each pass is one conditional UPDATE in
//! the store, so any number of collectors may sweep the same database; a later step or
//! completion corrects the status.

use std::{sync::Arc, time::Duration};

use lightning_store::Store;

/// How often to sweep: a tenth of the idle time, between 1 s and 60 s.
pub fn interval(abandon_after: Duration) -> Duration {
    (abandon_after / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// One pass: marks what has been idle longer than `abandon_after`; returns how many.
pub async fn sweep_once(
    store: &dyn Store,
    abandon_after: Duration,
) -> lightning_store::StoreResult<u64> {
    let idle = chrono::Duration::from_std(abandon_after).unwrap_or(chrono::Duration::MAX);
    let idle_since = lightning_core::time::now()
        .checked_sub_signed(idle)
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    store.abandon_idle(idle_since).await
}

/// Sweeps forever (spawn it; it ends with the runtime). Failures are logged and retried.
pub async fn run(store: Arc<dyn Store>, abandon_after: Duration) {
    let mut tick = tokio::time::interval(interval(abandon_after));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match sweep_once(store.as_ref(), abandon_after).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                "marked {n} trajectories abandoned (no activity for {}s)",
                abandon_after.as_secs()
            ),
            Err(e) => tracing::warn!(error = %e, "idle sweep failed; will retry"),
        }
    }
}
