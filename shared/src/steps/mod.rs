//! The workflow, one function per step. Steps never call each other: each ends by sending the
//! next message through the [`Queue`](crate::ports::Queue) port.

mod discover;
mod dispatch;
mod intake;
mod remove;
mod verify;

pub use discover::discover;
pub use dispatch::{dispatch, Connections, Connector};
pub use intake::{intake, IntakeError};
pub use remove::remove;
pub use verify::verify;

use crate::ports::{Directory, Exchange, Mailer, Psa};

/// The M365 tenant of one company: Graph and the Exchange admin API.
#[derive(Clone, Copy)]
pub struct Tenant<'a> {
    pub directory: &'a dyn Directory,
    pub exchange: &'a dyn Exchange,
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

/// Mailbox scans in flight at once; the HTTP layer bounds real requests per tenant, this only
/// bounds how many futures wait for it.
const SCAN_PARALLELISM: usize = 64;

/// Maximum number of mailboxes one removal message covers.
pub const REMOVAL_BATCH_MAILBOXES: usize = 10;
