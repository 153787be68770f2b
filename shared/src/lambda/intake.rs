//! Intake: API Gateway HTTP API requests (a Sentinel playbook's incidents among them),
//! offboarding-queue records and EventBridge security alerts become runs. Each records its caller as the trigger proves it (the IAM principal,
//! the SQS sender, the event's account and source, the HMAC caller), and a company's
//! allow-list decides whether that caller may act for it. The API's routes, whose callers wait
//! for the answer, first look up the user and the ticket (a few seconds at most), so that a
//! typo is a 4xx to its caller rather than a failed run told to the customer. Before any of
//! that, and before any AWS call, a request is refused on its form alone: an unknown route key,
//! an IAM route without an IAM identity, a bad run id, field or query parameter, a malformed or
//! stale webhook signature.

use super::webhook::{self, SignatureError, Signed, WebhookSecrets};
use super::{aws_config, batch_response, item_failure, LambdaError};
use crate::adapters::aws::dynamodb::DynamoRunStore;
use crate::adapters::aws::resources::AwsNames;
use crate::adapters::aws::sqs::SqsQueue;
use crate::authorize::{authorize_company, authorize_company_power, principal, AccessError, Power};
use crate::error::StoreError;
use crate::index::{lookup, AccessError as LookupError, AccessQuery};
use crate::model::{
    parse_page_size, parse_since, parse_status, unprintable, validate_company_id, validate_email,
    FailureCode, InvalidRequest, ItemStatus, Run, RunFilter, RunId, DEFAULT_RUN_PAGE,
};
use crate::ports::{AuditTrail, Connector, OrgStore, RunItems, RunRecords, StoreIndexes};
use crate::steps::{
    check_before_intake, check_run_audit, intake_as, intake_backup, intake_restore,
    intake_sentinel, Accepted, IntakeError, REQUEST_CHECK_TIME,
};
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use base64::Engine;
use serde_json::{json, Value};
use std::sync::Arc;
use tracing::{error, info, info_span, warn, Instrument};

pub struct IntakeDeps {
    pub store: DynamoRunStore,
    pub queue: SqsQueue,
    /// The per-caller secrets of the HMAC-signed route.
    pub webhook: WebhookSecrets,
    /// The tenants and PSAs, to check a request's user and ticket before answering 202;
    /// without it every request is accepted unchecked (its run checks them).
    pub connector: Option<Arc<dyn Connector>>,
}

impl IntakeDeps {
    pub async fn from_env() -> Result<IntakeDeps, LambdaError> {
        let config = aws_config().await;
        let names = AwsNames::from_env();
        let mut deps = IntakeDeps::new(&config, &names).await?;
        deps.connector = Some(Arc::new(super::steps::connector_from_env(&config, &names)));
        Ok(deps)
    }

    pub async fn new(
        config: &aws_config::SdkConfig,
        names: &AwsNames,
    ) -> Result<IntakeDeps, LambdaError> {
        Ok(IntakeDeps {
            store: DynamoRunStore::new(aws_sdk_dynamodb::Client::new(config), names)
                .with_audit_seal(crate::adapters::aws::audit_key::KmsAuditSeal::of(
                    config, names,
                )),
            queue: SqsQueue::new(aws_sdk_sqs::Client::new(config), names).await?,
            webhook: WebhookSecrets::new(
                aws_sdk_secretsmanager::Client::new(config),
                names.webhook_secret_id.clone(),
            ),
            connector: None,
        })
    }
}

/// One entry point for the three triggers of the intake function, told apart by shape.
pub async fn handle_intake_event(deps: &IntakeDeps, event: Value) -> Result<Value, LambdaError> {
    if event.pointer("/requestContext/http").is_some() {
        let request: ApiGatewayV2httpRequest = serde_json::from_value(event)?;
        return Ok(serde_json::to_value(handle_http(deps, request).await)?);
    }
    if event
        .pointer("/Records/0/eventSource")
        .and_then(Value::as_str)
        == Some("aws:sqs")
    {
        let sqs: SqsEvent = serde_json::from_value(event)?;
        return Ok(serde_json::to_value(
            handle_offboarding_queue(deps, sqs).await,
        )?);
    }
    if event.get("detail-type").is_some() {
        return handle_security_alert(deps, event).await;
    }
    Err("unrecognized event: expected an API Gateway HTTP API request, SQS records or an EventBridge event".into())
}

fn response(status: i64, body: Value) -> ApiGatewayV2httpResponse {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let mut r = ApiGatewayV2httpResponse::default();
    r.status_code = status;
    r.headers = headers;
    r.body = Some(Body::Text(body.to_string()));
    r
}

fn forbidden(message: &str) -> ApiGatewayV2httpResponse {
    response(403, error_body("forbidden", message, Some("company_id")))
}

/// The IAM principal that signed an API request (the HTTP API is IAM-authorized).
fn api_principal(request: &ApiGatewayV2httpRequest) -> Option<String> {
    request
        .request_context
        .authorizer
        .as_ref()
        .and_then(|a| a.iam.as_ref())
        .and_then(|iam| iam.user_arn.clone())
        .filter(|arn| !arn.trim().is_empty())
}

fn error_body(code: &str, message: &str, field: Option<&str>) -> Value {
    json!({"error": {"code": code, "message": message, "field": field}})
}

fn intake_failure(e: &IntakeError) -> ApiGatewayV2httpResponse {
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
            response(
                503,
                error_body(
                    "unavailable",
                    "the request could not be recorded; retry with the same Idempotency-Key",
                    None,
                ),
            )
        }
    }
}

/// The API's routes, by the route keys the template gives them (`Method Path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    PostRevocation,
    PostSignedRevocation,
    PostSentinelAlert,
    ListRevocations,
    GetRevocation,
    GetAudit,
    PostRestore,
    PostCancel,
    PostBackupRestore,
    GetAccess,
}

const ROUTES: [(&str, Route); 10] = [
    ("POST /revocations", Route::PostRevocation),
    ("POST /hooks/revocations", Route::PostSignedRevocation),
    ("POST /alerts/sentinel", Route::PostSentinelAlert),
    ("GET /revocations", Route::ListRevocations),
    ("GET /revocations/{run_id}", Route::GetRevocation),
    ("GET /revocations/{run_id}/audit", Route::GetAudit),
    ("POST /revocations/{run_id}/restore", Route::PostRestore),
    ("POST /revocations/{run_id}/cancel", Route::PostCancel),
    ("POST /backups/restore", Route::PostBackupRestore),
    ("GET /access", Route::GetAccess),
];

/// The route keys the intake function answers (the template routes each of them to it).
pub fn route_keys() -> impl Iterator<Item = &'static str> {
    ROUTES.iter().map(|(key, _)| *key)
}

impl Route {
    fn of(route_key: &str) -> Option<Route> {
        ROUTES
            .iter()
            .find(|(key, _)| *key == route_key)
            .map(|(_, route)| *route)
    }

    /// Signed by SigV4 and checked by API Gateway's IAM authorizer: every route but the one
    /// that checks its own HMAC signature.
    fn is_iam(self) -> bool {
        self != Route::PostSignedRevocation
    }

    fn takes_run_id(self) -> bool {
        matches!(
            self,
            Route::GetRevocation | Route::GetAudit | Route::PostRestore | Route::PostCancel
        )
    }
}

/// Routes by `requestContext.routeKey` (what API Gateway matched, not the raw path), with the
/// run id from `pathParameters`. Before any I/O: an unknown route key is a 404; an IAM route
/// whose request carries no IAM identity is a 403 (API Gateway never sends one so; the function
/// does not take an empty principal for a caller); a run id that is not one is a 400.
pub async fn handle_http(
    deps: &IntakeDeps,
    request: ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let key: String = (request.request_context.route_key.as_deref())
        .unwrap_or_default()
        .chars()
        .take(100)
        .collect();
    let span = info_span!("http", route = %key);
    async {
        let Some(route) = Route::of(&key) else {
            let routes: Vec<&str> = route_keys().collect();
            return response(
                404,
                error_body(
                    "not_found",
                    &format!("no route {key:?}; the routes are {}", routes.join(", ")),
                    None,
                ),
            );
        };
        if route.is_iam() && api_principal(&request).is_none() {
            warn!("an IAM route's request carries no IAM identity; refused");
            return response(
                403,
                error_body(
                    "forbidden",
                    "this route is IAM-authorized and the request carries no IAM identity",
                    None,
                ),
            );
        }
        let run_id = match route.takes_run_id() {
            false => None,
            true => match path_run_id(&request) {
                Ok(run_id) => Some(run_id),
                Err(e) => return response(400, e.to_json()),
            },
        };
        let run_id = run_id.as_ref().map(|r| r.0.as_str()).unwrap_or_default();
        let principal = api_principal(&request);
        match route {
            Route::PostRevocation => post_revocation(deps, &request).await,
            Route::ListRevocations => list_revocations(deps, &request).await,
            Route::GetAccess => get_access(deps, &request).await,
            Route::PostSignedRevocation => post_signed_revocation(deps, &request).await,
            Route::PostSentinelAlert => post_sentinel_alert(deps, &request).await,
            Route::PostRestore => post_restore(deps, &request, run_id).await,
            Route::PostBackupRestore => post_backup_restore(deps, &request).await,
            Route::PostCancel => match refused_for_run(deps, run_id, principal.as_deref()).await {
                Some(refused) => refused,
                None => cancel_revocation(deps, run_id).await,
            },
            Route::GetRevocation => match result_page(&request) {
                Ok(page) => get_revocation(deps, run_id, principal.as_deref(), page).await,
                Err(e) => response(400, e.to_json()),
            },
            Route::GetAudit => match refused_for_run(deps, run_id, principal.as_deref()).await {
                Some(refused) => refused,
                None => get_audit(deps, &request, run_id).await,
            },
        }
    }
    .instrument(span)
    .await
}

/// The run id of the path (`pathParameters.run_id`): a run id names keys and files, so one
/// that is not a run id is refused.
fn path_run_id(request: &ApiGatewayV2httpRequest) -> Result<RunId, InvalidRequest> {
    match request.path_parameters.get("run_id") {
        Some(raw) => RunId::parse(raw),
        None => Err(InvalidRequest::new("run_id", "is required in the path")),
    }
}

/// `?page=` of `GET /revocations/{id}`: a number from 1 (absent: 1).
fn result_page(request: &ApiGatewayV2httpRequest) -> Result<usize, InvalidRequest> {
    match request.query_string_parameters.first("page") {
        None => Ok(1),
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| InvalidRequest::new("page", "must be a number from 1")),
    }
}

fn raw_body(request: &ApiGatewayV2httpRequest) -> Result<Vec<u8>, InvalidRequest> {
    let raw = request.body.as_deref().unwrap_or("");
    if request.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|_| InvalidRequest::new("body", "is marked base64 but is not"))
    } else {
        Ok(raw.as_bytes().to_vec())
    }
}

fn json_body(bytes: &[u8]) -> Result<Value, InvalidRequest> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| InvalidRequest::new("body", "is not UTF-8"))?;
    serde_json::from_str(text)
        .map_err(|e| InvalidRequest::new("body", format!("is not valid JSON: {e}")))
}

fn request_body(request: &ApiGatewayV2httpRequest) -> Result<Value, InvalidRequest> {
    json_body(&raw_body(request)?)
}

fn header<'a>(request: &'a ApiGatewayV2httpRequest, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

/// `POST /hooks/revocations`: the route for callers that sign with a shared secret instead
/// of SigV4. The signature, its freshness and its first use are checked before the body is
/// read as a request; the caller's principal is `hmac:<caller>`.
async fn post_signed_revocation(
    deps: &IntakeDeps,
    request: &ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let (caller, signature) = match signed_caller(deps, request).await {
        Ok(signed) => signed,
        Err(e) => {
            warn!(caller = ?header(request, webhook::CALLER_HEADER).map(|c| c.chars().take(64).collect::<String>()), reason = %e, "signed request refused");
            let status = match e {
                SignatureError::Unavailable => 503,
                SignatureError::Replayed => 409,
                _ => 401,
            };
            return response(
                status,
                error_body("unauthorized", &e.to_string(), e.header()),
            );
        }
    };
    let body = match request_body(request) {
        Ok(b) => b,
        Err(e) => return response(400, e.to_json()),
    };
    let principal = principal::hmac_caller(&caller);
    // The signature (in its one form) is the idempotency key: the same signed request is one
    // run.
    match checked_intake(deps, Some(&principal), &body, Some(&signature)).await {
        Ok(accepted) => accepted_response(&accepted.run),
        Err(e) => intake_failure(&e),
    }
}

/// The caller and the signature of a signed request. The headers' form and the timestamp's
/// freshness are checked first (no secret read for a malformed or stale request), then the
/// signature against the kept secrets, then its first use.
async fn signed_caller(
    deps: &IntakeDeps,
    request: &ApiGatewayV2httpRequest,
) -> Result<(String, String), SignatureError> {
    let get = |name: &'static str| header(request, name).ok_or(SignatureError::Missing(name));
    let signed = Signed::parse(
        get(webhook::CALLER_HEADER)?,
        get(webhook::TIMESTAMP_HEADER)?,
        get(webhook::SIGNATURE_HEADER)?,
        chrono::Utc::now().timestamp(),
    )?;
    let body = raw_body(request).map_err(|_| SignatureError::BadSignature)?;
    let caller = deps.webhook.verify(&signed, &body).await?;
    webhook::first_use(&deps.store, &signed).await?;
    Ok((caller.to_string(), signed.signature))
}

fn accepted_response(run: &crate::model::Run) -> ApiGatewayV2httpResponse {
    // 202 either way: an idempotent repeat gets the run it already started.
    response(
        202,
        json!({"run_id": run.run_id, "status": run.status, "status_url": format!("/revocations/{}", run.run_id)}),
    )
}

async fn post_revocation(
    deps: &IntakeDeps,
    request: &ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let body = match request_body(request) {
        Ok(b) => b,
        Err(e) => return response(400, e.to_json()),
    };
    let key = match idempotency_key(request) {
        Ok(key) => key,
        Err(e) => return response(400, e.to_json()),
    };
    let principal = api_principal(request);
    match checked_intake(deps, principal.as_deref(), &body, key.as_deref()).await {
        Ok(accepted) => accepted_response(&accepted.run),
        Err(e) => intake_failure(&e),
    }
}

/// The most characters of an `Idempotency-Key`: keys of any length API Gateway passes (its
/// headers total 10 KB) are taken, stored as hashes; a direct invocation's flood is not.
const MAX_IDEMPOTENCY_KEY: usize = 8192;

/// The caller's `Idempotency-Key`, if any: at most [`MAX_IDEMPOTENCY_KEY`] printable characters.
fn idempotency_key(request: &ApiGatewayV2httpRequest) -> Result<Option<String>, InvalidRequest> {
    let Some(value) = request.headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = |why: String| InvalidRequest::new("Idempotency-Key", why);
    let text = value
        .to_str()
        .map_err(|_| bad("must be printable ASCII".into()))?
        .trim();
    match unprintable(text, MAX_IDEMPOTENCY_KEY) {
        Some(why) => Err(bad(why)),
        None if text.is_empty() => Ok(None),
        None => Ok(Some(text.to_string())),
    }
}

/// Intake for a caller waiting on the answer: a user or ticket the tenant or the PSA says is
/// wrong is refused before any run is made (4xx naming the field), when they answer within
/// [`REQUEST_CHECK_TIME`]; a slower tenant or PSA is not waited for, and the run checks again
/// (telling the company's board of a refusal, as for queued requests and alerts).
async fn checked_intake(
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

/// `POST /alerts/sentinel`: a Sentinel playbook's incident payload (SigV4-signed like the
/// other routes; the IAM principal is recorded). 202 with one entry per user (`run_id`,
/// `created`: false when this incident had started the run already) and the entities left
/// out; 400 when no entity names a user of the company's tenant; 403 for a caller the
/// company does not allow.
async fn post_sentinel_alert(
    deps: &IntakeDeps,
    request: &ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let body = match request_body(request) {
        Ok(b) => b,
        Err(e) => return response(400, e.to_json()),
    };
    let principal = api_principal(request);
    match intake_sentinel(
        &deps.store,
        &deps.store,
        &deps.queue,
        deps.connector.as_deref(),
        principal.as_deref(),
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

/// `POST /revocations/{id}/restore`: a restore run that puts back what run `id` removed
/// (body: `permission_types`, `target_mailboxes`, `dry_run`, `include_revoked`,
/// `include_victim_mailbox`, `requested_by`, `reason`; all optional). 202 with the new run's status URL; 404 for an
/// unknown run, 409 for one that cannot be restored (not ended, a dry run, a restore, its
/// company now on another tenant).
async fn post_restore(
    deps: &IntakeDeps,
    request: &ApiGatewayV2httpRequest,
    run_id: &str,
) -> ApiGatewayV2httpResponse {
    let raw = match raw_body(request) {
        Ok(raw) => raw,
        Err(e) => return response(400, e.to_json()),
    };
    let body = if raw.iter().all(u8::is_ascii_whitespace) {
        Value::Null
    } else {
        match json_body(&raw) {
            Ok(body) => body,
            Err(e) => return response(400, e.to_json()),
        }
    };
    let principal = api_principal(request);
    let source = RunId(run_id.to_string());
    match intake_restore(
        &deps.store,
        &deps.queue,
        principal.as_deref(),
        &source,
        &body,
    )
    .await
    {
        Ok(accepted) => accepted_response(&accepted.run),
        Err(e) => intake_failure(&e),
    }
}

/// `POST /backups/restore`: a backup restore that puts one mailbox's grants back as a snapshot
/// of the permission index held them (body: `company_id`, `mailbox`, `as_of` — a snapshot id
/// or a date — and optionally `permission_types`, `dry_run`, `include_revoked`, `ticket_id`,
/// `requested_by`, `reason`). 202 with the new run's status URL; 400 for a bad body, 409 when
/// no snapshot matches `as_of` or it holds nothing on the mailbox.
async fn post_backup_restore(
    deps: &IntakeDeps,
    request: &ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let body = match raw_body(request).and_then(|raw| json_body(&raw)) {
        Ok(body) => body,
        Err(e) => return response(400, e.to_json()),
    };
    let principal = api_principal(request);
    match intake_backup(&deps.store, &deps.queue, principal.as_deref(), &body).await {
        Ok(accepted) => accepted_response(&accepted.run),
        Err(e) => intake_failure(&e),
    }
}

/// `POST /revocations/{id}/cancel`: the run stops before its next removal batch (a batch
/// already removing finishes), then verifies and reports as `cancelled` — the note and email
/// list what was removed and what was left in place. 202 with the run's status; a finished
/// run is 409 with its status.
async fn cancel_revocation(deps: &IntakeDeps, run_id: &str) -> ApiGatewayV2httpResponse {
    let run_id = RunId(run_id.to_string());
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
        Ok(None) => response(
            404,
            error_body("not_found", &format!("no run {run_id}"), Some("run_id")),
        ),
        Err(e) => {
            error!(error = %e, "cancel failed");
            response(
                503,
                error_body("unavailable", "cancel could not be recorded; retry", None),
            )
        }
    }
}

/// The answer for a caller not allowed to act on this run's company (None: go on; an unknown
/// run is left to the route to answer).
async fn refused_for_run(
    deps: &IntakeDeps,
    run_id: &str,
    principal: Option<&str>,
) -> Option<ApiGatewayV2httpResponse> {
    let run = match deps.store.get_run(&RunId(run_id.to_string())).await {
        Ok(Some(run)) => run,
        Ok(None) => return None,
        Err(e) => {
            error!(error = %e, "run lookup failed");
            return Some(response(
                503,
                error_body("unavailable", "run lookup failed; retry", None),
            ));
        }
    };
    match authorize_company(&deps.store, &run.request.company_id, principal).await {
        Ok(()) => None,
        Err(AccessError::Refused(_) | AccessError::UnknownCompany) => {
            Some(forbidden("not allowed to act on this run"))
        }
        Err(AccessError::Store(e)) => {
            error!(error = %e, "org settings lookup failed");
            Some(response(
                503,
                error_body("unavailable", "run lookup failed; retry", None),
            ))
        }
    }
}

/// The run, or the answer for a run that is unknown (404) or could not be read (503).
async fn found_run(deps: &IntakeDeps, run_id: &RunId) -> Result<Run, ApiGatewayV2httpResponse> {
    match deps.store.get_run(run_id).await {
        Ok(Some(run)) => Ok(run),
        Ok(None) => Err(response(
            404,
            error_body("not_found", &format!("no run {run_id}"), Some("run_id")),
        )),
        Err(e) => {
            error!(error = %e, "run lookup failed");
            Err(response(
                503,
                error_body("unavailable", "run lookup failed; retry", None),
            ))
        }
    }
}

/// A `GET /revocations` query: whose runs, and which page.
#[derive(Debug)]
struct HistoryQuery {
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

/// `GET /revocations?company_id=&user=&since=&status=&limit=&next=`: the company's runs,
/// newest first, `{"runs": [summary...], "next": token}`; the company's allow-list decides
/// who may read them.
async fn list_revocations(
    deps: &IntakeDeps,
    request: &ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let query = match history_query(request.query_string_parameters.iter()) {
        Ok(query) => query,
        Err(e) => return response(400, e.to_json()),
    };
    let company = query.filter.company_id.as_deref().unwrap_or_default();
    match authorize_company(&deps.store, company, api_principal(request).as_deref()).await {
        Ok(()) => {}
        Err(AccessError::Refused(_) | AccessError::UnknownCompany) => {
            return forbidden("not allowed to read this company's runs")
        }
        Err(AccessError::Store(e)) => {
            error!(error = %e, "org settings lookup failed");
            return response(
                503,
                error_body("unavailable", "run history could not be read; retry", None),
            );
        }
    }
    match deps
        .store
        .list_runs(&query.filter, query.limit, query.next.as_deref())
        .await
    {
        Ok(page) => response(200, json!(page)),
        Err(StoreError::BadQuery { field, reason }) => {
            response(400, InvalidRequest::new(field, reason).to_json())
        }
        Err(e) => {
            error!(error = %e, company_id = %company, "run history read failed");
            response(
                503,
                error_body("unavailable", "run history could not be read; retry", None),
            )
        }
    }
}

/// `company_id` as a query parameter: a company id as the org settings hold them.
fn company_param(value: &str) -> Result<String, InvalidRequest> {
    validate_company_id(value)?;
    Ok(value.to_string())
}

/// The longest query parameter value: the longest a route takes (`next`, the opaque token of
/// the page before) is far shorter.
const MAX_PARAM: usize = 2048;

/// Every query parameter's value, whatever its name, before it is read: at most [`MAX_PARAM`]
/// printable characters (so no parameter's error gives back a flood).
fn bounded_param<'a>(key: &str, value: &'a str) -> Result<&'a str, InvalidRequest> {
    match unprintable(value, MAX_PARAM) {
        None => Ok(value),
        Some(why) => Err(InvalidRequest::new(param_name(key), why)),
    }
}

/// The longest UPN or address (`user` of `GET /access`).
const MAX_USER: usize = 320;

/// `user` of `GET /access`: a UPN, an address or an object id — what the index finds a trustee
/// by — of at most [`MAX_USER`] printable characters, no spaces.
fn access_user(value: &str) -> Result<String, InvalidRequest> {
    let spaced = value.chars().any(char::is_whitespace);
    match unprintable(value, MAX_USER) {
        None if !spaced => Ok(value.to_string()),
        _ => Err(InvalidRequest::new(
            "user",
            format!("must be a UPN, an address or an object id of at most {MAX_USER} characters, without spaces or control characters"),
        )),
    }
}

/// A parameter's name as an error gives it back: cut short, control characters out.
fn param_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(64).collect()
}

const ACCESS_PARAMS: &str = "company_id (required), and user or mailbox (one of the two)";

/// The parameters of `GET /access`: the company and exactly one of `user` / `mailbox`; an
/// empty one counts as absent, an unknown one is refused.
fn access_query<'a>(
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<(String, AccessQuery), InvalidRequest> {
    let (mut company, mut user, mut mailbox) = (None, None, None);
    for (key, value) in params {
        let value = bounded_param(key, value.trim())?;
        if value.is_empty() {
            continue;
        }
        match key {
            "company_id" => company = Some(company_param(value)?),
            "user" => user = Some(access_user(value)?),
            "mailbox" => mailbox = Some(validate_email("mailbox", value)?),
            other => {
                return Err(InvalidRequest::new(
                    param_name(other),
                    format!("is not a parameter of GET /access; expected {ACCESS_PARAMS}"),
                ))
            }
        }
    }
    let company = company.ok_or_else(|| {
        InvalidRequest::new(
            "company_id",
            "is required: the index is read one company at a time",
        )
    })?;
    let query = match (user, mailbox) {
        (Some(u), None) => AccessQuery::User(u),
        (None, Some(m)) => AccessQuery::Mailbox(m),
        (Some(_), Some(_)) => {
            return Err(InvalidRequest::new(
                "mailbox",
                "give user or mailbox, not both",
            ))
        }
        (None, None) => {
            return Err(InvalidRequest::new(
                "user",
                "is required (or mailbox): whose grants, or which mailbox's trustees",
            ))
        }
    };
    Ok((company, query))
}

/// `GET /access?company_id=&user=` / `&mailbox=`: every grant the user holds (or every
/// trustee of the mailbox) as of the company's newest permission-index snapshot, from the
/// index alone (no tenant call; `as_of` says how fresh). The company's allow-list decides who
/// may read it, as for `GET /revocations`.
async fn get_access(
    deps: &IntakeDeps,
    request: &ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let (company, query) = match access_query(request.query_string_parameters.iter()) {
        Ok(q) => q,
        Err(e) => return response(400, e.to_json()),
    };
    let unavailable = || {
        response(
            503,
            error_body(
                "unavailable",
                "the permission index could not be read; retry",
                None,
            ),
        )
    };
    match authorize_company_power(
        &deps.store,
        &company,
        api_principal(request).as_deref(),
        Power::Access,
    )
    .await
    {
        Ok(()) => {}
        Err(AccessError::Refused(_) | AccessError::UnknownCompany) => {
            return forbidden("not allowed to read this company's permission index")
        }
        Err(AccessError::Store(e)) => {
            error!(error = %e, "org settings lookup failed");
            return unavailable();
        }
    }
    let (org, index) = match (
        deps.store.org_settings(&company).await,
        deps.store.permission_index(),
    ) {
        (Ok(Some(org)), Some(index)) => (org, index),
        (Ok(None), _) => return forbidden("not allowed to read this company's permission index"),
        (Err(e), _) => {
            error!(error = %e, "org settings lookup failed");
            return unavailable();
        }
        (Ok(Some(_)), None) => return unavailable(),
    };
    match lookup(index, &org, &query, None).await {
        Ok(map) => response(200, json!(map)),
        Err(e @ LookupError::NoSnapshot(_)) => response(
            404,
            error_body(
                "no_index",
                &format!("{e}; on AWS the scheduled index job of the company takes one"),
                Some("company_id"),
            ),
        ),
        Err(e) => {
            error!(error = %e, company_id = %company, "permission index read failed");
            unavailable()
        }
    }
}

/// Grant entries per page of `GET /revocations/{id}`.
pub const RESULT_PAGE_SIZE: usize = 1000;

async fn get_revocation(
    deps: &IntakeDeps,
    run_id: &str,
    principal: Option<&str>,
    page: usize,
) -> ApiGatewayV2httpResponse {
    let run_id = RunId(run_id.to_string());
    let run = match found_run(deps, &run_id).await {
        Ok(run) => run,
        Err(answer) => return answer,
    };
    match authorize_company(&deps.store, &run.request.company_id, principal).await {
        Ok(()) => {}
        Err(AccessError::Refused(_) | AccessError::UnknownCompany) => {
            return forbidden("not allowed to read this run")
        }
        Err(AccessError::Store(e)) => {
            error!(error = %e, "org settings lookup failed");
            return response(
                503,
                error_body("unavailable", "run lookup failed; retry", None),
            );
        }
    }
    let items = deps.store.items(&run_id).await.unwrap_or_default();
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

/// `GET /revocations/{id}/audit`: the run's audit records, or with `verify=1` what checking
/// their hash chains against the manifest anchored in the run, and the manifest's seal with
/// the KMS audit key, found: `status` `intact` (the only proof), `unanchored` (the run has not
/// verified), `unchained` (a run from before chaining) or `tampered`, the run's status, and a
/// problem naming each record changed, removed or inserted, or the manifest missing or
/// unsealed — the same check as `revoke365 audit verify`.
async fn get_audit(
    deps: &IntakeDeps,
    request: &ApiGatewayV2httpRequest,
    run_id: &str,
) -> ApiGatewayV2httpResponse {
    // Who may read this run's audit trail was decided by the route (`refused_for_run`).
    let verify = match request.query_string_parameters.first("verify") {
        None | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(_) => {
            return response(
                400,
                error_body(
                    "invalid_request",
                    "verify must be 1 (check the hash chains) or 0",
                    Some("verify"),
                ),
            )
        }
    };
    let run_id = RunId(run_id.to_string());
    if let Err(answer) = found_run(deps, &run_id).await {
        return answer;
    }
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
            response(
                503,
                error_body(
                    "unavailable",
                    "the audit trail could not be read; retry",
                    None,
                ),
            )
        }
    }
}

/// Offboarding queue records: each record is one request; a bad one fails alone (and reaches
/// the DLQ after the queue's maxReceiveCount) with its reason logged.
pub async fn handle_offboarding_queue(deps: &IntakeDeps, event: SqsEvent) -> SqsBatchResponse {
    let mut failures = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let outcome = match serde_json::from_str::<Value>(record.body.as_deref().unwrap_or("")) {
            Err(e) => Err(IntakeError::Invalid(InvalidRequest::new(
                "body",
                format!("is not valid JSON: {e}"),
            ))),
            Ok(body) => {
                let sender = record
                    .attributes
                    .get("SenderId")
                    .map(|s| principal::sqs_sender(s));
                intake_as(
                    &deps.store,
                    &deps.queue,
                    sender.as_deref(),
                    &body,
                    Some(&id),
                )
                .await
            }
        };
        match outcome {
            Ok(accepted) => {
                info!(message_id = %id, run_id = %accepted.run.run_id, created = accepted.created, "offboarding request accepted")
            }
            Err(e) => {
                warn!(message_id = %id, reason = %e, "offboarding request rejected");
                failures.push(item_failure(id));
            }
        }
    }
    batch_response(failures)
}

/// A security alert: `detail` is the request plus `incident_id` and `severity`. An error makes
/// the asynchronous invocation retry and then go to the on-failure destination.
pub async fn handle_security_alert(deps: &IntakeDeps, event: Value) -> Result<Value, LambdaError> {
    let id = event.get("id").and_then(Value::as_str).map(str::to_string);
    let detail = event.get("detail").cloned().unwrap_or(Value::Null);
    let text = |k: &str| event.get(k).and_then(Value::as_str).unwrap_or("");
    let sender = principal::event_source(text("account"), text("source"));
    match intake_as(
        &deps.store,
        &deps.queue,
        Some(&sender),
        &detail,
        id.as_deref(),
    )
    .await
    {
        Ok(accepted) => Ok(
            json!({"run_id": accepted.run.run_id, "status": accepted.run.status, "created": accepted.created}),
        ),
        Err(e) => {
            warn!(event_id = ?id, reason = %e, "security alert rejected");
            Err(e.to_string().into())
        }
    }
}
