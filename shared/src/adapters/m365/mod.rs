//! Microsoft 365: Graph (directory, calendars, mail, alerts, identity actions) and the Exchange admin API, with
//! what the two share (`api`: base URLs, tokens per scope, paging, error bodies) and the
//! client-credentials tokens (`token`).

pub mod api;
pub mod assertion;
pub mod certificate;
pub mod exchange;
mod exchange_folders;
pub mod graph;
mod graph_calendars;
mod graph_identity;
pub mod token;

pub use api::*;
