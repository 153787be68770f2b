//! The workflow, one function per step. Steps never call each other: each ends by sending the
//! next message through the [`Queue`](crate::ports::Queue) port.

mod alert_approval;
mod alert_runs;
mod audit_trail;
mod contain;
mod discover;
mod dispatch;
mod intake;
mod notify;
mod plan;
mod poll_alerts;
pub mod preflight;
mod remove;
mod restore;
mod restore_backup;
mod scan_shard;
mod sweep;
mod verify;
mod victim;
mod victim_report;
mod victim_survey;

pub use crate::ports::{Connections, Connector, NoProgress, Notify, ProgressObserver, Tenant};
pub use alert_approval::ApprovalNoticeSent;
pub use alert_runs::{
    contain_alert, contain_alerts, intake_sentinel, AlertIntake, AlertOutcome, AlertRun, HeldUser,
    Reach, SentinelOutcome,
};
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
use crate::model::{RunId, RunStatus};
use crate::ports::{Claim, RunStore};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) use plan::next_messages;

/// How many removal batches the items make.
pub(crate) fn removal_batch_count(items: &[crate::model::PlanItem]) -> u32 {
    plan::removal_batches(items).len() as u32
}

/// Maximum number of mailboxes one removal message covers.
pub const REMOVAL_BATCH_MAILBOXES: usize = 25;

/// How long a step holds a run before another delivery may take it over. Longer than any
/// function's timeout (so a live step is never taken over) and shorter than the queues'
/// visibility timeout (so the redelivery of a dead step's message finds the lease expired).
pub const STEP_LEASE: chrono::Duration = chrono::Duration::minutes(5);

/// When the current invocation must have stopped (Lambda's deadline), if there is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Option<(Instant, Duration)>);

impl Deadline {
    /// No deadline (the CLI): work is never cut short.
    pub const NONE: Deadline = Deadline(None);

    /// Stop by `at`, keeping a safety margin of a third of the time left (0.5 s to 30 s) for
    /// the calls in flight and for saving progress (a function's 150 s keep 30 s; a short
    /// deadline keeps more than a fifth, as saving does not get faster with it).
    pub fn at(at: Instant) -> Deadline {
        let left = at.saturating_duration_since(Instant::now());
        let margin = (left / 3).clamp(Duration::from_millis(500), Duration::from_secs(30));
        Deadline(Some((at, margin)))
    }

    /// Time to stop taking new work.
    pub fn near(&self) -> bool {
        self.0
            .is_some_and(|(at, margin)| Instant::now() + margin >= at)
    }

    /// When to stop taking new work (the deadline less its margin); `None` without one.
    pub fn stop_at(&self) -> Option<Instant> {
        self.0
            .map(|(at, margin)| at.checked_sub(margin).unwrap_or(at))
    }

    /// Runs `work` so that none of its calls to a service is sent once it is time to stop: a
    /// call whose turn comes later (every call queues for the tenant's budget) fails with
    /// [`crate::error::ErrorKind::Stopped`] instead, while calls already sent finish.
    pub async fn bound<F: std::future::Future>(&self, work: F) -> F::Output {
        match self.stop_at() {
            Some(stop) => STOP_AT.scope(stop, work).await,
            None => work.await,
        }
    }

    /// The time left before the margin; `None` without a deadline.
    pub fn left(&self) -> Option<Duration> {
        self.0
            .map(|(at, margin)| at.saturating_duration_since(Instant::now() + margin))
    }
}

tokio::task_local! {
    /// When calls made inside [`Deadline::bound`] stop being sent.
    static STOP_AT: Instant;
}

tokio::task_local! {
    /// Set when the process is asked to stop (Ctrl-C): see [`stoppable`].
    static STOP_FLAG: Arc<AtomicBool>;
}

/// Runs `work` so that once `flag` is set none of its calls to a service is sent (they fail
/// with [`crate::error::ErrorKind::Stopped`]) and no removal batch starts another grant;
/// calls already sent finish. The CLI sets the flag on Ctrl-C.
pub async fn stoppable<F: std::future::Future>(flag: Arc<AtomicBool>, work: F) -> F::Output {
    STOP_FLAG.scope(flag, work).await
}

/// Whether the calling task was asked to stop (see [`stoppable`]).
pub fn stop_requested() -> bool {
    STOP_FLAG
        .try_with(|f| f.load(Ordering::SeqCst))
        .unwrap_or(false)
}

/// Whether the calling task's time to stop has come (see [`Deadline::bound`] and
/// [`stoppable`]): the HTTP clients ask before they send.
pub fn past_stop() -> bool {
    stop_requested()
        || STOP_AT
            .try_with(|stop| Instant::now() >= *stop)
            .unwrap_or(false)
}

/// What one delivery of a message brings: who it is (the lease holder) and when it must stop.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub holder: String,
    pub deadline: Deadline,
}

impl Delivery {
    /// A delivery with no deadline and a fresh holder id (the CLI).
    pub fn local() -> Delivery {
        Delivery {
            holder: uuid::Uuid::new_v4().to_string(),
            deadline: Deadline::NONE,
        }
    }
}

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
