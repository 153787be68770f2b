//! The revocation's act on one grant: its intent audited, the call that removes it, its
//! outcome audited — with what a lost answer, an interrupted delivery and a trustee shown
//! another way mean for whether this run removed it.

use super::audit_trail::ChainWriter;
use super::item_outcome::{audit, failed, record_outcome};
use super::Tenant;
use crate::error::{ErrorKind, RemoteError, StepError};
use crate::model::{
    AuditPhase, AuditRecord, AuditResult, Grant, ItemStatus, PermissionType, PlanItem, Run,
};
use crate::ports::{RemovalOutcome, RunStore};
use tracing::{info_span, warn, Instrument};

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
