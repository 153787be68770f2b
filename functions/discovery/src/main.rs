//! Discovery: validates the user and finds every grant, then fans out removal batches.

use revoke365::aws::handlers::{handle_step_records, init_tracing, LambdaError, StepDeps};
use revoke365::aws::lambda_runtime::{self, service_fn, LambdaEvent};
use revoke365::aws::resources::resources;
use revoke365::aws::SqsEvent;

#[tokio::main]
async fn main() -> Result<(), LambdaError> {
    init_tracing();
    let deps = StepDeps::from_env(&resources().queues.discovery).await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<_, LambdaError>(handle_step_records(&deps, event.payload).await)
    }))
    .await
}
