//! Step 1: validate a request and create its run.

use crate::authorize::{authorize, log_refusal, Refused};
use crate::error::{QueueError, StoreError};
use crate::messages::{Step, StepMessage};
use crate::model::{InvalidRequest, OrgSettings, RevocationRequest, Run, RunFailure, RunStatus};
use crate::ports::{Connector, KeyHolder, Queue, RunStore};
use chrono::Utc;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::Duration;
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// Bad input: nothing was created.
    #[error(transparent)]
    Invalid(#[from] InvalidRequest),
    /// The caller is not on the company's allow-list: nothing was created.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The run named (to restore) does not exist.
    #[error("no run {0}")]
    RunNotFound(String),
    /// The request is valid but cannot be done with the run it names (HTTP 409, CLI exit 2):
    /// nothing was created.
    #[error(transparent)]
    Conflict(InvalidRequest),
    /// The tenant or the PSA says the request names a user or a ticket it cannot act on (not
    /// found, ambiguous, another company's): nothing was created.
    #[error("{}", .0.message)]
    Rejected(RunFailure),
    /// The caller's idempotency key was used before for a different request.
    #[error("Idempotency-Key '{key}' was already used for a different request (run {run_id}); use a new key for a new request")]
    KeyReused { key: String, run_id: String },
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

/// [`intake_as`] without a proven caller (tests and callers that have none).
pub async fn intake(
    store: &dyn RunStore,
    queue: &dyn Queue,
    body: &Value,
    idempotency_key: Option<&str>,
) -> Result<Accepted, IntakeError> {
    intake_as(store, queue, None, body, idempotency_key).await
}

/// Validates `body` completely (no tenant call is made), checks that `principal` may act for
/// the company, then creates the run (recording the principal) and queues discovery. Bad input
/// or a refused caller creates nothing. The same request again within the idempotency window
/// — by `idempotency_key`, or by the same user, company, ticket and mode — returns the run
/// already made. An unknown company is named without listing the configured ones: the answer
/// may go to a caller of another company.
pub async fn intake_as(
    store: &dyn RunStore,
    queue: &dyn Queue,
    principal: Option<&str>,
    body: &Value,
    idempotency_key: Option<&str>,
) -> Result<Accepted, IntakeError> {
    let mut request = parse_request(body, principal)?;
    request.requested_by_principal = principal.map(str::to_string);
    let org = company_for(
        store,
        &request.company_id,
        principal,
        None,
        request.ticket_id.as_deref(),
    )
    .await?;
    let mut run = Run::new(request);
    run.tenant_id = Some(org.tenant_id.clone());
    let fingerprint = fingerprint(&run.request);
    let mut reserved: Vec<String> = Vec::new();
    for (key, hashed) in idempotency_keys(&run.request, idempotency_key) {
        let holder = match store
            .reserve_idempotency_key(&hashed, &run.run_id, &fingerprint)
            .await
        {
            Ok(holder) => holder,
            Err(e) => {
                release(store, &reserved, &run).await;
                return Err(e.into());
            }
        };
        let KeyHolder::Held {
            run_id: holder,
            fingerprint: held_for,
            reserved_at,
        } = holder
        else {
            reserved.push(hashed);
            continue;
        };
        if key.is_caller && held_for != fingerprint {
            release(store, &reserved, &run).await;
            return Err(IntakeError::KeyReused {
                key: key.text,
                run_id: holder.to_string(),
            });
        }
        if let Some(existing) = store.get_run(&holder).await? {
            release(store, &reserved, &run).await;
            info!(run_id = %existing.run_id, "idempotent repeat; returning the existing run");
            if existing.status == RunStatus::Accepted {
                // The first try may have died before queueing discovery; discovery's claim makes
                // a second message harmless.
                queue_discovery(queue, &existing).await?;
            }
            return Ok(Accepted {
                run: existing,
                created: false,
            });
        }
        // Reserved, but its run never came: the delivery that reserved it died. After a
        // short while the key is taken over rather than blocking for the whole window.
        if Utc::now() - reserved_at > ORPHANED_KEY_AFTER
            && store
                .replace_idempotency_key(&hashed, &holder, &run.run_id, &fingerprint)
                .await?
        {
            warn!(orphan = %holder, "took over an idempotency key whose run was never created");
            reserved.push(hashed);
            continue;
        }
        release(store, &reserved, &run).await;
        return Err(IntakeError::Store(StoreError::backend(format!(
            "the same request is being accepted as run {holder}; retry shortly"
        ))));
    }
    if let Err(e) = store.create_run(&run).await {
        release(store, &reserved, &run).await;
        return Err(e.into());
    }
    // If queueing fails the run stays accepted; the retried request finds it by its key and
    // queues discovery then.
    queue_discovery(queue, &run).await?;
    info!(run_id = %run.run_id, company_id = %run.request.company_id, principal = ?principal, dry_run = run.request.dry_run, "run accepted");
    Ok(Accepted { run, created: true })
}

/// Parses and validates a request as `principal` may give it. `digest` silences the run's own
/// ticket note, email and post (its caller reports it with others): only Revoke365's access
/// review sets it, run by the CLI's operator (`os-user:`); from any trigger of a deployment
/// (API, webhook, queue, alert) it is refused, before any I/O.
fn parse_request(
    body: &Value,
    principal: Option<&str>,
) -> Result<RevocationRequest, InvalidRequest> {
    let request = RevocationRequest::from_json(body)?;
    let internal = principal.is_some_and(|p| p.starts_with("os-user:"));
    if request.digest && !internal {
        return Err(InvalidRequest::new(
            "digest",
            "is internal: only Revoke365's access review (revoke365 review --revoke) reports its runs in a digest; leave it out, the run reports itself",
        ));
    }
    Ok(request)
}

/// How long the API waits for the tenant and the PSA to confirm a request's user and ticket
/// before it accepts the request unchecked (the run checks them again).
pub const REQUEST_CHECK_TIME: Duration = Duration::from_secs(5);

/// For a caller who waits for the answer (the CLI, an API request): refuses, before any run
/// is made, a request whose user is not in the tenant or whose ticket is not the company's
/// (see [`check_request`](super::preflight::check_request)), so that a typo reaches no
/// customer. Bad input and a refused caller are refused as intake refuses them. A tenant or PSA
/// that cannot be reached, or (with `within`) does not answer in time, is not waited for: the
/// request goes on, and its run checks again.
pub async fn check_before_intake(
    store: &dyn RunStore,
    connector: &dyn Connector,
    principal: Option<&str>,
    body: &Value,
    within: Option<Duration>,
) -> Result<(), IntakeError> {
    let request = parse_request(body, principal)?;
    let org = company_for(
        store,
        &request.company_id,
        principal,
        None,
        request.ticket_id.as_deref(),
    )
    .await?;
    let check = async {
        match connector.connect(&org).await {
            Ok(connections) => {
                super::preflight::check_request(
                    connections.tenant(),
                    connections.notify(),
                    &org,
                    &request,
                )
                .await
            }
            Err(e) => {
                warn!(error = %e, "the request's user and ticket could not be checked before the run; the run checks them");
                Ok(())
            }
        }
    };
    let checked = match within {
        None => check.await,
        Some(limit) => tokio::time::timeout(limit, check).await.unwrap_or_else(|_| {
            info!(
                within_ms = limit.as_millis() as u64,
                "the tenant did not confirm the request's user and ticket in time; accepted unchecked, the run checks them"
            );
            Ok(())
        }),
    };
    checked.map_err(|refused| {
        info!(code = refused.code.as_str(), field = ?refused.field, "request refused before any run: told to its caller only");
        IntakeError::Rejected(refused)
    })
}

/// A key reserved this long ago whose run does not exist was orphaned by a dead delivery.
const ORPHANED_KEY_AFTER: chrono::Duration = chrono::Duration::seconds(30);

/// Frees the keys this attempt reserved: its run will not exist.
async fn release(store: &dyn RunStore, keys: &[String], run: &Run) {
    for key in keys {
        if let Err(e) = store.release_idempotency_key(key, &run.run_id).await {
            warn!(error = %e, "an idempotency key could not be released; it expires on its own");
        }
    }
}

/// An idempotency key as the caller or the request gave it, and its stored form.
struct Key {
    text: String,
    is_caller: bool,
}

/// Stored keys are fixed-length hashes: any key and any number of target mailboxes fit.
fn hashed(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// What makes two requests the same request.
fn fingerprint(request: &RevocationRequest) -> String {
    hashed(&serde_json::to_string(request).unwrap_or_default())
}

/// The caller's key, if any, and the request's own: the same user, company, ticket, scope and
/// mode within the window is the same request.
fn idempotency_keys(r: &RevocationRequest, caller_key: Option<&str>) -> Vec<(Key, String)> {
    let types = r
        .permission_types
        .as_ref()
        .map(|t| t.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(","))
        .unwrap_or_else(|| "org-default".into());
    let natural = format!(
        "{}:{}:{}:{}:{}:{}:{}:{}{}",
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
        match (r.dry_run, r.notify) {
            (false, _) => "live",
            (true, false) => "dry",
            (true, true) => "dry+notify",
        },
        r.mode.as_str(),
        if r.victim_mailbox { "+victim" } else { "" }
    );
    let caller = caller_key.map(|k| Key {
        text: k.to_string(),
        is_caller: true,
    });
    let natural = Key {
        text: natural,
        is_caller: false,
    };
    caller
        .into_iter()
        .chain([natural])
        .map(|key| {
            let stored = match key.is_caller {
                true => caller_key_hash(r, &key.text),
                false => hashed(&format!("request:{}", key.text)),
            };
            (key, stored)
        })
        .collect()
}

/// A caller's key is the caller's own: it holds within the company and the principal that gave
/// it (the request's key names its company already), so another company's caller using the same
/// key starts its own run and is never told of this one, and no key can be taken ahead of its
/// owner. A JSON array keeps the parts apart whatever characters they hold.
fn caller_key_hash(r: &RevocationRequest, key: &str) -> String {
    let scope = serde_json::json!([
        "key",
        r.company_id,
        r.requested_by_principal.as_deref().unwrap_or(""),
        key
    ]);
    hashed(&scope.to_string())
}

/// The settings of the company a request names, once `principal` may act for it and the
/// request's ticket id can be a ticket of its PSA. Refused: an unknown company (named without
/// listing the configured ones), a caller off its allow-list, a malformed ticket id.
pub(crate) async fn company_for(
    store: &dyn RunStore,
    company_id: &str,
    principal: Option<&str>,
    power: Option<crate::authorize::Power>,
    ticket_id: Option<&str>,
) -> Result<OrgSettings, IntakeError> {
    let Some(org) = store.org_settings(company_id).await? else {
        return Err(
            InvalidRequest::new("company_id", format!("unknown company '{company_id}'")).into(),
        );
    };
    // A power that grants or reveals access is checked against its own list alone.
    let allowed = match power {
        Some(power) => crate::authorize::authorize_power(&org, principal, power),
        None => authorize(&org, principal),
    };
    if let Err(refused) = allowed {
        log_refusal(&refused, company_id);
        return Err(refused.into());
    }
    if let Some(error) = ticket_id.and_then(|t| org.psa_kind.ticket_id_error(t)) {
        return Err(InvalidRequest::new("ticket_id", error).into());
    }
    Ok(org)
}

pub(crate) async fn queue_discovery(queue: &dyn Queue, run: &Run) -> Result<(), IntakeError> {
    queue
        .send(StepMessage::new(run.run_id.clone(), Step::Discover))
        .await
        .map_err(|source| IntakeError::Queue {
            run_id: run.run_id.to_string(),
            source,
        })
}
