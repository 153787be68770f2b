//! Step 2b: one shard of discovery's per-mailbox reads (Full Access, calendar). A shard that
//! nears its invocation's deadline stores what it read and queues the rest as a continuation.

use super::plan::{items_of, shard_item_id};
use super::stage_end::{facts_part, finish_shard};
use super::{Delivery, ProgressObserver, RunContext};
use crate::error::StepError;
use crate::messages::{ScanShard, ShardMailbox, Step, StepMessage};
use crate::model::{PermissionType, RunStatus};
use crate::ports::{MailboxInfo, Queue, RunStore, ScanFacts};
use crate::scan::{per_mailbox, Census};
use tracing::{info, info_span, Instrument};

#[allow(clippy::too_many_arguments)]
pub async fn scan_shard(
    cx: RunContext<'_>,
    progress: &dyn ProgressObserver,
    shard: &ScanShard,
    delivery: &Delivery,
) -> Result<(), StepError> {
    let RunContext {
        store,
        queue,
        tenant,
        org,
        run,
        ..
    } = cx;
    let span = info_span!("scan", run_id = %run.run_id, shard = shard.shard_id, mailboxes = shard.mailboxes.len());
    async {
        if run.status != RunStatus::Discovering {
            info!(
                status = run.status.as_str(),
                "run is not discovering; shard ignored"
            );
            return Ok(());
        }
        let Some(user) = run.user.clone() else {
            return Err(StepError::Permanent(format!(
                "run {} has a scan shard but no resolved user",
                run.run_id
            )));
        };
        let mailboxes: Vec<MailboxInfo> = shard.mailboxes.iter().map(mailbox_info).collect();
        let census = Census::for_shard(user, mailboxes);
        let scope = run
            .request
            .effective_scope(&org.m365_permission_removal_scope);
        let rights: Vec<Vec<PermissionType>> = shard
            .mailboxes
            .iter()
            .map(|m| match &m.rights {
                Some(left) => scope.iter().copied().filter(|t| left.contains(t)).collect(),
                None => scope.clone(),
            })
            .collect();
        let targets: Vec<(&MailboxInfo, &[PermissionType])> = census
            .mailboxes
            .iter()
            .zip(&rights)
            .map(|(m, r)| (m, r.as_slice()))
            .collect();
        let reads = per_mailbox(tenant, &census, &targets, progress, delivery.deadline).await?;

        let mut grants = Vec::new();
        let mut facts = ScanFacts::default();
        let mut unread: Vec<ShardMailbox> = Vec::new();
        for (m, read) in shard.mailboxes.iter().zip(reads) {
            if !read.complete() {
                unread.push(ShardMailbox {
                    rights: Some(read.unread.clone()),
                    ..m.clone()
                });
            }
            let found = read.found;
            for g in found.grants {
                grants.push((shard_item_id(shard.shard_id, m.position, g.right), g));
            }
            facts.indirect_access.extend(found.indirect);
            facts.scan_errors.extend(found.errors);
            facts.not_checked.extend(found.not_checked);
            facts.unreadable.extend(found.unreadable);
        }
        store.put_items(&run.run_id, &items_of(run, grants)).await?;
        if let Some(first) = shard.mailboxes.first() {
            store
                .save_facts(
                    &run.run_id,
                    &facts_part(shard.shard_id, first.position),
                    &facts,
                )
                .await?;
        }
        if !unread.is_empty() {
            info!(
                left = unread.len(),
                "deadline near; the rest of the shard continues in a new message"
            );
            let rest = ScanShard {
                shard_id: shard.shard_id,
                mailboxes: unread,
            };
            queue
                .send(StepMessage::new(run.run_id.clone(), Step::Scan(rest)))
                .await?;
            return Ok(());
        }
        finish_shard(store, queue, run, shard.shard_id).await
    }
    .instrument(span)
    .await
}

fn mailbox_info(m: &ShardMailbox) -> MailboxInfo {
    MailboxInfo {
        user_principal_name: m.upn.clone(),
        primary_smtp_address: m.address.clone(),
        display_name: m.display_name.clone(),
        name: None,
        alias: None,
        distinguished_name: String::new(),
        external_directory_object_id: None,
        recipient_type_details: m.recipient_type.clone(),
        grant_send_on_behalf_to: Vec::new(),
    }
}

/// The last delivery of a shard failed: what it could not read is reported (the run cannot
/// succeed) and the shard is counted, so discovery still finishes and removes what was found.
pub(crate) async fn give_up_shard(
    store: &dyn RunStore,
    queue: &dyn Queue,
    run_id: &crate::model::RunId,
    shard: &ScanShard,
    reason: &str,
) -> Result<(), StepError> {
    let Some(run) = store.get_run(run_id).await? else {
        return Err(StepError::Permanent(format!("unknown run {run_id}")));
    };
    if run.status != RunStatus::Discovering {
        return Ok(());
    }
    let facts = ScanFacts {
        scan_errors: shard
            .mailboxes
            .iter()
            .map(|m| format!("{} could not be read: {reason}", m.address))
            .collect(),
        // Verification reads them again (for the types the run asked for).
        unreadable: shard
            .mailboxes
            .iter()
            .flat_map(|m| {
                let rights = m.rights.clone().unwrap_or_else(|| {
                    PermissionType::ALL
                        .into_iter()
                        .filter(|t| t.is_per_mailbox())
                        .collect()
                });
                rights.into_iter().map(|t| (m.address.clone(), t))
            })
            .collect(),
        ..ScanFacts::default()
    };
    let first = shard.mailboxes.first().map_or(0, |m| m.position);
    store
        .save_facts(run_id, &facts_part(shard.shard_id, first), &facts)
        .await?;
    finish_shard(store, queue, &run, shard.shard_id).await
}
