//! The scheduled sweep: runs whose step stalled (its holder died and no redelivery came, or a
//! message was lost) are driven on again, or failed with the reason and a notice.

use super::dispatch::fail_connected;
use super::plan::next_messages;
use crate::error::StepError;
use crate::messages::{Step, StepMessage};
use crate::model::{FailureCode, Run, RunFailure, RunId, RunStatus};
use crate::ports::{Connector, Queue, RunStore};
use chrono::{DateTime, Utc};
use tracing::{info, warn};

/// Re-drives of one run before the sweeper gives it up.
pub const MAX_REDRIVES: u32 = 2;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub redriven: Vec<RunId>,
    pub failed: Vec<RunId>,
}

/// Drives on every run that has not moved since `stalled_for` before `now` and that no live
/// step holds.
pub async fn sweep(
    store: &dyn RunStore,
    queue: &dyn Queue,
    connector: &dyn Connector,
    now: DateTime<Utc>,
    stalled_for: chrono::Duration,
) -> Result<SweepReport, StepError> {
    let mut report = SweepReport::default();
    for run in store.stalled_runs(now - stalled_for).await? {
        let redrives = store.count_redrive(&run.run_id).await?;
        if redrives <= MAX_REDRIVES {
            info!(run_id = %run.run_id, status = run.status.as_str(), redrives, "re-driving a stalled run");
            queue.send_all(redrive(store, &run).await?).await?;
            report.redriven.push(run.run_id.clone());
            continue;
        }
        let failure = RunFailure::new(
            FailureCode::Internal,
            None,
            format!(
                "the run stalled while {} and did not move after {MAX_REDRIVES} re-drives",
                run.status.as_str()
            ),
        );
        warn!(run_id = %run.run_id, reason = %failure.message, "failing a stalled run");
        fail_connected(store, connector, &run, failure).await?;
        report.failed.push(run.run_id.clone());
    }
    Ok(report)
}

/// The message that drives the run's current step again.
async fn redrive(store: &dyn RunStore, run: &Run) -> Result<Vec<StepMessage>, StepError> {
    let id = run.run_id.clone();
    Ok(match run.status {
        RunStatus::Removing => next_messages(run, &store.items(&run.run_id).await?),
        RunStatus::Verifying => vec![StepMessage::new(id, Step::Verify)],
        _ => vec![StepMessage::new(id, Step::Discover)],
    })
}
