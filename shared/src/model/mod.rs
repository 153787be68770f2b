//! The domain model: requests, grants, runs, reports and audit records.

mod audit;
mod audit_chain;
mod grant;
mod org;
mod report;
mod request;
mod run;

pub use audit::*;
pub use audit_chain::*;
pub use grant::*;
pub use org::*;
pub use report::*;
pub use request::*;
pub use run::*;
