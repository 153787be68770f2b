//! The routes of revocation runs: start one (`POST /revocations`), list a company's
//! (`GET /revocations`), read one (`GET /revocations/{id}`), cancel one.

use super::answer::{
    accepted_response, error_body, intake_failure, invalid, response, unavailable,
};
use super::caller::{Authorized, Caller, RunToActOn, RunToRead, Subject};
use super::form::{
    bounded_param, company_param, param_name, query, IdempotencyKey, JsonBody, ResultPage,
};
use super::{Deps, IntakeDeps};
use crate::authorize::Power;
use crate::error::StoreError;
use crate::model::{
    parse_page_size, parse_since, parse_status, validate_email, InvalidRequest, ItemStatus,
    RunFilter, DEFAULT_RUN_PAGE,
};
use crate::ports::{RunItems, RunRecords};
use crate::steps::{check_before_intake, intake_as, Accepted, IntakeError, REQUEST_CHECK_TIME};
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::Response;
use serde_json::{json, Value};
use tracing::{error, info};

/// `POST /revocations`: a revocation run for the body's user (its company's allow-list
/// decides, in the intake step); 202 with its status URL.
pub(super) async fn post_revocation(
    State(deps): State<Deps>,
    Caller(caller): Caller,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody,
) -> Response {
    match checked_intake(&deps, Some(&caller), &body, key.as_deref()).await {
        Ok(accepted) => accepted_response(&accepted.run),
        Err(e) => intake_failure(&e),
    }
}

/// Intake for a caller waiting on the answer: a user or ticket the tenant or the PSA says is
/// wrong is refused before any run is made (4xx naming the field), when they answer within
/// [`REQUEST_CHECK_TIME`]; a slower tenant or PSA is not waited for, and the run checks again
/// (telling the company's board of a refusal, as for queued requests and alerts).
pub(super) async fn checked_intake(
    deps: &IntakeDeps,
    principal: Option<&str>,
    body: &Value,
    key: Option<&str>,
) -> Result<Accepted, IntakeError> {
    if let Some(connector) = &deps.connector {
        check_before_intake(
            &deps.store,
            connector.as_ref(),
            principal,
            body,
            Some(REQUEST_CHECK_TIME),
        )
        .await?;
    }
    intake_as(&deps.store, &deps.queue, principal, body, key).await
}

/// A `GET /revocations` query: whose runs, and which page.
#[derive(Debug)]
pub(super) struct HistoryQuery {
    filter: RunFilter,
    limit: usize,
    next: Option<String>,
}

const HISTORY_PARAMS: &str = "company_id (required), user, since, status, limit, next";

/// The parameters of `GET /revocations`; an empty one counts as absent, an unknown one is
/// refused (a misspelt filter must not widen the list).
fn history_query<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<HistoryQuery, InvalidRequest> {
    let mut query = HistoryQuery {
        filter: RunFilter::default(),
        limit: DEFAULT_RUN_PAGE,
        next: None,
    };
    for (key, value) in params {
        let value = bounded_param(key, value.trim())?;
        if value.is_empty() {
            continue;
        }
        match key {
            "company_id" => query.filter.company_id = Some(company_param(value)?),
            "user" => query.filter.user = Some(validate_email("user", value)?),
            "since" => query.filter.since = Some(parse_since(value)?),
            "status" => query.filter.status = Some(parse_status(value)?),
            "limit" => query.limit = parse_page_size(value)?,
            "next" => query.next = Some(value.to_string()),
            other => {
                return Err(InvalidRequest::new(
                    param_name(other),
                    format!("is not a parameter of GET /revocations; expected {HISTORY_PARAMS}"),
                ))
            }
        }
    }
    if query.filter.company_id.is_none() {
        return Err(InvalidRequest::new(
            "company_id",
            "is required: run history is listed one company at a time",
        ));
    }
    Ok(query)
}

impl Subject for HistoryQuery {
    type Named = HistoryQuery;
    const POWER: Option<Power> = None;
    const REFUSED: &'static str = "not allowed to read this company's runs";
    const UNAVAILABLE: &'static str = "run history could not be read; retry";

    fn named(parts: &Parts) -> Result<HistoryQuery, InvalidRequest> {
        history_query(query(parts).iter())
    }

    async fn load(query: HistoryQuery, _: &Deps) -> Result<Self, Response> {
        Ok(query)
    }

    fn company(&self) -> &str {
        self.filter.company_id.as_deref().unwrap_or_default()
    }
}

/// `GET /revocations?company_id=&user=&since=&status=&limit=&next=`: the company's runs,
/// newest first, `{"runs": [summary...], "next": token}`; the company's allow-list decides
/// who may read them.
pub(super) async fn list_revocations(
    State(deps): State<Deps>,
    Authorized { subject: query }: Authorized<HistoryQuery>,
) -> Response {
    match deps
        .store
        .list_runs(&query.filter, query.limit, query.next.as_deref())
        .await
    {
        Ok(page) => response(200, json!(page)),
        Err(StoreError::BadQuery { field, reason }) => invalid(InvalidRequest::new(field, reason)),
        Err(e) => {
            error!(error = %e, company_id = %query.company(), "run history read failed");
            unavailable(HistoryQuery::UNAVAILABLE)
        }
    }
}

/// Grant entries per page of `GET /revocations/{id}`.
pub const RESULT_PAGE_SIZE: usize = 1000;

/// `GET /revocations/{id}?page=`: the run's status, progress and result (a page of it).
pub(super) async fn get_revocation(
    State(deps): State<Deps>,
    ResultPage(page): ResultPage,
    Authorized { subject: run }: Authorized<RunToRead>,
) -> Response {
    let run = run.0;
    let items = deps.store.items(&run.run_id).await.unwrap_or_default();
    let done = items.iter().filter(|i| i.status.is_finished()).count();
    let failed = items
        .iter()
        .filter(|i| matches!(i.status, ItemStatus::Failed { .. }))
        .count();
    let (result, page_info, next) = match (&run.result, &run.restore_result) {
        (_, Some(restore)) => (json!(restore), Value::Null, None),
        (Some(report), None) => {
            let p = report.page(page, RESULT_PAGE_SIZE);
            let next = (p.number < p.pages)
                .then(|| format!("/revocations/{}?page={}", run.run_id, p.number + 1));
            (
                p.result,
                json!({"number": p.number, "size": RESULT_PAGE_SIZE, "pages": p.pages}),
                next,
            )
        }
        (None, None) => (Value::Null, Value::Null, None),
    };
    response(
        200,
        json!({
            "run_id": run.run_id, "kind": run.kind(), "status": run.status,
            "restored_from": run.restore.as_ref().map(|r| &r.restored_from),
            "progress": {"total": items.len(), "done": done, "failed": failed},
            "failure": run.failure, "result": result, "page": page_info, "next": next,
        }),
    )
}

/// `POST /revocations/{id}/cancel`: the run stops before its next removal batch (a batch
/// already removing finishes), then verifies and reports as `cancelled` — the note and email
/// list what was removed and what was left in place. 202 with the run's status; a finished
/// run is 409 with its status.
pub(super) async fn cancel_revocation(
    State(deps): State<Deps>,
    Authorized { subject: run }: Authorized<RunToActOn>,
) -> Response {
    let run_id = run.0.run_id;
    match deps.store.request_cancel(&run_id).await {
        Ok(Some(run)) if !run.status.is_terminal() => {
            info!(run_id = %run_id, status = run.status.as_str(), "cancel requested");
            response(
                202,
                json!({"run_id": run.run_id, "status": run.status, "cancel_requested": true, "status_url": format!("/revocations/{}", run.run_id)}),
            )
        }
        Ok(Some(run)) => response(
            409,
            error_body(
                "run_finished",
                &format!(
                    "run {run_id} has already ended ({}); nothing to cancel",
                    run.status.as_str()
                ),
                Some("run_id"),
            ),
        ),
        Ok(None) => super::answer::no_run(&run_id),
        Err(e) => {
            error!(error = %e, "cancel failed");
            unavailable("cancel could not be recorded; retry")
        }
    }
}
