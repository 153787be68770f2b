//! Runs the steps in one process: the in-process queue delivers each message to
//! [`dispatch`](crate::steps::dispatch) concurrently, as SQS would, until the queue is empty.

use crate::adapters::memory_queue::MemoryQueue;
use crate::adapters::sqlite_store::SqliteRunStore;
use crate::config::RetryPolicy;
use crate::messages::StepMessage;
use crate::model::Run;
use crate::ports::RunStore;
use crate::ports::{Connector, ProgressObserver};
use crate::steps::{abandon, dispatch, intake, Delivery, IntakeError};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tracing::warn;

/// Redelivery of a message whose step failed for now: three deliveries (SQS's
/// maxReceiveCount) before the run is failed with its error.
const REDELIVERY: RetryPolicy = RetryPolicy {
    max_attempts: 3,
    base_delay: Duration::from_millis(200),
    max_delay: Duration::from_secs(2),
};

pub struct LocalEngine {
    pub store: Arc<SqliteRunStore>,
    pub queue: Arc<MemoryQueue>,
    pub connector: Arc<dyn Connector>,
    pub progress: Arc<dyn ProgressObserver>,
}

impl LocalEngine {
    /// Validates and accepts a request, then runs it to the end; returns the finished run.
    pub async fn run(&self, body: &Value) -> Result<Run, IntakeError> {
        let run = intake(self.store.as_ref(), self.queue.as_ref(), body, None)
            .await?
            .run;
        self.run_until_idle().await;
        Ok(self.store.get_run(&run.run_id).await?.unwrap_or(run))
    }

    /// Delivers queued messages until none is left and none is being handled.
    pub async fn run_until_idle(&self) {
        let mut in_flight = JoinSet::new();
        loop {
            let queued = self.queue.drain().await;
            let nothing_queued = queued.is_empty();
            for message in queued {
                in_flight.spawn(deliver(self.clone_parts(), message));
            }
            if in_flight.join_next().await.is_none() && nothing_queued {
                break;
            }
        }
    }

    fn clone_parts(&self) -> Parts {
        Parts {
            store: self.store.clone(),
            queue: self.queue.clone(),
            connector: self.connector.clone(),
            progress: self.progress.clone(),
        }
    }
}

struct Parts {
    store: Arc<SqliteRunStore>,
    queue: Arc<MemoryQueue>,
    connector: Arc<dyn Connector>,
    progress: Arc<dyn ProgressObserver>,
}

/// Handles one message with bounded redelivery of transient failures; a message that cannot
/// be handled is abandoned on its run, with the reason, instead of vanishing.
async fn deliver(p: Parts, message: StepMessage) {
    let mut attempt = 1;
    loop {
        let result = dispatch(
            p.store.as_ref(),
            p.queue.as_ref(),
            p.connector.as_ref(),
            p.progress.as_ref(),
            &message,
            &Delivery::local(),
        )
        .await;
        match result {
            Ok(()) => return,
            Err(e) if e.is_transient() && REDELIVERY.allows_another(attempt) => {
                warn!(run_id = %message.run_id, kind = message.kind(), attempt, error = %e, "step failed; redelivering");
                tokio::time::sleep(REDELIVERY.delay(attempt, None)).await;
                attempt += 1;
            }
            Err(e) => {
                let reason = format!("{} step failed after {attempt} tries: {e}", message.kind());
                abandon(
                    p.store.as_ref(),
                    p.queue.as_ref(),
                    p.connector.as_ref(),
                    &message.run_id,
                    Some(&message.step),
                    &reason,
                )
                .await;
                return;
            }
        }
    }
}
