//! The run store on DynamoDB. Runs, their items, part markers, saved parts and idempotency
//! keys share the runs table (`pk`/`sk`); audit records have a table of their own, written
//! with conditional PutItem only and never expiring; org settings another.
//!
//! No item grows with the tenant: the run item holds status, counters, the lease and the
//! failure; each plan item, shard marker, batch marker and side effect is an item of its own;
//! anything list-like (the resolved user, discovery's facts, verification's re-read chunks,
//! the result) is stored as JSON in pieces of at most [`PIECE_BYTES`], read back with one Query.
//! Rows are (de)serialized with `serde_dynamo`. Runs written by the first release (lists and
//! the result as JSON strings on the run item) still read.
//!
//! Every state change is conditional, so duplicate deliveries and concurrent batches can never
//! double-count, lose an item or start a step twice.

use super::dynamo::{backend, batch_write, is_condition_failure, serde_error, STORE_RETRY};
use super::resources::AwsNames;
use crate::error::StoreError;
use crate::model::{
    AuditManifest, AuditRecord, ItemId, ItemStatus, OrgSettings, PlanItem, Report, ResolvedUser,
    RestoreReport, Run, RunFailure, RunId, RunStatus,
};
use crate::ports::{
    AuditTrail, EffectLog, IdempotencyKeys, OrgStore, RunItems, RunLeases, RunRecords, StoreIndexes,
};
use crate::ports::{
    BatchProgress, Claim, Effect, EffectState, KeyHolder, RereadChunk, ScanFacts,
    IDEMPOTENCY_WINDOW,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, PutRequest, ReturnValue, TransactWriteItem, Update,
    WriteRequest,
};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_dynamo::{from_item, to_attribute_value, to_item};
use std::collections::{BTreeMap, HashMap};

type Item = HashMap<String, AttributeValue>;

/// Largest piece of JSON one item holds (DynamoDB's limit is 400 KB an item).
pub const PIECE_BYTES: usize = 300 * 1024;

/// The sparse index of runs not yet finished, by last change: what the sweeper queries.
pub const ACTIVE_INDEX: &str = "active-by-update";

pub struct DynamoRunStore {
    pub(super) client: Client,
    pub(super) runs: String,
    audit: String,
    orgs: String,
    /// The permission index, in a table of its own.
    index: super::index_table::DynamoIndex,
    /// The KMS key that seals audit manifests (none until [`DynamoRunStore::with_audit_seal`]).
    seal: super::audit_key::KmsAuditSeal,
}

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
fn shard_sk(id: u32) -> String {
    format!("SHARD#{id:05}")
}
fn effect_sk(effect: Effect) -> String {
    format!("EFFECT#{}", effect.as_str())
}
/// Stored pieces: `PIECE#<what>#<piece>`.
fn piece_sk(what: &str, piece: usize) -> String {
    format!("PIECE#{what}#{piece:04}")
}
const USER_PIECES: &str = "user";
const RESULT_PIECES: &str = "result";
/// A restore run's result, in pieces like a revocation's.
const RESTORE_RESULT_PIECES: &str = "restore_result";
fn facts_pieces(part: &str) -> String {
    format!("facts:{part}")
}
fn reread_pieces(chunk: u32) -> String {
    format!("reread:{chunk:05}")
}

fn av<T: Serialize>(value: T) -> Result<AttributeValue, StoreError> {
    to_attribute_value(value).map_err(|e| serde_error("serialize attribute", e))
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn millis(at: DateTime<Utc>) -> AttributeValue {
    AttributeValue::N(at.timestamp_millis().to_string())
}

/// A field written as a nested value now, and by the first release as a JSON string.
fn json_or_value<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(text)) => serde_json::from_str(&text)
            .map(Some)
            .map_err(serde::de::Error::custom),
        Some(value) => serde_json::from_value(value)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// The run item: status, counters, lease, failure.
#[derive(Debug, Serialize, Deserialize)]
struct RunRow {
    pk: String,
    sk: String,
    run_id: RunId,
    company_id: String,
    #[serde(default)]
    user_email: String,
    status: RunStatus,
    #[serde(deserialize_with = "json_or_value")]
    request: Option<crate::model::RevocationRequest>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    /// `updated_at` as epoch milliseconds: the sweeper's index sorts by it.
    #[serde(default)]
    updated_ms: i64,
    status_changed_at: DateTime<Utc>,
    #[serde(default)]
    shards_total: u32,
    #[serde(default)]
    shards_done: u32,
    #[serde(default)]
    batches_total: u32,
    #[serde(default)]
    batches_done: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease_holder: Option<String>,
    /// Epoch milliseconds (numbers compare; timestamps as text would not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease_until_ms: Option<i64>,
    #[serde(default)]
    redrives: u32,
    #[serde(
        default,
        deserialize_with = "json_or_value",
        skip_serializing_if = "Option::is_none"
    )]
    failure: Option<RunFailure>,
    /// `POST /revocations/{id}/cancel` asked to stop the run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    cancel_requested: bool,
    /// Present ("1") while the run is not finished: the key of [`ACTIVE_INDEX`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    active: Option<String>,
    /// Written by the first release only.
    #[serde(default, deserialize_with = "json_or_value", skip_serializing)]
    user: Option<ResolvedUser>,
    #[serde(default, deserialize_with = "json_or_value", skip_serializing)]
    result: Option<Report>,
    #[serde(default, deserialize_with = "json_or_value", skip_serializing)]
    indirect_access: Option<Vec<crate::model::IndirectAccess>>,
    #[serde(default, deserialize_with = "json_or_value", skip_serializing)]
    scan_errors: Option<Vec<String>>,
    /// Set on a restore run: the run it puts back.
    #[serde(
        default,
        deserialize_with = "json_or_value",
        skip_serializing_if = "Option::is_none"
    )]
    restore: Option<crate::model::RestoreOf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tenant_id: Option<String>,
    /// The sort key of the run history index (see `run_history`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    history_key: Option<String>,
}

/// A plan item: written whole by discovery, its status updated by removal.
#[derive(Debug, Serialize, Deserialize)]
struct ItemRow {
    pk: String,
    sk: String,
    #[serde(default)]
    item_id: Option<ItemId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    grant: Option<crate::model::Grant>,
    #[serde(default, deserialize_with = "json_or_value")]
    status: Option<ItemStatus>,
    #[serde(default)]
    item_state: Option<String>,
    /// The first release stored the whole item as JSON here.
    #[serde(default, deserialize_with = "json_or_value", skip_serializing)]
    item: Option<PlanItem>,
}

impl ItemRow {
    fn into_item(self) -> Result<PlanItem, StoreError> {
        let mut item = match (self.item, self.item_id, self.grant) {
            (Some(legacy), _, _) => legacy,
            (None, Some(id), Some(grant)) => PlanItem {
                id,
                grant,
                status: ItemStatus::Pending,
            },
            _ => {
                return Err(StoreError::backend(format!(
                    "item row {} is incomplete",
                    self.sk
                )))
            }
        };
        if let Some(status) = self.status {
            item.status = status;
        }
        Ok(item)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct PieceRow {
    pk: String,
    sk: String,
    data: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct KeyRow {
    pk: String,
    sk: String,
    run_id: RunId,
    #[serde(default)]
    fingerprint: String,
    #[serde(default)]
    reserved_at: Option<DateTime<Utc>>,
    expires_at: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct EffectRow {
    pk: String,
    sk: String,
    #[serde(flatten)]
    state: EffectState,
}

#[derive(Debug, Serialize, Deserialize)]
struct AuditRow {
    run_id: RunId,
    record_id: String,
    recorded_at: DateTime<Utc>,
    #[serde(deserialize_with = "json_or_value")]
    record: Option<AuditRecord>,
}

/// What `put_org_settings` writes; reads go through the org table's checks
/// (`org_table::row_settings`).
#[derive(Debug, Serialize)]
struct OrgRow {
    company_id: String,
    settings: Option<OrgSettings>,
}

impl DynamoRunStore {
    pub fn new(client: Client, names: &AwsNames) -> DynamoRunStore {
        DynamoRunStore {
            client: client.clone(),
            runs: names.runs_table.clone(),
            audit: names.audit_table.clone(),
            orgs: names.org_table.clone(),
            index: super::index_table::DynamoIndex::new(client.clone(), &names.index_table),
            seal: super::audit_key::KmsAuditSeal::none(),
        }
    }

    /// The store sealing and checking audit manifests with `seal` (the functions that anchor
    /// or check a trail).
    pub fn with_audit_seal(mut self, seal: super::audit_key::KmsAuditSeal) -> DynamoRunStore {
        self.seal = seal;
        self
    }

    /// Writes a company's org settings (seeding; the functions only read them).
    pub async fn put_org_settings(&self, org: &OrgSettings) -> Result<(), StoreError> {
        let row = OrgRow {
            company_id: org.company_id.clone(),
            settings: Some(org.clone()),
        };
        self.client
            .put_item()
            .table_name(&self.orgs)
            .set_item(Some(to_item(row).map_err(|e| serde_error("org row", e))?))
            .send()
            .await
            .map_err(|e| backend("PutItem org settings", e))?;
        Ok(())
    }

    pub(super) fn key(&self, pk: String, sk: impl Into<String>) -> Item {
        HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
    }

    /// Every row of a run whose sort key starts with `prefix`.
    async fn query_prefix(&self, run_id: &RunId, prefix: &str) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.runs)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(run_pk(run_id)))
                .expression_attribute_values(":prefix", s(prefix))
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

    async fn run_row(&self, run_id: &RunId) -> Result<Option<RunRow>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.runs)
            .set_key(Some(self.key(run_pk(run_id), RUN_SK)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem run", e))?;
        out.item
            .map(|i| from_item(i).map_err(|e| serde_error("run row", e)))
            .transpose()
    }

    /// Writes many rows, 25 per request, retrying what DynamoDB leaves unprocessed.
    async fn write_rows(&self, rows: Vec<Item>) -> Result<(), StoreError> {
        for chunk in rows.chunks(25) {
            let requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .map(|put| WriteRequest::builder().put_request(put).build())
                        .map_err(|e| StoreError::backend(e.to_string()))
                })
                .collect::<Result<_, _>>()?;
            batch_write(&self.client, &self.runs, requests).await?;
        }
        Ok(())
    }

    /// Stores `value` as JSON pieces under `what` (replacing what was there).
    async fn put_pieces<T: Serialize>(
        &self,
        run_id: &RunId,
        what: &str,
        value: &T,
    ) -> Result<usize, StoreError> {
        let json = serde_json::to_string(value).map_err(|e| serde_error(what, e))?;
        let mut rows = Vec::new();
        let mut rest = json.as_str();
        while !rest.is_empty() || rows.is_empty() {
            let mut cut = rest.len().min(PIECE_BYTES);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let row = PieceRow {
                pk: run_pk(run_id),
                sk: piece_sk(what, rows.len()),
                data: rest[..cut].to_string(),
            };
            rows.push(to_item(row).map_err(|e| serde_error("piece row", e))?);
            rest = &rest[cut..];
        }
        let count = rows.len();
        self.write_rows(rows).await?;
        Ok(count)
    }

    /// Every value stored with [`Self::put_pieces`] under a name starting with `what`, by name.
    async fn pieces<T: DeserializeOwned>(
        &self,
        run_id: &RunId,
        what: &str,
    ) -> Result<BTreeMap<String, T>, StoreError> {
        let rows = self.query_prefix(run_id, &format!("PIECE#{what}")).await?;
        let mut texts: BTreeMap<String, String> = BTreeMap::new();
        for row in rows {
            let row: PieceRow = from_item(row).map_err(|e| serde_error("piece row", e))?;
            // `PIECE#<name>#<n>`: rows come sorted, so the pieces of one name are in order.
            let name = row
                .sk
                .strip_prefix("PIECE#")
                .and_then(|rest| rest.rsplit_once('#'))
                .map(|(name, _)| name.to_string())
                .unwrap_or_default();
            texts.entry(name).or_default().push_str(&row.data);
        }
        texts
            .into_iter()
            .map(|(name, text)| {
                let value = serde_json::from_str(&text).map_err(|e| serde_error(&name, e))?;
                Ok((name, value))
            })
            .collect()
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

    /// Writes a marker once and counts it on the run item, in one transaction; then reads
    /// the counters back.
    async fn count_once(
        &self,
        run_id: &RunId,
        marker_sk: String,
        counter: &str,
        total: &str,
    ) -> Result<BatchProgress, StoreError> {
        let now = Utc::now();
        let marker = Put::builder()
            .table_name(&self.runs)
            .set_item(Some(self.key(run_pk(run_id), marker_sk)))
            .item("done_at", s(now.to_rfc3339()))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(|e| StoreError::backend(e.to_string()))?;
        let count = Update::builder()
            .table_name(&self.runs)
            .set_key(Some(self.key(run_pk(run_id), RUN_SK)))
            .update_expression(format!(
                "ADD {counter} :one SET updated_at = :now, updated_ms = :ms"
            ))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":now", av(now)?)
            .expression_attribute_values(":ms", millis(now))
            .build()
            .map_err(|e| StoreError::backend(e.to_string()))?;
        // Concurrent parts of one run update the same run item: DynamoDB cancels a
        // conflicting transaction, which is worth retrying at once.
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
                // The marker exists: an earlier delivery counted it.
                Some("ConditionalCheckFailed") => break false,
                _ if conflict && STORE_RETRY.allows_another(attempt) => {
                    tokio::time::sleep(STORE_RETRY.delay(attempt, None)).await;
                    attempt += 1;
                }
                _ => return Err(backend("TransactWriteItems count", e)),
            }
        };
        let row = self
            .run_row(run_id)
            .await?
            .ok_or_else(|| StoreError::RunNotFound(run_id.to_string()))?;
        let (done, total) = match (counter, total) {
            ("shards_done", _) => (row.shards_done, row.shards_total),
            _ => (row.batches_done, row.batches_total),
        };
        Ok(BatchProgress {
            newly_counted,
            done,
            total,
        })
    }

    /// Moves a run to its final `status` (its result is stored already).
    async fn mark_finished(&self, run_id: &RunId, status: RunStatus) -> Result<(), StoreError> {
        let now = Utc::now();

        let done = self
            .update_run(
                run_id,
                "SET #s = :status, status_changed_at = :now, updated_at = :now, updated_ms = :ms REMOVE active, lease_holder, lease_until_ms",
                "attribute_exists(pk)",
                &[("#s", "status")],
                HashMap::from([
                    (":status".to_string(), av(status)?),
                    (":now".to_string(), av(now)?),
                    (":ms".to_string(), millis(now)),
                ]),
            )
            .await?;
        if done {
            Ok(())
        } else {
            Err(StoreError::RunNotFound(run_id.to_string()))
        }
    }

    fn run_of(
        row: RunRow,
        user: Option<ResolvedUser>,
        result: Option<Report>,
        restore_result: Option<RestoreReport>,
    ) -> Result<Run, StoreError> {
        Ok(Run {
            request: row
                .request
                .ok_or_else(|| StoreError::backend(format!("run {} has no request", row.run_id)))?,
            run_id: row.run_id,
            status: row.status,
            created_at: row.created_at,
            updated_at: row.updated_at,
            status_changed_at: row.status_changed_at,
            user: user.or(row.user),
            shards_total: row.shards_total,
            shards_done: row.shards_done,
            batches_total: row.batches_total,
            batches_done: row.batches_done,
            lease_holder: row.lease_holder,
            lease_until: row
                .lease_until_ms
                .and_then(DateTime::<Utc>::from_timestamp_millis),
            redrives: row.redrives,
            failure: row.failure,
            result: result.or(row.result),
            interruption: None,
            cancel_requested: row.cancel_requested,
            tenant_id: row.tenant_id,
            restore: row.restore,
            restore_result,
        })
    }
}

#[async_trait]
impl OrgStore for DynamoRunStore {
    async fn org_settings(&self, company_id: &str) -> Result<Option<OrgSettings>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.orgs)
            .key("company_id", s(company_id))
            .send()
            .await
            .map_err(|e| backend("GetItem org settings", e))?;
        out.item.map(super::org_table::row_settings).transpose()
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
                    .filter_map(|i| i.get("company_id").and_then(|v| v.as_s().ok()).cloned()),
            );
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        ids.sort();
        Ok(ids)
    }
}

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

#[async_trait]
impl RunRecords for DynamoRunStore {
    async fn create_run(&self, run: &Run) -> Result<(), StoreError> {
        let row = RunRow {
            pk: run_pk(&run.run_id),
            sk: RUN_SK.into(),
            run_id: run.run_id.clone(),
            company_id: run.request.company_id.clone(),
            user_email: run.request.user_email.clone(),
            status: run.status,
            request: Some(run.request.clone()),
            created_at: run.created_at,
            updated_at: run.updated_at,
            updated_ms: run.updated_at.timestamp_millis(),
            status_changed_at: run.status_changed_at,
            shards_total: 0,
            shards_done: 0,
            batches_total: 0,
            batches_done: 0,
            lease_holder: None,
            lease_until_ms: None,
            redrives: 0,
            failure: None,
            cancel_requested: false,
            active: Some("1".into()),
            user: None,
            result: None,
            indirect_access: None,
            scan_errors: None,
            restore: run.restore.clone(),
            tenant_id: run.tenant_id.clone(),
            history_key: Some(super::run_history::history_key(run)),
        };
        self.client
            .put_item()
            .table_name(&self.runs)
            .set_item(Some(to_item(row).map_err(|e| serde_error("run row", e))?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await
            .map_err(|e| backend("PutItem run", e))?;
        Ok(())
    }

    async fn get_run(&self, run_id: &RunId) -> Result<Option<Run>, StoreError> {
        let Some(row) = self.run_row(run_id).await? else {
            return Ok(None);
        };
        let user = self
            .pieces::<ResolvedUser>(run_id, USER_PIECES)
            .await?
            .remove(USER_PIECES);
        let result = if row.status.is_terminal() {
            self.pieces::<Report>(run_id, RESULT_PIECES)
                .await?
                .remove(RESULT_PIECES)
        } else {
            None
        };
        let restore_result = if row.status.is_terminal() && row.restore.is_some() {
            self.pieces::<RestoreReport>(run_id, RESTORE_RESULT_PIECES)
                .await?
                .remove(RESTORE_RESULT_PIECES)
        } else {
            None
        };
        DynamoRunStore::run_of(row, user, result, restore_result).map(Some)
    }

    async fn list_runs(
        &self,
        filter: &crate::model::RunFilter,
        limit: usize,
        after: Option<&str>,
    ) -> Result<crate::model::RunPage, StoreError> {
        super::run_history::list_runs(&self.client, &self.runs, self, filter, limit, after).await
    }

    async fn finish_run(&self, run_id: &RunId, report: &Report) -> Result<(), StoreError> {
        self.put_pieces(run_id, RESULT_PIECES, report).await?;
        self.mark_finished(run_id, report.status).await
    }

    async fn finish_restore(
        &self,
        run_id: &RunId,
        report: &RestoreReport,
    ) -> Result<(), StoreError> {
        self.put_pieces(run_id, RESTORE_RESULT_PIECES, report)
            .await?;
        self.mark_finished(run_id, report.status).await
    }

    async fn fail_run(&self, run_id: &RunId, failure: &RunFailure) -> Result<(), StoreError> {
        let now = Utc::now();
        // A finished run keeps its result: a late failure of a stray message changes nothing.
        self.update_run(
            run_id,
            "SET #s = :failed, failure = :failure, status_changed_at = :now, updated_at = :now, updated_ms = :ms REMOVE active, lease_holder, lease_until_ms",
            "attribute_exists(pk) AND NOT (#s IN (:c, :cwe, :failed, :cancelled))",
            &[("#s", "status")],
            HashMap::from([
                (":failed".to_string(), av(RunStatus::Failed)?),
                (":failure".to_string(), av(failure)?),
                (":now".to_string(), av(now)?),
                (":ms".to_string(), millis(now)),
                (":c".to_string(), av(RunStatus::Completed)?),
                (":cwe".to_string(), av(RunStatus::CompletedWithErrors)?),
                (":cancelled".to_string(), av(RunStatus::Cancelled)?),
            ]),
        )
        .await?;
        Ok(())
    }

    async fn request_cancel(&self, run_id: &RunId) -> Result<Option<Run>, StoreError> {
        // Only while the run is not finished; a finished run is returned as it is.
        self.update_run(
            run_id,
            "SET cancel_requested = :t, updated_at = :now",
            "attribute_exists(pk) AND NOT (#s IN (:c, :cwe, :failed, :cancelled))",
            &[("#s", "status")],
            HashMap::from([
                (":t".to_string(), AttributeValue::Bool(true)),
                (":now".to_string(), av(Utc::now())?),
                (":c".to_string(), av(RunStatus::Completed)?),
                (":cwe".to_string(), av(RunStatus::CompletedWithErrors)?),
                (":failed".to_string(), av(RunStatus::Failed)?),
                (":cancelled".to_string(), av(RunStatus::Cancelled)?),
            ]),
        )
        .await?;
        self.get_run(run_id).await
    }
}

#[async_trait]
impl RunLeases for DynamoRunStore {
    async fn claim(
        &self,
        run_id: &RunId,
        from: RunStatus,
        working: RunStatus,
        holder: &str,
        lease: chrono::Duration,
    ) -> Result<Claim, StoreError> {
        let now = Utc::now();
        let values = HashMap::from([
            (":from".to_string(), av(from)?),
            (":working".to_string(), av(working)?),
            (":holder".to_string(), s(holder)),
            (":until".to_string(), millis(now + lease)),
            (":now".to_string(), av(now)?),
            (":ms".to_string(), millis(now)),
        ]);
        let taken = self
            .update_run(
                run_id,
                "SET #s = :working, lease_holder = :holder, lease_until_ms = :until, status_changed_at = :now, updated_at = :now, updated_ms = :ms",
                "attribute_exists(pk) AND (#s = :from OR (#s = :working AND (attribute_not_exists(lease_until_ms) OR lease_until_ms < :ms OR lease_holder = :holder)))",
                &[("#s", "status")],
                values,
            )
            .await?;
        if taken {
            return Ok(Claim::Acquired);
        }
        let row = self
            .run_row(run_id)
            .await?
            .ok_or_else(|| StoreError::RunNotFound(run_id.to_string()))?;
        Ok(if row.status == working {
            Claim::Busy {
                holder: row.lease_holder.unwrap_or_default(),
                until: row
                    .lease_until_ms
                    .and_then(DateTime::<Utc>::from_timestamp_millis)
                    .unwrap_or(now),
            }
        } else {
            Claim::NotHere(row.status)
        })
    }

    async fn release(&self, run_id: &RunId, holder: &str) -> Result<(), StoreError> {
        let now = Utc::now();
        self.update_run(
            run_id,
            "SET lease_until_ms = :ms",
            "lease_holder = :holder",
            &[],
            HashMap::from([
                (":ms".to_string(), millis(now)),
                (":holder".to_string(), s(holder)),
            ]),
        )
        .await?;
        Ok(())
    }

    async fn stalled_runs(&self, before: DateTime<Utc>) -> Result<Vec<Run>, StoreError> {
        let now = Utc::now().timestamp_millis();
        let mut ids = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.runs)
                .index_name(ACTIVE_INDEX)
                .key_condition_expression("active = :one AND updated_ms < :before")
                .expression_attribute_values(":one", s("1"))
                .expression_attribute_values(":before", millis(before))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| backend("Query active runs", e))?;
            for item in page.items.unwrap_or_default() {
                if let Some(id) = item.get("run_id").and_then(|v| v.as_s().ok()) {
                    ids.push(RunId(id.clone()));
                }
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        let mut stalled = Vec::new();
        for id in ids {
            // The index is eventually consistent: read the run itself.
            let Some(run) = self.get_run(&id).await? else {
                continue;
            };
            let live = run.lease_until.is_some_and(|u| u.timestamp_millis() > now);
            if !run.status.is_terminal() && run.updated_at < before && !live {
                stalled.push(run);
            }
        }
        Ok(stalled)
    }

    async fn count_redrive(&self, run_id: &RunId) -> Result<u32, StoreError> {
        let now = Utc::now();
        let out = self
            .client
            .update_item()
            .table_name(&self.runs)
            .set_key(Some(self.key(run_pk(run_id), RUN_SK)))
            .update_expression("ADD redrives :one SET updated_at = :now, updated_ms = :ms")
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":now", av(now)?)
            .expression_attribute_values(":ms", millis(now))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| backend("UpdateItem redrives", e))?;
        Ok(out
            .attributes
            .and_then(|a| a.get("redrives").and_then(|v| v.as_n().ok()).cloned())
            .and_then(|n| n.parse().ok())
            .unwrap_or(1))
    }
}

#[async_trait]
impl RunItems for DynamoRunStore {
    async fn begin_scan(
        &self,
        run_id: &RunId,
        user: &ResolvedUser,
        shards_total: u32,
    ) -> Result<(), StoreError> {
        self.put_pieces(run_id, USER_PIECES, user).await?;
        let now = Utc::now();
        self.update_run(
            run_id,
            "SET shards_total = :n, updated_at = :now, updated_ms = :ms",
            "attribute_exists(pk)",
            &[],
            HashMap::from([
                (":n".to_string(), av(shards_total)?),
                (":now".to_string(), av(now)?),
                (":ms".to_string(), millis(now)),
            ]),
        )
        .await?;
        Ok(())
    }

    async fn put_items(&self, run_id: &RunId, items: &[PlanItem]) -> Result<(), StoreError> {
        let rows = items
            .iter()
            .map(|i| {
                to_item(ItemRow {
                    pk: run_pk(run_id),
                    sk: item_sk(i.id),
                    item_id: Some(i.id),
                    grant: Some(i.grant.clone()),
                    status: Some(i.status.clone()),
                    item_state: Some(item_state(&i.status)),
                    item: None,
                })
                .map_err(|e| serde_error("item row", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.write_rows(rows).await
    }

    async fn save_facts(
        &self,
        run_id: &RunId,
        part: &str,
        facts: &ScanFacts,
    ) -> Result<(), StoreError> {
        self.put_pieces(run_id, &facts_pieces(part), facts).await?;
        Ok(())
    }

    async fn scan_facts(&self, run_id: &RunId) -> Result<ScanFacts, StoreError> {
        let parts = self.pieces::<ScanFacts>(run_id, "facts:").await?;
        let mut all = ScanFacts::default();
        if parts.is_empty() {
            // A run of the first release kept its facts on the run item.
            if let Some(row) = self.run_row(run_id).await? {
                all.indirect_access = row.indirect_access.unwrap_or_default();
                all.scan_errors = row.scan_errors.unwrap_or_default();
            }
        }
        for facts in parts.into_values() {
            all.merge(facts);
        }
        Ok(all.settle())
    }

    async fn complete_shard(
        &self,
        run_id: &RunId,
        shard_id: u32,
    ) -> Result<BatchProgress, StoreError> {
        self.count_once(run_id, shard_sk(shard_id), "shards_done", "shards_total")
            .await
    }

    async fn start_removal(&self, run_id: &RunId, batches_total: u32) -> Result<bool, StoreError> {
        let now = Utc::now();
        self.update_run(
            run_id,
            "SET #s = :removing, batches_total = :n, status_changed_at = :now, updated_at = :now, updated_ms = :ms REMOVE lease_holder, lease_until_ms",
            "#s = :discovering",
            &[("#s", "status")],
            HashMap::from([
                (":removing".to_string(), av(RunStatus::Removing)?),
                (":discovering".to_string(), av(RunStatus::Discovering)?),
                (":n".to_string(), av(batches_total)?),
                (":now".to_string(), av(now)?),
                (":ms".to_string(), millis(now)),
            ]),
        )
        .await
    }

    async fn items(&self, run_id: &RunId) -> Result<Vec<PlanItem>, StoreError> {
        self.query_prefix(run_id, "ITEM#")
            .await?
            .into_iter()
            .map(|row| {
                let row: ItemRow = from_item(row).map_err(|e| serde_error("item row", e))?;
                row.into_item()
            })
            .collect()
    }

    async fn get_items(&self, run_id: &RunId, ids: &[ItemId]) -> Result<Vec<PlanItem>, StoreError> {
        let mut found = Vec::new();
        for chunk in ids.chunks(100) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|id| self.key(run_pk(run_id), item_sk(*id)))
                .collect();
            let mut pending = Some(HashMap::from([(
                self.runs.clone(),
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::backend(e.to_string()))?,
            )]));
            for attempt in 1.. {
                let out = self
                    .client
                    .batch_get_item()
                    .set_request_items(pending.take())
                    .send()
                    .await
                    .map_err(|e| backend("BatchGetItem items", e))?;
                for row in out
                    .responses
                    .unwrap_or_default()
                    .remove(&self.runs)
                    .unwrap_or_default()
                {
                    let row: ItemRow = from_item(row).map_err(|e| serde_error("item row", e))?;
                    found.push(row.into_item()?);
                }
                match out.unprocessed_keys {
                    Some(left) if left.values().any(|k| !k.keys().is_empty()) => {
                        if !STORE_RETRY.allows_another(attempt) {
                            return Err(StoreError::backend("BatchGetItem left keys unread"));
                        }
                        tokio::time::sleep(STORE_RETRY.delay(attempt, None)).await;
                        pending = Some(left);
                    }
                    _ => break,
                }
            }
        }
        found.sort_by_key(|i| i.id);
        Ok(found)
    }

    async fn set_item_status(
        &self,
        run_id: &RunId,
        item: ItemId,
        status: &ItemStatus,
    ) -> Result<(), StoreError> {
        let mut values = HashMap::from([
            (":status".to_string(), av(status)?),
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
        self.count_once(run_id, batch_sk(batch_id), "batches_done", "batches_total")
            .await
    }

    async fn reread_chunks(&self, run_id: &RunId) -> Result<Vec<RereadChunk>, StoreError> {
        Ok(self
            .pieces::<RereadChunk>(run_id, "reread:")
            .await?
            .into_values()
            .collect())
    }

    async fn save_reread_chunk(
        &self,
        run_id: &RunId,
        chunk: &RereadChunk,
    ) -> Result<(), StoreError> {
        self.put_pieces(run_id, &reread_pieces(chunk.chunk), chunk)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl EffectLog for DynamoRunStore {
    async fn begin_effect(
        &self,
        run_id: &RunId,
        effect: Effect,
    ) -> Result<EffectState, StoreError> {
        let row = EffectRow {
            pk: run_pk(run_id),
            sk: effect_sk(effect),
            state: EffectState::Started,
        };
        let put = self
            .client
            .put_item()
            .table_name(&self.runs)
            .set_item(Some(
                to_item(row).map_err(|e| serde_error("effect row", e))?,
            ))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(EffectState::Started),
            Err(e) if is_condition_failure(&e) => {
                let out = self
                    .client
                    .get_item()
                    .table_name(&self.runs)
                    .set_key(Some(self.key(run_pk(run_id), effect_sk(effect))))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| backend("GetItem effect", e))?;
                let row: Option<EffectRow> = out
                    .item
                    .map(from_item)
                    .transpose()
                    .map_err(|e| serde_error("effect row", e))?;
                Ok(match row.map(|r| r.state) {
                    Some(EffectState::Started) | Some(EffectState::Unknown) | None => {
                        EffectState::Unknown
                    }
                    Some(done) => done,
                })
            }
            Err(e) => Err(backend("PutItem effect", e)),
        }
    }

    async fn end_effect(
        &self,
        run_id: &RunId,
        effect: Effect,
        outcome: &EffectState,
    ) -> Result<(), StoreError> {
        let row = EffectRow {
            pk: run_pk(run_id),
            sk: effect_sk(effect),
            state: outcome.clone(),
        };
        self.client
            .put_item()
            .table_name(&self.runs)
            .set_item(Some(
                to_item(row).map_err(|e| serde_error("effect row", e))?,
            ))
            .send()
            .await
            .map_err(|e| backend("PutItem effect outcome", e))?;
        Ok(())
    }
}

#[async_trait]
impl AuditTrail for DynamoRunStore {
    async fn append_audit(&self, record: &AuditRecord) -> Result<bool, StoreError> {
        match (record.chain.as_deref(), record.seq) {
            (Some(chain), Some(seq)) => self.append_chained(record, chain, seq).await,
            _ => self.put_audit_record(record).await,
        }
    }

    async fn audit_records(&self, run_id: &RunId) -> Result<Vec<AuditRecord>, StoreError> {
        self.query_audit(run_id, None).await
    }

    /// Where one chain ends: its head item holds a copy of its last record (one read, however
    /// long the trail).
    async fn audit_chain(
        &self,
        run_id: &RunId,
        chain: &str,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.audit)
            .key("run_id", s(&run_id.0))
            .key("record_id", s(chain_head_id(chain)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem audit chain head", e))?;
        match out.item {
            Some(item) => {
                let row: AuditRow = from_item(item).map_err(|e| serde_error("audit row", e))?;
                Ok(row.record.into_iter().collect())
            }
            None => Ok(Vec::new()),
        }
    }

    /// The chains' head items only: a prefix of the sort key, however long the trail.
    async fn audit_chain_heads(&self, run_id: &RunId) -> Result<Vec<AuditRecord>, StoreError> {
        self.query_audit(run_id, Some(CHAIN_HEAD_PREFIX)).await
    }

    /// The manifest is a small attribute of the run item (one entry per removal batch), as
    /// JSON, set once.
    async fn anchor_audit(
        &self,
        run_id: &RunId,
        manifest: &AuditManifest,
    ) -> Result<bool, StoreError> {
        let json = serde_json::to_string(manifest).map_err(|e| serde_error("manifest", e))?;
        self.update_run(
            run_id,
            "SET audit_manifest = :m",
            "attribute_exists(pk) AND attribute_not_exists(audit_manifest)",
            &[],
            HashMap::from([(":m".to_string(), s(json))]),
        )
        .await
    }

    async fn audit_manifest(&self, run_id: &RunId) -> Result<Option<AuditManifest>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.runs)
            .set_key(Some(self.key(run_pk(run_id), RUN_SK)))
            .projection_expression("audit_manifest")
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem audit manifest", e))?;
        match out.item.as_ref().and_then(|i| i.get("audit_manifest")) {
            Some(AttributeValue::S(json)) => serde_json::from_str(json)
                .map(Some)
                .map_err(|e| serde_error("audit manifest", e)),
            Some(_) => Err(StoreError::backend("audit manifest is not a string")),
            None => Ok(None),
        }
    }

    fn audit_seal(&self) -> &dyn crate::ports::AuditSeal {
        &self.seal
    }
}

#[async_trait]
impl StoreIndexes for DynamoRunStore {
    fn permission_index(&self) -> Option<&dyn crate::ports::PermissionIndex> {
        Some(&self.index)
    }

    fn sweep_journal(&self) -> Option<&dyn crate::ports::SweepJournal> {
        Some(&self.index)
    }
}

fn item_state(status: &ItemStatus) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v["state"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The record id of a chain's head item (a copy of its last record) in the audit table.
fn chain_head_id(chain: &str) -> String {
    format!("{CHAIN_HEAD_PREFIX}{chain}")
}
const CHAIN_HEAD_PREFIX: &str = "chainhead#";

impl DynamoRunStore {
    /// A run's audit records (`prefix` `None`: every record, the chains' head items left
    /// out), or the items whose record id starts with `prefix`.
    async fn query_audit(
        &self,
        run_id: &RunId,
        prefix: Option<&str>,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.audit)
                .key_condition_expression("run_id = :r")
                .expression_attribute_values(":r", s(&run_id.0))
                .consistent_read(true)
                .set_exclusive_start_key(start.take());
            if let Some(prefix) = prefix {
                query = query
                    .key_condition_expression("run_id = :r AND begins_with(record_id, :p)")
                    .expression_attribute_values(":p", s(prefix));
            }
            let page = query.send().await.map_err(|e| backend("Query audit", e))?;
            for item in page.items.unwrap_or_default() {
                let row: AuditRow = from_item(item).map_err(|e| serde_error("audit row", e))?;
                if prefix.is_none() && row.record_id.starts_with(CHAIN_HEAD_PREFIX) {
                    continue;
                }
                out.push(
                    row.record
                        .ok_or_else(|| StoreError::backend("audit row without record"))?,
                );
            }
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    fn audit_row(record: &AuditRecord, record_id: String) -> Result<Item, StoreError> {
        let row = AuditRow {
            run_id: record.run_id.clone(),
            record_id,
            recorded_at: record.recorded_at,
            record: Some(record.clone()),
        };
        to_item(row).map_err(|e| serde_error("audit row", e))
    }

    async fn put_audit_record(&self, record: &AuditRecord) -> Result<bool, StoreError> {
        let put = self
            .client
            .put_item()
            .table_name(&self.audit)
            .set_item(Some(Self::audit_row(record, record.record_id.clone())?))
            .condition_expression("attribute_not_exists(record_id)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failure(&e) => Ok(false),
            Err(e) => Err(backend("PutItem audit", e)),
        }
    }

    /// Writes a chained record and moves its chain's head to it in one transaction.
    /// `Some(false)`: the record exists already. The head moves only forward, with every
    /// chained record, so a head at or past `seq` means the place is taken: a twin delivery
    /// of the batch wrote there first, and the answer is [`StoreError::ChainPlaceTaken`] (the
    /// writer links after the new head) — never a second record at one place, which would
    /// fork the chain.
    async fn append_chained(
        &self,
        record: &AuditRecord,
        chain: &str,
        seq: u64,
    ) -> Result<bool, StoreError> {
        let built = |e: aws_sdk_dynamodb::error::BuildError| StoreError::backend(e.to_string());
        let put_record = Put::builder()
            .table_name(&self.audit)
            .set_item(Some(Self::audit_row(record, record.record_id.clone())?))
            .condition_expression("attribute_not_exists(record_id)")
            .build()
            .map_err(built)?;
        let put_head = Put::builder()
            .table_name(&self.audit)
            .set_item(Some(Self::audit_row(record, chain_head_id(chain))?))
            .condition_expression("attribute_not_exists(record_id) OR #rec.#seq < :seq")
            .expression_attribute_names("#rec", "record")
            .expression_attribute_names("#seq", "seq")
            .expression_attribute_values(":seq", AttributeValue::N(seq.to_string()))
            .build()
            .map_err(built)?;
        let mut attempt = 1;
        loop {
            let written = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put_record.clone()).build())
                .transact_items(TransactWriteItem::builder().put(put_head.clone()).build())
                .send()
                .await;
            let Err(e) = written else {
                return Ok(true);
            };
            let reasons: Vec<String> = match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(tc)) => tc
                    .cancellation_reasons()
                    .iter()
                    .map(|r| r.code().unwrap_or("None").to_string())
                    .collect(),
                _ => Vec::new(),
            };
            let failed =
                |i: usize| reasons.get(i).map(String::as_str) == Some("ConditionalCheckFailed");
            if failed(0) {
                return Ok(false);
            }
            if failed(1) {
                return Err(StoreError::ChainPlaceTaken {
                    chain: chain.to_string(),
                    seq,
                });
            }
            let conflict = reasons.iter().any(|r| r == "TransactionConflict")
                || e.as_service_error().and_then(|se| se.code())
                    == Some("TransactionConflictException");
            if !(conflict && STORE_RETRY.allows_another(attempt)) {
                return Err(backend("TransactWriteItems audit", e));
            }
            tokio::time::sleep(STORE_RETRY.delay(attempt, None)).await;
            attempt += 1;
        }
    }
}
