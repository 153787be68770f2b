//! Step 2: validate the user and find every grant they hold on other mailboxes.

use super::plan::{batch_count, items, next_messages};
use super::{claim, ProgressObserver, Tenant};
use crate::error::StepError;
use crate::model::{
    FailureCode, NotChecked, NotCheckedReason, OrgSettings, PermissionType, Run, RunFailure,
    RunStatus,
};
use crate::ports::{Plan, Queue, RunStore};
use crate::scan::{scan, Census, ScanError};
use tracing::{info, info_span, warn, Instrument};

/// Runs discovery for `run` and queues its removal batches (or verification when there is
/// nothing to remove, or on a dry run). Safe to redeliver: discovery only reads the tenant, and
/// a run already past discovery has its batches queued again (removal is idempotent).
pub async fn discover(
    store: &dyn RunStore,
    queue: &dyn Queue,
    tenant: Tenant<'_>,
    org: &OrgSettings,
    progress: &dyn ProgressObserver,
    run: &Run,
) -> Result<(), StepError> {
    let run_id = &run.run_id;
    let span = info_span!("discover", run_id = %run_id, company_id = %run.request.company_id);
    async {
        if run.status == RunStatus::Removing {
            // Redelivery after the plan was saved: its messages may not all have been sent.
            let items = store.items(run_id).await?;
            queue.send_all(next_messages(run, &items)).await?;
            return Ok(());
        }
        if !claim(store, run, RunStatus::Accepted, RunStatus::Discovering).await? {
            info!(
                status = run.status.as_str(),
                "discovery already under way or done; message ignored"
            );
            return Ok(());
        }
        let plan = match plan(tenant, org, run, progress).await {
            Ok(plan) => plan,
            Err(ScanError::Remote(e)) if e.is_transient() => {
                // Hand the run back so that the redelivered message can claim it again.
                store
                    .transition(run_id, &[RunStatus::Discovering], RunStatus::Accepted)
                    .await?;
                return Err(e.into());
            }
            Err(other) => return reject(store, run, other).await,
        };
        info!(
            items = plan.items.len(),
            indirect = plan.indirect_access.len(),
            batches = plan.batches_total,
            "plan ready"
        );
        if let Err(e) = store.save_plan(run_id, &plan).await {
            store
                .transition(run_id, &[RunStatus::Discovering], RunStatus::Accepted)
                .await?;
            return Err(e.into());
        }
        queue.send_all(next_messages(run, &plan.items)).await?;
        Ok(())
    }
    .instrument(span)
    .await
}

/// Fails a run that discovery cannot carry out, with the reason.
async fn reject(store: &dyn RunStore, run: &Run, error: ScanError) -> Result<(), StepError> {
    let failure = match error {
        ScanError::Rejected(failure) => {
            warn!(reason = %failure.message, "discovery rejected the run");
            failure
        }
        ScanError::Remote(e) => RunFailure {
            code: FailureCode::TenantError,
            field: None,
            message: format!("discovery failed: {e}"),
        },
    };
    store.fail_run(&run.run_id, &failure).await?;
    Ok(())
}

async fn plan(
    tenant: Tenant<'_>,
    org: &OrgSettings,
    run: &Run,
    progress: &dyn ProgressObserver,
) -> Result<Plan, ScanError> {
    let census = Census::discover(tenant, org, &run.request).await?;
    let scope = run
        .request
        .effective_scope(&org.m365_permission_removal_scope);
    let findings = scan(tenant, &census, &scope, None, progress).await?;
    let items = items(run, findings.grants);
    let batches_total = batch_count(run, &items);
    let mut not_checked = findings.not_checked;
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
    Ok(Plan {
        user: census.user,
        items,
        indirect_access: findings.indirect,
        batches_total,
        scan_errors: findings.errors,
        not_checked,
    })
}
