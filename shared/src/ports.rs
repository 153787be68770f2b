//! The capabilities the steps need, as traits. Adapters implement them: HTTP clients for
//! Graph, Exchange and the PSA; an in-process queue and a file-backed store for one machine;
//! SQS and DynamoDB in Lambda.

use crate::config::Recheck;
use crate::error::{QueueError, RemoteError, StepError, StoreError};
use crate::messages::StepMessage;
use crate::model::{
    AlertSourceKind, AuditManifest, AuditRecord, Containment, Grant, InboxRule, IndexHits,
    IndexSettings, IndirectAccess, ItemId, ItemStatus, MailboxForwarding, MatchedBy, NotChecked,
    OrgSettings, PermissionType, PlanItem, Report, ResolvedUser, RestoreReport, RiskyUser, Run,
    RunFailure, RunFilter, RunId, RunPage, RunStatus, SecurityAlert, Snapshot, SnapshotRef,
    SnapshotSummary, SweepProgress, SweptMailbox,
};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

mod folders;
pub use folders::*;

// ---------------------------------------------------------------------------------------------
// Queue and run store

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

#[async_trait]
pub trait Queue: Send + Sync {
    async fn send(&self, message: StepMessage) -> Result<(), QueueError>;

    async fn send_all(&self, messages: Vec<StepMessage>) -> Result<(), QueueError> {
        for m in messages {
            self.send(m).await?;
        }
        Ok(())
    }

    /// Sends `message` to be delivered no sooner than `delay` from now (where the queue can
    /// delay; at once otherwise).
    async fn send_later(&self, message: StepMessage, _delay: Duration) -> Result<(), QueueError> {
        self.send(message).await
    }
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
}

impl ScanFacts {
    pub fn merge(&mut self, other: ScanFacts) {
        self.indirect_access.extend(other.indirect_access);
        self.scan_errors.extend(other.scan_errors);
        self.not_checked.extend(other.not_checked);
        self.containment = self.containment.take().or(other.containment);
        self.unreadable.extend(other.unreadable);
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
pub enum Effect {
    CreateTicket,
    AddNote,
    SendMail,
    PostTeams,
    PostWebhook,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::CreateTicket => "create_ticket",
            Effect::AddNote => "add_note",
            Effect::SendMail => "send_mail",
            Effect::PostTeams => "post_teams",
            Effect::PostWebhook => "post_webhook",
        }
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

#[async_trait]
pub trait RunStore: Send + Sync {
    async fn org_settings(&self, company_id: &str) -> Result<Option<OrgSettings>, StoreError>;
    /// Every configured company id, for error messages that list the allowed values.
    async fn company_ids(&self) -> Result<Vec<String>, StoreError>;

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
    /// Everything every part of discovery stored with [`RunStore::save_facts`].
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

    /// Writes an audit record unless one with its id already exists: records are never
    /// overwritten. Returns whether this call wrote it.
    async fn append_audit(&self, record: &AuditRecord) -> Result<bool, StoreError>;
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
    /// The manifest [`RunStore::anchor_audit`] anchored, if any.
    async fn audit_manifest(&self, run_id: &RunId) -> Result<Option<AuditManifest>, StoreError>;
    /// The key that seals the run's audit manifests, kept apart from the trail (see
    /// [`AuditSeal`]).
    fn audit_seal(&self) -> &dyn AuditSeal;
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

// ---------------------------------------------------------------------------------------------
// Microsoft 365: Graph (directory, calendars) and the Exchange admin API

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryUser {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: String,
    pub mail: Option<String>,
    pub account_enabled: Option<bool>,
    /// `SMTP:primary@x`, `smtp:alias@x`, ... as Graph lists them.
    #[serde(default)]
    pub proxy_addresses: Vec<String>,
}

/// What looking a user up by the address an operator typed found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserLookup {
    Found {
        user: DirectoryUser,
        matched_by: MatchedBy,
    },
    NotFound,
    /// The address names more than one user (their UPNs).
    Ambiguous {
        candidates: Vec<String>,
    },
}

impl UserLookup {
    /// The user found, if exactly one was.
    pub fn user(self) -> Option<DirectoryUser> {
        match self {
            UserLookup::Found { user, .. } => Some(user),
            _ => None,
        }
    }
}

pub use crate::model::DirectoryGroup;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarPermission {
    pub id: String,
    pub role: String,
    pub is_removable: bool,
    pub email_name: Option<String>,
    pub email_address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxInfo {
    pub user_principal_name: String,
    pub primary_smtp_address: String,
    pub display_name: String,
    /// Exchange `Name` (the alias, or the object id for objects created since 2022; what
    /// `Identity` in permission answers holds).
    pub name: Option<String>,
    #[serde(default)]
    pub alias: Option<String>,
    pub distinguished_name: String,
    pub external_directory_object_id: Option<String>,
    pub recipient_type_details: String,
    pub grant_send_on_behalf_to: Vec<String>,
}

/// People's, shared, room and equipment mailboxes: the ones access is delegated on.
pub fn is_mailbox_type(recipient_type_details: &str) -> bool {
    [
        "UserMailbox",
        "SharedMailbox",
        "RoomMailbox",
        "EquipmentMailbox",
    ]
    .iter()
    .any(|t| recipient_type_details.eq_ignore_ascii_case(t))
}

impl MailboxInfo {
    pub fn is_shared(&self) -> bool {
        self.recipient_type_details
            .eq_ignore_ascii_case("SharedMailbox")
    }

    /// People's, shared, room and equipment mailboxes: the ones access is delegated on.
    pub fn holds_delegations(&self) -> bool {
        is_mailbox_type(&self.recipient_type_details)
    }

    /// The address reports and removals use, lowercase.
    pub fn address(&self) -> String {
        let a = if self.primary_smtp_address.is_empty() {
            &self.user_principal_name
        } else {
            &self.primary_smtp_address
        };
        a.to_ascii_lowercase()
    }

    /// The values an `Identity` in an Exchange answer may name this mailbox by.
    pub fn identities(&self) -> impl Iterator<Item = &String> {
        [
            Some(&self.user_principal_name),
            Some(&self.primary_smtp_address),
            Some(&self.distinguished_name),
            self.name.as_ref(),
            self.alias.as_ref(),
            self.external_directory_object_id.as_ref(),
        ]
        .into_iter()
        .flatten()
        .filter(|v| !v.is_empty())
    }

    /// Whether an `Identity` value from an Exchange answer names this mailbox.
    pub fn is_identified_by(&self, identity: &str) -> bool {
        let i = identity.trim();
        self.identities().any(|v| v.eq_ignore_ascii_case(i))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MailboxPermissionEntry {
    pub identity: String,
    pub user: String,
    pub access_rights: Vec<String>,
    pub is_inherited: bool,
    pub deny: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientPermissionEntry {
    pub identity: String,
    pub trustee: String,
    pub access_rights: Vec<String>,
    /// `Allow` or `Deny`.
    pub access_control_type: String,
    pub is_inherited: bool,
}

impl MailboxPermissionEntry {
    /// An allowing entry that carries Full Access (whoever it names, inherited or not).
    pub fn allows_full_access(&self) -> bool {
        !self.deny
            && self
                .access_rights
                .iter()
                .any(|r| r.eq_ignore_ascii_case("FullAccess"))
    }
}

impl RecipientPermissionEntry {
    /// An allowing entry that carries Send As (an entry listing no rights is one: Send As is
    /// the only right of `Get-RecipientPermission`).
    pub fn allows_send_as(&self) -> bool {
        self.access_control_type.eq_ignore_ascii_case("Allow")
            && (self.access_rights.is_empty()
                || self
                    .access_rights
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case("SendAs")))
    }
}

/// Any Exchange recipient: mailbox, mail user, group, contact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub name: String,
    pub display_name: String,
    pub primary_smtp_address: String,
    pub recipient_type_details: String,
    pub external_directory_object_id: Option<String>,
    #[serde(default)]
    pub distinguished_name: Option<String>,
    #[serde(default)]
    pub alias: Option<String>,
}

/// A directory user as Exchange knows it (`Get-User`): what permission answers may name the
/// user by, besides addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExchangeUser {
    pub user_principal_name: Option<String>,
    pub external_directory_object_id: Option<String>,
    pub display_name: Option<String>,
    pub name: Option<String>,
    pub distinguished_name: Option<String>,
    pub recipient_type_details: Option<String>,
    pub sid: Option<String>,
    pub sid_history: Vec<String>,
    pub sam_account_name: Option<String>,
    pub windows_email_address: Option<String>,
}

/// A removal that succeeded, or found nothing to remove (Exchange's warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemovalOutcome {
    Removed,
    AlreadyGone {
        warning: String,
    },
    /// "Nothing to remove", but only on a retry after an attempt that may have reached the
    /// service (timeout, 502/503/504): that attempt removed it.
    GoneOnRetry {
        warning: String,
    },
}

/// The application roles (the `roles` claim of an app-only access token) the app holds in a
/// tenant, per service. `None`: the token is not a JWT whose claims can be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppRoles {
    pub graph: Option<Vec<String>>,
    pub exchange: Option<Vec<String>>,
}

/// Whether a user has a mailbox Graph can work with (send from, read settings of).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxState {
    /// `purpose`: Graph's `userPurpose` (`user`, `shared`, `room`, ...), when it says.
    Usable { purpose: Option<String> },
    /// Graph's reason, e.g. `MailboxNotEnabledForRESTAPI: The mailbox is either inactive, ...`.
    NotUsable { reason: String },
}

/// Microsoft Graph (and the identity platform behind it): users, groups, calendar permissions.
#[async_trait]
pub trait Directory: Send + Sync {
    /// The user an operator names by address: the UPN, else the primary SMTP address
    /// (`mail`), else a proxy address.
    async fn find_user(&self, address: &str) -> Result<UserLookup, RemoteError>;
    /// Every group the user is a member of, directly or through nesting.
    async fn groups_of(&self, user_id: &str) -> Result<Vec<DirectoryGroup>, RemoteError>;
    async fn calendar_permissions(
        &self,
        mailbox: &str,
    ) -> Result<Vec<CalendarPermission>, RemoteError>;
    async fn remove_calendar_permission(
        &self,
        mailbox: &str,
        permission_id: &str,
    ) -> Result<RemovalOutcome, RemoteError>;
    /// Restore: grants `role` on `mailbox`'s calendar to `address`.
    async fn add_calendar_permission(
        &self,
        mailbox: &str,
        address: &str,
        role: &str,
    ) -> Result<(), RemoteError>;
    /// The roles the app's tokens for Graph and for the Exchange admin API carry. Getting the
    /// tokens proves the app's credentials work in this tenant.
    async fn app_roles(&self) -> Result<AppRoles, RemoteError>;
    /// Whether `user` (object id or UPN) has a mailbox Graph can use (`mailboxSettings`).
    async fn mailbox_state(&self, user: &str) -> Result<MailboxState, RemoteError>;
    /// Every user's last sign-in (`signInActivity`; needs `AuditLog.Read.All` and Entra ID
    /// P1 — a tenant without them answers 403).
    async fn sign_ins(&self) -> Result<Vec<UserSignIn>, RemoteError>;
}

/// When a user last signed in, interactively or not; `None`: never (or not recorded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSignIn {
    pub id: String,
    pub user_principal_name: String,
    pub last_sign_in: Option<chrono::DateTime<chrono::Utc>>,
}

/// The Exchange Online admin API (InvokeCommand).
#[async_trait]
pub trait Exchange: Send + Sync {
    async fn mailboxes(&self) -> Result<Vec<MailboxInfo>, RemoteError>;
    /// [`Exchange::mailboxes`], telling `page` each page's mailboxes as it arrives, so work on
    /// the first pages can start while the others are read.
    async fn mailboxes_by_page(
        &self,
        page: &(dyn for<'m> Fn(&'m [MailboxInfo]) + Send + Sync),
    ) -> Result<Vec<MailboxInfo>, RemoteError> {
        let all = self.mailboxes().await?;
        page(&all);
        Ok(all)
    }
    /// Mailboxes whose GrantSendOnBehalfTo holds the recipient with this DN.
    async fn mailboxes_with_send_on_behalf(
        &self,
        user_dn: &str,
    ) -> Result<Vec<MailboxInfo>, RemoteError>;
    async fn mailbox_permissions(
        &self,
        mailbox: &str,
    ) -> Result<Vec<MailboxPermissionEntry>, RemoteError>;
    /// Every Send As entry of the tenant, on every kind of recipient. Unlike a lookup by
    /// trustee it also shows entries whose SID no longer matches the trustee's.
    async fn send_as_entries(&self) -> Result<Vec<RecipientPermissionEntry>, RemoteError>;
    /// The Send As entries on one recipient.
    async fn send_as_on(
        &self,
        identity: &str,
    ) -> Result<Vec<RecipientPermissionEntry>, RemoteError>;
    /// Send As entries held by `trustee` (a user or a group), tenant-wide, compared by SID.
    async fn send_as_by_trustee(
        &self,
        trustee: &str,
    ) -> Result<Vec<RecipientPermissionEntry>, RemoteError>;
    /// `None` when no recipient has this identity; an error when it is ambiguous.
    async fn recipient(&self, identity: &str) -> Result<Option<Recipient>, RemoteError>;
    /// `Get-User`: `None` when no user has this identity.
    async fn user(&self, identity: &str) -> Result<Option<ExchangeUser>, RemoteError>;
    /// `Get-Group`: any group, mail-enabled or not (a security group that is no recipient
    /// still holds rights), as a recipient-shaped record (its address empty when it has
    /// none); `None` when no group has this identity.
    async fn group(&self, identity: &str) -> Result<Option<Recipient>, RemoteError>;
    /// Every directory user Exchange knows (`Get-User -ResultSize Unlimited`): how a SID in a
    /// permission answer is traced to its user tenant-wide.
    async fn users(&self) -> Result<Vec<ExchangeUser>, RemoteError>;

    async fn remove_full_access(
        &self,
        mailbox: &str,
        user: &str,
    ) -> Result<RemovalOutcome, RemoteError>;
    /// Send As lives on any recipient; `recipient_type` (Exchange's RecipientTypeDetails, when
    /// known) tells a mailbox from a group or contact.
    async fn remove_send_as(
        &self,
        recipient: &str,
        recipient_type: Option<&str>,
        trustee: &str,
    ) -> Result<RemovalOutcome, RemoteError>;
    async fn remove_send_on_behalf(
        &self,
        mailbox: &str,
        user: &str,
    ) -> Result<RemovalOutcome, RemoteError>;

    async fn add_full_access(&self, mailbox: &str, user: &str) -> Result<(), RemoteError>;
    async fn add_send_as(
        &self,
        recipient: &str,
        recipient_type: Option<&str>,
        trustee: &str,
    ) -> Result<(), RemoteError>;
    async fn add_send_on_behalf(&self, mailbox: &str, user: &str) -> Result<(), RemoteError>;

    /// `Get-Mailbox -Identity`: the mailbox and the forwarding set on it; `None` when there is
    /// no such mailbox.
    async fn mailbox_settings(&self, mailbox: &str)
        -> Result<Option<MailboxSettings>, RemoteError>;
    /// `Set-Mailbox` with the three forwarding parameters as given (all empty: cleared).
    async fn set_forwarding(
        &self,
        mailbox: &str,
        forwarding: &MailboxForwarding,
    ) -> Result<(), RemoteError>;
    /// `Get-InboxRule -IncludeHidden`: every rule of the mailbox the cmdlet can show.
    async fn inbox_rules(&self, mailbox: &str) -> Result<Vec<InboxRule>, RemoteError>;
    /// `Disable-InboxRule`: the rule stays, with its whole definition.
    async fn disable_inbox_rule(&self, mailbox: &str, identity: &str) -> Result<(), RemoteError>;
    async fn enable_inbox_rule(&self, mailbox: &str, identity: &str) -> Result<(), RemoteError>;
}

/// A mailbox with the forwarding set on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxSettings {
    pub info: MailboxInfo,
    pub forwarding: MailboxForwarding,
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

// ---------------------------------------------------------------------------------------------
// Security alerts: where they are read, and what the poller remembers

/// Microsoft's alert APIs on Graph: Defender XDR alerts and Entra ID Protection risky users.
#[async_trait]
pub trait AlertSource: Send + Sync {
    /// Every `alerts_v2` alert updated after `since`, all pages.
    async fn security_alerts(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<SecurityAlert>, RemoteError>;
    /// Every risky user whose risk changed after `since`, all pages.
    async fn risky_users(&self, since: DateTime<Utc>) -> Result<Vec<RiskyUser>, RemoteError>;
}

/// What the alert poller remembers between polls: how far each feed of a company has been
/// read, and which alert started which run (for [`crate::model::ALERT_DEDUPE_WINDOW`]).
#[async_trait]
pub trait AlertLedger: Send + Sync {
    /// The newest change a feed (`defender`, `entra_id_protection`) of the company was read to.
    async fn watermark(
        &self,
        company_id: &str,
        feed: AlertSourceKind,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;
    async fn save_watermark(
        &self,
        company_id: &str,
        feed: AlertSourceKind,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The run the alert with this key (a fixed-length hash) started within the window.
    async fn alert_run(&self, key: &str) -> Result<Option<RunId>, StoreError>;
    /// Remembers that the alert with this key started `run_id`, until `until`, unless another
    /// run is remembered for it already (that one is kept, and returned).
    async fn remember_alert_run(
        &self,
        key: &str,
        run_id: &RunId,
        until: DateTime<Utc>,
    ) -> Result<Option<RunId>, StoreError>;
    /// Counts one contain run against the company's budget for the clock hour `hour` (UTC,
    /// `2026-12-07T14`): true when fewer than `limit` were counted in that hour (this one now
    /// is), false when the hour's budget is spent. Safe under concurrent callers.
    async fn take_contain_budget(
        &self,
        company_id: &str,
        hour: &str,
        limit: u32,
    ) -> Result<bool, StoreError>;
    /// Marks `key` (a fixed-length hash) until `until`: true when this call marked it, false
    /// when it was marked already. What an alert decided without a run (a user left awaiting
    /// approval, the approval notice sent) is remembered this way.
    async fn mark_alert(&self, key: &str, until: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Whether `key` is marked and its mark has not expired.
    async fn alert_marked(&self, key: &str) -> Result<bool, StoreError>;
}

// ---------------------------------------------------------------------------------------------
// PSA and mail

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    pub summary: String,
    pub board: String,
    pub company: String,
    pub initial_description: String,
}

/// A company as the PSA knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PsaCompany {
    /// The PSA's numeric id, as text.
    pub id: String,
    pub identifier: String,
    pub name: String,
}

impl PsaCompany {
    /// Whether this is the company an org's `psa_company` names: by identifier (in any case)
    /// or by numeric id.
    pub fn is(&self, psa_company: &str) -> bool {
        let wanted = psa_company.trim();
        !wanted.is_empty() && (self.identifier.eq_ignore_ascii_case(wanted) || self.id == wanted)
    }
}

#[async_trait]
pub trait Psa: Send + Sync {
    /// Checks a ticket id's format without any call (ConnectWise ids are integers).
    fn check_ticket_id(&self, ticket_id: &str) -> Result<(), RemoteError>;
    /// Creates a ticket and returns its id.
    async fn create_ticket(&self, ticket: &NewTicket) -> Result<String, RemoteError>;
    async fn add_note(&self, ticket_id: &str, text: &str) -> Result<(), RemoteError>;
    /// The ticket whose summary contains `marker` (a run id), if there is one.
    async fn find_ticket(&self, marker: &str) -> Result<Option<String>, RemoteError>;
    /// Whether a note on the ticket contains `marker` (a run id).
    async fn has_note(&self, ticket_id: &str, marker: &str) -> Result<bool, RemoteError>;
    /// The company ticket `ticket_id` belongs to; `None` when the PSA has no such ticket.
    async fn ticket_company(&self, ticket_id: &str) -> Result<Option<PsaCompany>, RemoteError>;
    /// The company `psa_company` names (identifier or numeric id); `None` when there is none.
    async fn find_company(&self, psa_company: &str) -> Result<Option<PsaCompany>, RemoteError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub content_type: String,
    pub content: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingMail {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub html_body: String,
    pub attachments: Vec<Attachment>,
}

#[async_trait]
pub trait Mailer: Send + Sync {
    async fn send(&self, mail: &OutgoingMail) -> Result<(), RemoteError>;
}

/// Where a run's outcome is posted besides the email: a Teams channel or a company's own
/// signed webhook (`[company.notify]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Teams,
    Webhook,
}

impl HookKind {
    /// The hook's name in reports and logs (its URL carries a token and is never shown).
    pub fn label(self) -> &'static str {
        match self {
            HookKind::Teams => "Teams webhook",
            HookKind::Webhook => "webhook",
        }
    }
}

/// A finished run as posted to Teams and to a webhook; never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunNotice {
    /// `revocation.finished` or `restore.finished`.
    pub event: String,
    pub run_id: String,
    pub company_id: String,
    pub company_name: String,
    pub user_email: String,
    pub success: bool,
    /// The run's status (`completed`, `completed_with_errors`, ...).
    pub status: String,
    /// Grants removed (a revocation) or put back (a restore).
    pub total_permissions_removed: u32,
    /// What went wrong, in the report's words (`errors`, failed restores).
    pub failures: u32,
    pub ticket_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_url: Option<String>,
}

/// Posts a run's outcome to a Teams channel or a webhook, once per call (no retry of a
/// write that may have landed; no redirects).
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn post(&self, kind: HookKind, url: &str, notice: &RunNotice) -> Result<(), RemoteError>;
}

// ---------------------------------------------------------------------------------------------
// One company's connections, and progress for people watching

/// The M365 tenant of one company: Graph and the Exchange admin API.
#[derive(Clone, Copy)]
pub struct Tenant<'a> {
    pub directory: &'a dyn Directory,
    pub exchange: &'a dyn Exchange,
    /// How verification gives a just-removed grant that still shows a second look.
    pub recheck: Recheck,
    /// Starts the tenant's per-service limits at levels learnt before (see
    /// [`Connections::seed_limits`]).
    pub seed_limits: &'a (dyn Fn(&BTreeMap<String, usize>) + Send + Sync),
}

/// Where the outcome is reported: the PSA ticket, the notification email, Teams and webhooks.
#[derive(Clone, Copy)]
pub struct Notify<'a> {
    pub psa: &'a dyn Psa,
    pub mailer: &'a dyn Mailer,
    pub notifier: &'a dyn Notifier,
}

/// Progress for people watching (the CLI's progress bars); Lambda ignores it.
pub trait ProgressObserver: Send + Sync {
    fn discovery(&self, _scanned: u64, _total: u64) {}
    fn removal(&self, _done: u64, _total: u64) {}
}

pub struct NoProgress;
impl ProgressObserver for NoProgress {}

/// The external systems of one company.
#[derive(Clone)]
pub struct Connections {
    pub directory: Arc<dyn Directory>,
    pub exchange: Arc<dyn Exchange>,
    pub psa: Arc<dyn Psa>,
    pub mailer: Arc<dyn Mailer>,
    /// Teams and webhook posts of a run's outcome.
    pub notifier: Arc<dyn Notifier>,
    /// The tenant's security alerts (the alert poller's).
    pub alerts: Arc<dyn AlertSource>,
    pub recheck: Recheck,
    /// Mailboxes per discovery scan shard, sized to the tenant's pace as learnt so far (ask
    /// after the listing: it teaches the pace).
    pub shard_size: ShardSizer,
    /// Starts this tenant's per-service limits (`exchange`, `graph`) at what a sweep learnt,
    /// where they have learnt nothing yet; a no-op without adaptive limits.
    pub seed_limits: LimitSeeder,
}

/// See [`Connections::seed_limits`].
pub type LimitSeeder = Arc<dyn Fn(&BTreeMap<String, usize>) + Send + Sync>;

/// See [`Connections::shard_size`].
pub type ShardSizer = Arc<dyn Fn() -> usize + Send + Sync>;

impl Connections {
    pub fn tenant(&self) -> Tenant<'_> {
        Tenant {
            directory: self.directory.as_ref(),
            exchange: self.exchange.as_ref(),
            recheck: self.recheck,
            seed_limits: self.seed_limits.as_ref(),
        }
    }

    pub fn notify(&self) -> Notify<'_> {
        Notify {
            psa: self.psa.as_ref(),
            mailer: self.mailer.as_ref(),
            notifier: self.notifier.as_ref(),
        }
    }
}

/// Builds (or reuses) the clients for a company's tenant and PSA.
/// How many calls in flight a step can use per Microsoft 365 service (`usize::MAX`: as many
/// as the tenant allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetWant {
    pub exchange: usize,
    pub graph: usize,
}

impl BudgetWant {
    pub const ALL: BudgetWant = BudgetWant {
        exchange: usize::MAX,
        graph: usize::MAX,
    };

    pub fn of(&self, service: &str) -> usize {
        match service {
            "exchange" => self.exchange,
            "graph" => self.graph,
            _ => usize::MAX,
        }
    }
}

#[async_trait]
pub trait Connector: Send + Sync {
    async fn connect(&self, org: &OrgSettings) -> Result<Connections, StepError>;

    /// A service rejected the credentials: fetch them again before the next connection (a
    /// rotated secret).
    async fn credentials_rejected(&self) {}

    /// Takes this delivery's share (up to `want` calls in flight per service) of the tenant's
    /// budget shared by every invocation (Lambda); nothing to do in one process.
    /// [`StepError::Saturated`] when no permit came free in time.
    async fn hold_budget(
        &self,
        _org: &OrgSettings,
        _delivery: &crate::work::Delivery,
        _want: BudgetWant,
    ) -> Result<(), StepError> {
        Ok(())
    }

    /// Returns the share [`Connector::hold_budget`] took, with what it learnt.
    async fn return_budget(&self, _org: &OrgSettings, _delivery: &crate::work::Delivery) {}
}
