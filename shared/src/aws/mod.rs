//! AWS adapters: the run store on DynamoDB, the step queues on SQS, secrets from Secrets
//! Manager, and the Lambda handlers that the thin `functions/*` mains run.
//!
//! Endpoints come only from the standard `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_<SERVICE>`
//! variables (aws-config reads them), so LocalStack and DynamoDB Local need no code of ours.

pub mod dynamodb;
pub mod handlers;
pub mod resources;
pub mod secrets;
pub mod sqs;

pub use aws_lambda_events::event::sqs::SqsEvent;
pub use lambda_runtime;
