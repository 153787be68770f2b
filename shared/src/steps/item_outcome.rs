//! What became of one item of a run, written down: its audit record and its status. Every run
//! kind's writes (a removal, a restore, the containment phase, a given-up batch) end here.

use super::audit_trail::ChainWriter;
use crate::error::{RemoteError, StepError};
use crate::model::{AuditPhase, AuditRecord, AuditResult, ItemStatus, PlanItem, Run, RunKind};
use crate::ports::RunStore;
use chrono::Utc;

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
