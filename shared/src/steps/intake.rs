//! Step 1: validate a request and create its run.

use crate::error::{QueueError, StoreError};
use crate::messages::{Step, StepMessage};
use crate::model::{InvalidRequest, RevocationRequest, Run, RunStatus};
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
    /// The run was created but discovery could not be queued: it stays accepted, and the same
    /// request again (same idempotency key) queues it.
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
    if let Some(error) = request
        .ticket_id
        .as_deref()
        .and_then(|t| org.psa_kind.ticket_id_error(t))
    {
        return Err(InvalidRequest::new("ticket_id", error).into());
    }
    let run = Run::new(request);
    for key in idempotency_keys(&run.request, idempotency_key) {
        let Some(holder) = store.reserve_idempotency_key(&key, &run.run_id).await? else {
            continue;
        };
        let Some(existing) = store.get_run(&holder).await? else {
            // Another delivery reserved the key and is creating its run right now.
            return Err(IntakeError::Store(StoreError::backend(format!(
                "the same request is being accepted as run {holder}; retry shortly"
            ))));
        };
        info!(run_id = %existing.run_id, "idempotent repeat; returning the existing run");
        if existing.status == RunStatus::Accepted {
            // The first try may have died before queueing discovery; discovery's claim makes a
            // second message harmless.
            queue_discovery(queue, &existing).await?;
        }
        return Ok(Accepted {
            run: existing,
            created: false,
        });
    }
    store.create_run(&run).await?;
    // If queueing fails the run stays accepted; the retried request finds it by its key and
    // queues discovery then.
    queue_discovery(queue, &run).await?;
    info!(run_id = %run.run_id, company_id = %run.request.company_id, dry_run = run.request.dry_run, "run accepted");
    Ok(Accepted { run, created: true })
}

/// The caller's key, if any, and the request's own: the same user, company, ticket, scope and
/// mode within the window is the same request.
fn idempotency_keys(r: &RevocationRequest, caller_key: Option<&str>) -> Vec<String> {
    let types = r
        .permission_types
        .as_ref()
        .map(|t| t.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(","))
        .unwrap_or_else(|| "org-default".into());
    let natural = format!(
        "request:{}:{}:{}:{}:{}:{}:{}",
        r.company_id,
        r.user_email,
        r.ticket_id.as_deref().unwrap_or("-"),
        types,
        r.target_mailboxes.join(","),
        if r.remove_from_shared {
            "shared"
        } else {
            "keep-shared"
        },
        if r.dry_run { "dry" } else { "live" }
    );
    caller_key
        .map(|k| format!("key:{k}"))
        .into_iter()
        .chain([natural])
        .collect()
}

async fn queue_discovery(queue: &dyn Queue, run: &Run) -> Result<(), IntakeError> {
    queue
        .send(StepMessage::new(run.run_id.clone(), Step::Discover))
        .await
        .map_err(|source| IntakeError::Queue {
            run_id: run.run_id.to_string(),
            source,
        })
}
