//! `POST /alerts/sentinel`: a Sentinel playbook's incident.

use super::answer::{intake_failure, response};
use super::caller::Caller;
use super::form::JsonBody;
use super::Deps;
use crate::steps::intake_sentinel;
use axum::extract::State;
use axum::response::Response;
use serde_json::json;
use tracing::info;

/// A Sentinel playbook's incident payload (SigV4-signed like the other routes; the IAM
/// principal is recorded). 202 with one entry per user (`run_id`, `created`: false when this
/// incident had started the run already) and the entities left out; 400 when no entity names
/// a user of the company's tenant; 403 for a caller the company does not allow (the intake
/// step checks, once the payload's form is).
pub(super) async fn post_sentinel_alert(
    State(deps): State<Deps>,
    Caller(caller): Caller,
    JsonBody(body): JsonBody,
) -> Response {
    match intake_sentinel(
        &deps.store,
        &deps.store,
        &deps.queue,
        deps.connector.as_deref(),
        Some(&caller),
        &body,
    )
    .await
    {
        Ok(outcome) => {
            info!(company_id = %outcome.company_id, incident_id = %outcome.incident_id, runs = outcome.runs.len(), awaiting_approval = outcome.awaiting_approval.len(), never_contain = outcome.never_contain.len(), ignored = outcome.ignored.is_some(), "sentinel incident handled");
            let mut body = json!(outcome);
            for (run, value) in outcome
                .runs
                .iter()
                .zip(body["runs"].as_array_mut().into_iter().flatten())
            {
                if let Some(id) = &run.run_id {
                    value["status_url"] = json!(format!("/revocations/{id}"));
                }
            }
            // 202: runs were accepted (or held for approval); 200: the incident was read
            // and, as `ignored` says, starts nothing.
            let status = if outcome.ignored.is_some() { 200 } else { 202 };
            response(status, body)
        }
        Err(e) => intake_failure(&e),
    }
}
