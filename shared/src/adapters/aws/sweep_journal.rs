//! The sweep journal in the index table: what a scheduled index sweep has read, kept until its
//! snapshot is stored, so that a sweep the function's timeout cut short is gone on with by the
//! schedule's retry. Items, `C` the company, `S` the sweep (and snapshot) id:
//! - `JOURNAL#C` / `SWEEP`: the unfinished sweep's id and start;
//! - `SWEPT#C#S` / `<mailbox>`: one mailbox read (its grants with their trustees).

use super::dynamo::backend;
use super::index_table::{delete, put, read, row, s, DynamoIndex, Item};
use crate::error::StoreError;
use crate::model::{SweepProgress, SweptMailbox};
use crate::ports::SweepJournal;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const JOURNAL_SK: &str = "SWEEP";

fn journal_pk(company: &str) -> String {
    format!("JOURNAL#{company}")
}
fn reads_pk(company: &str, sweep_id: &str) -> String {
    format!("SWEPT#{company}#{sweep_id}")
}

#[derive(Serialize, Deserialize)]
struct JournalRow {
    pk: String,
    sk: String,
    sweep_id: String,
    started_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct ReadRow {
    pk: String,
    sk: String,
    read: SweptMailbox,
}

impl DynamoIndex {
    async fn journal(&self, company_id: &str) -> Result<Option<JournalRow>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(journal_pk(company_id)))
            .key("sk", s(JOURNAL_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| backend("GetItem sweep journal", e))?;
        out.item.map(|i| read("sweep journal", i)).transpose()
    }

    /// Deletes the company's journal: the reads first, then the item that names them.
    async fn drop_journal(&self, company_id: &str) -> Result<(), StoreError> {
        let Some(journal) = self.journal(company_id).await? else {
            return Ok(());
        };
        let pk = reads_pk(company_id, &journal.sweep_id);
        let reads: Vec<Item> = self.query_partition(&pk, None).await?;
        let mut requests = Vec::with_capacity(reads.len() + 1);
        for item in reads {
            let row: ReadRow = read("sweep read", item)?;
            requests.push(delete(row.pk, row.sk)?);
        }
        self.write(requests).await?;
        self.write(vec![delete(journal.pk, journal.sk)?]).await
    }
}

#[async_trait]
impl SweepJournal for DynamoIndex {
    async fn unfinished_sweep(
        &self,
        company_id: &str,
    ) -> Result<Option<SweepProgress>, StoreError> {
        let Some(journal) = self.journal(company_id).await? else {
            return Ok(None);
        };
        let pk = reads_pk(company_id, &journal.sweep_id);
        let mut done = std::collections::BTreeMap::new();
        for item in self.query_partition(&pk, None).await? {
            let row: ReadRow = read("sweep read", item)?;
            done.insert(row.sk, row.read);
        }
        Ok(Some(SweepProgress {
            sweep_id: journal.sweep_id,
            started_at: journal.started_at,
            done,
        }))
    }

    async fn begin_sweep(
        &self,
        company_id: &str,
        sweep_id: &str,
        started_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.drop_journal(company_id).await?;
        let journal = JournalRow {
            pk: journal_pk(company_id),
            sk: JOURNAL_SK.into(),
            sweep_id: sweep_id.into(),
            started_at,
        };
        self.write(vec![put(row("sweep journal", journal)?)?]).await
    }

    async fn save_sweep_reads(
        &self,
        company_id: &str,
        sweep_id: &str,
        reads: &[(String, SweptMailbox)],
    ) -> Result<(), StoreError> {
        let mut requests = Vec::with_capacity(reads.len());
        for (mailbox, read) in reads {
            let r = ReadRow {
                pk: reads_pk(company_id, sweep_id),
                sk: mailbox.clone(),
                read: read.clone(),
            };
            requests.push(put(row("sweep read", r)?)?);
        }
        self.write(requests).await
    }

    async fn end_sweep(&self, company_id: &str) -> Result<(), StoreError> {
        self.drop_journal(company_id).await
    }
}
