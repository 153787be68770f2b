//! Discovery: validates the user, reads the tenant-wide lookups and fans out scan shards;
//! reads the shards; runs the scheduled jobs (the sweep).

use revoke365::adapters::aws::resources::resources;
use revoke365::lambda::lambda_runtime::{self, service_fn, LambdaEvent};
use revoke365::lambda::steps::{handle_step_event, StepDeps};
use revoke365::lambda::{deadline_of, init_tracing, LambdaError};

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    init_tracing();
    let deps = StepDeps::from_env(&resources().queues.discovery).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<serde_json::Value>| {
        let deadline = deadline_of(&event.context);
        handle_step_event(&deps, event.payload, deadline)
    }))
    .await
}
