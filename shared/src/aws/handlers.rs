//! The Lambda handlers. Each `functions/*/src/main.rs` builds [`IntakeDeps`] or [`StepDeps`]
//! once per container and hands events to these functions; tests call them the same way with
//! events built from what they receive off the real queues.

use super::dynamodb::DynamoRunStore;
use super::resources::{AwsNames, QueueDef};
use super::secrets::SecretsProvider;
use super::sqs::SqsQueue;
use crate::adapters::connect::HttpConnector;
use crate::adapters::http::HttpCore;
use crate::config::{HttpSettings, ServiceUrls};
use crate::error::StepError;
use crate::messages::StepMessage;
use crate::model::{InvalidRequest, ItemStatus, OrgSettings, RunId};
use crate::ports::RunStore;
use crate::steps::{abandon, dispatch, intake, Connections, Connector, IntakeError, NoProgress};
use async_trait::async_trait;
use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use aws_lambda_events::http::{HeaderMap, HeaderValue};
use base64::Engine;
use serde_json::{json, Value};
use std::sync::Arc;
use tracing::{error, info, info_span, warn, Instrument};

pub type LambdaError = lambda_runtime::Error;

/// JSON logs (the template sets `AWS_LAMBDA_LOG_FORMAT=JSON`), `RUST_LOG` filtering.
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}

async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

// ---------------------------------------------------------------------------------------------
// Intake: API Gateway HTTP API, the offboarding queue, EventBridge security alerts

pub struct IntakeDeps {
    pub store: DynamoRunStore,
    pub queue: SqsQueue,
}

impl IntakeDeps {
    pub async fn from_env() -> Result<IntakeDeps, LambdaError> {
        let config = aws_config().await;
        IntakeDeps::new(&config, &AwsNames::from_env()).await
    }

    pub async fn new(
        config: &aws_config::SdkConfig,
        names: &AwsNames,
    ) -> Result<IntakeDeps, LambdaError> {
        Ok(IntakeDeps {
            store: DynamoRunStore::new(aws_sdk_dynamodb::Client::new(config), names),
            queue: SqsQueue::new(aws_sdk_sqs::Client::new(config), names).await?,
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

fn error_body(code: &str, message: &str, field: Option<&str>) -> Value {
    json!({"error": {"code": code, "message": message, "field": field}})
}

fn intake_failure(e: &IntakeError) -> ApiGatewayV2httpResponse {
    match e {
        IntakeError::Invalid(invalid) => response(400, invalid.to_json()),
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

pub async fn handle_http(
    deps: &IntakeDeps,
    request: ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let method = request.request_context.http.method.as_str().to_string();
    let path = request.raw_path.clone().unwrap_or_default();
    let span = info_span!("http", %method, %path);
    async {
        match (method.as_str(), path.trim_end_matches('/').split('/').collect::<Vec<_>>().as_slice()) {
            ("POST", ["", "revocations"]) => post_revocation(deps, &request).await,
            ("GET", ["", "revocations", run_id]) => get_revocation(deps, run_id).await,
            _ => response(404, error_body("not_found", &format!("no route {method} {path}; use POST /revocations or GET /revocations/{{run_id}}"), None)),
        }
    }
    .instrument(span)
    .await
}

fn request_body(request: &ApiGatewayV2httpRequest) -> Result<Value, InvalidRequest> {
    let raw = request.body.as_deref().unwrap_or("");
    let text = if request.is_base64_encoded {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|_| InvalidRequest::new("body", "is marked base64 but is not"))?;
        String::from_utf8(bytes).map_err(|_| InvalidRequest::new("body", "is not UTF-8"))?
    } else {
        raw.to_string()
    };
    serde_json::from_str(&text)
        .map_err(|e| InvalidRequest::new("body", format!("is not valid JSON: {e}")))
}

async fn post_revocation(
    deps: &IntakeDeps,
    request: &ApiGatewayV2httpRequest,
) -> ApiGatewayV2httpResponse {
    let body = match request_body(request) {
        Ok(b) => b,
        Err(e) => return response(400, e.to_json()),
    };
    let key = request
        .headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match intake(&deps.store, &deps.queue, &body, key.as_deref()).await {
        Ok(accepted) => {
            let run = &accepted.run;
            // 202 either way: an idempotent repeat gets the run it already started.
            let status = 202;
            response(
                status,
                json!({"run_id": run.run_id, "status": run.status, "status_url": format!("/revocations/{}", run.run_id)}),
            )
        }
        Err(e) => intake_failure(&e),
    }
}

async fn get_revocation(deps: &IntakeDeps, run_id: &str) -> ApiGatewayV2httpResponse {
    let run_id = RunId(run_id.to_string());
    let run = match deps.store.get_run(&run_id).await {
        Ok(Some(run)) => run,
        Ok(None) => {
            return response(
                404,
                error_body("not_found", &format!("no run {run_id}"), Some("run_id")),
            )
        }
        Err(e) => {
            error!(error = %e, "run lookup failed");
            return response(
                503,
                error_body("unavailable", "run lookup failed; retry", None),
            );
        }
    };
    let items = deps.store.items(&run_id).await.unwrap_or_default();
    let done = items.iter().filter(|i| i.status.is_finished()).count();
    let failed = items
        .iter()
        .filter(|i| matches!(i.status, ItemStatus::Failed { .. }))
        .count();
    response(
        200,
        json!({
            "run_id": run.run_id, "status": run.status,
            "progress": {"total": items.len(), "done": done, "failed": failed},
            "failure": run.failure, "result": run.result,
        }),
    )
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
            Ok(body) => intake(&deps.store, &deps.queue, &body, Some(&id)).await,
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
    match intake(&deps.store, &deps.queue, &detail, id.as_deref()).await {
        Ok(accepted) => Ok(
            json!({"run_id": accepted.run.run_id, "status": accepted.run.status, "created": accepted.created}),
        ),
        Err(e) => {
            warn!(event_id = ?id, reason = %e, "security alert rejected");
            Err(e.to_string().into())
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Discovery, removal, verification: SQS-triggered steps

/// Builds the M365 and PSA clients on first use: the secret is read, and the HTTP client made,
/// only when a message needs them — not at init, and never before the input was validated.
pub struct SecretConnector {
    http: HttpSettings,
    urls: ServiceUrls,
    secrets: SecretsProvider,
    core: tokio::sync::OnceCell<Arc<HttpCore>>,
}

impl SecretConnector {
    pub fn new(http: HttpSettings, urls: ServiceUrls, secrets: SecretsProvider) -> SecretConnector {
        SecretConnector {
            http,
            urls,
            secrets,
            core: tokio::sync::OnceCell::new(),
        }
    }
}

#[async_trait]
impl Connector for SecretConnector {
    async fn connect(&self, org: &OrgSettings) -> Result<Connections, StepError> {
        let s = self.secrets.get().await?;
        let core = self
            .core
            .get_or_try_init(|| async { HttpCore::new(self.http.clone()) })
            .await?;
        HttpConnector {
            core: core.clone(),
            urls: self.urls.clone(),
            m365_client_id: s.m365_client_id.clone(),
            m365_client_secret: s.m365_client_secret.clone(),
            connectwise: s.connectwise.clone(),
            recheck: Default::default(),
        }
        .connect(org)
        .await
    }
}

pub struct StepDeps {
    pub store: DynamoRunStore,
    pub queue: SqsQueue,
    pub connector: Arc<dyn Connector>,
    /// The maxReceiveCount of the queue this function consumes.
    pub max_receive_count: u32,
}

impl StepDeps {
    /// `queue` is the definition of the queue the function consumes (for its maxReceiveCount).
    pub async fn from_env(queue: &QueueDef) -> Result<StepDeps, LambdaError> {
        let config = aws_config().await;
        let names = AwsNames::from_env();
        let urls = ServiceUrls::default().with_env_overrides(|k| std::env::var(k).ok());
        let secrets = SecretsProvider::new(
            aws_sdk_secretsmanager::Client::new(&config),
            names.secret_id.clone(),
        );
        let connector = SecretConnector::new(HttpSettings::default(), urls, secrets);
        let max_receive_count = std::env::var("REVOKE365_MAX_RECEIVE_COUNT")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(queue.max_receive_count);
        StepDeps::new(&config, &names, Arc::new(connector), max_receive_count).await
    }

    pub async fn new(
        config: &aws_config::SdkConfig,
        names: &AwsNames,
        connector: Arc<dyn Connector>,
        max_receive_count: u32,
    ) -> Result<StepDeps, LambdaError> {
        Ok(StepDeps {
            store: DynamoRunStore::new(aws_sdk_dynamodb::Client::new(config), names),
            queue: SqsQueue::new(aws_sdk_sqs::Client::new(config), names).await?,
            connector,
            max_receive_count,
        })
    }
}

fn item_failure(message_id: String) -> BatchItemFailure {
    let mut f = BatchItemFailure::default();
    f.item_identifier = message_id;
    f
}

fn batch_response(failures: Vec<BatchItemFailure>) -> SqsBatchResponse {
    let mut r = SqsBatchResponse::default();
    r.batch_item_failures = failures;
    r
}

fn receive_count(record: &SqsMessage) -> u32 {
    record
        .attributes
        .get("ApproximateReceiveCount")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// Handles step messages one by one. Transient failures are left to SQS (the record is
/// reported failed and comes back after the visibility timeout); on the last allowed receive
/// the run is marked failed with the reason before the message goes to the dead-letter queue.
/// Permanent failures (malformed message, unknown run) fail the run at once and are not
/// retried beyond the queue's bound.
pub async fn handle_step_records(deps: &StepDeps, event: SqsEvent) -> SqsBatchResponse {
    let mut failures = Vec::new();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.clone().unwrap_or_default();
        let last_try = receive_count(&record) >= deps.max_receive_count;
        let message = serde_json::from_str::<StepMessage>(&body);
        let result = match &message {
            Ok(message) => {
                let span = info_span!("step", run_id = %message.run_id, kind = message.kind(), message_id = %id);
                dispatch(
                    &deps.store,
                    &deps.queue,
                    deps.connector.as_ref(),
                    &NoProgress,
                    message,
                )
                .instrument(span)
                .await
            }
            Err(e) => Err(StepError::Permanent(format!("malformed step message: {e}"))),
        };
        let Err(e) = result else { continue };
        let permanent = !e.is_transient();
        let run_id = match &message {
            Ok(m) => Some(m.run_id.clone()),
            Err(_) => serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v["run_id"].as_str().map(|r| RunId(r.to_string()))),
        };
        warn!(message_id = %id, run_id = ?run_id, error = %e, permanent, last_try, "step message failed");
        if let (true, Some(run_id)) = (permanent || last_try, &run_id) {
            let reason = if permanent {
                e.to_string()
            } else {
                format!("gave up after {} tries: {e}", deps.max_receive_count)
            };
            abandon(
                &deps.store,
                &deps.queue,
                run_id,
                message.as_ref().ok().map(|m| &m.step),
                &reason,
            )
            .await;
        }
        failures.push(item_failure(id));
    }
    batch_response(failures)
}
