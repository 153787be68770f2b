//! Step 2: discovery's part of a run — its claim and lease; what it finds is the run's
//! [`Workflow`](super::workflow::Workflow)'s to say (the tenant's grants of a revocation, see
//! [`super::listing`]; the grants a restore puts back).

use super::plan::next_messages;
use super::workflow::workflow_of;
use super::{claim, Delivery, RunContext};
use crate::error::StepError;
use crate::model::RunStatus;
use tracing::{info_span, Instrument};

/// Runs discovery for `run` and queues its scan shards (and, when nothing is left to scan,
/// its removal batches). Safe to redeliver: discovery only reads the tenant, shards are
/// counted once, and a run already past discovery has its batches queued again. A run it
/// cannot carry out fails with the reason, told on its ticket and by email.
pub async fn discover(cx: RunContext<'_>, delivery: &Delivery) -> Result<(), StepError> {
    let RunContext {
        store, queue, run, ..
    } = cx;
    let run_id = &run.run_id;
    let span = info_span!("discover", run_id = %run_id, company_id = %run.request.company_id);
    async {
        if run.status == RunStatus::Removing {
            // Redelivery after discovery finished: its messages may not all have been sent.
            let items = store.items(run_id).await?;
            queue.send_all(next_messages(run, &items)).await?;
            return Ok(());
        }
        if !claim(
            store,
            run_id,
            RunStatus::Accepted,
            RunStatus::Discovering,
            delivery,
        )
        .await?
        {
            return Ok(());
        }
        let result = workflow_of(run).plan(cx).await;
        // The lister's part is over either way: hand the run on (a retry takes it at once).
        store.release(run_id, &delivery.holder).await?;
        result
    }
    .instrument(span)
    .await
}
