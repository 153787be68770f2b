//! Revoke365: removes a user's access to other people's Microsoft 365 mailboxes, proves it is
//! gone, and leaves an audit trail precise enough to restore.
//!
//! - [`model`]: requests, grants, runs, reports, audit records.
//! - [`ports`]: the traits the steps use to reach the outside.
//! - [`steps`]: intake, discover, remove, verify — one function per step.
//! - [`adapters`]: HTTP clients (Graph, Exchange, ConnectWise) and embedded queue/store.

pub mod adapters;
#[cfg(feature = "aws")]
pub mod aws;
pub mod config;
pub mod engine;
pub mod error;
pub mod messages;
pub mod model;
pub mod ports;
pub mod render;
pub mod restore;
pub(crate) mod scan;
pub mod steps;

pub use error::{QueueError, RemoteError, StepError, StoreError};
