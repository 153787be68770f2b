//! The step queues: how one step hands the run to the next.

use crate::error::QueueError;
use crate::messages::StepMessage;
use async_trait::async_trait;
use std::time::Duration;

#[async_trait]
pub trait Queue: Send + Sync {
    async fn send(&self, message: StepMessage) -> Result<(), QueueError>;

    async fn send_all(&self, messages: Vec<StepMessage>) -> Result<(), QueueError> {
        for m in messages {
            self.send(m).await?;
        }
        Ok(())
    }

    /// Sends `message` to be delivered no sooner than `delay` from now (where the queue can
    /// delay; at once otherwise).
    async fn send_later(&self, message: StepMessage, _delay: Duration) -> Result<(), QueueError> {
        self.send(message).await
    }
}
