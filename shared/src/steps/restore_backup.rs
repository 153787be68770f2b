//! A backup restore puts a mailbox's grants back as a snapshot of the permission index held
//! them — the "someone wiped the shared mailbox's permissions" case. It is a restore run like
//! the restore of a run (same batches, audit, report, note and email); what differs is where
//! its grants come from (the snapshot, each with its own trustee) and how each is read back
//! (by that trustee, not by one run's user).

use super::intake::company_for;
use super::intake::{queue_discovery, Accepted, IntakeError};
use super::reread::Reread;
use super::restore::{restore_request, revoked_after, LaterRevocations};
use super::stage_end::{facts_part, finish_shard};
use super::RunContext;
use crate::error::StepError;
use crate::model::{
    BackupRestoreRequest, Grant, IndexHits, InvalidRequest, ItemId, ItemStatus, PermissionType,
    PlanItem, ResolvedUser, RestoreOf, RevocationRequest, Run, RunId, SnapshotRef, SnapshotSource,
    Trustee, TrusteeKind, Verification,
};
use crate::ports::{PermissionIndex, Queue, RunStore, ScanFacts};
use crate::restore::read_grant;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use tracing::info;

/// Validates a backup restore, checks that `principal` may act for its company, finds the
/// snapshot and its grants on the mailbox, then creates the restore run and queues its
/// planning. Refused (nothing created): an unknown company, no snapshot at `as_of`, a snapshot
/// holding nothing on the mailbox.
pub async fn intake_backup(
    store: &dyn RunStore,
    queue: &dyn Queue,
    principal: Option<&str>,
    body: &Value,
) -> Result<Accepted, IntakeError> {
    let asked = BackupRestoreRequest::from_json(body)?;
    let company = &asked.company_id;
    let org = company_for(
        store,
        company,
        principal,
        Some(crate::authorize::Power::Restore),
        asked.ticket_id.as_deref(),
    )
    .await?;
    let index = index_of(store)?;
    let Some(snapshot) = index.find_snapshot(company, &asked.as_of).await? else {
        let kept = index.snapshots(company).await?;
        return Err(IntakeError::Conflict(InvalidRequest::new(
            "as_of",
            no_snapshot(company, &asked.as_of, &kept),
        )));
    };
    let hits = index.held_on(&snapshot.snapshot_id, &asked.mailbox).await?;
    if hits.grants.is_empty() {
        return Err(IntakeError::Conflict(InvalidRequest::new(
            "mailbox",
            format!(
                "snapshot {} of company '{company}' holds no grant on {}: there is nothing to put back (is the address the mailbox's primary SMTP address?)",
                snapshot.snapshot_id, asked.mailbox
            ),
        )));
    }
    let base = RevocationRequest::from_json(&json!({
        "user_email": asked.mailbox,
        "company_id": company,
        "ticket_id": asked.ticket_id,
    }))?;
    let types =
        (asked.restore.permission_types.clone()).unwrap_or_else(|| PermissionType::ALL.to_vec());
    let mailboxes = vec![asked.mailbox.clone()];
    let request = restore_request(base, &asked.restore, types, mailboxes, principal);
    let mut run = Run::new(request);
    run.tenant_id = Some(org.tenant_id.clone());
    run.restore = Some(RestoreOf {
        restored_from: RunId(snapshot.snapshot_id.clone()),
        include_revoked: asked.restore.include_revoked,
        include_victim_mailbox: false,
        asked_types: asked.restore.permission_types.clone(),
        snapshot: Some(SnapshotSource {
            snapshot_id: snapshot.snapshot_id.clone(),
            taken_at: snapshot.taken_at,
            mailbox: asked.mailbox.clone(),
        }),
    });
    store.create_run(&run).await?;
    queue_discovery(queue, &run).await?;
    info!(run_id = %run.run_id, snapshot_id = %snapshot.snapshot_id, mailbox = %asked.mailbox, principal = ?principal, dry_run = run.request.dry_run, "backup restore accepted");
    Ok(Accepted { run, created: true })
}

fn index_of(store: &dyn RunStore) -> Result<&dyn PermissionIndex, IntakeError> {
    store.permission_index().ok_or_else(|| {
        IntakeError::Conflict(InvalidRequest::new(
            "as_of",
            "this deployment keeps no permission index: there is no snapshot to restore from",
        ))
    })
}

fn no_snapshot(
    company: &str,
    which: &SnapshotRef,
    kept: &[crate::model::SnapshotSummary],
) -> String {
    let asked = match which {
        SnapshotRef::Newest => "newest".to_string(),
        SnapshotRef::Id(id) => format!("with id {id}"),
        SnapshotRef::AsOf(t) => format!("taken at or before {}", t.format("%Y-%m-%d %H:%M:%S UTC")),
    };
    let kept = match kept {
        [] => format!(
            "company '{company}' has no snapshot (run `revoke365 sweep --company-id {company}`)"
        ),
        some => format!(
            "snapshots kept: {}",
            some.iter()
                .map(|s| format!(
                    "{} ({})",
                    s.snapshot_id,
                    s.taken_at.format("%Y-%m-%d %H:%M UTC")
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!("no snapshot of company '{company}' {asked}; {kept}")
}

/// The trustees of a backup restore, by the name its items give them (lowercase).
pub(crate) struct BackupTrustees(BTreeMap<String, ResolvedUser>);

impl BackupTrustees {
    pub(crate) fn user_of(&self, g: &Grant) -> Option<&ResolvedUser> {
        self.0.get(&g.trustee.to_ascii_lowercase())
    }
}

fn snapshot_of(run: &Run) -> Option<&SnapshotSource> {
    run.restore.as_ref().and_then(|r| r.snapshot.as_ref())
}

async fn snapshot_hits(store: &dyn RunStore, src: &SnapshotSource) -> Result<IndexHits, StepError> {
    let index = store
        .permission_index()
        .ok_or_else(|| StepError::Permanent("this store keeps no permission index".into()))?;
    Ok(index.held_on(&src.snapshot_id, &src.mailbox).await?)
}

/// The trustees a backup restore's reads match with (none for any other run).
pub(crate) async fn trustees(store: &dyn RunStore, run: &Run) -> Result<BackupTrustees, StepError> {
    let Some(src) = snapshot_of(run) else {
        return Ok(BackupTrustees(BTreeMap::new()));
    };
    let hits = snapshot_hits(store, src).await?;
    Ok(BackupTrustees(
        hits.trustees
            .iter()
            .map(|t| (t.name().to_ascii_lowercase(), t.as_user()))
            .collect(),
    ))
}

/// Discovery of a backup restore: the snapshot's grants on the mailbox, narrowed to the
/// request's types, stored as the run's items. Skipped: grants of trustees the snapshot
/// already showed as gone (an orphaned SID, a name nothing resolved to: there is no one to
/// give them back to) and, unless the request includes them, grants a revocation of their
/// trustee after the snapshot removed.
pub(crate) async fn plan(cx: RunContext<'_>, of: &RestoreOf) -> Result<(), StepError> {
    let RunContext {
        store, queue, run, ..
    } = cx;
    let src = of
        .snapshot
        .as_ref()
        .ok_or_else(|| StepError::Permanent(format!("run {} restores no snapshot", run.run_id)))?;
    let IndexHits { trustees, grants } = snapshot_hits(store, src).await?;
    let by_id: BTreeMap<&str, &Trustee> = trustees
        .iter()
        .map(|t| (t.trustee_id.as_str(), t))
        .collect();
    let types = run.request.permission_types.clone().unwrap_or_default();
    let mut revoked: BTreeMap<&str, LaterRevocations> = BTreeMap::new();
    let mut items = Vec::new();
    for g in grants.iter().filter(|g| types.contains(&g.right)) {
        let Some(t) = by_id.get(g.trustee_id.as_str()) else {
            continue;
        };
        let grant = g.to_grant(t.name());
        let status = if let Some(reason) = not_restorable(t, g) {
            ItemStatus::Skipped { reason }
        } else {
            let why = match (of.include_revoked, revoked.get(t.trustee_id.as_str())) {
                (true, _) => None,
                (false, Some(known)) => known.why(&grant),
                (false, None) => {
                    let later = revoked_since(store, run, src, t).await?;
                    let why = later.why(&grant);
                    revoked.insert(&t.trustee_id, later);
                    why
                }
            };
            match why {
                Some(reason) => ItemStatus::Skipped { reason },
                None => ItemStatus::Pending,
            }
        };
        items.push(PlanItem {
            id: items.len() as ItemId + 1,
            grant,
            status,
        });
    }
    info!(run_id = %run.run_id, snapshot_id = %src.snapshot_id, mailbox = %src.mailbox, grants = items.len(), "backup restore planned");
    // A backup restore acts on a mailbox, not on one user: the mailbox is the run's subject.
    let subject = ResolvedUser::unresolved(&src.mailbox);
    store.begin_scan(&run.run_id, &subject, 1).await?;
    store.put_items(&run.run_id, &items).await?;
    store
        .save_facts(&run.run_id, &facts_part(0, 0), &ScanFacts::default())
        .await?;
    finish_shard(store, queue, run, 0).await
}

/// Why `g` of `t` is not put back: its trustee was already gone when the snapshot was taken
/// (an orphaned SID, a name nothing resolved to: there is no one to give it to), or it is Send
/// on Behalf of a trustee the snapshot has no distinguished name for (it could not be read
/// back, so it could not be told whether it is there). An external address can be given a
/// calendar again.
fn not_restorable(t: &Trustee, g: &crate::model::IndexedGrant) -> Option<String> {
    match t.kind {
        TrusteeKind::OrphanedSid | TrusteeKind::Unresolved => Some(format!(
            "the snapshot shows this trustee as {} ({}): there is no one to give the grant back to",
            match t.kind {
                TrusteeKind::OrphanedSid => "an orphaned SID",
                _ => "a name nothing resolves to",
            },
            g.trustee_as_shown
        )),
        _ if g.right == PermissionType::SendOnBehalf && t.distinguished_name.is_none() => {
            Some(format!(
                "Send on Behalf for {} cannot be read back (the snapshot has no distinguished name for it); add it by hand if it is missing",
                t.name()
            ))
        }
        _ => None,
    }
}

/// The revocations of `t` made after the snapshot (by any name the snapshot knew them by).
async fn revoked_since(
    store: &dyn RunStore,
    run: &Run,
    src: &SnapshotSource,
    t: &Trustee,
) -> Result<LaterRevocations, StepError> {
    let names = [t.upn.clone(), t.address.clone()].into_iter().flatten();
    revoked_after(store, &run.request.company_id, names, src.taken_at, None).await
}

/// The re-read of a backup restore: each grant put back (or found present), read by its own
/// trustee — and, while it does not show, read again `tenant.recheck` times a pause apart, as
/// verification does (a replica may not have seen the write yet). What it finds back is
/// listed in the verification, and its items are the re-read's `back`.
pub(crate) async fn reread(cx: RunContext<'_>, items: &[PlanItem]) -> Result<Reread, StepError> {
    let RunContext {
        store, tenant, run, ..
    } = cx;
    let trustees = trustees(store, run).await?;
    let put_back: Vec<&PlanItem> = items
        .iter()
        .filter(|i| matches!(i.status, ItemStatus::Restored | ItemStatus::AlreadyPresent))
        .collect();
    let reads = futures_util::future::join_all(put_back.iter().map(|item| {
        let user = trustees.user_of(&item.grant);
        async move {
            let Some(user) = user else {
                return (
                    item,
                    Err(format!(
                        "{} on {}: its trustee {} is not in the snapshot any more",
                        item.grant.right, item.grant.mailbox, item.grant.trustee
                    )),
                );
            };
            let mut rechecks = 0;
            loop {
                match read_grant(tenant, user, &item.grant).await {
                    Ok(Some(_)) => return (item, Ok(true)),
                    Ok(None) if rechecks < tenant.recheck.attempts => {
                        rechecks += 1;
                        tokio::time::sleep(tenant.recheck.delay).await;
                    }
                    Ok(None) => return (item, Ok(false)),
                    Err(e) => {
                        return (
                            item,
                            Err(format!(
                                "{} on {} for {} could not be re-read: {}",
                                item.grant.right,
                                item.grant.mailbox,
                                item.grant.trustee,
                                e.reason()
                            )),
                        )
                    }
                }
            }
        }
    }))
    .await;
    let (mut back, mut present, mut errors) = (Vec::new(), BTreeSet::new(), Vec::new());
    for (item, read) in reads {
        match read {
            Ok(true) => {
                present.insert(item.id);
                back.push(item.grant.clone());
            }
            Ok(false) => {}
            Err(e) => errors.push(e),
        }
    }
    Ok(Reread {
        verification: Verification::from_found(&back),
        errors,
        unproven: Vec::new(),
        read: true,
        back: Some(present),
    })
}
