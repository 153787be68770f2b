//! The alert poller's memory on DynamoDB, in the runs table: `WATERMARK#<company>#<feed>`
//! rows (how far each feed was read) and `ALERT#<key>` rows (which alert started which run),
//! the latter expiring with the table's TTL after the dedupe window. Neither row carries
//! `company_id` or `active`, so neither shows in the run indexes.

use super::dynamodb::{backend, is_condition_failure, serde_error, DynamoRunStore};
use crate::error::StoreError;
use crate::model::{AlertSourceKind, RunId};
use crate::ports::AlertLedger;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_dynamo::{from_item, to_item};

const WATERMARK_SK: &str = "WATERMARK";
const ALERT_SK: &str = "ALERT";

fn watermark_pk(company_id: &str, feed: AlertSourceKind) -> String {
    format!("WATERMARK#{company_id}#{}", feed.as_str())
}

fn alert_pk(key: &str) -> String {
    format!("ALERT#{key}")
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
        let put = self
            .client
            .put_item()
            .table_name(&self.runs)
            .set_item(Some(
                to_item(row).map_err(|e| serde_error("alert run row", e))?,
            ))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(
                ":now",
                AttributeValue::N(Utc::now().timestamp().to_string()),
            )
            .send()
            .await;
        match put {
            Ok(_) => Ok(None),
            Err(e) if is_condition_failure(&e) => Ok(Some(
                self.alert_run(key).await?.unwrap_or_else(|| run_id.clone()),
            )),
            Err(e) => Err(backend("PutItem alert run", e)),
        }
    }
}
