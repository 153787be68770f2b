//! Steps 3–7: one removal batch (one permission type, a hundred mailboxes at most): the
//! stage's part — the run's state, the cancel, the continuation at the deadline, the count.

use super::audit_trail::ChainWriter;
use super::item_outcome::audit;
use super::stage_end::count_batch;
use super::workflow::workflow_of;
use super::{Deadline, NoProgress, ProgressObserver, RunContext};
use crate::error::StepError;
use crate::messages::{RemovalBatch, Step, StepMessage};
use crate::model::{
    batch_chain, AuditPhase, AuditResult, ItemStatus, PlanItem, Run, RunId, RunStatus,
    CANCELLED_REASON,
};
use crate::ports::{Queue, RunStore};
use tracing::{info, info_span, warn, Instrument};

/// Acts on the batch's items — removes them, or puts them back on a restore: the run's
/// [`Workflow`](super::workflow::Workflow) says which. Each item's intent is written to the
/// audit trail before the call and its outcome after, so a crash never loses what was done.
/// Items already finished (a redelivered message) are not touched again. Each batch is counted
/// once in the run store, however often it is delivered; once all are counted, verification
/// is queued.
pub async fn remove(
    cx: RunContext<'_>,
    progress: &dyn ProgressObserver,
    batch: &RemovalBatch,
    deadline: Deadline,
) -> Result<(), StepError> {
    let RunContext {
        store, queue, run, ..
    } = cx;
    let RemovalBatch {
        batch_id,
        permission,
        item_ids,
    } = batch;
    let (batch_id, permission) = (*batch_id, *permission);
    let run_id = &run.run_id;
    let span = info_span!("remove", run_id = %run_id, company_id = %run.request.company_id, batch_id, permission = %permission);
    async {
        if run.status != RunStatus::Removing {
            info!(
                status = run.status.as_str(),
                "run is not removing; batch ignored"
            );
            return Ok(());
        }
        let batch_items = store.get_items(run_id, item_ids).await?;
        if batch_items.len() != item_ids.len()
            || batch_items.iter().any(|i| i.grant.right != permission)
        {
            return Err(StepError::Permanent(format!(
                "batch {batch_id} names items that are not {permission} items of run {run_id}"
            )));
        }
        if run.cancel_requested {
            return cancel_batch(store, queue, progress, run, batch_id, &batch_items).await;
        }
        // The batch's records form one chain, so concurrent batches never share a head.
        let trail = &ChainWriter::new(store, run_id, batch_chain(batch_id));
        let open: Vec<&PlanItem> = batch_items
            .iter()
            .filter(|i| !i.status.is_finished())
            .collect();
        // Every item was tried; a transient failure leaves its item pending and the batch
        // uncounted, so the redelivered message tries it again.
        let started = workflow_of(run).act(cx, trail, open, deadline).await?;
        if started.contains(&false) {
            // Not a batch-item failure (that would count toward the DLQ): the same batch again,
            // whose finished items are skipped.
            info!("deadline near; the rest of the batch continues in a new message");
            queue
                .send(StepMessage::new(
                    run_id.clone(),
                    Step::Remove(batch.clone()),
                ))
                .await?;
            return Ok(());
        }
        count_batch(store, queue, progress, run_id, batch_id).await
    }
    .instrument(span)
    .await
}

/// The caller cancelled the run (`POST /revocations/{id}/cancel`): the batch removes nothing;
/// its grants not yet removed are left in place, said so in the report, note and email.
async fn cancel_batch(
    store: &dyn RunStore,
    queue: &dyn Queue,
    progress: &dyn ProgressObserver,
    run: &Run,
    batch_id: u32,
    items: &[PlanItem],
) -> Result<(), StepError> {
    let left = items.iter().filter(|i| !i.status.is_finished());
    let mut n = 0;
    for item in left {
        store
            .set_item_status(
                &run.run_id,
                item.id,
                &ItemStatus::Skipped {
                    reason: CANCELLED_REASON.into(),
                },
            )
            .await?;
        n += 1;
    }
    info!(left_in_place = n, "run cancelled; batch not removed");
    count_batch(store, queue, progress, &run.run_id, batch_id).await
}

/// The last delivery of a removal batch failed: its unfinished items are marked failed with
/// the reason and the batch is counted, so verification still runs and reports them.
pub async fn give_up(
    store: &dyn RunStore,
    queue: &dyn Queue,
    run_id: &RunId,
    batch: &RemovalBatch,
    reason: &str,
) -> Result<(), StepError> {
    let Some(run) = store.get_run(run_id).await? else {
        return Err(StepError::Permanent(format!("unknown run {run_id}")));
    };
    if run.status != RunStatus::Removing {
        return Ok(());
    }
    let error = format!("removal abandoned: {reason}");
    let trail = ChainWriter::new(store, run_id, batch_chain(batch.batch_id));
    for item in store
        .get_items(run_id, &batch.item_ids)
        .await?
        .iter()
        .filter(|i| !i.status.is_finished())
    {
        warn!(run_id = %run_id, item = item.id, %error, "giving up on a grant");
        trail
            .append(audit(
                &run,
                item,
                AuditPhase::Outcome,
                Some(AuditResult::Failed),
                Some(error.clone()),
            ))
            .await?;
        store
            .set_item_status(
                run_id,
                item.id,
                &ItemStatus::Failed {
                    error: error.clone(),
                },
            )
            .await?;
    }
    count_batch(store, queue, &NoProgress, run_id, batch.batch_id).await
}
