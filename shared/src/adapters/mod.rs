//! Adapters: each implements ports for one external system or one embedded backend.

pub mod audit_key;
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
pub mod sqlite_alert_ledger;
mod sqlite_index;
pub mod sqlite_store;
pub mod token;
pub mod webhook;
