//! The run store: runs, their items, leases, side effects, idempotency keys, audit trail and
//! org settings, as narrow traits by capability, and [`RunStore`] that combines them.

use super::index::{PermissionIndex, SweepJournal};
use crate::error::StoreError;
use crate::model::{
    AuditManifest, AuditRecord, Containment, Grant, IndirectAccess, ItemId, ItemStatus, NotChecked,
    OrgSettings, PermissionType, PlanItem, Report, ResolvedUser, RestoreReport, Run, RunFailure,
    RunFilter, RunId, RunPage, RunStatus,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The key an audit manifest is sealed with: a MAC over the run id and its chains' heads,
/// taken when the run verifies. Whoever can write the trail (and the manifest) can recompute
/// hashes but not this MAC, so a re-sealed trail does not verify. The key never leaves its
/// keeper: in AWS a KMS HMAC key (`GenerateMac`/`VerifyMac`), in the CLI a file of the data
/// directory kept apart from the trail.
#[async_trait]
pub trait AuditSeal: Send + Sync {
    /// The MAC of `message`, hex or base64 as the keeper gives it.
    async fn mac(&self, message: &[u8]) -> Result<String, StoreError>;
    /// Whether `mac` is the MAC of `message` under this key (`Ok(false)`: it is not, or it is
    /// not a MAC at all); `Err` only when the key cannot be reached.
    async fn verify(&self, message: &[u8], mac: &str) -> Result<bool, StoreError>;
}

/// How long a request's idempotency keys return its run.
pub const IDEMPOTENCY_WINDOW: chrono::Duration = chrono::Duration::minutes(15);

/// Who holds an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyHolder {
    /// Nobody did: the caller holds it now.
    Reserved,
    Held {
        run_id: RunId,
        fingerprint: String,
        reserved_at: DateTime<Utc>,
    },
}

/// What a part of discovery found besides the grants themselves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanFacts {
    #[serde(default)]
    pub indirect_access: Vec<IndirectAccess>,
    /// What could not be read or matched; reported, and the run cannot succeed.
    #[serde(default)]
    pub scan_errors: Vec<String>,
    /// Permission types that were not checked, and why.
    #[serde(default)]
    pub not_checked: Vec<NotChecked>,
    /// A contain run's first phase (removing what the index lists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containment: Option<Containment>,
    /// Mailboxes whose permissions of a type discovery could not read: verification reads
    /// them again, and a type read in neither is unproven.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unreadable: Vec<(String, PermissionType)>,
    /// The permission-index snapshot whose folders discovery read beside the well-known ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder_snapshot: Option<crate::model::FolderSnapshot>,
    /// A contain run's identity actions (sessions, sign-in, mail consents), done first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<crate::model::IdentityContainment>,
}

impl ScanFacts {
    pub fn merge(&mut self, other: ScanFacts) {
        self.indirect_access.extend(other.indirect_access);
        self.scan_errors.extend(other.scan_errors);
        self.not_checked.extend(other.not_checked);
        self.containment = self.containment.take().or(other.containment);
        self.unreadable.extend(other.unreadable);
        self.folder_snapshot = self.folder_snapshot.take().or(other.folder_snapshot);
        self.identity = self.identity.take().or(other.identity);
    }

    /// Sorted, without duplicates: parts come back in any order.
    pub fn settle(mut self) -> ScanFacts {
        self.indirect_access.sort_by(|a, b| {
            (&a.mailbox, &a.permission, &a.via).cmp(&(&b.mailbox, &b.permission, &b.via))
        });
        self.indirect_access.dedup();
        self.scan_errors.sort();
        self.scan_errors.dedup();
        self.not_checked
            .sort_by_key(|n| (n.permission_type, n.reason as u8));
        self.not_checked.dedup();
        self.unreadable.sort();
        self.unreadable.dedup();
        self
    }
}

/// The result of counting a finished removal batch or scan shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchProgress {
    /// False when this batch had already been counted (duplicate delivery).
    pub newly_counted: bool,
    pub done: u32,
    pub total: u32,
}

impl BatchProgress {
    /// Every batch has been counted. The next step is queued whenever this holds after a
    /// batch, including on redelivery (the first try may have died before queueing it); the
    /// next step's claim on the run makes sure it starts only once.
    pub fn all_done(&self) -> bool {
        self.done >= self.total
    }
}

/// What claiming a run for a step found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This invocation holds the run until the lease ends.
    Acquired,
    /// Another live invocation holds it: the message must come back later, not be dropped.
    Busy {
        holder: String,
        until: DateTime<Utc>,
    },
    /// The run is not (or no longer) at this step.
    NotHere(RunStatus),
}

/// A side effect verification has that must not happen twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum Effect {
    CreateTicket,
    AddNote,
    SendMail,
    PostTeams,
    PostWebhook,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Where a side effect stands: its intent is recorded before it is attempted, its outcome
/// after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EffectState {
    /// Nothing recorded: this call recorded the intent and may go ahead.
    Started,
    /// An earlier attempt recorded the intent and no outcome: it may or may not have happened.
    Unknown,
    /// It happened (`detail`: e.g. the created ticket's id) or failed (`error`).
    Done {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// What verification has re-read so far: saved chunk by chunk so that a verification stopped
/// at its deadline continues where it was.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RereadChunk {
    pub chunk: u32,
    /// The touched mailboxes this chunk read (none for chunk 0, the tenant-wide lookups).
    #[serde(default)]
    pub mailboxes: Vec<String>,
    pub remaining: Vec<Grant>,
    pub errors: Vec<String>,
    /// Touched mailboxes whose permissions of a type could not be read: what the run found
    /// there is unproven.
    #[serde(default)]
    pub unreadable: Vec<(String, PermissionType)>,
}

/// The companies' settings.
#[async_trait]
pub trait OrgStore: Send + Sync {
    async fn org_settings(&self, company_id: &str) -> Result<Option<OrgSettings>, StoreError>;
    /// Every configured company id, for error messages that list the allowed values.
    async fn company_ids(&self) -> Result<Vec<String>, StoreError>;
}

/// Idempotency keys: one request, one run, within [`IDEMPOTENCY_WINDOW`].
#[async_trait]
pub trait IdempotencyKeys: Send + Sync {
    /// Reserves an idempotency key (a fixed-length hash) for `run_id` for
    /// [`IDEMPOTENCY_WINDOW`], with the fingerprint of the request it was given for. When
    /// another run holds it, says which (the key is then left as it is).
    async fn reserve_idempotency_key(
        &self,
        key: &str,
        run_id: &RunId,
        fingerprint: &str,
    ) -> Result<KeyHolder, StoreError>;
    /// Moves a key from `from` (whose run was never created) to `to`; false if `from` no
    /// longer holds it.
    async fn replace_idempotency_key(
        &self,
        key: &str,
        from: &RunId,
        to: &RunId,
        fingerprint: &str,
    ) -> Result<bool, StoreError>;
    /// Frees a key this run reserved (its run could not be created).
    async fn release_idempotency_key(&self, key: &str, run_id: &RunId) -> Result<(), StoreError>;
}

/// Runs and their lifecycle: created, read, listed, cancelled, ended.
#[async_trait]
pub trait RunRecords: Send + Sync {
    async fn create_run(&self, run: &Run) -> Result<(), StoreError>;
    async fn get_run(&self, run_id: &RunId) -> Result<Option<Run>, StoreError>;
    /// Run history: the runs `filter` matches, newest first, at most `limit` of them; `after`
    /// is the previous page's `next` (opaque). A token this store did not give out, or a
    /// filter it cannot answer without scanning, is [`StoreError::BadQuery`].
    async fn list_runs(
        &self,
        filter: &RunFilter,
        limit: usize,
        after: Option<&str>,
    ) -> Result<RunPage, StoreError>;
    /// Ends the run with its report (`status` is the report's).
    async fn finish_run(&self, run_id: &RunId, report: &Report) -> Result<(), StoreError>;
    /// Ends a restore run with its result.
    async fn finish_restore(
        &self,
        run_id: &RunId,
        report: &RestoreReport,
    ) -> Result<(), StoreError>;
    async fn fail_run(&self, run_id: &RunId, failure: &RunFailure) -> Result<(), StoreError>;
    /// Asks a run to stop (`POST /revocations/{id}/cancel`): no removal batch starts after
    /// this, and the run ends `cancelled`. Returns the run as it is now (`None`: no such run);
    /// a finished run is left as it is.
    async fn request_cancel(&self, run_id: &RunId) -> Result<Option<Run>, StoreError>;
}

/// Claims and leases: which delivery holds a run, and what the sweeper re-drives.
#[async_trait]
pub trait RunLeases: Send + Sync {
    /// Takes the run for a step: moves it from `from` to `working`, or takes over a run in
    /// `working` whose lease ended (its holder died or handed it on), or renews the caller's own
    /// lease. This is what makes each step safe under duplicate delivery.
    async fn claim(
        &self,
        run_id: &RunId,
        from: RunStatus,
        working: RunStatus,
        holder: &str,
        lease: chrono::Duration,
    ) -> Result<Claim, StoreError>;
    /// Ends `holder`'s lease now, so that the next delivery (a continuation, a retry) takes
    /// the run at once.
    async fn release(&self, run_id: &RunId, holder: &str) -> Result<(), StoreError>;
    /// Runs in a working status whose lease ended before `before`: what the sweeper re-drives.
    async fn stalled_runs(&self, before: DateTime<Utc>) -> Result<Vec<Run>, StoreError>;
    /// Counts a re-drive of a stalled run; returns how many there were.
    async fn count_redrive(&self, run_id: &RunId) -> Result<u32, StoreError>;
}

/// What discovery finds and removal and verification work through: plan items, scan
/// shards and facts, removal batches, verification's re-read chunks.
#[async_trait]
pub trait RunItems: Send + Sync {
    /// Discovery found the user and cut the tenant into `shards_total` parts (the tenant-wide
    /// lookups are one of them).
    async fn begin_scan(
        &self,
        run_id: &RunId,
        user: &ResolvedUser,
        shards_total: u32,
    ) -> Result<(), StoreError>;
    /// Stores plan items (a redelivered part writes the same items again).
    async fn put_items(&self, run_id: &RunId, items: &[PlanItem]) -> Result<(), StoreError>;
    /// Stores what one part of discovery found besides grants, under `part`.
    async fn save_facts(
        &self,
        run_id: &RunId,
        part: &str,
        facts: &ScanFacts,
    ) -> Result<(), StoreError>;
    /// Everything every part of discovery stored with [`RunItems::save_facts`].
    async fn scan_facts(&self, run_id: &RunId) -> Result<ScanFacts, StoreError>;
    /// Counts a scan shard as done once, however often it is reported.
    async fn complete_shard(
        &self,
        run_id: &RunId,
        shard_id: u32,
    ) -> Result<BatchProgress, StoreError>;
    /// Discovery is complete: the run moves from `discovering` to `removing` with this many
    /// removal batches. False when it had already moved.
    async fn start_removal(&self, run_id: &RunId, batches_total: u32) -> Result<bool, StoreError>;
    async fn items(&self, run_id: &RunId) -> Result<Vec<PlanItem>, StoreError>;
    /// The items with these ids (those that exist).
    async fn get_items(&self, run_id: &RunId, ids: &[ItemId]) -> Result<Vec<PlanItem>, StoreError>;
    async fn set_item_status(
        &self,
        run_id: &RunId,
        item: ItemId,
        status: &ItemStatus,
    ) -> Result<(), StoreError>;
    /// Counts a batch as done once, however often it is reported.
    async fn complete_batch(
        &self,
        run_id: &RunId,
        batch_id: u32,
    ) -> Result<BatchProgress, StoreError>;
    /// Verification's saved re-read chunks.
    async fn reread_chunks(&self, run_id: &RunId) -> Result<Vec<RereadChunk>, StoreError>;
    async fn save_reread_chunk(
        &self,
        run_id: &RunId,
        chunk: &RereadChunk,
    ) -> Result<(), StoreError>;
}

/// Side-effect intents, so that a redelivered step never does a side effect twice.
#[async_trait]
pub trait EffectLog: Send + Sync {
    /// Records the intent of a side effect unless one is recorded; returns where it stands.
    async fn begin_effect(&self, run_id: &RunId, effect: Effect)
        -> Result<EffectState, StoreError>;
    /// Records a side effect's outcome (`EffectState::Done`).
    async fn end_effect(
        &self,
        run_id: &RunId,
        effect: Effect,
        outcome: &EffectState,
    ) -> Result<(), StoreError>;
}

/// The run's audit trail: records never overwritten, hash chains, the anchored manifest and
/// the seal.
#[async_trait]
pub trait AuditTrail: Send + Sync {
    /// Writes an audit record unless one with its id already exists: records are never
    /// overwritten. Returns whether this call wrote it.
    async fn append_audit(&self, record: &AuditRecord) -> Result<bool, StoreError>;
    /// Writes consecutive sealed records of one chain, all or none: `Ok(true)` when all were
    /// written; `Ok(false)` when none was (one exists already, or the store writes one at a
    /// time: append them one by one to learn which). [`StoreError::ChainPlaceTaken`] as for one.
    async fn append_audit_group(&self, records: &[AuditRecord]) -> Result<bool, StoreError> {
        match records {
            [one] => self.append_audit(one).await,
            _ => Ok(false),
        }
    }
    async fn audit_records(&self, run_id: &RunId) -> Result<Vec<AuditRecord>, StoreError>;
    /// The records of one hash chain of the run's audit trail (where a batch's chain ends).
    async fn audit_chain(
        &self,
        run_id: &RunId,
        chain: &str,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut records = self.audit_records(run_id).await?;
        records.retain(|r| r.chain.as_deref() == Some(chain));
        Ok(records)
    }
    /// The last record of each of the run's audit chains (what its manifest is made of).
    async fn audit_chain_heads(&self, run_id: &RunId) -> Result<Vec<AuditRecord>, StoreError> {
        self.audit_records(run_id).await
    }
    /// Anchors the manifest of the run's audit chains in the run unless one is anchored
    /// already (it is never replaced); returns whether this call anchored it.
    async fn anchor_audit(
        &self,
        run_id: &RunId,
        manifest: &AuditManifest,
    ) -> Result<bool, StoreError>;
    /// The manifest [`AuditTrail::anchor_audit`] anchored, if any.
    async fn audit_manifest(&self, run_id: &RunId) -> Result<Option<AuditManifest>, StoreError>;
    /// The key that seals the run's audit manifests, kept apart from the trail (see
    /// [`AuditSeal`]).
    fn audit_seal(&self) -> &dyn AuditSeal;
}

/// The index and sweep journal a store keeps beside its runs, if it keeps them.
#[async_trait]
pub trait StoreIndexes: Send + Sync {
    /// The permission index this store keeps, if it keeps one.
    fn permission_index(&self) -> Option<&dyn PermissionIndex> {
        None
    }
    /// Where sweeps journal their reads (so an interrupted one goes on), if this store keeps
    /// them.
    fn sweep_journal(&self) -> Option<&dyn SweepJournal> {
        None
    }
}

/// Everything a step may ask of the run store: the narrow traits above together. Steps take
/// `&dyn RunStore`; a function that needs one capability only may take that trait instead.
pub trait RunStore:
    OrgStore
    + IdempotencyKeys
    + RunRecords
    + RunLeases
    + RunItems
    + EffectLog
    + AuditTrail
    + StoreIndexes
{
}

impl<T> RunStore for T where
    T: OrgStore
        + IdempotencyKeys
        + RunRecords
        + RunLeases
        + RunItems
        + EffectLog
        + AuditTrail
        + StoreIndexes
        + ?Sized
{
}
