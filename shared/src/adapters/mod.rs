//! Adapters: each implements ports for one external system or one embedded backend.

pub mod autotask;
#[cfg(feature = "aws")]
pub mod aws;
pub mod budget;
pub mod connect;
pub mod connectwise;
pub mod exchange;
mod exchange_folders;
pub mod graph;
mod graph_calendars;
pub mod halopsa;
pub mod http;
pub mod m365;
pub mod memory_queue;
pub mod no_psa;
pub mod page_token;
mod psa_text;
pub mod sqlite;
pub mod token;
mod token_cache;
pub mod webhook;

// The paths before the adapters had a folder per counterpart.
pub use sqlite::alert_ledger as sqlite_alert_ledger;
pub use sqlite::audit_key;
pub use sqlite::store as sqlite_store;
