//! The Lambda entry logic: what each `functions/*/src/main.rs` hands its events to. Tests call
//! the same functions with events built from what they receive off the real queues.
//!
//! Endpoints come only from the standard `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>`
//! variables (aws-config reads them), so LocalStack and DynamoDB Local need no code of ours.

pub mod connector;
pub mod intake;
pub mod steps;
pub mod webhook;

pub use aws_lambda_events::event::sqs::SqsEvent;
pub use connector::SecretConnector;
pub use lambda_runtime;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse};

pub type LambdaError = lambda_runtime::Error;

/// JSON logs (the template sets `AWS_LAMBDA_LOG_FORMAT=JSON`), `RUST_LOG` filtering.
pub fn init_tracing() {
    lambda_runtime::tracing::init_default_subscriber();
}

/// The invocation's deadline (Lambda gives it in milliseconds since the epoch).
pub fn deadline_of(context: &lambda_runtime::Context) -> crate::steps::Deadline {
    let now_ms = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let left = std::time::Duration::from_millis(context.deadline.saturating_sub(now_ms));
    crate::steps::Deadline::at(std::time::Instant::now() + left)
}

pub(crate) async fn aws_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

pub(crate) fn item_failure(message_id: String) -> BatchItemFailure {
    let mut f = BatchItemFailure::default();
    f.item_identifier = message_id;
    f
}

pub(crate) fn batch_response(failures: Vec<BatchItemFailure>) -> SqsBatchResponse {
    let mut r = SqsBatchResponse::default();
    r.batch_item_failures = failures;
    r
}
