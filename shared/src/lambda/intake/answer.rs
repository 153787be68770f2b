//! The API's answers: a JSON body and its status, errors as `{"error": {code, message, field}}`.

use crate::model::{FailureCode, InvalidRequest, Run, RunId};
use crate::steps::IntakeError;
use axum::http::{header, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};
use tracing::error;

/// `body` as JSON with `status`.
pub(super) fn response(status: u16, body: Value) -> Response {
    let mut answer = Response::new(axum::body::Body::from(body.to_string()));
    *answer.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    answer.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    answer
}

pub(super) fn error_body(code: &str, message: &str, field: Option<&str>) -> Value {
    json!({"error": {"code": code, "message": message, "field": field}})
}

/// 400 naming the field at fault.
pub(super) fn invalid(e: InvalidRequest) -> Response {
    response(400, e.to_json())
}

/// 403 for a caller the company does not allow.
pub(super) fn forbidden(message: &str) -> Response {
    response(403, error_body("forbidden", message, Some("company_id")))
}

/// 503: something the answer needs could not be read; the caller retries.
pub(super) fn unavailable(message: &str) -> Response {
    response(503, error_body("unavailable", message, None))
}

pub(super) fn no_run(run_id: &RunId) -> Response {
    response(
        404,
        error_body("not_found", &format!("no run {run_id}"), Some("run_id")),
    )
}

pub(super) fn accepted_response(run: &Run) -> Response {
    // 202 either way: an idempotent repeat gets the run it already started.
    response(
        202,
        json!({"run_id": run.run_id, "status": run.status, "status_url": format!("/revocations/{}", run.run_id)}),
    )
}

pub(super) fn intake_failure(e: &IntakeError) -> Response {
    match e {
        IntakeError::Invalid(invalid) => response(400, invalid.to_json()),
        IntakeError::Refused(refused) => forbidden(&refused.to_string()),
        IntakeError::RunNotFound(_) => {
            response(404, error_body("not_found", &e.to_string(), Some("run_id")))
        }
        IntakeError::Conflict(why) => response(
            409,
            error_body("conflict", &why.to_string(), Some(&why.field)),
        ),
        // What the caller named is not there (404) or cannot be acted on (422): their typo,
        // told to them alone.
        IntakeError::Rejected(refused) => response(
            match refused.code {
                FailureCode::UserNotFound | FailureCode::TicketNotFound => 404,
                _ => 422,
            },
            error_body(
                refused.code.as_str(),
                &refused.message,
                refused.field.as_deref(),
            ),
        ),
        IntakeError::KeyReused { .. } => response(
            409,
            error_body(
                "idempotency_key_reused",
                &e.to_string(),
                Some("Idempotency-Key"),
            ),
        ),
        other => {
            error!(error = %other, "intake failed");
            unavailable("the request could not be recorded; retry with the same Idempotency-Key")
        }
    }
}
