//! The capabilities the steps need, as traits. Adapters implement them: HTTP clients for
//! Graph, Exchange and the PSA; an in-process queue and a file-backed store for one machine;
//! SQS and DynamoDB in Lambda.
//!
//! One file per family: [`queue`], [`store`] (the run store's narrow traits and [`RunStore`]),
//! [`index`], [`m365`] (Graph's [`Directory`] and the Exchange traits), [`identity`] (sign-in, sessions,
//! consents), [`folders`],
//! [`alerts`], [`notify`] (PSA, mail, hooks) and [`connect`] (one company's connections).

pub mod alerts;
pub mod connect;
mod folders;
pub mod identity;
pub mod index;
pub mod m365;
pub mod notify;
pub mod queue;
pub mod store;

pub use alerts::*;
pub use connect::*;
pub use folders::*;
pub use identity::*;
pub use index::*;
pub use m365::*;
pub use notify::*;
pub use queue::*;
pub use store::*;
