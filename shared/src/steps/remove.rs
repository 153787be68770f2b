//! Steps 3–7: remove one batch of grants (one permission type, a few dozen mailboxes at most).

use super::audit_trail::ChainWriter;
use super::{Deadline, NoProgress, ProgressObserver, Tenant};
use crate::error::{ErrorKind, RemoteError, StepError};
use crate::messages::{RemovalBatch, Step, StepMessage};
use crate::model::{
    batch_chain, AuditPhase, AuditRecord, AuditResult, Grant, ItemStatus, PermissionType, PlanItem,
    Run, RunId, RunKind, RunStatus,
};
use crate::ports::{Queue, RemovalOutcome, RunStore};
use chrono::Utc;
use futures_util::future::join_all;
use tracing::{info, info_span, warn, Instrument};

/// Removes the batch's grants. Each grant's before-state is written to the audit trail before
/// the call and its outcome after, so a crash never loses what was removed. Items already
/// finished (a redelivered message) are not touched again. Each batch is counted once in the
/// run store, however often it is delivered; once all are counted, verification is queued.
pub async fn remove(
    store: &dyn RunStore,
    queue: &dyn Queue,
    tenant: Tenant<'_>,
    progress: &dyn ProgressObserver,
    run: &Run,
    batch: &RemovalBatch,
    deadline: Deadline,
) -> Result<(), StepError> {
    let RemovalBatch {
        batch_id,
        permission,
        item_ids,
    } = batch;
    let (batch_id, permission) = (*batch_id, *permission);
    let run_id = &run.run_id;
    let span = info_span!("remove", run_id = %run_id, company_id = %run.request.company_id, batch_id, permission = %permission);
    async {
        if run.status != RunStatus::Removing {
            info!(
                status = run.status.as_str(),
                "run is not removing; batch ignored"
            );
            return Ok(());
        }
        let batch_items = store.get_items(run_id, item_ids).await?;
        if batch_items.len() != item_ids.len()
            || batch_items.iter().any(|i| i.grant.right != permission)
        {
            return Err(StepError::Permanent(format!(
                "batch {batch_id} names items that are not {permission} items of run {run_id}"
            )));
        }
        if run.cancel_requested {
            return cancel_batch(store, queue, progress, run, batch_id, &batch_items).await;
        }
        // The batch's records form one chain, so concurrent batches never share a head.
        let trail = &ChainWriter::new(store, run_id, batch_chain(batch_id));
        let trustees = &super::restore_backup::trustees(store, run).await?;
        let results = join_all(batch_items.iter().filter(|i| !i.status.is_finished()).map(
            |item| async move {
                if deadline.near() || super::stop_requested() {
                    return Ok(false);
                }
                match run.kind() {
                    RunKind::Revoke => {
                        deadline
                            .bound(remove_item(store, trail, tenant, run, item))
                            .await
                    }
                    RunKind::Restore => {
                        let user = match trustees {
                            Some(backup) => backup.user_of(&item.grant),
                            None => run.user.as_ref(),
                        };
                        deadline
                            .bound(super::restore::restore_item(
                                store,
                                trail,
                                tenant,
                                run,
                                (item, user),
                            ))
                            .await
                    }
                }
            },
        ))
        .await;
        // Every item was tried; a transient failure leaves its item pending and the batch
        // uncounted, so the redelivered message tries it again.
        let started = results.into_iter().collect::<Result<Vec<bool>, _>>()?;
        if started.contains(&false) {
            // Not a batch-item failure (that would count toward the DLQ): the same batch again,
            // whose finished items are skipped.
            info!("deadline near; the rest of the batch continues in a new message");
            queue
                .send(StepMessage::new(
                    run_id.clone(),
                    Step::Remove(batch.clone()),
                ))
                .await?;
            return Ok(());
        }
        count_batch(store, queue, progress, run_id, batch_id).await
    }
    .instrument(span)
    .await
}

/// The caller cancelled the run (`POST /revocations/{id}/cancel`): the batch removes nothing;
/// its grants not yet removed are left in place, said so in the report, note and email.
async fn cancel_batch(
    store: &dyn RunStore,
    queue: &dyn Queue,
    progress: &dyn ProgressObserver,
    run: &Run,
    batch_id: u32,
    items: &[PlanItem],
) -> Result<(), StepError> {
    let left = items.iter().filter(|i| !i.status.is_finished());
    let mut n = 0;
    for item in left {
        store
            .set_item_status(
                &run.run_id,
                item.id,
                &ItemStatus::Skipped {
                    reason: CANCELLED_REASON.into(),
                },
            )
            .await?;
        n += 1;
    }
    info!(left_in_place = n, "run cancelled; batch not removed");
    count_batch(store, queue, progress, &run.run_id, batch_id).await
}

/// Why a cancelled run's grants were not removed.
pub const CANCELLED_REASON: &str = "not removed: the run was cancelled at the caller's request";

/// Counts a finished batch, and queues verification once every batch is counted.
pub(crate) async fn count_batch(
    store: &dyn RunStore,
    queue: &dyn Queue,
    progress: &dyn ProgressObserver,
    run_id: &RunId,
    batch_id: u32,
) -> Result<(), StepError> {
    let counted = store.complete_batch(run_id, batch_id).await?;
    progress.removal(counted.done as u64, counted.total as u64);
    if counted.all_done() {
        info!(
            newly_counted = counted.newly_counted,
            "every removal batch done; queueing verification"
        );
        queue
            .send(StepMessage::new(run_id.clone(), Step::Verify))
            .await?;
    }
    Ok(())
}

/// The last delivery of a removal batch failed: its unfinished items are marked failed with
/// the reason and the batch is counted, so verification still runs and reports them.
pub async fn give_up(
    store: &dyn RunStore,
    queue: &dyn Queue,
    run_id: &RunId,
    batch: &RemovalBatch,
    reason: &str,
) -> Result<(), StepError> {
    let Some(run) = store.get_run(run_id).await? else {
        return Err(StepError::Permanent(format!("unknown run {run_id}")));
    };
    if run.status != RunStatus::Removing {
        return Ok(());
    }
    let error = format!("removal abandoned: {reason}");
    let trail = ChainWriter::new(store, run_id, batch_chain(batch.batch_id));
    for item in store
        .get_items(run_id, &batch.item_ids)
        .await?
        .iter()
        .filter(|i| !i.status.is_finished())
    {
        warn!(run_id = %run_id, item = item.id, %error, "giving up on a grant");
        trail
            .append(audit(
                &run,
                item,
                AuditPhase::Outcome,
                Some(AuditResult::Failed),
                Some(error.clone()),
            ))
            .await?;
        store
            .set_item_status(
                run_id,
                item.id,
                &ItemStatus::Failed {
                    error: error.clone(),
                },
            )
            .await?;
    }
    count_batch(store, queue, &NoProgress, run_id, batch.batch_id).await
}

/// Removes one grant; `Ok(false)` when its call was not sent because the step's time was up
/// (it is left pending for the continuation).
pub(crate) async fn remove_item(
    store: &dyn RunStore,
    trail: &ChainWriter<'_>,
    tenant: Tenant<'_>,
    run: &Run,
    item: &PlanItem,
) -> Result<bool, StepError> {
    let g = &item.grant;
    let span = info_span!("remove_grant", mailbox = %g.mailbox, item = item.id);
    async {
        let Some((attempt, first_attempt)) = intent(trail, run, item).await? else {
            return Ok(false);
        };
        let outcome = match removal_call(tenant, g, &g.trustee).await {
            // The UPN found nothing, but the answer showed the trustee another way (a SID that
            // changed, DOMAIN\sam): remove the entry as it was shown.
            Ok(RemovalOutcome::AlreadyGone { warning }) => match g.trustee_as_shown.as_deref() {
                Some(shown) if g.right != PermissionType::Calendar => {
                    match removal_call(tenant, g, shown).await {
                        Err(e) if e.is_stopped() => Err(e),
                        Ok(RemovalOutcome::AlreadyGone { .. }) | Err(_) => {
                            Ok(RemovalOutcome::AlreadyGone { warning })
                        }
                        other => other,
                    }
                }
                _ => Ok(RemovalOutcome::AlreadyGone { warning }),
            },
            other => other,
        };
        let (status, result, detail) = match outcome {
            Ok(RemovalOutcome::Removed) => (ItemStatus::Removed, AuditResult::Removed, None),
            // The answer to the first attempt was lost (timeout, 5xx) but it took effect.
            Ok(RemovalOutcome::GoneOnRetry { warning }) => (
                ItemStatus::Removed,
                AuditResult::Removed,
                Some(format!(
                    "removed by an attempt whose answer was lost; the retry found nothing left ({warning})"
                )),
            ),
            // Gone because this run's interrupted attempt removed it: still ours to restore.
            Ok(RemovalOutcome::AlreadyGone { warning }) if !first_attempt => (
                ItemStatus::Removed,
                AuditResult::Removed,
                Some(format!(
                    "removed by an earlier, interrupted delivery of this batch ({warning})"
                )),
            ),
            Ok(RemovalOutcome::AlreadyGone { warning }) => (
                ItemStatus::AlreadyGone {
                    warning: warning.clone(),
                },
                AuditResult::AlreadyGone,
                Some(warning),
            ),
            // Refused before it was sent: said so, so that a later attempt finding the grant
            // gone does not take it for this one's doing. After an earlier attempt that may
            // have been sent, there is nothing to add: that one may still have removed it.
            Err(e) if e.is_stopped() => {
                if first_attempt {
                    let not_sent = attempt_record(run, item, AuditPhase::NotSent, attempt);
                    trail.append(not_sent).await?;
                }
                return Ok(false);
            }
            // Throttling and unreachable services: the batch waits and comes back. A failure
            // the service may get over gets one more try at a later delivery, not more.
            Err(e) if e.is_service_unavailable() || (e.is_transient() && first_attempt) => {
                warn!(error = %e, "removal failed for now; left pending for redelivery");
                return Err(e.into());
            }
            Err(e) => {
                warn!(error = %e, "removal failed");
                failed(&e)
            }
        };
        record_outcome(store, trail, run, item, AuditPhase::Outcome, (status, result, detail)).await
    }
    .instrument(span)
    .await
}

/// Writes the intent record of this attempt at `item`'s removal: `(attempt, nothing sent
/// before)`, or `None` when its turn came after the time to stop (nothing is written; the
/// grant is left for the continuation). An earlier delivery's intent without a "not sent"
/// record after it may have gone out before that delivery died: this attempt is then not
/// the first one sent.
async fn intent(
    trail: &ChainWriter<'_>,
    run: &Run,
    item: &PlanItem,
) -> Result<Option<(u32, bool)>, StepError> {
    let first = attempt_record(run, item, AuditPhase::Before, 1);
    let Some(written) = trail.append_in_time(first).await? else {
        return Ok(None);
    };
    if written {
        return Ok(Some((1, true)));
    }
    match trail.unsent_attempts(item.id).await? {
        0 => Ok(Some((1, false))),
        unsent => {
            let attempt = unsent + 1;
            let record = attempt_record(run, item, AuditPhase::Before, attempt);
            Ok(trail
                .append_in_time(record)
                .await?
                .map(|written| (attempt, written)))
        }
    }
}

/// Attempt `attempt`'s record in `phase` (its intent, or that its call was not sent).
fn attempt_record(run: &Run, item: &PlanItem, phase: AuditPhase, attempt: u32) -> AuditRecord {
    AuditRecord {
        record_id: AuditRecord::attempt_record_id(item.id, phase, attempt),
        detail: (phase == AuditPhase::NotSent)
            .then(|| "not sent: the time to stop came before the call's turn".to_string()),
        ..audit(run, item, phase, None, None)
    }
}

/// What an item's write ended as: its status, the audit result and the record's detail.
pub(crate) type Outcome = (ItemStatus, AuditResult, Option<String>);

/// A write that failed for good, with the service's reason.
pub(crate) fn failed(e: &RemoteError) -> Outcome {
    (
        ItemStatus::Failed { error: e.reason() },
        AuditResult::Failed,
        Some(e.reason()),
    )
}

/// Writes an item's outcome record (in `phase`), then its status; `Ok(true)`: it was done.
pub(crate) async fn record_outcome(
    store: &dyn RunStore,
    trail: &ChainWriter<'_>,
    run: &Run,
    item: &PlanItem,
    phase: AuditPhase,
    (status, result, detail): Outcome,
) -> Result<bool, StepError> {
    trail
        .append(audit(run, item, phase, Some(result), detail))
        .await?;
    store.set_item_status(&run.run_id, item.id, &status).await?;
    Ok(true)
}

/// The call that removes `g`, naming the trustee as `trustee`.
pub(crate) async fn removal_call(
    tenant: Tenant<'_>,
    g: &Grant,
    trustee: &str,
) -> Result<RemovalOutcome, RemoteError> {
    match g.right {
        PermissionType::FullAccess => {
            tenant
                .exchange
                .remove_full_access(&g.mailbox, trustee)
                .await
        }
        PermissionType::SendAs => {
            tenant
                .exchange
                .remove_send_as(&g.mailbox, g.recipient_type.as_deref(), trustee)
                .await
        }
        PermissionType::SendOnBehalf => {
            tenant
                .exchange
                .remove_send_on_behalf(&g.mailbox, trustee)
                .await
        }
        PermissionType::Calendar => match &g.calendar {
            Some(c) => {
                tenant
                    .directory
                    .remove_calendar_permission(g.graph_mailbox(), &c.permission_id)
                    .await
            }
            None => Err(RemoteError::new(
                "graph",
                format!("remove calendar permission on {}", g.mailbox),
                ErrorKind::InvalidInput {
                    field: "calendar",
                    message: "calendar grant without permission id".into(),
                },
            )),
        },
    }
}

pub(crate) fn audit(
    run: &Run,
    item: &PlanItem,
    phase: AuditPhase,
    result: Option<AuditResult>,
    detail: Option<String>,
) -> AuditRecord {
    AuditRecord {
        run_id: run.run_id.clone(),
        record_id: AuditRecord::item_record_id(item.id, phase, result),
        phase,
        recorded_at: Utc::now(),
        user_email: run.request.user_email.clone(),
        company_id: run.request.company_id.clone(),
        requested_by: run.request.requested_by.clone(),
        requested_by_principal: run.request.requested_by_principal.clone(),
        reason: run.request.reason.clone(),
        item_id: Some(item.id),
        grant: Some(item.grant.clone()),
        action: Some(format!(
            "{}_{}",
            match run.kind() {
                RunKind::Revoke => "remove",
                RunKind::Restore => "restore",
            },
            item.grant.right
        )),
        result,
        detail,
        verification: None,
        victim: None,
        chain: None,
        seq: None,
        prev_hash: None,
        hash: None,
    }
}
