use std::sync::Arc;

use futures::{stream, Stream};
use lightning_core::{TrajectoryFilter, TrajectoryWithSteps};

use crate::{Store, StoreResult};

/// Trajectories per page while exporting, and steps fetched per query.
const PAGE: i64 = 100;
const STEP_PAGE: i64 = 10_000;

/// Streams every trajectory matching `filter` with its steps and scores, newest first, holding one page
/// of trajectories and one trajectory's steps in memory at a time.
pub fn export_stream(
    store: Arc<dyn Store>,
    mut filter: TrajectoryFilter,
) -> impl Stream<Item = StoreResult<TrajectoryWithSteps>> + Send + 'static {
    filter.limit = PAGE;
    struct State {
        store: Arc<dyn Store>,
        filter: TrajectoryFilter,
        buffered: std::vec::IntoIter<lightning_core::Trajectory>,
        exhausted: bool,
    }
    let state = State {
        store,
        filter,
        buffered: Vec::new().into_iter(),
        exhausted: false,
    };
    stream::try_unfold(state, |mut s| async move {
        loop {
            if let Some(trajectory) = s.buffered.next() {
                let mut steps = Vec::new();
                loop {
                    let after = steps
                        .last()
                        .map(|step: &lightning_core::Step| step.step_number);
                    let page = s.store.list_steps(trajectory.id, after, STEP_PAGE).await?;
                    let done = (page.len() as i64) < STEP_PAGE;
                    steps.extend(page);
                    if done {
                        break;
                    }
                }
                let scores = s.store.list_scores(trajectory.id).await?;
                return Ok(Some((
                    TrajectoryWithSteps {
                        trajectory,
                        steps,
                        scores,
                    },
                    s,
                )));
            }
            if s.exhausted {
                return Ok(None);
            }
            let page = s.store.list_trajectories(&s.filter).await?;
            s.filter.cursor = page
                .next_cursor
                .as_deref()
                .and_then(lightning_core::Cursor::decode);
            s.exhausted = s.filter.cursor.is_none();
            s.buffered = page.trajectories.into_iter();
        }
    })
}
