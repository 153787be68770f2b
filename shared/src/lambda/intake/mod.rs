//! Intake: API Gateway HTTP API requests (a Sentinel playbook's incidents among them),
//! offboarding-queue records and EventBridge security alerts become runs. Each records its
//! caller as the trigger proves it (the IAM principal, the SQS sender, the event's account and
//! source, the HMAC caller), and a company's allow-list decides whether that caller may act for
//! it. The API's routes, whose callers wait for the answer, first look up the user and the
//! ticket (a few seconds at most), so that a typo is a 4xx to its caller rather than a failed
//! run told to the customer. Before any of that, and before any AWS call, a request is refused
//! on its form alone: an unknown route key, an IAM route without an IAM identity, a bad run id,
//! field or query parameter, a malformed or stale webhook signature.
//!
//! Here: the three kinds of event ([`IntakeEvent`]) and the two that are not HTTP. The HTTP
//! API is an axum router ([`routes`]): the authorizing extractors in [`caller`], the form
//! checks in [`form`], the answers in [`answer`], and a module per job for the handlers.

mod access;
mod alerts;
mod answer;
mod audit;
mod caller;
mod form;
mod restore;
mod routes;
mod runs;
mod signed;

pub use routes::{handle_http, route_keys};
pub use runs::RESULT_PAGE_SIZE;

use super::webhook::WebhookSecrets;
use super::{aws_config, batch_response, item_failure, LambdaError};
use crate::adapters::aws::dynamodb::DynamoRunStore;
use crate::adapters::aws::resources::AwsNames;
use crate::adapters::aws::sqs::SqsQueue;
use crate::authorize::principal;
use crate::model::InvalidRequest;
use crate::ports::Connector;
use crate::steps::{intake_as, IntakeError};
use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use tracing::{info, warn};

/// What the intake needs; clones share its clients and what they keep (the router's state is
/// one, per request).
#[derive(Clone)]
pub struct IntakeDeps {
    pub store: DynamoRunStore,
    pub queue: SqsQueue,
    /// The per-caller secrets of the HMAC-signed route.
    pub webhook: WebhookSecrets,
    /// The tenants and PSAs, to check a request's user and ticket before answering 202;
    /// without it every request is accepted unchecked (its run checks them).
    pub connector: Option<Arc<dyn Connector>>,
}

/// The router's state.
type Deps = Arc<IntakeDeps>;

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

/// The three triggers of the intake function, told apart by their types: an API Gateway HTTP
/// API request has `requestContext.http`, an SQS batch `Records`, an EventBridge event
/// `detail-type` and `source`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum IntakeEvent {
    Http(Box<ApiGatewayV2httpRequest>),
    Queue(SqsEvent),
    Alert(EventBridgeEvent<Value>),
}

const UNRECOGNIZED: &str =
    "unrecognized event: expected an API Gateway HTTP API request, SQS records or an EventBridge event";

/// One entry point for the three triggers of the intake function.
pub async fn handle_intake_event(deps: &IntakeDeps, event: Value) -> Result<Value, LambdaError> {
    let event: IntakeEvent = serde_json::from_value(event).map_err(|_| UNRECOGNIZED)?;
    handle_event(deps, event).await
}

/// [`handle_intake_event`] for an event already read.
pub async fn handle_event(deps: &IntakeDeps, event: IntakeEvent) -> Result<Value, LambdaError> {
    match event {
        IntakeEvent::Http(request) => Ok(serde_json::to_value(handle_http(deps, *request).await)?),
        IntakeEvent::Queue(sqs) => {
            let from_sqs = (sqs.records.first()).and_then(|r| r.event_source.as_deref());
            if from_sqs != Some("aws:sqs") {
                return Err(UNRECOGNIZED.into());
            }
            Ok(serde_json::to_value(
                handle_offboarding_queue(deps, sqs).await,
            )?)
        }
        IntakeEvent::Alert(alert) => handle_security_alert(deps, alert).await,
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
pub async fn handle_security_alert(
    deps: &IntakeDeps,
    event: EventBridgeEvent<Value>,
) -> Result<Value, LambdaError> {
    let sender = principal::event_source(event.account.as_deref().unwrap_or(""), &event.source);
    match intake_as(
        &deps.store,
        &deps.queue,
        Some(&sender),
        &event.detail,
        event.id.as_deref(),
    )
    .await
    {
        Ok(accepted) => Ok(
            json!({"run_id": accepted.run.run_id, "status": accepted.run.status, "created": accepted.created}),
        ),
        Err(e) => {
            warn!(event_id = ?event.id, reason = %e, "security alert rejected");
            Err(e.to_string().into())
        }
    }
}
