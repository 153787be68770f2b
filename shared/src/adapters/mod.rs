//! Adapters: each implements ports for one external system or one embedded backend.

pub mod connect;
pub mod connectwise;
pub mod exo;
pub mod file_store;
pub mod graph;
pub mod http;
pub mod memory_queue;
pub mod token;
