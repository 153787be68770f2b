//! The result of a restore run: what was put back, what could not be, and the re-read that
//! proves it (product.md, "Restore").

use super::{RemainingGrant, RequestContext, RunKind, RunStatus, SkippedGrant};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A grant the restore put back (or found already present again: that counts as restored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoredEntry {
    pub mailbox: String,
    pub permission: String,
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
}
