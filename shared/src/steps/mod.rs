//! The workflow, one function per step. Steps never call each other: each ends by sending the
//! next message through the [`Queue`](crate::ports::Queue) port.

mod discover;
mod dispatch;
mod intake;
mod plan;
mod remove;
mod verify;

pub use discover::discover;
pub use dispatch::{abandon, dispatch, Connections, Connector};
pub use intake::{intake, Accepted, IntakeError};
pub use remove::{give_up, remove};
pub use verify::verify;

use crate::config::Recheck;
use crate::error::StoreError;
use crate::model::{Run, RunStatus};
use crate::ports::{Directory, Exchange, Mailer, Psa, RunStore};
use chrono::Utc;

/// The M365 tenant of one company: Graph and the Exchange admin API.
#[derive(Clone, Copy)]
pub struct Tenant<'a> {
    pub directory: &'a dyn Directory,
    pub exchange: &'a dyn Exchange,
    /// How verification gives a just-removed grant that still shows a second look.
    pub recheck: Recheck,
}

/// Where the outcome is reported: the PSA ticket and the notification email.
#[derive(Clone, Copy)]
pub struct Notify<'a> {
    pub psa: &'a dyn Psa,
    pub mailer: &'a dyn Mailer,
}

/// Progress for people watching (the CLI's progress bars); Lambda ignores it.
pub trait ProgressObserver: Send + Sync {
    fn discovery(&self, _scanned: u64, _total: u64) {}
    fn removal(&self, _done: u64, _total: u64) {}
}

pub struct NoProgress;
impl ProgressObserver for NoProgress {}

/// Maximum number of mailboxes one removal message covers.
pub const REMOVAL_BATCH_MAILBOXES: usize = 10;

/// How long a step may hold a run before a redelivered message may take it over: Lambda's
/// longest timeout. A delivery that died mid-step is retried by SQS after that; a duplicate
/// arriving while the step is still running leaves it alone.
pub const STEP_LEASE: chrono::Duration = chrono::Duration::minutes(15);

/// Whether this delivery should carry out the step that moves a run from `from` to `working`:
/// yes when it is the one to move it, or when the run has sat in `working` past the lease.
async fn claim(
    store: &dyn RunStore,
    run: &Run,
    from: RunStatus,
    working: RunStatus,
) -> Result<bool, StoreError> {
    if run.status == from {
        return store.transition(&run.run_id, &[from], working).await;
    }
    if run.status == working && Utc::now() - run.status_changed_at > STEP_LEASE {
        return store.transition(&run.run_id, &[working], working).await;
    }
    Ok(false)
}
