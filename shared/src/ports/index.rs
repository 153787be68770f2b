//! The permission index, the sweep journal, and the delegate baseline read from the index.

use crate::error::StoreError;
use crate::model::{
    IndexHits, IndexSettings, PermissionType, Snapshot, SnapshotRef, SnapshotSummary,
    SweepProgress, SweptMailbox,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

/// Where a sweep keeps what it has read until its snapshot is stored, so that an interrupted
/// sweep of the company goes on from there (the CLI's SQLite file).
#[async_trait]
pub trait SweepJournal: Send + Sync {
    /// The company's sweep that began and did not end, with the mailboxes it had read.
    async fn unfinished_sweep(&self, company_id: &str)
        -> Result<Option<SweepProgress>, StoreError>;
    /// A new sweep of the company (any unfinished one is dropped).
    async fn begin_sweep(
        &self,
        company_id: &str,
        sweep_id: &str,
        started_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Mailboxes read, by lowercase address.
    async fn save_sweep_reads(
        &self,
        company_id: &str,
        sweep_id: &str,
        reads: &[(String, SweptMailbox)],
    ) -> Result<(), StoreError>;
    /// The sweep's snapshot is stored (or it is given up): its journal goes.
    async fn end_sweep(&self, company_id: &str) -> Result<(), StoreError>;
}

/// The permission index: snapshots of every grant in a tenant (see [`crate::model::Snapshot`]).
#[async_trait]
pub trait PermissionIndex: Send + Sync {
    /// Stores `snapshot` whole, then drops the company's snapshots `keep` no longer keeps
    /// (beyond the newest `keep_snapshots`, taken `keep_days` before this one).
    async fn save_snapshot(
        &self,
        snapshot: &Snapshot,
        keep: &IndexSettings,
    ) -> Result<(), StoreError>;
    /// The company's snapshots, newest first.
    async fn snapshots(&self, company_id: &str) -> Result<Vec<SnapshotSummary>, StoreError>;
    /// The trustees any of `keys` (lowercase UPN, address, object id, value shown) name in a
    /// snapshot, and their grants.
    async fn held_by(&self, snapshot_id: &str, keys: &[String]) -> Result<IndexHits, StoreError>;
    /// The grants on `mailbox` (lowercase address) in a snapshot, and their trustees.
    async fn held_on(&self, snapshot_id: &str, mailbox: &str) -> Result<IndexHits, StoreError>;
    /// Every trustee and grant of a snapshot (reviews).
    async fn everything(&self, snapshot_id: &str) -> Result<IndexHits, StoreError>;

    /// The snapshot `which` names for a company.
    async fn find_snapshot(
        &self,
        company_id: &str,
        which: &SnapshotRef,
    ) -> Result<Option<SnapshotSummary>, StoreError> {
        let all = self.snapshots(company_id).await?;
        Ok(all.into_iter().find(|s| match which {
            SnapshotRef::Newest => true,
            SnapshotRef::Id(id) => &s.snapshot_id == id,
            SnapshotRef::AsOf(at) => s.taken_at <= *at,
        }))
    }
}

/// The grants on a mailbox in a permission-index snapshot at least `min_age_days` old, each
/// as (type, trustee lowercased): what tells a recent delegate from an old one.
#[async_trait]
pub trait DelegateBaseline: Send + Sync {
    /// `None`: no snapshot that old (the index is younger, or has not seen the mailbox).
    async fn baseline(
        &self,
        company_id: &str,
        mailbox: &str,
        min_age_days: u32,
    ) -> Result<Option<Vec<(PermissionType, String)>>, StoreError>;
}

/// No permission index: every delegate's age is unknown.
pub struct NoBaseline;

#[async_trait]
impl DelegateBaseline for NoBaseline {
    async fn baseline(
        &self,
        _company_id: &str,
        _mailbox: &str,
        _min_age_days: u32,
    ) -> Result<Option<Vec<(PermissionType, String)>>, StoreError> {
        Ok(None)
    }
}
