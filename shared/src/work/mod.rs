//! What the steps and the adapters both need about the work in hand, below the ports: a
//! delivery's deadline and stop flags, and how removal is cut into batches.

mod batches;
mod delivery;

pub use batches::REMOVAL_BATCH_MAILBOXES;
pub(crate) use batches::{removal_batch_count, removal_batches};
pub use delivery::{past_stop, stop_at, stop_requested, stoppable, Deadline, Delivery};
