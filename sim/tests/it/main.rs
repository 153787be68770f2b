//! Integration tests: the simulator runs in-process, requests are raw bodies
//! in the wire shapes of the real services.

mod answers;
mod auth;
mod caps;
mod common;
mod connectwise;
mod errors;
mod exo;
mod faults;
mod fixtures;
mod folders;
mod graph;
mod identity;
mod inbox_rules;
mod lag;
mod psas;
mod recipients;
mod restore;
mod scripted;
mod snapshot;
