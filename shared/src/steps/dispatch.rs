//! Routes a step message to its step, with the tenant clients of the run's company. Used by
//! the in-process engine and by the Lambda handlers alike.

use super::{discover, give_up, remove, verify, Notify, ProgressObserver, Tenant};
use crate::config::Recheck;
use crate::error::StepError;
use crate::messages::{Step, StepMessage, MESSAGE_VERSION};
use crate::model::{FailureCode, OrgSettings, RunFailure, RunId};
use crate::ports::{Directory, Exchange, Mailer, Psa, Queue, RunStore};
use async_trait::async_trait;
use std::sync::Arc;
use tracing::{error, warn};

/// The external systems of one company.
#[derive(Clone)]
pub struct Connections {
    pub directory: Arc<dyn Directory>,
    pub exchange: Arc<dyn Exchange>,
    pub psa: Arc<dyn Psa>,
    pub mailer: Arc<dyn Mailer>,
    pub recheck: Recheck,
}

impl Connections {
    pub fn tenant(&self) -> Tenant<'_> {
        Tenant {
            directory: self.directory.as_ref(),
            exchange: self.exchange.as_ref(),
            recheck: self.recheck,
        }
    }

    pub fn notify(&self) -> Notify<'_> {
        Notify {
            psa: self.psa.as_ref(),
            mailer: self.mailer.as_ref(),
        }
    }
}

/// Builds (or reuses) the clients for a company's tenant and PSA.
#[async_trait]
pub trait Connector: Send + Sync {
    async fn connect(&self, org: &OrgSettings) -> Result<Connections, StepError>;
}

pub async fn dispatch(
    store: &dyn RunStore,
    queue: &dyn Queue,
    connector: &dyn Connector,
    progress: &dyn ProgressObserver,
    message: &StepMessage,
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
    let conns = connector.connect(&org).await?;
    match &message.step {
        Step::Discover => discover(store, queue, conns.tenant(), &org, progress, &run).await,
        Step::Remove(batch) => remove(store, queue, conns.tenant(), progress, &run, batch).await,
        Step::Verify => verify(store, conns.tenant(), conns.notify(), &org, &run).await,
    }
}

/// The last delivery of a message failed. A removal batch is given up (its unfinished items
/// fail with the reason and the batch is counted, so the run still verifies and reports what
/// was removed); any other step fails its run with the reason. Nothing is silently dropped.
pub async fn abandon(
    store: &dyn RunStore,
    queue: &dyn Queue,
    run_id: &RunId,
    step: Option<&Step>,
    reason: &str,
) {
    warn!(run_id = %run_id, %reason, "message abandoned");
    let outcome = match step {
        Some(Step::Remove(batch)) => give_up(store, queue, run_id, batch, reason).await,
        _ => {
            let failure = RunFailure {
                code: FailureCode::Internal,
                field: None,
                message: reason.to_string(),
            };
            store
                .fail_run(run_id, &failure)
                .await
                .map_err(StepError::from)
        }
    };
    if let Err(e) = outcome {
        error!(run_id = %run_id, error = %e, "could not record the abandoned message on its run");
    }
}
