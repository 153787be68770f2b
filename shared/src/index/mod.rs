//! The permission index: a sweep reads every grant of every trustee in a tenant into a
//! snapshot ([`crate::model::Snapshot`]) that the run store keeps
//! ([`crate::ports::PermissionIndex`]); lookups, containment, reviews and backups read it.
//! Every revocation still ends with a live verification: the index makes runs faster, never
//! less correct.

mod access;
mod baseline;
mod identities;
mod review;
mod review_digest;
mod sweep;
mod sweep_folders;
mod sweep_mailbox;

pub use access::{lookup, AccessEntry, AccessError, AccessMap, AccessQuery, Change};
pub use baseline::IndexBaseline;
pub use review::{review, Review, ReviewAction, ReviewReason, ReviewedTrustee};
pub use review_digest::{deliver_digest, digest_marker, DigestDelivery};
pub use sweep::{sweep, sweep_resumable};
pub use sweep_mailbox::SweepCalls;
