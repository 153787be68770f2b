//! The permission index: a snapshot of every grant every trustee holds in a tenant, taken by a
//! sweep, kept by the run store, read by `access`, containment, reviews and backups.

use super::{CalendarGrant, FolderGrant, Grant, PermissionType, ResolvedUser};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Snapshots kept per company beyond those younger than `keep_days`.
pub const DEFAULT_KEEP_SNAPSHOTS: usize = 3;
/// Snapshots younger than this are kept whatever their number (a containment of the victim's
/// mailbox compares with one at least 30 days old).
pub const DEFAULT_KEEP_DAYS: u32 = 35;
/// A snapshot older than this is not used for containment.
pub const DEFAULT_MAX_INDEX_AGE_DAYS: u32 = 7;

/// A company's index settings (`[company.index]`), each with its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSettings {
    #[serde(default = "default_keep_snapshots")]
    pub keep_snapshots: usize,
    #[serde(default = "default_keep_days")]
    pub keep_days: u32,
    #[serde(default = "default_max_index_age_days")]
    pub max_index_age_days: u32,
}

fn default_keep_snapshots() -> usize {
    DEFAULT_KEEP_SNAPSHOTS
}
fn default_keep_days() -> u32 {
    DEFAULT_KEEP_DAYS
}
fn default_max_index_age_days() -> u32 {
    DEFAULT_MAX_INDEX_AGE_DAYS
}

impl IndexSettings {
    pub fn is_default(&self) -> bool {
        *self == IndexSettings::default()
    }
}

impl Default for IndexSettings {
    fn default() -> Self {
        IndexSettings {
            keep_snapshots: DEFAULT_KEEP_SNAPSHOTS,
            keep_days: DEFAULT_KEEP_DAYS,
            max_index_age_days: DEFAULT_MAX_INDEX_AGE_DAYS,
        }
    }
}

/// What a sweep read and learned, without its grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    pub snapshot_id: String,
    pub company_id: String,
    pub tenant_id: String,
    pub taken_at: DateTime<Utc>,
    pub duration_ms: u64,
    pub mailboxes: u64,
    pub trustees: u64,
    pub grants: u64,
    /// Calls made per service (`exchange`, `graph`).
    pub calls: BTreeMap<String, u64>,
    /// The in-flight limits learned per service by the end of the sweep.
    pub limits: BTreeMap<String, usize>,
    /// Parts of the tenant that could not be read (a mailbox, a listing): the snapshot is
    /// incomplete there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Mailboxes an earlier, interrupted attempt of this sweep had read (taken from its
    /// journal, not read again; `taken_at` is that attempt's start).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resumed_mailboxes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// What a trustee value turned out to name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrusteeKind {
    /// A user (with a mailbox, or a mail user).
    User,
    /// A mail-enabled group: its members hold the grant through it.
    Group,
    /// Another kind of recipient (a contact, a public folder, ...).
    Recipient,
    /// A SID that no recipient has any more (a deleted user's ACE).
    OrphanedSid,
    /// An address outside the tenant's recipients (an external calendar share).
    External,
    /// A name nothing in the tenant resolves to.
    Unresolved,
}

impl TrusteeKind {
    /// Whether the directory still knows the trustee.
    pub fn exists(self) -> bool {
        matches!(
            self,
            TrusteeKind::User | TrusteeKind::Group | TrusteeKind::Recipient
        )
    }
}

/// Someone a grant is held by, as resolved when the snapshot was taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trustee {
    /// Stable within a snapshot: the object id where known, else the lowercase value shown.
    pub trustee_id: String,
    pub kind: TrusteeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    /// Primary SMTP address, lowercase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Exchange's RecipientTypeDetails, when it is a recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_type: Option<String>,
    /// Exchange's DistinguishedName (what the Send on Behalf filter names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinguished_name: Option<String>,
    /// Every value the answers showed it as (UPN, SMTP, Name, SID, `DOMAIN\sam`), as shown.
    pub shown_as: Vec<String>,
}

impl Trustee {
    /// The lowercase values a lookup may find this trustee by.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = [&self.upn, &self.object_id, &self.address]
            .into_iter()
            .flatten()
            .chain(self.shown_as.iter())
            .map(|v| v.trim().to_ascii_lowercase())
            .filter(|v| !v.is_empty())
            .collect();
        keys.push(self.trustee_id.clone());
        keys.sort();
        keys.dedup();
        keys
    }

    /// The name a report shows: UPN, address, or the value as shown.
    pub fn name(&self) -> &str {
        self.upn
            .as_deref()
            .or(self.address.as_deref())
            .or(self.shown_as.first().map(String::as_str))
            .unwrap_or(&self.trustee_id)
    }

    /// The trustee as a run's user: every value the snapshot saw it by is one a permission
    /// answer may name it by now (what a backup restore's reads match with).
    pub fn as_user(&self) -> ResolvedUser {
        let keys = self.keys();
        ResolvedUser {
            id: self
                .object_id
                .clone()
                .unwrap_or_else(|| self.trustee_id.clone()),
            upn: self.name().to_string(),
            display_name: self.display_name.clone().unwrap_or_default(),
            sids: keys
                .iter()
                .filter(|k| k.starts_with("s-1-"))
                .map(|k| k.to_ascii_uppercase())
                .collect(),
            names: keys.clone(),
            addresses: keys,
            mailbox_dn: self.distinguished_name.clone(),
            mailbox_name: None,
            matched_by: None,
            account_enabled: None,
            recipient_type: self.recipient_type.clone(),
            groups: Vec::new(),
        }
    }
}

/// One direct grant as the snapshot holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexedGrant {
    pub trustee_id: String,
    /// Primary SMTP address of the mailbox or recipient, lowercase.
    pub mailbox: String,
    pub mailbox_display_name: String,
    /// Exchange's RecipientTypeDetails of what the grant is on.
    pub recipient_type: String,
    pub right: PermissionType,
    /// The trustee as this permission's answer showed it (what a removal by value names).
    pub trustee_as_shown: String,
    pub access_rights: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<CalendarGrant>,
    /// A folder permission's folder and flags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<FolderGrant>,
}

impl IndexedGrant {
    pub fn is_shared(&self) -> bool {
        self.recipient_type.eq_ignore_ascii_case("SharedMailbox")
    }

    /// The run's grant for this entry, held by `trustee` (the UPN removals name).
    pub fn to_grant(&self, trustee: &str) -> Grant {
        Grant {
            mailbox: self.mailbox.clone(),
            mailbox_display_name: self.mailbox_display_name.clone(),
            shared: self.is_shared(),
            right: self.right,
            trustee: trustee.to_string(),
            trustee_as_shown: (!self.trustee_as_shown.eq_ignore_ascii_case(trustee)
                && !self.trustee_as_shown.is_empty())
            .then(|| self.trustee_as_shown.clone()),
            recipient_type: Some(self.recipient_type.clone()).filter(|t| !t.is_empty()),
            access_rights: self.access_rights.clone(),
            calendar: self.calendar.clone(),
            folder: self.folder.clone(),
        }
    }

    /// Same mailbox, right, folder or calendar, and trustee value: the same entry in two
    /// snapshots.
    pub fn same_entry(&self, other: &IndexedGrant) -> bool {
        self.mailbox == other.mailbox
            && self.right == other.right
            && self.trustee_id == other.trustee_id
            && self.to_grant("").place() == other.to_grant("").place()
    }
}

/// What a sweep read on one mailbox (or one tenant-wide part): the grants, each with the
/// trustee it names, and what could not be read. A sweep journals these as it goes, so that an
/// interrupted sweep goes on from the mailboxes it had read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweptMailbox {
    pub grants: Vec<(Trustee, IndexedGrant)>,
    pub errors: Vec<String>,
}

impl SweptMailbox {
    pub fn merge(&mut self, other: SweptMailbox) {
        self.grants.extend(other.grants);
        self.errors.extend(other.errors);
    }
}

/// An interrupted sweep: its id and start (the snapshot it goes on to make keeps both) and the
/// mailboxes it had read, by lowercase address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepProgress {
    pub sweep_id: String,
    pub started_at: DateTime<Utc>,
    pub done: BTreeMap<String, SweptMailbox>,
}

/// A whole snapshot: what a sweep produces and the store keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub summary: SnapshotSummary,
    pub trustees: Vec<Trustee>,
    pub grants: Vec<IndexedGrant>,
}

/// Which snapshot a lookup reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotRef {
    Newest,
    Id(String),
    /// The newest taken at or before this time.
    AsOf(DateTime<Utc>),
}

/// What the index holds about one trustee or one mailbox.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct IndexHits {
    pub trustees: Vec<Trustee>,
    pub grants: Vec<IndexedGrant>,
}

/// What the containment phase of a `contain` run did (the result's `"containment"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Containment {
    /// The snapshot whose grants were removed first; none when no usable one existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_taken_at: Option<DateTime<Utc>>,
    /// Grants the snapshot listed for the user in the run's scope.
    pub indexed_grants: usize,
    /// From the request's acceptance to the last indexed grant removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_to_containment: Option<f64>,
    /// From the request's acceptance to the user's sessions revoked (the first thing a
    /// contain run does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds_to_sessions_revoked: Option<f64>,
    /// Why the index was not used and the run went as a normal revocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_used: Option<String>,
}

impl Containment {
    pub fn not_used(reason: impl Into<String>) -> Containment {
        Containment {
            snapshot_id: None,
            snapshot_taken_at: None,
            indexed_grants: 0,
            seconds_to_containment: None,
            seconds_to_sessions_revoked: None,
            not_used: Some(reason.into()),
        }
    }
}
