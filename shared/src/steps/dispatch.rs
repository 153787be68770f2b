//! Routes a step message to its step, with the tenant clients of the run's company. Used by
//! the in-process engine and by the Lambda handlers alike.

use super::notify;
use super::scan_shard::give_up_shard;
use super::{discover, give_up, remove, scan_shard, verify, Delivery, RunContext};
use crate::error::StepError;
use crate::index::IndexBaseline;
use crate::messages::{Step, StepMessage, MESSAGE_VERSION};
use crate::model::{FailureCode, OrgSettings, PermissionType, Run, RunFailure, RunId};
use crate::ports::{
    BudgetWant, Connector, DelegateBaseline, NoBaseline, ProgressObserver, Queue, RunStore,
};
use tracing::{error, warn};

pub async fn dispatch(
    store: &dyn RunStore,
    queue: &dyn Queue,
    connector: &dyn Connector,
    progress: &dyn ProgressObserver,
    message: &StepMessage,
    delivery: &Delivery,
) -> Result<(), StepError> {
    if message.v != MESSAGE_VERSION {
        return Err(StepError::Permanent(format!(
            "message version {} is not supported (expected {MESSAGE_VERSION})",
            message.v
        )));
    }
    let run_id = &message.run_id;
    let run = store
        .get_run(run_id)
        .await?
        .ok_or_else(|| StepError::Permanent(format!("unknown run {run_id}")))?;
    let org = store
        .org_settings(&run.request.company_id)
        .await?
        .ok_or_else(|| {
            StepError::Permanent(format!(
                "no organization settings for company '{}'",
                run.request.company_id
            ))
        })?;
    if let Some(failure) = tenant_changed(&run, &org) {
        // Consumed, not retried: no try can make the tenants agree, and the run must not
        // verify or notify through the clients of a tenant it did not start in.
        error!(run_id = %run_id, company_id = %org.company_id, "the company's tenant changed since intake; run failed, no tenant call made");
        store.fail_run(run_id, &failure).await?;
        return Ok(());
    }
    let conns = connector.connect(&org).await?;
    connector
        .hold_budget(&org, delivery, budget_want(&message.step))
        .await?;
    let result = run_step(
        store, queue, &conns, &org, progress, &run, message, delivery,
    )
    .await;
    connector.return_budget(&org, delivery).await;
    result
}

/// The run's failure when the company's settings, reloaded for a step, name another tenant
/// than the one the run recorded at intake (a run from before tenants were recorded has none
/// to compare).
fn tenant_changed(run: &Run, org: &OrgSettings) -> Option<RunFailure> {
    let recorded = run.tenant_id.as_deref()?;
    if recorded.trim().eq_ignore_ascii_case(org.tenant_id.trim()) {
        return None;
    }
    Some(RunFailure::new(
        FailureCode::TenantChanged,
        Some("tenant_id"),
        format!(
            "company '{}' is now configured for tenant {}, but run {} started in tenant {recorded}; the run stops here and nothing more is read or changed in either tenant (start a new run for the new tenant)",
            org.company_id, org.tenant_id, run.run_id
        ),
    ))
}

/// What a step can keep busy: a shard one call per mailbox and service, a removal batch one
/// per item on the service of its permission type (at least one permit of each service, so
/// that no call goes out unleased), the listing and verification whatever the tenant allows.
fn budget_want(step: &Step) -> BudgetWant {
    match step {
        Step::Discover | Step::Verify => BudgetWant::ALL,
        Step::Scan(shard) => BudgetWant {
            exchange: shard.mailboxes.len().max(1),
            graph: shard.mailboxes.len().max(1),
        },
        Step::Victim(_) => BudgetWant {
            exchange: 2,
            graph: 1,
        },
        Step::Remove(batch) => {
            let n = batch.item_ids.len().max(1);
            match batch.permission {
                PermissionType::Calendar => BudgetWant {
                    exchange: 1,
                    graph: n,
                },
                _ => BudgetWant {
                    exchange: n,
                    graph: 1,
                },
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_step(
    store: &dyn RunStore,
    queue: &dyn Queue,
    conns: &crate::ports::Connections,
    org: &OrgSettings,
    progress: &dyn ProgressObserver,
    run: &Run,
    message: &StepMessage,
    delivery: &Delivery,
) -> Result<(), StepError> {
    let cx = RunContext {
        store,
        queue,
        tenant: conns.tenant(),
        notify: conns.notify(),
        org,
        run,
        shard_size: conns.shard_size.as_ref(),
    };
    match &message.step {
        Step::Discover => discover(cx, delivery).await,
        Step::Scan(shard) => scan_shard(cx, progress, shard, delivery).await,
        Step::Remove(batch) => remove(cx, progress, batch, delivery.deadline).await,
        Step::Victim(batch) => {
            // Recent delegates are those the index's month-old snapshot does not have.
            let baseline: Box<dyn DelegateBaseline + '_> = match store.permission_index() {
                Some(index) => Box::new(IndexBaseline(index)),
                None => Box::new(NoBaseline),
            };
            super::victim::contain(store, queue, cx.tenant, baseline.as_ref(), run, batch).await
        }
        Step::Verify => verify(cx, delivery).await,
    }
}

/// The last delivery of a message failed. A removal batch is given up (its unfinished items
/// fail with the reason and the batch is counted, so the run still verifies and reports what
/// was removed); any other step fails its run with the reason. Nothing is silently dropped.
pub async fn abandon(
    store: &dyn RunStore,
    queue: &dyn Queue,
    connector: &dyn Connector,
    run_id: &RunId,
    step: Option<&Step>,
    reason: &str,
) {
    warn!(run_id = %run_id, %reason, "message abandoned");
    let outcome = match step {
        Some(Step::Remove(batch)) => give_up(store, queue, run_id, batch, reason).await,
        Some(Step::Scan(shard)) => give_up_shard(store, queue, run_id, shard, reason).await,
        Some(Step::Victim(batch)) => {
            super::victim::give_up(store, queue, run_id, batch, reason).await
        }
        _ => fail_and_notify(store, connector, run_id, reason).await,
    };
    if let Err(e) = outcome {
        error!(run_id = %run_id, error = %e, "could not record the abandoned message on its run");
    }
}

/// Fails the run with `reason` and tells its ticket and requestor so.
async fn fail_and_notify(
    store: &dyn RunStore,
    connector: &dyn Connector,
    run_id: &RunId,
    reason: &str,
) -> Result<(), StepError> {
    let Some(run) = store.get_run(run_id).await? else {
        return Ok(());
    };
    let failure = RunFailure::new(FailureCode::Internal, None, reason);
    fail_connected(store, connector, &run, failure).await
}

/// Fails `run` with `failure` after telling its ticket and recipients, with the clients of
/// its company; when there are none, the run's failure says that it could not be told.
pub(crate) async fn fail_connected(
    store: &dyn RunStore,
    connector: &dyn Connector,
    run: &Run,
    mut failure: RunFailure,
) -> Result<(), StepError> {
    let why = match store.org_settings(&run.request.company_id).await? {
        Some(org) if tenant_changed(run, &org).is_some() => format!(
            "the failure was not notified: company '{}' is now configured for another tenant than the run's",
            org.company_id
        ),
        Some(org) => match connector.connect(&org).await {
            Ok(conns) => {
                return notify::fail_and_notify(store, conns.notify(), &org, run, failure).await
            }
            Err(e) => {
                format!("the failure could not be notified: no clients for the PSA and mail: {e}")
            }
        },
        None => format!(
            "the failure could not be notified: no organization settings for company '{}'",
            run.request.company_id
        ),
    };
    error!(run_id = %run.run_id, problem = %why, "the failure of a run could not be notified");
    failure.notification_errors.push(why);
    store.fail_run(&run.run_id, &failure).await?;
    Ok(())
}
