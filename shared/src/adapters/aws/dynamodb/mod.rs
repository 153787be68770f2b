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

use super::dynamo::{
    backend, batch_write, cancellation_reasons, is_condition_failure, is_transaction_conflict,
    serde_error, StoreRetry,
};
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

mod audit;
mod claims;
mod effects;
mod idempotency;
mod indexes;
mod items;
mod org;
mod runs;

type Item = HashMap<String, AttributeValue>;

/// Largest piece of JSON one item holds (DynamoDB's limit is 400 KB an item).
pub const PIECE_BYTES: usize = 300 * 1024;

/// The sparse index of runs not yet finished, by last change: what the sweeper queries.
pub const ACTIVE_INDEX: &str = "active-by-update";

/// Clones are handles on the same tables (the intake's router holds one per request).
#[derive(Clone)]
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
        self.client
            .query()
            .table_name(&self.runs)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(run_pk(run_id)))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| backend("Query", e))
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
        let mut retry = StoreRetry::new();
        let newly_counted = loop {
            let written = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(marker.clone()).build())
                .transact_items(TransactWriteItem::builder().update(count.clone()).build())
                .send()
                .await;
            let Err(e) = written else { break true };
            let reasons = cancellation_reasons(&e);
            // The marker exists: an earlier delivery counted it.
            if reasons.first().map(String::as_str) == Some("ConditionalCheckFailed") {
                break false;
            }
            if !(is_transaction_conflict(&e, &reasons) && retry.again().await) {
                return Err(backend("TransactWriteItems count", e));
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
        let mut query = self
            .client
            .query()
            .table_name(&self.audit)
            .key_condition_expression("run_id = :r")
            .expression_attribute_values(":r", s(&run_id.0))
            .consistent_read(true);
        if let Some(prefix) = prefix {
            query = query
                .key_condition_expression("run_id = :r AND begins_with(record_id, :p)")
                .expression_attribute_values(":p", s(prefix));
        }
        let items = query
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| backend("Query audit", e))?;
        let mut out = Vec::new();
        for item in items {
            let row: AuditRow = from_item(item).map_err(|e| serde_error("audit row", e))?;
            if prefix.is_none() && row.record_id.starts_with(CHAIN_HEAD_PREFIX) {
                continue;
            }
            out.push(
                row.record
                    .ok_or_else(|| StoreError::backend("audit row without record"))?,
            );
        }
        Ok(out)
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

    /// Writes consecutive chained records (one or more) and moves their chain's head to the
    /// last in one transaction. `Ok(false)`: one exists already (nothing written), or they are
    /// not consecutive records of one chain. The head moves only forward, with every chained
    /// record, so a head at or past the first's `seq` means the place is taken: a twin delivery
    /// of the batch wrote there first, and the answer is [`StoreError::ChainPlaceTaken`] (the
    /// writer links after the new head) — never a second record at one place, which would
    /// fork the chain.
    async fn append_chained(&self, records: &[AuditRecord]) -> Result<bool, StoreError> {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Ok(true);
        };
        let (Some(chain), Some(seq)) = (first.chain.as_deref(), first.seq) else {
            return Ok(false);
        };
        let consecutive = records
            .iter()
            .zip(seq..)
            .all(|(r, n)| r.chain.as_deref() == Some(chain) && r.seq == Some(n));
        if !consecutive || records.len() >= 100 {
            return Ok(false);
        }
        let built = |e: aws_sdk_dynamodb::error::BuildError| StoreError::backend(e.to_string());
        let mut items = Vec::with_capacity(records.len() + 1);
        for record in records {
            let put = Put::builder()
                .table_name(&self.audit)
                .set_item(Some(Self::audit_row(record, record.record_id.clone())?))
                .condition_expression("attribute_not_exists(record_id)")
                .build()
                .map_err(built)?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        let put_head = Put::builder()
            .table_name(&self.audit)
            .set_item(Some(Self::audit_row(last, chain_head_id(chain))?))
            .condition_expression("attribute_not_exists(record_id) OR #rec.#seq < :seq")
            .expression_attribute_names("#rec", "record")
            .expression_attribute_names("#seq", "seq")
            .expression_attribute_values(":seq", AttributeValue::N(seq.to_string()))
            .build()
            .map_err(built)?;
        items.push(TransactWriteItem::builder().put(put_head).build());
        let mut retry = StoreRetry::new();
        loop {
            let written = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let Err(e) = written else {
                return Ok(true);
            };
            let reasons = cancellation_reasons(&e);
            let failed =
                |i: usize| reasons.get(i).map(String::as_str) == Some("ConditionalCheckFailed");
            if (0..records.len()).any(failed) {
                return Ok(false);
            }
            if failed(records.len()) {
                return Err(StoreError::ChainPlaceTaken {
                    chain: chain.to_string(),
                    seq,
                });
            }
            if !(is_transaction_conflict(&e, &reasons) && retry.again().await) {
                return Err(backend("TransactWriteItems audit", e));
            }
        }
    }
}
