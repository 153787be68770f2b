//! The step queues on SQS: one queue per step, the message body is the versioned envelope.

use super::resources::AwsNames;
use crate::error::QueueError;
use crate::messages::{Step, StepMessage};
use crate::ports::Queue;
use async_trait::async_trait;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use std::time::Duration;

/// SQS's longest `DelaySeconds`.
const MAX_DELAY_SECS: u64 = 900;
/// SQS's limits on one `SendMessageBatch`: entries, and bytes of all bodies together (256 KiB,
/// what every account allows).
const BATCH_ENTRIES: usize = 10;
const BATCH_BYTES: usize = 256 * 1024;

/// `bodies` cut into runs that each fit one batch (a body too big alone goes alone, and SQS
/// says why it refuses it).
fn batches(bodies: &[String]) -> Vec<&[String]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, b) in bodies.iter().enumerate() {
        let full = i - start == BATCH_ENTRIES || (i > start && bytes + b.len() > BATCH_BYTES);
        if full {
            out.push(&bodies[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += b.len();
    }
    if start < bodies.len() {
        out.push(&bodies[start..]);
    }
    out
}

/// Queue URLs of the three step queues.
#[derive(Debug, Clone)]
pub struct StepQueueUrls {
    pub discovery: String,
    pub removal: String,
    pub verification: String,
}

#[derive(Clone)]
pub struct SqsQueue {
    client: Client,
    urls: StepQueueUrls,
}

/// A queue URL as given, or looked up by name.
pub async fn queue_url(client: &Client, name_or_url: &str) -> Result<String, QueueError> {
    if name_or_url.starts_with("http://") || name_or_url.starts_with("https://") {
        return Ok(name_or_url.to_string());
    }
    let out = client
        .get_queue_url()
        .queue_name(name_or_url)
        .send()
        .await
        .map_err(|e| {
            QueueError::new(format!(
                "cannot find queue {name_or_url}: {}",
                aws_sdk_sqs::error::DisplayErrorContext(&e)
            ))
        })?;
    out.queue_url
        .ok_or_else(|| QueueError::new(format!("queue {name_or_url} has no URL")))
}

impl SqsQueue {
    pub async fn new(client: Client, names: &AwsNames) -> Result<SqsQueue, QueueError> {
        let urls = StepQueueUrls {
            discovery: queue_url(&client, &names.discovery_queue).await?,
            removal: queue_url(&client, &names.removal_queue).await?,
            verification: queue_url(&client, &names.verification_queue).await?,
        };
        Ok(SqsQueue { client, urls })
    }

    pub fn urls(&self) -> &StepQueueUrls {
        &self.urls
    }

    fn url_for(&self, message: &StepMessage) -> &str {
        match message.step {
            Step::Discover | Step::Scan(_) => &self.urls.discovery,
            Step::Remove(_) | Step::Victim(_) => &self.urls.removal,
            Step::Verify => &self.urls.verification,
        }
    }
}

fn body(message: &StepMessage) -> Result<String, QueueError> {
    serde_json::to_string(message).map_err(|e| QueueError::new(e.to_string()))
}

#[async_trait]
impl Queue for SqsQueue {
    async fn send(&self, message: StepMessage) -> Result<(), QueueError> {
        self.send_later(message, Duration::ZERO).await
    }

    /// `DelaySeconds`: at most 15 minutes.
    async fn send_later(&self, message: StepMessage, delay: Duration) -> Result<(), QueueError> {
        let delay = delay.as_secs().min(MAX_DELAY_SECS) as i32;
        self.client
            .send_message()
            .queue_url(self.url_for(&message))
            .message_body(body(&message)?)
            .set_delay_seconds((delay > 0).then_some(delay))
            .send()
            .await
            .map_err(|e| {
                QueueError::new(format!(
                    "send {} for run {}: {}",
                    message.kind(),
                    message.run_id,
                    aws_sdk_sqs::error::DisplayErrorContext(&e)
                ))
            })?;
        Ok(())
    }

    /// Sends in batches per queue (ten messages and 256 KiB at most, SQS's limits); any entry
    /// SQS refuses fails the whole call, so the caller's message is redelivered rather than a
    /// step silently lost.
    async fn send_all(&self, messages: Vec<StepMessage>) -> Result<(), QueueError> {
        let mut by_url: Vec<(&str, Vec<String>)> = Vec::new();
        for m in &messages {
            let url = self.url_for(m);
            let text = body(m)?;
            match by_url.iter_mut().find(|(u, _)| *u == url) {
                Some((_, list)) => list.push(text),
                None => by_url.push((url, vec![text])),
            }
        }
        for (url, bodies) in by_url {
            for chunk in batches(&bodies) {
                let entries = chunk
                    .iter()
                    .enumerate()
                    .map(|(i, text)| {
                        SendMessageBatchRequestEntry::builder()
                            .id(i.to_string())
                            .message_body(text.as_str())
                            .build()
                            .map_err(|e| QueueError::new(e.to_string()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let out = self
                    .client
                    .send_message_batch()
                    .queue_url(url)
                    .set_entries(Some(entries))
                    .send()
                    .await
                    .map_err(|e| {
                        QueueError::new(format!(
                            "send batch to {url}: {}",
                            aws_sdk_sqs::error::DisplayErrorContext(&e)
                        ))
                    })?;
                if let Some(failed) = out.failed.first() {
                    return Err(QueueError::new(format!(
                        "SQS refused a message for {url}: {} {}",
                        failed.code,
                        failed.message.as_deref().unwrap_or("")
                    )));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_keep_to_ten_entries_and_256_kib() {
        let small: Vec<String> = (0..23).map(|i| format!("m{i}")).collect();
        let sizes: Vec<usize> = batches(&small).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [10, 10, 3]);
        // Shard messages of 100 KiB: two fit a batch, the third starts the next.
        let big: Vec<String> = (0..5).map(|_| "x".repeat(100 * 1024)).collect();
        let sizes: Vec<usize> = batches(&big).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [2, 2, 1]);
        // One body over the limit goes alone.
        let huge = vec!["x".repeat(300 * 1024), "y".into()];
        let sizes: Vec<usize> = batches(&huge).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [1, 1]);
        assert!(batches(&[]).is_empty());
    }
}
