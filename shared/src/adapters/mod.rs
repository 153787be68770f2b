//! Adapters: each implements ports for one external system or one embedded backend.

#[cfg(feature = "aws")]
pub mod aws;
pub mod budget;
pub mod connect;
pub mod http;
pub mod m365;
pub mod memory_queue;
pub mod page_token;
pub mod psa;
pub mod sqlite;
mod token_cache;
pub mod webhook;

// The paths before the adapters had a folder per counterpart.
pub use m365::{exchange, graph, token};
pub use psa::{autotask, connectwise, halopsa, no_psa};
pub use sqlite::alert_ledger as sqlite_alert_ledger;
pub use sqlite::audit_key;
pub use sqlite::store as sqlite_store;
