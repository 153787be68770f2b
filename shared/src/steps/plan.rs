//! From what discovery found to what removal does: plan items and their removal batches.
//!
//! Item ids are fixed by where a grant was found, so that any part of discovery, delivered
//! again, writes the same items: the tenant-wide part numbers its grants 1, 2, ...; shard `s`
//! gives the grants of the mailbox at position `p` the ids `s × SHARD_ITEM_SPAN + p ×
//! MAILBOX_ITEM_SPAN + n`, `n` from 1 in the order the mailbox's read settled them (Full
//! Access, calendars, folders).

use crate::messages::{RemovalBatch, Step, StepMessage, VictimBatch};
use crate::model::{Grant, ItemId, ItemStatus, PlanItem, Run};
use crate::work::removal_batches;

/// Ids one part of discovery may use.
pub(crate) const SHARD_ITEM_SPAN: u32 = 1_000_000;

/// Ids one mailbox of a shard may use: a shard holds fewer than
/// `SHARD_ITEM_SPAN / MAILBOX_ITEM_SPAN` mailboxes (its message's size bounds it).
pub(crate) const MAILBOX_ITEM_SPAN: u32 = 500;

/// The id of the `n`th (from 0) per-mailbox grant found in shard `shard_id` at `position`;
/// `None` past the mailbox's span.
pub(crate) fn shard_item_id(shard_id: u32, position: u32, n: usize) -> Option<ItemId> {
    let n = u32::try_from(n)
        .ok()
        .filter(|n| *n + 1 < MAILBOX_ITEM_SPAN)?;
    Some(shard_id * SHARD_ITEM_SPAN + position * MAILBOX_ITEM_SPAN + n + 1)
}

/// One item per grant; grants on shared mailboxes are skipped when the request keeps them.
pub(crate) fn items_of(
    run: &Run,
    grants: impl IntoIterator<Item = (ItemId, Grant)>,
) -> Vec<PlanItem> {
    grants
        .into_iter()
        .map(|(id, grant)| {
            let status = if grant.shared && !run.request.remove_from_shared {
                ItemStatus::Skipped {
                    reason: "shared mailbox left in place (remove_from_shared is false)".into(),
                }
            } else {
                ItemStatus::Pending
            };
            PlanItem { id, grant, status }
        })
        .collect()
}

/// The victim-mailbox step when the request asks for it (a dry run reads the mailbox there
/// too) — first, so that a queue taken in order clears an attacker's forwarding and rules
/// before the live removals —, then one removal message per permission type and batch of
/// mailboxes; verification directly when there is nothing of either.
pub(crate) fn next_messages(run: &Run, items: &[PlanItem]) -> Vec<StepMessage> {
    let batches = match run.request.dry_run {
        true => Vec::new(),
        false => removal_batches(items),
    };
    let victim = run.request.victim_mailbox.then(|| {
        StepMessage::new(
            run.run_id.clone(),
            Step::Victim(VictimBatch {
                batch_id: batches.len() as u32,
            }),
        )
    });
    if batches.is_empty() && victim.is_none() {
        return vec![StepMessage::new(run.run_id.clone(), Step::Verify)];
    }
    let removals = batches
        .into_iter()
        .enumerate()
        .map(|(i, (permission, item_ids))| {
            StepMessage::new(
                run.run_id.clone(),
                Step::Remove(RemovalBatch {
                    batch_id: i as u32,
                    permission,
                    item_ids,
                }),
            )
        });
    victim.into_iter().chain(removals).collect()
}

/// How many batches the removal phase counts: the removal batches (none on a dry run) and
/// the victim-mailbox step.
pub(crate) fn batch_count(run: &Run, items: &[PlanItem]) -> u32 {
    let removals = match run.request.dry_run {
        true => 0,
        false => removal_batches(items).len() as u32,
    };
    removals + u32::from(run.request.victim_mailbox)
}
