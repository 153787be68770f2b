//! Intake: API Gateway requests, offboarding-queue records and security alerts become runs.

use revoke365::lambda::intake::{handle_intake_event, IntakeDeps};
use revoke365::lambda::lambda_runtime::{self, service_fn, LambdaEvent};
use revoke365::lambda::{init_tracing, LambdaError};

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    init_tracing();
    let deps = IntakeDeps::from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        handle_intake_event(&deps, event.payload)
    }))
    .await
}
