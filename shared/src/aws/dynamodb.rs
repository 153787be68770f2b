//! The run store on DynamoDB. Runs, their items, batch markers and idempotency keys share the
//! runs table (`pk`/`sk`); audit records have a table of their own, written with PutItem only
//! and never expiring; org settings another.
//!
//! Every state change is conditional, so duplicate deliveries and concurrent batches can never
//! double-count, lose an item or start a step twice.

use super::resources::AwsNames;
use crate::config::RetryPolicy;
use crate::error::StoreError;
use crate::model::{
    AuditRecord, ItemId, ItemStatus, OrgSettings, PlanItem, Report, Run, RunFailure, RunId,
    RunStatus,
};
use crate::ports::{BatchProgress, Plan, RunStore, IDEMPOTENCY_WINDOW};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, PutRequest, TransactWriteItem, Update, WriteRequest,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

pub struct DynamoRunStore {
    client: Client,
    runs: String,
    audit: String,
    orgs: String,
}

/// Unprocessed batch items and conflicting transactions are retried at once, not after the
/// queue's visibility timeout.
const STORE_RETRY: RetryPolicy = RetryPolicy {
    max_attempts: 9,
    base_delay: std::time::Duration::from_millis(25),
    max_delay: std::time::Duration::from_secs(2),
};

fn run_pk(id: &RunId) -> String {
    format!("RUN#{id}")
}
const RUN_SK: &str = "RUN";
fn item_sk(id: ItemId) -> String {
    format!("ITEM#{id:05}")
}
fn batch_sk(id: u32) -> String {
    format!("BATCH#{id:05}")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: impl ToString) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn json<T: Serialize>(v: &T) -> Result<AttributeValue, StoreError> {
    serde_json::to_string(v)
        .map(AttributeValue::S)
        .map_err(|e| StoreError::backend(e.to_string()))
}
fn status_str(status: RunStatus) -> AttributeValue {
    s(status.as_str())
}
fn now() -> AttributeValue {
    s(Utc::now().to_rfc3339())
}

fn get_s<'a>(item: &'a Item, key: &str) -> Option<&'a str> {
    item.get(key)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}
fn get_json<T: DeserializeOwned>(item: &Item, key: &str) -> Result<Option<T>, StoreError> {
    get_s(item, key)
        .map(|t| {
            serde_json::from_str(t)
                .map_err(|e| StoreError::backend(format!("attribute {key}: {e}")))
        })
        .transpose()
}
fn get_n(item: &Item, key: &str) -> u32 {
    item.get(key)
        .and_then(|v| v.as_n().ok())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}
fn get_time(item: &Item, key: &str) -> Result<DateTime<Utc>, StoreError> {
    let t =
        get_s(item, key).ok_or_else(|| StoreError::backend(format!("run item has no {key}")))?;
    DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| StoreError::backend(format!("{key}: {e}")))
}

fn backend<E: std::error::Error + 'static, R>(what: &str, e: SdkError<E, R>) -> StoreError
where
    R: std::fmt::Debug,
{
    StoreError::backend(format!("{what}: {}", DisplayErrorContext(&e)))
}

/// True when a write failed only because its condition did not hold.
fn is_condition_failure<E, R>(e: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    e.as_service_error().and_then(|se| se.code()) == Some("ConditionalCheckFailedException")
}

fn run_from_item(item: &Item) -> Result<Run, StoreError> {
    let status: RunStatus = serde_json::from_value(serde_json::Value::String(
        get_s(item, "status").unwrap_or_default().to_string(),
    ))
    .map_err(|e| StoreError::backend(format!("status: {e}")))?;
    Ok(Run {
        run_id: RunId(get_s(item, "run_id").unwrap_or_default().to_string()),
        request: get_json(item, "request")?
            .ok_or_else(|| StoreError::backend("run item has no request"))?,
        status,
        created_at: get_time(item, "created_at")?,
        updated_at: get_time(item, "updated_at")?,
        status_changed_at: get_time(item, "status_changed_at")?,
        user: get_json(item, "user")?,
        indirect_access: get_json(item, "indirect_access")?.unwrap_or_default(),
        scan_errors: get_json(item, "scan_errors")?.unwrap_or_default(),
        not_checked: get_json(item, "not_checked")?.unwrap_or_default(),
        batches_total: get_n(item, "batches_total"),
        batches_done: get_n(item, "batches_done"),
        failure: get_json(item, "failure")?,
        result: get_json(item, "result")?,
    })
}

impl DynamoRunStore {
    pub fn new(client: Client, names: &AwsNames) -> DynamoRunStore {
        DynamoRunStore {
            client,
            runs: names.runs_table.clone(),
            audit: names.audit_table.clone(),
            orgs: names.org_table.clone(),
        }
    }

    /// Writes a company's org settings (seeding; the functions only read them).
    pub async fn put_org_settings(&self, org: &OrgSettings) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.orgs)
            .item("company_id", s(&org.company_id))
            .item("settings", json(org)?)
            .send()
            .await
            .map_err(|e| backend("PutItem org settings", e))?;
        Ok(())
    }

    fn key(&self, pk: String, sk: impl Into<String>) -> Item {
        HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
    }

    async fn query_all(
        &self,
        table: &str,
        key_condition: &str,
        values: Item,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(table)
                .key_condition_expression(key_condition)
                .set_expression_attribute_values(Some(values.clone()))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("Query", e))?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Runs an UpdateItem on the run item; `Ok(false)` when its condition did not hold.
    async fn update_run(
        &self,
        run_id: &RunId,
        update: &str,
        condition: &str,
        names: &[(&str, &str)],
        values: Item,
    ) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.runs)
            .set_key(Some(self.key(run_pk(run_id), RUN_SK)))
            .update_expression(update)
            .condition_expression(condition)
            .set_expression_attribute_values(Some(values));
        for (k, v) in names {
            req = req.expression_attribute_names(*k, *v);
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(backend("UpdateItem run", e)),
        }
    }
}

#[async_trait]
impl RunStore for DynamoRunStore {
    async fn org_settings(&self, company_id: &str) -> Result<Option<OrgSettings>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.orgs)
            .key("company_id", s(company_id))
            .send()
            .await
            .map_err(|e| backend("GetItem org settings", e))?;
        match out.item {
            Some(item) => get_json(&item, "settings"),
            None => Ok(None),
        }
    }

    async fn company_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.orgs)
                .projection_expression("company_id")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("Scan org settings", e))?;
            ids.extend(
                page.items
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|i| get_s(i, "company_id").map(str::to_string)),
            );
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        ids.sort();
        Ok(ids)
    }

    async fn reserve_idempotency_key(
        &self,
        key: &str,
        run_id: &RunId,
    ) -> Result<Option<RunId>, StoreError> {
        let now = Utc::now();
        let expires = (now + IDEMPOTENCY_WINDOW).timestamp();
        let put = self
            .client
            .put_item()
            .table_name(&self.runs)
            .set_item(Some(self.key(format!("IDEM#{key}"), "IDEM")))
            .item("run_id", s(&run_id.0))
            .item("expires_at", n(expires))
            // TTL deletes late (and DynamoDB Local never): an expired key is free again.
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", n(now.timestamp()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(None),
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
                Ok(out
                    .item
                    .as_ref()
                    .and_then(|i| get_s(i, "run_id"))
                    .map(|id| RunId(id.to_string())))
            }
            Err(e) => Err(backend("PutItem idempotency key", e)),
        }
    }

    async fn create_run(&self, run: &Run) -> Result<(), StoreError> {
        let mut item = self.key(run_pk(&run.run_id), RUN_SK);
        item.insert("run_id".into(), s(&run.run_id.0));
        item.insert("company_id".into(), s(&run.request.company_id));
        item.insert("status".into(), status_str(run.status));
        item.insert("request".into(), json(&run.request)?);
        item.insert("created_at".into(), s(run.created_at.to_rfc3339()));
        item.insert("updated_at".into(), s(run.updated_at.to_rfc3339()));
        item.insert(
            "status_changed_at".into(),
            s(run.status_changed_at.to_rfc3339()),
        );
        item.insert("batches_total".into(), n(0));
        item.insert("batches_done".into(), n(0));
        self.client
            .put_item()
            .table_name(&self.runs)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| backend("PutItem run", e))?;
        Ok(())
    }

    async fn get_run(&self, run_id: &RunId) -> Result<Option<Run>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.runs)
            .set_key(Some(self.key(run_pk(run_id), RUN_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem run", e))?;
        out.item.as_ref().map(run_from_item).transpose()
    }

    async fn transition(
        &self,
        run_id: &RunId,
        from: &[RunStatus],
        to: RunStatus,
    ) -> Result<bool, StoreError> {
        let mut values = HashMap::from([
            (":to".to_string(), status_str(to)),
            (":now".to_string(), now()),
        ]);
        let mut placeholders = Vec::new();
        for (i, f) in from.iter().enumerate() {
            values.insert(format!(":f{i}"), status_str(*f));
            placeholders.push(format!(":f{i}"));
        }
        let condition = format!(
            "attribute_exists(pk) AND #s IN ({})",
            placeholders.join(", ")
        );
        self.update_run(
            run_id,
            "SET #s = :to, status_changed_at = :now, updated_at = :now",
            &condition,
            &[("#s", "status")],
            values,
        )
        .await
    }

    async fn save_plan(&self, run_id: &RunId, plan: &Plan) -> Result<(), StoreError> {
        // Items first: a run only reads as `removing` once every item is stored.
        let requests = plan
            .items
            .iter()
            .map(|i| {
                let mut item = self.key(run_pk(run_id), item_sk(i.id));
                item.insert("item".into(), json(i)?);
                Ok(WriteRequest::builder()
                    .put_request(
                        PutRequest::builder()
                            .set_item(Some(item))
                            .build()
                            .map_err(|e| StoreError::backend(e.to_string()))?,
                    )
                    .build())
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        for chunk in requests.chunks(25) {
            let mut pending = Some(HashMap::from([(self.runs.clone(), chunk.to_vec())]));
            for attempt in 1.. {
                let out = self
                    .client
                    .batch_write_item()
                    .set_request_items(pending.take())
                    .send()
                    .await
                    .map_err(|e| backend("BatchWriteItem items", e))?;
                match out.unprocessed_items {
                    Some(left) if left.values().any(|v| !v.is_empty()) => {
                        if !STORE_RETRY.allows_another(attempt) {
                            return Err(StoreError::backend(
                                "BatchWriteItem left items unprocessed",
                            ));
                        }
                        tokio::time::sleep(STORE_RETRY.delay(attempt, None)).await;
                        pending = Some(left);
                    }
                    _ => break,
                }
            }
        }
        let values = HashMap::from([
            (":user".to_string(), json(&plan.user)?),
            (":indirect".to_string(), json(&plan.indirect_access)?),
            (":scan_errors".to_string(), json(&plan.scan_errors)?),
            (":not_checked".to_string(), json(&plan.not_checked)?),
            (":total".to_string(), n(plan.batches_total)),
            (":removing".to_string(), status_str(RunStatus::Removing)),
            (
                ":discovering".to_string(),
                status_str(RunStatus::Discovering),
            ),
            (":now".to_string(), now()),
        ]);
        let saved = self
            .update_run(
                run_id,
                "SET #u = :user, indirect_access = :indirect, scan_errors = :scan_errors, not_checked = :not_checked, batches_total = :total, #s = :removing, status_changed_at = :now, updated_at = :now",
                "#s = :discovering",
                &[("#s", "status"), ("#u", "user")],
                values,
            )
            .await?;
        if saved {
            Ok(())
        } else {
            Err(StoreError::backend(format!(
                "run {run_id} is not discovering; plan not saved"
            )))
        }
    }

    async fn items(&self, run_id: &RunId) -> Result<Vec<PlanItem>, StoreError> {
        let values = HashMap::from([
            (":pk".to_string(), s(run_pk(run_id))),
            (":prefix".to_string(), s("ITEM#")),
        ]);
        let rows = self
            .query_all(&self.runs, "pk = :pk AND begins_with(sk, :prefix)", values)
            .await?;
        rows.iter()
            .map(|row| {
                let mut item: PlanItem = get_json(row, "item")?
                    .ok_or_else(|| StoreError::backend("item row without item"))?;
                if let Some(status) = get_json::<ItemStatus>(row, "status")? {
                    item.status = status;
                }
                Ok(item)
            })
            .collect()
    }

    async fn set_item_status(
        &self,
        run_id: &RunId,
        item: ItemId,
        status: &ItemStatus,
    ) -> Result<(), StoreError> {
        let mut values = HashMap::from([
            (":status".to_string(), json(status)?),
            (":state".to_string(), s(item_state(status))),
        ]);
        // A twin delivery's "already gone" must not overwrite "removed".
        let condition = if matches!(status, ItemStatus::AlreadyGone { .. }) {
            values.insert(":removed".into(), s(item_state(&ItemStatus::Removed)));
            "attribute_exists(pk) AND (attribute_not_exists(item_state) OR item_state <> :removed)"
        } else {
            "attribute_exists(pk)"
        };
        let out = self
            .client
            .update_item()
            .table_name(&self.runs)
            .set_key(Some(self.key(run_pk(run_id), item_sk(item))))
            .update_expression("SET #st = :status, item_state = :state")
            .condition_expression(condition)
            .expression_attribute_names("#st", "status")
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(e)
                if is_condition_failure(&e) && matches!(status, ItemStatus::AlreadyGone { .. }) =>
            {
                Ok(())
            }
            Err(e) => Err(backend(
                &format!("UpdateItem item {item} of run {run_id}"),
                e,
            )),
        }
    }

    async fn complete_batch(
        &self,
        run_id: &RunId,
        batch_id: u32,
    ) -> Result<BatchProgress, StoreError> {
        let marker = Put::builder()
            .table_name(&self.runs)
            .set_item(Some(self.key(run_pk(run_id), batch_sk(batch_id))))
            .item("done_at", now())
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::backend(e.to_string()))?;
        let count = Update::builder()
            .table_name(&self.runs)
            .set_key(Some(self.key(run_pk(run_id), RUN_SK)))
            .update_expression("ADD batches_done :one SET updated_at = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":now", now())
            .build()
            .map_err(|e| StoreError::backend(e.to_string()))?;
        // Concurrent batches of one run update the same run item: DynamoDB cancels a
        // conflicting transaction, which is worth retrying at once rather than after the
        // queue's visibility timeout.
        let mut attempt = 1;
        let newly_counted = loop {
            let written = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(marker.clone()).build())
                .transact_items(TransactWriteItem::builder().update(count.clone()).build())
                .send()
                .await;
            let Err(e) = written else { break true };
            let reasons: Vec<String> = match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(tc)) => tc
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().unwrap_or("None").to_string())
                    .collect(),
                _ => Vec::new(),
            };
            let conflict = reasons.iter().any(|r| r == "TransactionConflict")
                || e.as_service_error().and_then(|se| se.code())
                    == Some("TransactionConflictException");
            match reasons.first().map(String::as_str) {
                // The marker exists: this batch was counted by an earlier delivery.
                Some("ConditionalCheckFailed") => break false,
                _ if conflict && STORE_RETRY.allows_another(attempt) => {
                    tokio::time::sleep(STORE_RETRY.delay(attempt, None)).await;
                    attempt += 1;
                }
                _ => return Err(backend("TransactWriteItems batch done", e)),
            }
        };
        let run = self
            .get_run(run_id)
            .await?
            .ok_or_else(|| StoreError::RunNotFound(run_id.to_string()))?;
        Ok(BatchProgress {
            newly_counted,
            done: run.batches_done,
            total: run.batches_total,
        })
    }

    async fn append_audit(&self, record: &AuditRecord) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.audit)
            .item("run_id", s(&record.run_id.0))
            .item("record_id", s(&record.record_id))
            .item("phase", json(&record.phase)?)
            .item("recorded_at", s(record.recorded_at.to_rfc3339()))
            .item("record", json(record)?)
            .condition_expression("attribute_not_exists(record_id)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(backend("PutItem audit", e)),
        }
    }

    async fn audit_records(&self, run_id: &RunId) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = self
            .query_all(
                &self.audit,
                "run_id = :r",
                HashMap::from([(":r".to_string(), s(&run_id.0))]),
            )
            .await?;
        rows.iter()
            .map(|row| {
                get_json(row, "record")?
                    .ok_or_else(|| StoreError::backend("audit row without record"))
            })
            .collect()
    }

    async fn finish_run(&self, run_id: &RunId, report: &Report) -> Result<(), StoreError> {
        let values = HashMap::from([
            (":status".to_string(), status_str(report.status)),
            (":result".to_string(), json(report)?),
            (":now".to_string(), now()),
        ]);
        let done = self
            .update_run(
                run_id,
                "SET #s = :status, #r = :result, status_changed_at = :now, updated_at = :now",
                "attribute_exists(pk)",
                &[("#s", "status"), ("#r", "result")],
                values,
            )
            .await?;
        if done {
            Ok(())
        } else {
            Err(StoreError::RunNotFound(run_id.to_string()))
        }
    }

    async fn fail_run(&self, run_id: &RunId, failure: &RunFailure) -> Result<(), StoreError> {
        let values = HashMap::from([
            (":failed".to_string(), status_str(RunStatus::Failed)),
            (":failure".to_string(), json(failure)?),
            (":now".to_string(), now()),
            (":c".to_string(), status_str(RunStatus::Completed)),
            (
                ":cwe".to_string(),
                status_str(RunStatus::CompletedWithErrors),
            ),
        ]);
        // A finished run keeps its result: a late failure of a stray message changes nothing.
        self.update_run(
            run_id,
            "SET #s = :failed, failure = :failure, status_changed_at = :now, updated_at = :now",
            "attribute_exists(pk) AND NOT (#s IN (:c, :cwe))",
            &[("#s", "status")],
            values,
        )
        .await?;
        Ok(())
    }
}

fn item_state(status: &ItemStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v["state"].as_str().map(str::to_string))
        .unwrap_or_default()
}
