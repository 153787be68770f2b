//! The workflow, one function per step. Steps never call each other: each ends by sending the
//! next message through the [`Queue`](crate::ports::Queue) port.

mod alert_approval;
mod alert_runs;
mod alert_users;
mod audit_trail;
mod contain;
mod contain_identity;
mod contain_restore;
mod discover;
mod dispatch;
mod intake;
mod item_outcome;
mod listing;
mod notify;
mod plan;
mod poll_alerts;
pub mod preflight;
mod remove;
mod reread;
mod restore;
mod restore_backup;
mod revoke;
mod run_report;
mod scan_shard;
mod stage_end;
mod sweep;
mod verify;
mod victim;
mod victim_report;
mod victim_survey;
mod workflow;

pub use crate::ports::{Connections, Connector, NoProgress, Notify, ProgressObserver, Tenant};
pub use alert_approval::ApprovalNoticeSent;
pub use alert_runs::{
    contain_alert, contain_alerts, intake_sentinel, AlertIntake, AlertOutcome, SentinelOutcome,
};
pub use alert_users::{AlertRun, HeldUser, Reach};
pub use audit_trail::check_run_audit;
pub use discover::discover;
pub use dispatch::{abandon, dispatch};
pub use intake::{
    check_before_intake, intake, intake_as, Accepted, IntakeError, REQUEST_CHECK_TIME,
};
pub(crate) use notify::report_recipients;
pub use notify::{fail_and_notify, notify_failure};
pub use poll_alerts::{poll_alerts, PollReport, POLLER_PRINCIPAL, POLL_OVERLAP};
pub use remove::{give_up, remove};
pub use restore::intake_restore;
pub use restore_backup::intake_backup;
pub use scan_shard::scan_shard;
pub use sweep::{sweep, SweepReport};
pub use verify::verify;

use crate::error::StepError;
use crate::model::{OrgSettings, Run, RunId, RunStatus};
use crate::ports::{Claim, Queue, RunStore};
pub use crate::work::{
    past_stop, stop_requested, stoppable, Deadline, Delivery, REMOVAL_BATCH_MAILBOXES,
};

pub(crate) use plan::next_messages;

/// What a stage of a run works with: the run, its company's settings, the stores and queue,
/// and the clients of its company's tenant and of where its outcome is told.
#[derive(Clone, Copy)]
pub struct RunContext<'a> {
    pub store: &'a dyn RunStore,
    pub queue: &'a dyn Queue,
    pub tenant: Tenant<'a>,
    pub notify: Notify<'a>,
    pub org: &'a OrgSettings,
    pub run: &'a Run,
    /// How many mailboxes a scan shard takes (read when discovery cuts them).
    pub shard_size: &'a (dyn Fn() -> usize + Send + Sync),
}

/// How long a step holds a run before another delivery may take it over. Longer than any
/// function's timeout (so a live step is never taken over) and shorter than the queues'
/// visibility timeout (so the redelivery of a dead step's message finds the lease expired).
pub const STEP_LEASE: chrono::Duration = chrono::Duration::minutes(5);

/// Takes the run for the step that moves it from `from` to `working`. `Ok(false)` when the run
/// is not at this step (a duplicate of a step already done: acknowledge it); a step held by
/// another live delivery is [`StepError::Busy`], so the message comes back later.
async fn claim(
    store: &dyn RunStore,
    run_id: &RunId,
    from: RunStatus,
    working: RunStatus,
    delivery: &Delivery,
) -> Result<bool, StepError> {
    match store
        .claim(run_id, from, working, &delivery.holder, STEP_LEASE)
        .await?
    {
        Claim::Acquired => Ok(true),
        Claim::NotHere(status) => {
            tracing::info!(
                status = status.as_str(),
                "run is not at this step; message acknowledged"
            );
            Ok(false)
        }
        Claim::Busy { holder, until } => Err(StepError::Busy { holder, until }),
    }
}
