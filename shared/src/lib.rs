//! Revoke365: removes a user's access to other people's Microsoft 365 mailboxes, proves it is
//! gone, and leaves an audit trail precise enough to restore.
//!
//! - [`model`]: requests, grants, runs, reports, audit records.
//! - [`ports`]: the traits the steps use to reach the outside.
//! - [`work`]: a delivery's deadline and stop flags, removal batches (below the ports).
//! - [`steps`]: intake, discover, remove, verify — one function per step.
//! - [`adapters`]: HTTP clients (Graph, Exchange, ConnectWise), the embedded queue and store,
//!   and (feature `aws`) DynamoDB, SQS and Secrets Manager.
//! - [`lambda`] (feature `aws`): the Lambda entry logic the `functions/*` mains run.

pub mod adapters;
pub mod authorize;
pub mod config;
pub mod engine;
pub mod error;
pub mod index;
#[cfg(feature = "aws")]
pub mod lambda;
pub mod messages;
pub mod model;
pub mod ports;
pub mod render;
pub mod restore;
pub(crate) mod scan;
pub mod steps;
pub mod work;

pub use error::{QueueError, RemoteError, StepError, StoreError};
