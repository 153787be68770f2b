//! How the items to remove are cut into removal batches (the same cut wherever it is counted).

use crate::model::{ItemStatus, PermissionType, PlanItem};
use std::collections::BTreeMap;

/// Maximum number of mailboxes one removal message covers. A batch holds its part of the
/// tenant's budget from its first store read to its last write: a hundred grants keep the
/// per-delivery round trips (the run, the lease, the count) small beside the calls (25 left
/// the leased permits idle half the time at 10,000 mailboxes).
pub const REMOVAL_BATCH_MAILBOXES: usize = 100;

/// Groups the items to remove by permission type, then by up to [`REMOVAL_BATCH_MAILBOXES`]
/// mailboxes. Deterministic, so a redelivered discovery produces the same batch ids.
pub(crate) fn removal_batches(items: &[PlanItem]) -> Vec<(PermissionType, Vec<u32>)> {
    let mut by_type: BTreeMap<PermissionType, BTreeMap<&str, Vec<u32>>> = BTreeMap::new();
    // Every item that is to be removed, whatever its state now, so that a redelivered discovery
    // rebuilds exactly the same batches and batch ids.
    for item in items
        .iter()
        .filter(|i| !matches!(i.status, ItemStatus::Skipped { .. }))
    {
        by_type
            .entry(item.grant.right)
            .or_default()
            .entry(&item.grant.mailbox)
            .or_default()
            .push(item.id);
    }
    let mut batches = Vec::new();
    for (permission, mailboxes) in by_type {
        let mailboxes: Vec<Vec<u32>> = mailboxes.into_values().collect();
        for chunk in mailboxes.chunks(REMOVAL_BATCH_MAILBOXES) {
            batches.push((permission, chunk.concat()));
        }
    }
    batches
}

/// How many removal batches the items make.
pub(crate) fn removal_batch_count(items: &[crate::model::PlanItem]) -> u32 {
    removal_batches(items).len() as u32
}
