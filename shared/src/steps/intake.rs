//! Step 1: validate a request and create its run.

use crate::error::{QueueError, StoreError};
use crate::messages::{Step, StepMessage};
use crate::model::{InvalidRequest, PsaKind, RevocationRequest, Run, RunFailure, FailureCode};
use crate::ports::{Queue, RunStore};
use serde_json::Value;
use tracing::info;

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Bad input: nothing was created.
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The run was created but could not be started; it has been marked failed.
    #[error("run {run_id} could not be queued: {source}")]
    Queue { run_id: String, source: QueueError },
}

/// Validates `body` completely (no tenant call is made), then creates the run and queues
/// discovery. Bad input creates nothing.
pub async fn intake(store: &dyn RunStore, queue: &dyn Queue, body: &Value) -> Result<Run, IntakeError> {
    let request = RevocationRequest::from_json(body)?;
    let org = match store.org_settings(&request.company_id).await? {
        Some(org) => org,
        None => {
            let known = store.company_ids().await?;
            return Err(InvalidRequest::new(
                "company_id",
                format!("unknown company '{}'; configured companies: {}", request.company_id, known.join(", ")),
            )
            .into());
        }
    };
    if let Some(ticket) = &request.ticket_id {
        match org.psa_kind {
            PsaKind::Connectwise if !ticket.chars().all(|c| c.is_ascii_digit()) => {
                return Err(InvalidRequest::new(
                    "ticket_id",
                    format!("'{ticket}' is not a ConnectWise ticket id; expected digits only, e.g. 48213"),
                )
                .into())
            }
            PsaKind::Connectwise => {}
        }
    }
    let run = Run::new(request);
    store.create_run(&run).await?;
    if let Err(source) = queue.send(StepMessage::new(run.run_id.clone(), Step::Discover)).await {
        let failure = RunFailure { code: FailureCode::Internal, field: None, message: format!("could not queue discovery: {source}") };
        store.fail_run(&run.run_id, &failure).await?;
        return Err(IntakeError::Queue { run_id: run.run_id.to_string(), source });
    }
    info!(run_id = %run.run_id, company_id = %run.request.company_id, dry_run = run.request.dry_run, "run accepted");
    Ok(run)
}
