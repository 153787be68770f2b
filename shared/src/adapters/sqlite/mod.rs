//! The embedded backend of the CLI: the run store, the permission index, the alert ledger and
//! the audit key of one machine, in one SQLite file of the data directory.

pub mod alert_ledger;
pub mod audit_key;
mod db;
mod index;
mod schema;
pub mod store;
