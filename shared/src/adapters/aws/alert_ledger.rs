//! The alert poller's memory on DynamoDB, in the runs table: `WATERMARK#<company>#<feed>`
//! rows (how far each feed was read), `ALERT#<key>` rows (which alert started which run),
//! `MARK#<key>` rows (what an alert decided without a run) and `CONTAIN#<company>#<hour>`
//! counters (contain runs started from alerts in that hour); all but the watermarks expire
//! with the table's TTL. None carries `company_id` or `active`, so none shows in the run
//! indexes.

use super::dynamo::{backend, is_condition_failure, serde_error};
use super::dynamodb::DynamoRunStore;
use crate::error::StoreError;
use crate::model::{AlertSourceKind, RunId};
use crate::ports::AlertLedger;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_dynamo::{from_item, to_item};

const WATERMARK_SK: &str = "WATERMARK";
const ALERT_SK: &str = "ALERT";
const MARK_SK: &str = "MARK";
const CONTAIN_SK: &str = "CONTAIN";

/// How long an hour's counter is kept after the hour: long enough to read back in an
/// investigation, short enough not to pile up.
const CONTAIN_COUNTER_TTL: chrono::Duration = chrono::Duration::days(2);

fn watermark_pk(company_id: &str, feed: AlertSourceKind) -> String {
    format!("WATERMARK#{company_id}#{}", feed.as_str())
}

fn alert_pk(key: &str) -> String {
    format!("ALERT#{key}")
}

fn mark_pk(key: &str) -> String {
    format!("MARK#{key}")
}

fn contain_pk(company_id: &str, hour: &str) -> String {
    format!("CONTAIN#{company_id}#{hour}")
}

#[derive(Serialize, Deserialize)]
struct WatermarkRow {
    pk: String,
    sk: String,
    at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct AlertRunRow {
    pk: String,
    sk: String,
    run_id: RunId,
    /// Epoch seconds: the table's TTL attribute.
    expires_at: i64,
}

impl DynamoRunStore {
    /// Puts `item` unless a row with its key is there and not yet expired (TTL deletes late):
    /// whether this call wrote it.
    async fn put_unless_live(&self, item: Item, what: &'static str) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.runs)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(
                ":now",
                AttributeValue::N(Utc::now().timestamp().to_string()),
            )
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(backend(what, e)),
        }
    }
}

#[async_trait]
impl AlertLedger for DynamoRunStore {
    async fn watermark(
        &self,
        company_id: &str,
        feed: AlertSourceKind,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.runs)
            .set_key(Some(self.key(watermark_pk(company_id, feed), WATERMARK_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem alert watermark", e))?;
        out.item
            .map(|item| from_item::<_, WatermarkRow>(item).map(|row| row.at))
            .transpose()
            .map_err(|e| serde_error("watermark row", e))
    }

    async fn save_watermark(
        &self,
        company_id: &str,
        feed: AlertSourceKind,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let row = WatermarkRow {
            pk: watermark_pk(company_id, feed),
            sk: WATERMARK_SK.into(),
            at,
        };
        self.client
            .put_item()
            .table_name(&self.runs)
            .set_item(Some(
                to_item(row).map_err(|e| serde_error("watermark row", e))?,
            ))
            .send()
            .await
            .map_err(|e| backend("PutItem alert watermark", e))?;
        Ok(())
    }

    async fn alert_run(&self, key: &str) -> Result<Option<RunId>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.runs)
            .set_key(Some(self.key(alert_pk(key), ALERT_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem alert run", e))?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let row: AlertRunRow = from_item(item).map_err(|e| serde_error("alert run row", e))?;
        // TTL deletes late (and DynamoDB Local never).
        Ok((row.expires_at > Utc::now().timestamp()).then_some(row.run_id))
    }

    async fn remember_alert_run(
        &self,
        key: &str,
        run_id: &RunId,
        until: DateTime<Utc>,
    ) -> Result<Option<RunId>, StoreError> {
        let row = AlertRunRow {
            pk: alert_pk(key),
            sk: ALERT_SK.into(),
            run_id: run_id.clone(),
            expires_at: until.timestamp(),
        };
        let item = to_item(row).map_err(|e| serde_error("alert run row", e))?;
        match self.put_unless_live(item, "PutItem alert run").await? {
            true => Ok(None),
            false => Ok(Some(
                self.alert_run(key).await?.unwrap_or_else(|| run_id.clone()),
            )),
        }
    }

    async fn take_contain_budget(
        &self,
        company_id: &str,
        hour: &str,
        limit: u32,
    ) -> Result<bool, StoreError> {
        // A conditional increment: concurrent invocations each add one only while the count
        // is below the limit, so no two of them take the last place.
        let expires_at = Utc::now() + CONTAIN_COUNTER_TTL;
        let update = self
            .client
            .update_item()
            .table_name(&self.runs)
            .set_key(Some(self.key(contain_pk(company_id, hour), CONTAIN_SK)))
            .update_expression("ADD taken :one SET expires_at = :expires")
            .condition_expression("attribute_not_exists(taken) OR taken < :limit")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":limit", AttributeValue::N(limit.to_string()))
            .expression_attribute_values(
                ":expires",
                AttributeValue::N(expires_at.timestamp().to_string()),
            )
            .send()
            .await;
        match update {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(backend("UpdateItem contain budget", e)),
        }
    }

    async fn mark_alert(&self, key: &str, until: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut item = self.key(mark_pk(key), MARK_SK);
        item.insert(
            "expires_at".into(),
            AttributeValue::N(until.timestamp().to_string()),
        );
        self.put_unless_live(item, "PutItem alert mark").await
    }

    async fn alert_marked(&self, key: &str) -> Result<bool, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.runs)
            .set_key(Some(self.key(mark_pk(key), MARK_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem alert mark", e))?;
        // TTL deletes late (and DynamoDB Local never).
        Ok(out
            .item
            .and_then(|item| item.get("expires_at")?.as_n().ok()?.parse::<i64>().ok())
            .is_some_and(|expires_at| expires_at > Utc::now().timestamp()))
    }
}
