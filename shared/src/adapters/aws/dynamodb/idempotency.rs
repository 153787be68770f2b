//! Idempotency keys on the runs table, with conditional writes.

use super::*;

#[async_trait]
impl IdempotencyKeys for DynamoRunStore {
    async fn reserve_idempotency_key(
        &self,
        key: &str,
        run_id: &RunId,
        fingerprint: &str,
    ) -> Result<KeyHolder, StoreError> {
        let now = Utc::now();
        let row = KeyRow {
            pk: format!("IDEM#{key}"),
            sk: "IDEM".into(),
            run_id: run_id.clone(),
            fingerprint: fingerprint.to_string(),
            reserved_at: Some(now),
            expires_at: (now + IDEMPOTENCY_WINDOW).timestamp(),
        };
        let put = self
            .client
            .put_item()
            .table_name(&self.runs)
            .set_item(Some(to_item(row).map_err(|e| serde_error("key row", e))?))
            // TTL deletes late (and DynamoDB Local never): an expired key is free again.
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(KeyHolder::Reserved),
            Err(e) if is_condition_failure(&e) => {
                let out = self
                    .client
                    .get_item()
                    .table_name(&self.runs)
                    .set_key(Some(self.key(format!("IDEM#{key}"), "IDEM")))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| backend("GetItem idempotency key", e))?;
                let Some(item) = out.item else {
                    // Expired and deleted in between: try once more.
                    return self.reserve_idempotency_key(key, run_id, fingerprint).await;
                };
                let row: KeyRow = from_item(item).map_err(|e| serde_error("key row", e))?;
                Ok(KeyHolder::Held {
                    run_id: row.run_id,
                    fingerprint: row.fingerprint,
                    reserved_at: row.reserved_at.unwrap_or(now),
                })
            }
            Err(e) => Err(backend("PutItem idempotency key", e)),
        }
    }

    async fn replace_idempotency_key(
        &self,
        key: &str,
        from: &RunId,
        to: &RunId,
        fingerprint: &str,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        let out = self
            .client
            .update_item()
            .table_name(&self.runs)
            .set_key(Some(self.key(format!("IDEM#{key}"), "IDEM")))
            .update_expression("SET run_id = :to, fingerprint = :f, reserved_at = :now")
            .condition_expression("run_id = :from")
            .expression_attribute_values(":to", av(to)?)
            .expression_attribute_values(":from", av(from)?)
            .expression_attribute_values(":f", s(fingerprint))
            .expression_attribute_values(":now", av(now)?)
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(backend("UpdateItem idempotency key", e)),
        }
    }

    async fn release_idempotency_key(&self, key: &str, run_id: &RunId) -> Result<(), StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.runs)
            .set_key(Some(self.key(format!("IDEM#{key}"), "IDEM")))
            .condition_expression("run_id = :r")
            .expression_attribute_values(":r", av(run_id)?)
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failure(&e) => Ok(()),
            Err(e) => Err(backend("DeleteItem idempotency key", e)),
        }
    }
}
