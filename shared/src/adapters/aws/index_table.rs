//! The permission index on DynamoDB (`revoke365-index`, `pk`/`sk`, a GSI by mailbox). It
//! behaves as the SQLite one: a snapshot is stored whole, then the company's old ones are
//! pruned; lookups read only their own partitions, with Query (never Scan), paginated.
//!
//! Items, `C` the company, `S` the snapshot id:
//! - `SNAPS#C` / `<taken_at>#S`: the summary; a Query of the partition, backwards, lists the
//!   company's snapshots newest first. Written last, deleted first: a snapshot is listed only
//!   while all its items are there.
//! - `SNAP#S` / `SNAPSHOT`: which company a snapshot id belongs to (lookups name the id only).
//! - `TRUSTEES#C#S` / `<trustee_id>`: one per trustee with its lookup keys (reviews and
//!   pruning list a snapshot's trustees from it).
//! - `TRUSTEE#C#S#<trustee_id>` / `TRUSTEE`: the trustee; `/ G#<n>`: its grants, `n` the
//!   grant's place in the snapshot, each with `mailbox_key` = `MAILBOX#C#S#<mailbox>`, the
//!   partition of the `index-by-mailbox` GSI.
//! - `KEY#C#S#<key>` / `<trustee_id>`: a lowercase value (UPN, address, object id, value shown)
//!   the trustee is found by.

use super::dynamo::{backend, batch_write, serde_error};
use crate::error::StoreError;
use crate::model::{
    IndexHits, IndexSettings, IndexedGrant, Snapshot, SnapshotRef, SnapshotSummary, Trustee,
};
use crate::ports::PermissionIndex;
use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, PutRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, SecondsFormat, Utc};
use futures_util::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use serde_dynamo::{from_item, to_item};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

/// The GSI of grants by mailbox (defined in `infra/resources.json`).
pub const MAILBOX_INDEX: &str = "index-by-mailbox";

/// BatchWriteItem's limit.
const BATCH: usize = 25;
/// Batches and partition reads in flight at once.
const PARALLEL: usize = 8;

pub(super) type Item = HashMap<String, AttributeValue>;

const SNAPSHOT_SK: &str = "SNAPSHOT";
const TRUSTEE_SK: &str = "TRUSTEE";

fn summaries_pk(company: &str) -> String {
    format!("SNAPS#{company}")
}
fn pointer_pk(snapshot: &str) -> String {
    format!("SNAP#{snapshot}")
}
fn listing_pk(company: &str, snapshot: &str) -> String {
    format!("TRUSTEES#{company}#{snapshot}")
}
fn trustee_pk(company: &str, snapshot: &str, trustee_id: &str) -> String {
    format!("TRUSTEE#{company}#{snapshot}#{trustee_id}")
}
fn mailbox_key(company: &str, snapshot: &str, mailbox: &str) -> String {
    format!("MAILBOX#{company}#{snapshot}#{mailbox}")
}
fn key_pk(company: &str, snapshot: &str, key: &str) -> String {
    format!("KEY#{company}#{snapshot}#{key}")
}
fn grant_sk(n: usize) -> String {
    format!("G#{n:09}")
}

/// Fixed-width UTC time: the summaries sort by it as text.
fn sortable(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}
fn summary_sk(s: &SnapshotSummary) -> String {
    format!("{}#{}", sortable(s.taken_at), s.snapshot_id)
}

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn row<T: Serialize>(what: &str, value: T) -> Result<Item, StoreError> {
    to_item(value).map_err(|e| serde_error(what, e))
}

pub(super) fn read<T: for<'de> Deserialize<'de>>(what: &str, item: Item) -> Result<T, StoreError> {
    from_item(item).map_err(|e| serde_error(what, e))
}

#[derive(Serialize, Deserialize)]
struct SummaryRow {
    pk: String,
    sk: String,
    summary: SnapshotSummary,
}

#[derive(Serialize, Deserialize)]
struct PointerRow {
    pk: String,
    sk: String,
    company_id: String,
    summary_sk: String,
}

#[derive(Serialize, Deserialize)]
struct ListingRow {
    pk: String,
    sk: String,
    keys: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct TrusteeRow {
    pk: String,
    sk: String,
    trustee: Trustee,
}

#[derive(Serialize, Deserialize)]
struct GrantRow {
    pk: String,
    sk: String,
    mailbox_key: String,
    grant: IndexedGrant,
}

#[derive(Serialize, Deserialize)]
struct KeyRow {
    pk: String,
    sk: String,
}

/// A trustee partition as read back: the trustee and its grants (in snapshot order).
#[derive(Default)]
struct TrusteePartition {
    trustee: Option<Trustee>,
    grants: Vec<(String, IndexedGrant)>,
}

/// The permission index in one DynamoDB table; the run store holds it. Its clones share the
/// snapshot companies learned.
#[derive(Clone)]
pub struct DynamoIndex {
    pub(super) client: Client,
    pub(super) table: String,
    /// Snapshot id -> company, as the pointer items say (they never change).
    companies: Arc<Mutex<HashMap<String, String>>>,
}

impl DynamoIndex {
    pub fn new(client: Client, table: impl Into<String>) -> DynamoIndex {
        DynamoIndex {
            client,
            table: table.into(),
            companies: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Every item of a partition (whose sort key starts with `prefix`), in sort-key order.
    pub(super) async fn query_partition(
        &self,
        pk: &str,
        prefix: Option<&str>,
    ) -> Result<Vec<Item>, StoreError> {
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .expression_attribute_values(":pk", s(pk));
        query = match prefix {
            Some(p) => query
                .key_condition_expression("pk = :pk AND begins_with(sk, :p)")
                .expression_attribute_values(":p", s(p)),
            None => query.key_condition_expression("pk = :pk"),
        };
        query
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| backend("Query index", e))
    }

    /// The grants the mailbox GSI lists under `key`, in snapshot order.
    async fn query_mailbox(&self, key: &str) -> Result<Vec<IndexedGrant>, StoreError> {
        let items = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(MAILBOX_INDEX)
            .key_condition_expression("mailbox_key = :m")
            .expression_attribute_values(":m", s(key))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| backend("Query index by mailbox", e))?;
        items
            .into_iter()
            .map(|item| Ok(read::<GrantRow>("index grant", item)?.grant))
            .collect()
    }

    /// Puts or deletes many items, 25 per BatchWriteItem, a few batches at once, retrying what
    /// DynamoDB leaves unprocessed with the store's retry policy.
    pub(super) async fn write(&self, requests: Vec<WriteRequest>) -> Result<(), StoreError> {
        let batches: Vec<Vec<WriteRequest>> = requests
            .chunks(BATCH)
            .map(<[WriteRequest]>::to_vec)
            .collect();
        stream::iter(
            batches
                .into_iter()
                .map(|batch| batch_write(&self.client, &self.table, batch)),
        )
        .buffer_unordered(PARALLEL)
        .try_collect::<Vec<()>>()
        .await?;
        Ok(())
    }

    /// The company a snapshot id belongs to; None for an unknown id.
    async fn company_of(&self, snapshot_id: &str) -> Result<Option<String>, StoreError> {
        if let Some(c) = self.cached(snapshot_id) {
            return Ok(Some(c));
        }
        let Some(pointer) = self.pointer(snapshot_id).await? else {
            return Ok(None);
        };
        self.companies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(snapshot_id.to_string(), pointer.company_id.clone());
        Ok(Some(pointer.company_id))
    }

    fn cached(&self, snapshot_id: &str) -> Option<String> {
        self.companies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(snapshot_id)
            .cloned()
    }

    async fn pointer(&self, snapshot_id: &str) -> Result<Option<PointerRow>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pointer_pk(snapshot_id)))
            .key("sk", s(SNAPSHOT_SK))
            .send()
            .await
            .map_err(|e| backend("GetItem snapshot", e))?;
        out.item.map(|i| read("snapshot pointer", i)).transpose()
    }

    async fn trustee_partition(
        &self,
        company: &str,
        snapshot: &str,
        trustee_id: &str,
    ) -> Result<TrusteePartition, StoreError> {
        let mut part = TrusteePartition::default();
        for item in self
            .query_partition(&trustee_pk(company, snapshot, trustee_id), None)
            .await?
        {
            let sk = item.get("sk").and_then(|v| v.as_s().ok()).cloned();
            if sk.as_deref() == Some(TRUSTEE_SK) {
                part.trustee = Some(read::<TrusteeRow>("index trustee", item)?.trustee);
            } else {
                let g: GrantRow = read("index grant", item)?;
                part.grants.push((g.sk, g.grant));
            }
        }
        Ok(part)
    }

    /// The trustees `ids` name and their grants, trustees by id, grants in snapshot order.
    async fn trustees_and_grants(
        &self,
        company: &str,
        snapshot: &str,
        ids: &BTreeSet<String>,
    ) -> Result<IndexHits, StoreError> {
        let reads: Vec<_> = ids
            .iter()
            .map(|id| self.trustee_partition(company, snapshot, id))
            .collect();
        let parts: Vec<TrusteePartition> =
            stream::iter(reads).buffered(PARALLEL).try_collect().await?;
        let mut hits = IndexHits::default();
        let mut grants = Vec::new();
        for part in parts {
            hits.trustees.extend(part.trustee);
            grants.extend(part.grants);
        }
        grants.sort_by(|a, b| a.0.cmp(&b.0));
        hits.grants = grants.into_iter().map(|(_, g)| g).collect();
        Ok(hits)
    }

    /// The listing of a snapshot's trustees: (trustee id, its keys), by id.
    async fn listing(
        &self,
        company: &str,
        snapshot: &str,
    ) -> Result<Vec<(String, Vec<String>)>, StoreError> {
        self.query_partition(&listing_pk(company, snapshot), None)
            .await?
            .into_iter()
            .map(|i| read::<ListingRow>("index listing", i).map(|r| (r.sk, r.keys)))
            .collect()
    }

    /// Drops a snapshot: its summary first (it is no longer listed), then every item.
    async fn delete_snapshot(&self, summary: &SnapshotSummary) -> Result<(), StoreError> {
        let (company, snapshot) = (&summary.company_id, &summary.snapshot_id);
        self.write(vec![delete(summaries_pk(company), summary_sk(summary))?])
            .await?;
        let listing = self.listing(company, snapshot).await?;
        let mut requests = Vec::new();
        for (trustee_id, keys) in &listing {
            let pk = trustee_pk(company, snapshot, trustee_id);
            for item in self.query_partition(&pk, None).await? {
                let sk = item
                    .get("sk")
                    .and_then(|v| v.as_s().ok())
                    .cloned()
                    .unwrap_or_default();
                requests.push(delete(pk.clone(), sk)?);
            }
            for key in keys {
                requests.push(delete(key_pk(company, snapshot, key), trustee_id.clone())?);
            }
        }
        self.write(requests).await?;
        let mut rest = Vec::new();
        for (trustee_id, _) in &listing {
            rest.push(delete(listing_pk(company, snapshot), trustee_id.clone())?);
        }
        rest.push(delete(pointer_pk(snapshot), SNAPSHOT_SK.to_string())?);
        self.write(rest).await?;
        self.companies
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(snapshot);
        Ok(())
    }

    async fn summaries(
        &self,
        company_id: &str,
        at_or_before: Option<DateTime<Utc>>,
        limit: Option<i32>,
    ) -> Result<Vec<SnapshotSummary>, StoreError> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .expression_attribute_values(":pk", s(summaries_pk(company_id)))
                .scan_index_forward(false)
                .set_limit(limit)
                .set_exclusive_start_key(start.take());
            query = match at_or_before {
                // `~` sorts after every character of a snapshot id.
                Some(at) => query
                    .key_condition_expression("pk = :pk AND sk <= :at")
                    .expression_attribute_values(":at", s(format!("{}#~", sortable(at)))),
                None => query.key_condition_expression("pk = :pk"),
            };
            let page = query
                .send()
                .await
                .map_err(|e| backend("Query snapshots", e))?;
            for item in page.items.unwrap_or_default() {
                out.push(read::<SummaryRow>("snapshot summary", item)?.summary);
            }
            let done = limit.is_some_and(|l| out.len() >= l as usize);
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() && !done => start = Some(k),
                _ => return Ok(out),
            }
        }
    }
}

pub(super) fn delete(pk: String, sk: String) -> Result<WriteRequest, StoreError> {
    let del = DeleteRequest::builder()
        .key("pk", s(pk))
        .key("sk", s(sk))
        .build()
        .map_err(|e| StoreError::backend(e.to_string()))?;
    Ok(WriteRequest::builder().delete_request(del).build())
}

pub(super) fn put(item: Item) -> Result<WriteRequest, StoreError> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| StoreError::backend(e.to_string()))?;
    Ok(WriteRequest::builder().put_request(put).build())
}

/// Every item of a snapshot but its summary, each key once (a trustee listed twice is
/// stored as its last listing, as SQLite's INSERT OR REPLACE does).
fn snapshot_items(snapshot: &Snapshot) -> Result<Vec<WriteRequest>, StoreError> {
    let s = &snapshot.summary;
    let (company, id) = (s.company_id.as_str(), s.snapshot_id.as_str());
    let mut trustees: BTreeMap<&str, &Trustee> = BTreeMap::new();
    for t in &snapshot.trustees {
        trustees.insert(&t.trustee_id, t);
    }
    let mut out = vec![put(row(
        "snapshot pointer",
        PointerRow {
            pk: pointer_pk(id),
            sk: SNAPSHOT_SK.into(),
            company_id: company.into(),
            summary_sk: summary_sk(s),
        },
    )?)?];
    let mut listed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for t in trustees.values() {
        out.push(put(row(
            "index trustee",
            TrusteeRow {
                pk: trustee_pk(company, id, &t.trustee_id),
                sk: TRUSTEE_SK.into(),
                trustee: (*t).clone(),
            },
        )?)?);
        listed
            .entry(t.trustee_id.clone())
            .or_default()
            .extend(t.keys());
    }
    for (n, g) in snapshot.grants.iter().enumerate() {
        // A grant's trustee is listed even when the snapshot has no trustee item for it, so
        // that reviews and pruning find it.
        listed.entry(g.trustee_id.clone()).or_default();
        out.push(put(row(
            "index grant",
            GrantRow {
                pk: trustee_pk(company, id, &g.trustee_id),
                sk: grant_sk(n),
                mailbox_key: mailbox_key(company, id, &g.mailbox),
                grant: g.clone(),
            },
        )?)?);
    }
    for (trustee_id, keys) in listed {
        for key in &keys {
            out.push(put(row(
                "index key",
                KeyRow {
                    pk: key_pk(company, id, key),
                    sk: trustee_id.clone(),
                },
            )?)?);
        }
        out.push(put(row(
            "index listing",
            ListingRow {
                pk: listing_pk(company, id),
                sk: trustee_id,
                keys: keys.into_iter().collect(),
            },
        )?)?);
    }
    Ok(out)
}

#[async_trait]
impl PermissionIndex for DynamoIndex {
    async fn save_snapshot(
        &self,
        snapshot: &Snapshot,
        keep: &IndexSettings,
    ) -> Result<(), StoreError> {
        let s = &snapshot.summary;
        self.write(snapshot_items(snapshot)?).await?;
        // Listed only once every item is there.
        self.write(vec![put(row(
            "snapshot summary",
            SummaryRow {
                pk: summaries_pk(&s.company_id),
                sk: summary_sk(s),
                summary: s.clone(),
            },
        )?)?])
        .await?;
        // Keep the newest `keep_snapshots`, and every one younger than `keep_days`.
        let cutoff = s.taken_at - chrono::Duration::days(i64::from(keep.keep_days));
        let all = self.summaries(&s.company_id, None, None).await?;
        for old in all.iter().skip(keep.keep_snapshots) {
            if old.taken_at < cutoff && old.snapshot_id != s.snapshot_id {
                self.delete_snapshot(old).await?;
            }
        }
        Ok(())
    }

    async fn snapshots(&self, company_id: &str) -> Result<Vec<SnapshotSummary>, StoreError> {
        self.summaries(company_id, None, None).await
    }

    async fn held_by(&self, snapshot_id: &str, keys: &[String]) -> Result<IndexHits, StoreError> {
        let Some(company) = self.company_of(snapshot_id).await? else {
            return Ok(IndexHits::default());
        };
        let wanted: BTreeSet<String> = keys.iter().map(|k| k.trim().to_ascii_lowercase()).collect();
        let reads: Vec<_> = wanted
            .iter()
            .map(|k| {
                let pk = key_pk(&company, snapshot_id, k);
                async move { self.query_partition(&pk, None).await }
            })
            .collect();
        let found: Vec<Vec<Item>> = stream::iter(reads).buffered(PARALLEL).try_collect().await?;
        let mut ids = BTreeSet::new();
        for item in found.into_iter().flatten() {
            ids.insert(read::<KeyRow>("index key", item)?.sk);
        }
        self.trustees_and_grants(&company, snapshot_id, &ids).await
    }

    async fn held_on(&self, snapshot_id: &str, mailbox: &str) -> Result<IndexHits, StoreError> {
        let Some(company) = self.company_of(snapshot_id).await? else {
            return Ok(IndexHits::default());
        };
        let mailbox = mailbox.trim().to_ascii_lowercase();
        let grants = self
            .query_mailbox(&mailbox_key(&company, snapshot_id, &mailbox))
            .await?;
        let ids: BTreeSet<String> = grants.iter().map(|g| g.trustee_id.clone()).collect();
        let reads: Vec<_> = ids
            .iter()
            .map(|id| {
                let pk = trustee_pk(&company, snapshot_id, id);
                async move {
                    let mut part = TrusteePartition::default();
                    for item in self.query_partition(&pk, Some(TRUSTEE_SK)).await? {
                        part.trustee = Some(read::<TrusteeRow>("index trustee", item)?.trustee);
                    }
                    Ok::<_, StoreError>(part)
                }
            })
            .collect();
        let trustees: Vec<TrusteePartition> =
            stream::iter(reads).buffered(PARALLEL).try_collect().await?;
        Ok(IndexHits {
            trustees: trustees.into_iter().filter_map(|p| p.trustee).collect(),
            grants,
        })
    }

    async fn everything(&self, snapshot_id: &str) -> Result<IndexHits, StoreError> {
        let Some(company) = self.company_of(snapshot_id).await? else {
            return Ok(IndexHits::default());
        };
        let ids = self
            .listing(&company, snapshot_id)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        self.trustees_and_grants(&company, snapshot_id, &ids).await
    }

    async fn find_snapshot(
        &self,
        company_id: &str,
        which: &SnapshotRef,
    ) -> Result<Option<SnapshotSummary>, StoreError> {
        match which {
            SnapshotRef::Newest => Ok(self
                .summaries(company_id, None, Some(1))
                .await?
                .into_iter()
                .next()),
            SnapshotRef::AsOf(at) => Ok(self
                .summaries(company_id, Some(*at), Some(1))
                .await?
                .into_iter()
                .next()),
            SnapshotRef::Id(id) => {
                let Some(pointer) = self.pointer(id).await? else {
                    return Ok(None);
                };
                if pointer.company_id != company_id {
                    return Ok(None);
                }
                let out = self
                    .client
                    .get_item()
                    .table_name(&self.table)
                    .key("pk", s(summaries_pk(company_id)))
                    .key("sk", s(pointer.summary_sk))
                    .send()
                    .await
                    .map_err(|e| backend("GetItem snapshot summary", e))?;
                out.item
                    .map(|i| read::<SummaryRow>("snapshot summary", i).map(|r| r.summary))
                    .transpose()
            }
        }
    }
}
