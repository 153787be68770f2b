//! What the workspace's tests and benches share (a dev-dependency, never published):
//!
//! - [`tenant`]: fixtures under `events/`, the simulator's credentials and the client
//!   settings that match them, fast retries;
//! - [`harness`]: the whole engine on one machine against the simulator ([`Harness`]);
//! - [`generated`]: generated tenants of many mailboxes (the benches and the scale test);
//! - [`cli`]: running a built binary and reading its stdout and stderr;
//! - [`results`]: the run result's JSON, typed: a renamed field breaks the tests that read it;
//! - [`aws`]: the emulators' environment and fresh resource prefixes;
//! - [`bench`]: the benches' positional arguments and verdicts.

pub mod aws;
pub mod bench;
pub mod cli;
pub mod generated;
pub mod harness;
pub mod results;
pub mod tenant;

pub use harness::{Harness, OPERATOR};
pub use results::RunResult;
pub use tenant::*;

/// The user the acme fixtures' runs are about.
pub const JOHN: &str = "john.smith@acmecorp.com";
