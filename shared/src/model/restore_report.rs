//! The result of a restore run: what was put back, what could not be, and the re-read that
//! proves it (docs/restore.md).

use super::{RemainingGrant, RequestContext, RunKind, RunStatus, SkippedGrant, SnapshotSource};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A grant the restore put back (or found already present again: that counts as restored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoredEntry {
    pub mailbox: String,
    pub permission: String,
    /// A folder permission's folder (`\\Inbox`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// A secondary calendar's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    /// A folder permission's rights, as put back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_rights: Option<Vec<String>>,
    /// A folder permission's `SharingPermissionFlags`, as put back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sharing_permission_flags: Vec<String>,
    /// Who holds it again (every line says whom a restore gave access; reports written
    /// before named it only in a backup restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trustee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_type: Option<String>,
    pub restored: bool,
    /// A dry run: what it would add.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub would_restore: Option<bool>,
    /// E.g. "already present", or how Exchange applied a default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A grant that could not be put back, with Exchange's (or Graph's) reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreFailure {
    pub mailbox: String,
    pub permission: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trustee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_level: Option<String>,
    pub error: String,
}

/// The re-read after the restore: grants that should be back and are not.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreVerification {
    pub missing_full_access: u32,
    pub missing_send_as: u32,
    pub missing_send_on_behalf: u32,
    pub missing_calendar_delegates: u32,
    #[serde(default)]
    pub missing_folder_permissions: u32,
    pub missing_shared_mailboxes: u32,
    pub all_restored: bool,
    #[serde(default)]
    pub missing: Vec<RemainingGrant>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreReport {
    pub kind: RunKind,
    pub success: bool,
    pub run_id: String,
    pub status: RunStatus,
    pub dry_run: bool,
    pub restored_from: String,
    /// A backup restore: the snapshot and the mailbox it puts back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<SnapshotSource>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub user_email: String,
    pub company: String,
    pub restored: Vec<RestoredEntry>,
    pub failed: Vec<RestoreFailure>,
    pub skipped: Vec<SkippedGrant>,
    pub verification: RestoreVerification,
    pub ticket_id: Option<String>,
    pub request_context: RequestContext,
    /// What the reader should know about how grants came back (e.g. Full Access AutoMapping).
    #[serde(default)]
    pub notes: Vec<String>,
    #[serde(default)]
    pub errors: Vec<String>,
    /// Requestor addresses the report was not mailed to (their domain is not allowed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_mailed: Vec<String>,
    /// Why there is no ticket (the company uses no PSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_ticket: Option<String>,
    /// What was put back on the victim's own mailbox, when the restored run changed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub victim_mailbox: Option<super::VictimMailboxReport>,
    /// What the restored contain run did to the user's identity, and what became of each:
    /// sign-in enabled again if that run disabled it, consents re-created, sessions
    /// `not_restorable`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contain_actions: Vec<super::ContainAction>,
    /// What the restored run removed or changed that this restore did not put back, and why
    /// (outside its types or mailboxes; the victim mailbox when not asked for by name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
}

/// The note on a grant that was there again before the restore put it back.
pub const ALREADY_PRESENT: &str = "already present: nothing was added";

/// Exchange Online cannot say whether a Full Access grant had AutoMapping on, so a restored
/// one gets Exchange's default.
pub const AUTOMAPPING_NOTE: &str = "Full Access was added back with Exchange's default AutoMapping (on): Exchange Online does not show the setting the grant had before, so Outlook may now add the mailbox to the user's profile on its own";
