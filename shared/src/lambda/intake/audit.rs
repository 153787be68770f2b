//! `GET /revocations/{id}/audit`: a run's audit trail, or the check of it.

use super::answer::{response, unavailable};
use super::caller::{Authorized, RunToActOn};
use super::form::Verify;
use super::Deps;
use crate::ports::AuditTrail;
use crate::steps::check_run_audit;
use axum::extract::State;
use axum::response::Response;
use serde_json::json;
use tracing::error;

/// The run's audit records, or with `verify=1` what checking their hash chains against the
/// manifest anchored in the run, and the manifest's seal with the KMS audit key, found:
/// `status` `intact` (the only proof), `unanchored` (the run has not verified), `unchained` (a
/// run from before chaining) or `tampered`, the run's status, and a problem naming each
/// record changed, removed or inserted, or the manifest missing or unsealed — the same check
/// as `revoke365 audit verify`.
pub(super) async fn get_audit(
    State(deps): State<Deps>,
    Verify(verify): Verify,
    Authorized { subject: run }: Authorized<RunToActOn>,
) -> Response {
    let run_id = run.0.run_id;
    let body = if verify {
        check_run_audit(&deps.store, &run_id)
            .await
            .map(|check| json!(check))
    } else {
        deps.store
            .audit_records(&run_id)
            .await
            .map(|records| json!({"run_id": run_id, "records": records}))
    };
    match body {
        Ok(body) => response(200, body),
        Err(e) => {
            error!(error = %e, run_id = %run_id, "audit trail read failed");
            unavailable("the audit trail could not be read; retry")
        }
    }
}
