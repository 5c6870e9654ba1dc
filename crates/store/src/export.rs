use std::sync::Arc;

use futures::{stream, Stream, TryStreamExt};
use lightning_core::{Score, Step, Trajectory, TrajectoryFilter, TrajectoryWithSteps};
use uuid::Uuid;

use crate::{Store, StoreResult};

/// Trajectories per page while exporting.
const PAGE: i64 = 100;
/// Steps fetched per query by [`export_parts`] and [`steps_pages`]: what one trajectory can put
/// in memory at a time, however many steps it has.
pub const STEP_PAGE: i64 = 500;

/// One piece of an export, so that a long trajectory's steps are never all in memory at once.
#[derive(Debug, Clone, PartialEq)]
pub enum ExportPart {
    /// A trajectory begins: its row and every score of it (a trajectory has few).
    Start {
        trajectory: Box<Trajectory>,
        scores: Vec<Score>,
    },
    /// The next page of its steps (at most [`STEP_PAGE`]), in step order.
    Steps(Vec<Step>),
    /// The trajectory's steps are complete.
    End,
}

/// Streams every trajectory matching `filter`, newest first, as [`ExportPart`]s: one page of
/// trajectories and one page of steps in memory at a time.
pub fn export_parts(
    store: Arc<dyn Store>,
    mut filter: TrajectoryFilter,
) -> impl Stream<Item = StoreResult<ExportPart>> + Send + 'static {
    filter.limit = PAGE;
    #[derive(Clone, Copy)]
    enum Steps {
        /// More may follow the step number sent last (`None`: none sent yet).
        After(Uuid, Option<i64>),
        /// The last page was sent.
        Done,
    }
    struct State {
        store: Arc<dyn Store>,
        filter: TrajectoryFilter,
        buffered: std::vec::IntoIter<Trajectory>,
        exhausted: bool,
        /// Where the steps of the trajectory being exported stand.
        current: Option<Steps>,
    }
    let state = State {
        store,
        filter,
        buffered: Vec::new().into_iter(),
        exhausted: false,
        current: None,
    };
    stream::try_unfold(state, |mut s| async move {
        loop {
            match s.current {
                Some(Steps::Done) => {
                    s.current = None;
                    return Ok(Some((ExportPart::End, s)));
                }
                Some(Steps::After(id, after)) => {
                    let page = s.store.list_steps(id, after, STEP_PAGE).await?;
                    if page.is_empty() {
                        s.current = None;
                        return Ok(Some((ExportPart::End, s)));
                    }
                    // A short page is the last one: End follows without another query.
                    s.current = Some(if (page.len() as i64) < STEP_PAGE {
                        Steps::Done
                    } else {
                        Steps::After(id, page.last().map(|step| step.step_number))
                    });
                    return Ok(Some((ExportPart::Steps(page), s)));
                }
                None => {}
            }
            if let Some(trajectory) = s.buffered.next() {
                let scores = s.store.list_scores(trajectory.id).await?;
                s.current = Some(Steps::After(trajectory.id, None));
                let trajectory = Box::new(trajectory);
                return Ok(Some((ExportPart::Start { trajectory, scores }, s)));
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

/// Streams every trajectory matching `filter` with its steps and scores, newest first, holding
/// one page of trajectories and one whole trajectory in memory at a time (built from
/// [`export_parts`], which never holds a whole trajectory's steps).
pub fn export_stream(
    store: Arc<dyn Store>,
    filter: TrajectoryFilter,
) -> impl Stream<Item = StoreResult<TrajectoryWithSteps>> + Send + 'static {
    let parts = Box::pin(export_parts(store, filter));
    stream::try_unfold(parts, |mut parts| async move {
        let Some(ExportPart::Start { trajectory, scores }) = parts.try_next().await? else {
            return Ok(None);
        };
        let mut steps = Vec::new();
        while let Some(part) = parts.try_next().await? {
            match part {
                ExportPart::Steps(page) => steps.extend(page),
                ExportPart::End | ExportPart::Start { .. } => break,
            }
        }
        Ok(Some((
            TrajectoryWithSteps {
                trajectory: *trajectory,
                steps,
                scores,
            },
            parts,
        )))
    })
}

/// The steps of one trajectory after `after`, at most `limit` in all, as pages of at most
/// [`STEP_PAGE`] in step order (so a 10,000-step answer never holds them all at once).
pub fn steps_pages(
    store: Arc<dyn Store>,
    id: Uuid,
    after: Option<i64>,
    limit: i64,
) -> impl Stream<Item = StoreResult<Vec<Step>>> + Send + 'static {
    stream::try_unfold(
        (store, after, limit.max(0)),
        move |(store, after, left)| async move {
            if left == 0 {
                return Ok(None);
            }
            let want = left.min(STEP_PAGE);
            let page = store.list_steps(id, after, want).await?;
            if page.is_empty() {
                return Ok(None);
            }
            // A short page is the last one.
            let left = if (page.len() as i64) < want {
                0
            } else {
                left - want
            };
            let after = page.last().map(|step| step.step_number);
            Ok(Some((page, (store, after, left))))
        },
    )
}
