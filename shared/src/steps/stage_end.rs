//! The ends of the stages: the last scan shard counted hands the run to its removal batches,
//! the last removal batch counted hands it to verification. Counted once each, however often a
//! message is delivered.

use super::plan::{batch_count, next_messages};
use super::ProgressObserver;
use crate::error::StepError;
use crate::messages::{Step, StepMessage};
use crate::model::{Run, RunId};
use crate::ports::{Queue, RunStore};
use tracing::info;

/// The key under which a part of discovery stores its facts.
pub(crate) fn facts_part(shard_id: u32, first_position: u32) -> String {
    format!("shard#{shard_id:05}#{first_position:05}")
}

/// Counts a finished shard; the last one counted finishes discovery: every item is stored,
/// so the removal batches can be planned.
pub(crate) async fn finish_shard(
    store: &dyn RunStore,
    queue: &dyn Queue,
    run: &Run,
    shard_id: u32,
) -> Result<(), StepError> {
    let counted = store.complete_shard(&run.run_id, shard_id).await?;
    if !counted.all_done() {
        return Ok(());
    }
    let items = store.items(&run.run_id).await?;
    let batches = batch_count(run, &items);
    let moved = store.start_removal(&run.run_id, batches).await?;
    info!(
        items = items.len(),
        batches,
        newly = moved,
        "discovery complete; queueing removal"
    );
    queue.send_all(next_messages(run, &items)).await?;
    Ok(())
}

/// Counts a finished batch, and queues verification once every batch is counted.
pub(crate) async fn count_batch(
    store: &dyn RunStore,
    queue: &dyn Queue,
    progress: &dyn ProgressObserver,
    run_id: &RunId,
    batch_id: u32,
) -> Result<(), StepError> {
    let counted = store.complete_batch(run_id, batch_id).await?;
    progress.removal(counted.done as u64, counted.total as u64);
    if counted.all_done() {
        info!(
            newly_counted = counted.newly_counted,
            "every removal batch done; queueing verification"
        );
        queue
            .send(StepMessage::new(run_id.clone(), Step::Verify))
            .await?;
    }
    Ok(())
}
