//! Integration tests: the simulator runs in-process, requests are raw bodies
//! taken from `shared/spec/wire.md`.

mod auth;
mod common;
mod connectwise;
mod exo;
mod faults;
mod fixtures;
mod graph;
mod restore;
