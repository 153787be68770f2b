//! One contain run per alerted user, through the ordinary intake, at most once per alert: an
//! alert seen again within [`ALERT_DEDUPE_WINDOW`] (polled again, a re-sent Sentinel payload)
//! returns the run it started.

use super::intake::{intake_as, Accepted, IntakeError};
use crate::model::{AlertedUser, RunId, RunStatus, ALERT_DEDUPE_WINDOW};
use crate::ports::{AlertLedger, Queue, RunStore};
use chrono::Utc;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tracing::{info, warn};

/// What became of one alerted user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertRun {
    pub user_email: String,
    pub alert_source: String,
    pub alert_id: String,
    pub incident_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
    /// False: the alert had started this run already, or no run was started (`error`).
    pub created: bool,
    /// Why no run was started (the request was refused), when none was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AlertRun {
    fn new(user: &AlertedUser) -> AlertRun {
        AlertRun {
            user_email: user.user_email.clone(),
            alert_source: user.source.as_str().to_string(),
            alert_id: user.alert_id.clone(),
            incident_id: user.incident_id.clone(),
            run_id: None,
            status: None,
            created: false,
            error: None,
        }
    }
}

/// The ledger's key of an alert and user: a fixed-length hash, whatever the ids hold.
fn ledger_key(company_id: &str, user: &AlertedUser) -> String {
    hex::encode(Sha256::digest(user.dedupe_key(company_id).as_bytes()))
}

/// Starts the contain run for `user` (`principal` recorded and checked against the company's
/// allow-list), or returns the one this alert started before. A request intake refuses (bad
/// input, a caller not allowed) is returned with its reason and no run; store and queue
/// failures are errors (the caller tries again; the ledger keeps the retry from starting a
/// second run).
pub async fn start_alert_run(
    store: &dyn RunStore,
    ledger: &dyn AlertLedger,
    queue: &dyn Queue,
    principal: Option<&str>,
    company_id: &str,
    user: &AlertedUser,
) -> Result<AlertRun, IntakeError> {
    let key = ledger_key(company_id, user);
    let mut outcome = AlertRun::new(user);
    if let Some(run_id) = ledger.alert_run(&key).await? {
        if let Some(run) = store.get_run(&run_id).await? {
            info!(run_id = %run.run_id, alert_id = %user.alert_id, "alert seen before; returning its run");
            outcome.run_id = Some(run.run_id);
            outcome.status = Some(run.status);
            return Ok(outcome);
        }
    }
    let accepted = match intake_as(
        store,
        queue,
        principal,
        &user.request_body(company_id),
        None,
    )
    .await
    {
        Ok(accepted) => accepted,
        Err(e @ (IntakeError::Invalid(_) | IntakeError::Refused(_))) => {
            warn!(alert_id = %user.alert_id, alert_source = user.source.as_str(), reason = %e, "alert refused by intake");
            outcome.error = Some(e.to_string());
            return Ok(outcome);
        }
        Err(e) => return Err(e),
    };
    let Accepted { run, created } = accepted;
    ledger
        .remember_alert_run(&key, &run.run_id, Utc::now() + ALERT_DEDUPE_WINDOW)
        .await?;
    info!(run_id = %run.run_id, company_id, alert_id = %user.alert_id, alert_source = user.source.as_str(), created, "alert run");
    outcome.run_id = Some(run.run_id);
    outcome.status = Some(run.status);
    outcome.created = created;
    Ok(outcome)
}

/// What a Sentinel incident payload started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SentinelOutcome {
    pub company_id: String,
    pub incident_id: String,
    pub runs: Vec<AlertRun>,
    /// Entities that name no user of the company's tenant, and why.
    pub skipped: Vec<String>,
}

/// A Sentinel playbook's incident payload (see [`crate::model::sentinel_incident`]): one
/// contain run per Account or Mailbox entity of the company's tenant, as `principal`. The
/// same incident sent again returns the runs it started. Bad input, an unknown company or a
/// caller not allowed start nothing.
pub async fn intake_sentinel(
    store: &dyn RunStore,
    ledger: &dyn AlertLedger,
    queue: &dyn Queue,
    principal: Option<&str>,
    body: &serde_json::Value,
) -> Result<SentinelOutcome, IntakeError> {
    let company_id = crate::model::sentinel_incident(body, None)?.company_id;
    let Some(org) = store.org_settings(&company_id).await? else {
        return Err(crate::model::InvalidRequest::new(
            "company_id",
            format!("unknown company '{company_id}'"),
        )
        .into());
    };
    if let Err(refused) = crate::authorize::authorize(&org, principal) {
        crate::authorize::log_refusal(&refused, &company_id);
        return Err(refused.into());
    }
    let incident = crate::model::sentinel_incident(body, Some(&org.tenant_id))?;
    let Some(incident_id) = incident.users.first().map(|u| u.incident_id.clone()) else {
        return Err(crate::model::InvalidRequest::new(
            "entities",
            format!(
                "no Account or Mailbox entity names a user of this company's tenant ({})",
                if incident.skipped.is_empty() {
                    "no such entity".to_string()
                } else {
                    incident.skipped.join("; ")
                }
            ),
        )
        .into());
    };
    let mut runs = Vec::new();
    for user in &incident.users {
        runs.push(start_alert_run(store, ledger, queue, principal, &company_id, user).await?);
    }
    Ok(SentinelOutcome {
        company_id,
        incident_id,
        runs,
        skipped: incident.skipped,
    })
}
