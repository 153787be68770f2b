//! Step 1: validate a request and create its run.

use crate::error::{QueueError, StoreError};
use crate::messages::{Step, StepMessage};
use crate::model::{FailureCode, InvalidRequest, PsaKind, RevocationRequest, Run, RunFailure};
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

/// What intake did with a request.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub run: Run,
    /// False when an idempotency key matched: `run` is the existing one and nothing was queued.
    pub created: bool,
}

/// Validates `body` completely (no tenant call is made), then creates the run and queues
/// discovery. Bad input creates nothing. The same request again within the idempotency window
/// — by `idempotency_key`, or by the same user, company, ticket and mode — returns the run
/// already made.
pub async fn intake(
    store: &dyn RunStore,
    queue: &dyn Queue,
    body: &Value,
    idempotency_key: Option<&str>,
) -> Result<Accepted, IntakeError> {
    let request = RevocationRequest::from_json(body)?;
    let org = match store.org_settings(&request.company_id).await? {
        Some(org) => org,
        None => {
            let known = store.company_ids().await?;
            return Err(InvalidRequest::new(
                "company_id",
                format!(
                    "unknown company '{}'; configured companies: {}",
                    request.company_id,
                    known.join(", ")
                ),
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
    let r = &run.request;
    let natural_key = format!(
        "request:{}:{}:{}:{}",
        r.company_id,
        r.user_email,
        r.ticket_id.as_deref().unwrap_or("-"),
        if r.dry_run { "dry" } else { "live" }
    );
    for key in idempotency_key
        .map(|k| format!("key:{k}"))
        .into_iter()
        .chain([natural_key])
    {
        if let Some(existing) = store.reserve_idempotency_key(&key, &run.run_id).await? {
            if let Some(existing) = store.get_run(&existing).await? {
                info!(run_id = %existing.run_id, "idempotent repeat; returning the existing run");
                return Ok(Accepted {
                    run: existing,
                    created: false,
                });
            }
        }
    }
    store.create_run(&run).await?;
    if let Err(source) = queue
        .send(StepMessage::new(run.run_id.clone(), Step::Discover))
        .await
    {
        let failure = RunFailure {
            code: FailureCode::Internal,
            field: None,
            message: format!("could not queue discovery: {source}"),
        };
        store.fail_run(&run.run_id, &failure).await?;
        return Err(IntakeError::Queue {
            run_id: run.run_id.to_string(),
            source,
        });
    }
    info!(run_id = %run.run_id, company_id = %run.request.company_id, dry_run = run.request.dry_run, "run accepted");
    Ok(Accepted { run, created: true })
}
