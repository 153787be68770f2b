//! What every DynamoDB table of the adapters shares: error conversion, batch writes that send
//! the unprocessed rest again, and the retry policy for conflicting writes.

use crate::config::RetryPolicy;
use crate::error::StoreError;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::WriteRequest;
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

/// Unprocessed batch items and conflicting transactions are retried at once, not after the
/// queue's visibility timeout.
pub(super) const STORE_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 9,
    base_delay: std::time::Duration::from_millis(25),
    max_delay: std::time::Duration::from_secs(2),
};

pub(super) fn backend<E: std::error::Error + 'static, R>(
    what: &str,
    e: SdkError<E, R>,
) -> StoreError
where
    R: std::fmt::Debug,
{
    StoreError::backend(format!("{what}: {}", DisplayErrorContext(&e)))
}

/// One BatchWriteItem of at most 25 requests on `table`, sending again (with the store's
/// retry policy) what DynamoDB leaves unprocessed.
pub(super) async fn batch_write(
    client: &Client,
    table: &str,
    requests: Vec<WriteRequest>,
) -> Result<(), StoreError> {
    let mut pending = Some(HashMap::from([(table.to_string(), requests)]));
    let mut retry = StoreRetry::new();
    loop {
        let out = client
            .batch_write_item()
            .set_request_items(pending.take())
            .send()
            .await
            .map_err(|e| backend(&format!("BatchWriteItem {table}"), e))?;
        match out.unprocessed_items {
            Some(left) if left.values().any(|v| !v.is_empty()) => {
                if !retry.again().await {
                    return Err(StoreError::backend(format!(
                        "BatchWriteItem left items of {table} unprocessed"
                    )));
                }
                pending = Some(left);
            }
            _ => break,
        }
    }
    Ok(())
}

pub(super) fn serde_error(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::backend(format!("{what}: {e}"))
}

/// True when a write failed only because its condition did not hold.
pub(super) fn is_condition_failure<E, R>(e: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|se| se.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

/// The tries of one write under [`STORE_RETRY`]: a transaction cancelled by a conflicting one,
/// or what a batch left unprocessed, is tried again at once (after the policy's short delay).
pub(super) struct StoreRetry {
    attempt: u32,
}

impl StoreRetry {
    pub(super) fn new() -> StoreRetry {
        StoreRetry { attempt: 1 }
    }

    /// Waits for the next try and says true; false when the policy allows no more tries.
    pub(super) async fn again(&mut self) -> bool {
        if !STORE_RETRY.allows_another(self.attempt) {
            return false;
        }
        tokio::time::sleep(STORE_RETRY.delay(self.attempt, None)).await;
        self.attempt += 1;
        true
    }
}

/// Why DynamoDB cancelled a transaction: one code per item in order (`None` where the item was
/// not the reason); empty when the error is no cancellation.
pub(super) fn cancellation_reasons<R>(e: &SdkError<TransactWriteItemsError, R>) -> Vec<String> {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(tc)) => tc
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or("None").to_string())
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether a transaction failed because another one was writing the same items: worth another
/// try at once.
pub(super) fn is_transaction_conflict<R>(
    e: &SdkError<TransactWriteItemsError, R>,
    reasons: &[String],
) -> bool {
    reasons.iter().any(|r| r == "TransactionConflict")
        || e.as_service_error().and_then(|se| se.code()) == Some("TransactionConflictException")
}
