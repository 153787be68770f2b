//! The domain model: requests, grants, runs, reports and audit records.

mod alert;
mod audit;
mod audit_chain;
mod backup_request;
mod grant;
mod history;
mod index;
mod org;
mod report;
mod request;
mod restore_report;
mod restore_request;
mod run;
mod victim;

pub use alert::*;
pub use audit::*;
pub use audit_chain::*;
pub use backup_request::*;
pub use grant::*;
pub use history::*;
pub use index::*;
pub use org::*;
pub use report::*;
pub use request::*;
pub use restore_report::*;
pub use restore_request::*;
pub use run::*;
pub use victim::*;
