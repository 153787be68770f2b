//! An in-process queue for running every step on one machine.

use crate::error::QueueError;
use crate::messages::StepMessage;
use crate::ports::Queue;
use async_trait::async_trait;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};
use tokio::sync::Mutex;

pub struct MemoryQueue {
    tx: UnboundedSender<StepMessage>,
    rx: Mutex<UnboundedReceiver<StepMessage>>,
}

impl Default for MemoryQueue {
    fn default() -> Self {
        let (tx, rx) = unbounded_channel();
        MemoryQueue {
            tx,
            rx: Mutex::new(rx),
        }
    }
}

impl MemoryQueue {
    /// Takes every message queued so far.
    pub async fn drain(&self) -> Vec<StepMessage> {
        let mut rx = self.rx.lock().await;
        let mut out = Vec::new();
        while let Ok(m) = rx.try_recv() {
            out.push(m);
        }
        out
    }

    /// Waits for the next message (the engine starts a step as soon as it is queued, even
    /// while the step that queued it is still running).
    pub async fn next(&self) -> Option<StepMessage> {
        self.rx.lock().await.recv().await
    }
}

#[async_trait]
impl Queue for MemoryQueue {
    async fn send(&self, message: StepMessage) -> Result<(), QueueError> {
        self.tx
            .send(message)
            .map_err(|e| QueueError::new(e.to_string()))
    }
}
