//! The permission index: a sweep reads every grant of every trustee in a tenant into a
//! snapshot ([`crate::model::Snapshot`]) that the run store keeps
//! ([`crate::ports::PermissionIndex`]); lookups, containment, reviews and backups read it.
//! Every revocation still ends with a live verification: the index makes runs faster, never
//! less correct.

mod access;
mod identities;
mod sweep;

pub use access::{lookup, AccessEntry, AccessError, AccessMap, AccessQuery, Change};
pub use sweep::{sweep, SweepCalls};
