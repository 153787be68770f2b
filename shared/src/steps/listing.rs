//! Discovery of a revocation (and of a contain or cleanup run after its first phase): check
//! before removing anything (see [`super::preflight`]), validate the user, read the tenant-wide
//! lookups (Send As, Send on Behalf), and cut the mailboxes into scan shards, each a message of
//! its own (see [`super::scan_shard`]). The tenant-wide part is shard 0; whichever shard is
//! counted last finishes discovery.

use super::notify::fail_and_notify;
use super::plan::{items_of, SHARD_ITEM_SPAN};
use super::preflight::{is_contain, preflight, Subject, Verdict};
use super::stage_end::{facts_part, finish_shard};
use super::{Notify, RunContext};
use crate::error::StepError;
use crate::messages::{ScanShard, ShardMailbox, Step, StepMessage};
use crate::model::{
    FailureCode, NotChecked, NotCheckedReason, OrgSettings, PermissionType, Run, RunFailure,
};
use crate::ports::{RunStore, ScanFacts};
use crate::scan::{snapshot_folders, tenant_wide, Census, ScanError, SnapshotFolders};
use tracing::{info, warn};

/// Lists the tenant for the run's user and queues its scan shards (see the module's doc).
pub(crate) async fn list(cx: RunContext<'_>) -> Result<(), StepError> {
    let RunContext {
        store,
        queue,
        tenant,
        notify,
        org,
        run,
        shard_size,
    } = cx;
    let run_id = &run.run_id;
    let subject = Subject {
        org,
        ticket_id: run.request.ticket_id.as_deref(),
        requestor: run.request.requestor_email(),
    };
    let scope = run
        .request
        .effective_scope(&org.m365_permission_removal_scope);
    // Discovery only reads: the listings start beside the checks (which must pass before
    // anything is removed) rather than after them.
    let send_as_listing = async {
        match scope.contains(&PermissionType::SendAs) {
            true => Some(tenant.exchange.send_as_entries().await),
            false => None,
        }
    };
    // The scan shards need only the checks and the mailbox list: the Send As listing goes on
    // while they are cut and queued.
    tokio::pin!(send_as_listing);
    let mut listed = None;
    let (checked, census) = {
        let head = async {
            tokio::join!(
                preflight(tenant, notify, &subject),
                Census::discover(tenant, org, &run.request)
            )
        };
        tokio::pin!(head);
        loop {
            tokio::select! {
                both = &mut head => break both,
                listing = &mut send_as_listing, if listed.is_none() => listed = Some(listing),
            }
        }
    };
    let preflight_errors = match checked.verdict(is_contain(&run.request)) {
        Verdict::Proceed { errors } => errors,
        Verdict::Retry(e) => return Err(e.into()),
        Verdict::Refuse(failure) => {
            warn!(code = failure.code.as_str(), field = ?failure.field, reason = %failure.message, "refused before removal");
            return fail_and_notify(store, notify, org, run, failure).await;
        }
    };
    if !preflight_errors.is_empty() {
        warn!(errors = ?preflight_errors, "contain run goes on despite problems found before removal");
    }
    let census = match census {
        Ok(census) => census,
        Err(e) => return scan_failed(store, notify, org, run, e).await,
    };
    let per_mailbox = scope.iter().any(|t| t.is_per_mailbox());
    // Folders deeper than the well-known ones that the permission index lists for the user
    // are read too (the sweep read every folder); `all_folders` reads them all anyway.
    let snapshot_folders = match (
        scope.contains(&PermissionType::Folder) && !run.request.all_folders,
        store.permission_index(),
    ) {
        (true, Some(index)) => snapshot_folders(index, org, &census.user, run.created_at).await,
        _ => SnapshotFolders::default(),
    };
    let shards: Vec<ScanShard> = if per_mailbox {
        let mailboxes = census
            .scanned_mailboxes()
            .into_iter()
            .map(|m| ShardMailbox {
                position: 0,
                upn: m.user_principal_name.clone(),
                address: m.address(),
                display_name: m.display_name.clone(),
                recipient_type: m.recipient_type_details.clone(),
                rights: None,
                folders: snapshot_folders
                    .by_mailbox
                    .get(&m.address())
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect();
        ScanShard::cut(mailboxes, shard_size())
    } else {
        Vec::new()
    };
    info!(
        shards = shards.len(),
        mailboxes = census.scanned_mailboxes().len(),
        "tenant listed"
    );
    store
        .begin_scan(run_id, &census.user, shards.len() as u32 + 1)
        .await?;
    // The shards start at once: the tenant-wide part (the rest of the Send As listing, the
    // lookups by trustee and DN) is read beside them, as shard 0.
    let messages: Vec<StepMessage> = shards
        .into_iter()
        .map(|shard| StepMessage::new(run_id.clone(), Step::Scan(shard)))
        .collect();
    queue.send_all(messages).await?;
    let send_as_listing = match listed {
        Some(listing) => listing,
        None => send_as_listing.await,
    };
    let found = match tenant_wide(tenant, &census, &scope, send_as_listing).await {
        Ok(found) => found,
        Err(e) => return scan_failed(store, notify, org, run, ScanError::Remote(e)).await,
    };
    info!(
        tenant_wide_grants = found.grants.len(),
        "tenant-wide lookups read"
    );
    let items = items_of(
        run,
        found.grants.into_iter().enumerate().map(|(i, g)| {
            debug_assert!(i < SHARD_ITEM_SPAN as usize);
            (i as u32 + 1, g)
        }),
    );
    store.put_items(run_id, &items).await?;
    let mut not_checked = found.not_checked;
    not_checked.extend(
        PermissionType::ALL
            .into_iter()
            .filter(|t| !scope.contains(t))
            .map(|permission_type| NotChecked {
                permission_type,
                reason: NotCheckedReason::OutOfScope,
                detail: None,
            }),
    );
    let facts = ScanFacts {
        indirect_access: found.indirect,
        scan_errors: [preflight_errors, found.errors].concat(),
        not_checked,
        containment: None,
        unreadable: found.unreadable,
        folder_snapshot: snapshot_folders.snapshot,
        identity: None,
    };
    store.save_facts(run_id, &facts_part(0, 0), &facts).await?;
    finish_shard(store, queue, run, 0).await
}

/// A tenant that cannot be read now is retried; a request it cannot carry out fails the run.
async fn scan_failed(
    store: &dyn RunStore,
    notify: Notify<'_>,
    org: &OrgSettings,
    run: &Run,
    error: ScanError,
) -> Result<(), StepError> {
    match error {
        ScanError::Remote(e) if e.is_transient() => Err(e.into()),
        other => reject(store, notify, org, run, other).await,
    }
}

/// Fails a run that discovery cannot carry out, with the reason, and tells its ticket and
/// recipients.
async fn reject(
    store: &dyn RunStore,
    notify: Notify<'_>,
    org: &OrgSettings,
    run: &Run,
    error: ScanError,
) -> Result<(), StepError> {
    let failure = match error {
        ScanError::Rejected(failure) => {
            warn!(reason = %failure.message, "discovery rejected the run");
            failure
        }
        ScanError::Remote(e) => RunFailure::new(
            FailureCode::TenantError,
            None,
            format!("discovery failed: {e}"),
        ),
    };
    fail_and_notify(store, notify, org, run, failure).await
}
