//! A run: one request moving through the steps.

use super::{IndirectAccess, Report, RevocationRequest};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub String);

impl RunId {
    pub fn new() -> RunId {
        RunId(uuid::Uuid::new_v4().to_string())
    }
}

impl Default for RunId {
    fn default() -> Self {
        RunId::new()
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Accepted,
    Discovering,
    Removing,
    Verifying,
    Completed,
    CompletedWithErrors,
    Failed,
}

impl RunStatus {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::CompletedWithErrors | RunStatus::Failed
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Accepted => "accepted",
            RunStatus::Discovering => "discovering",
            RunStatus::Removing => "removing",
            RunStatus::Verifying => "verifying",
            RunStatus::Completed => "completed",
            RunStatus::CompletedWithErrors => "completed_with_errors",
            RunStatus::Failed => "failed",
        }
    }
}

/// Why a run failed before removing anything; `code` lets callers map it (CLI exit 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFailure {
    pub code: FailureCode,
    pub field: Option<String>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    UserNotFound,
    MailboxNotFound,
    TenantError,
    Internal,
}

impl FailureCode {
    /// Failures caused by what was asked for (not by the system) count as bad input.
    pub fn is_bad_input(self) -> bool {
        matches!(
            self,
            FailureCode::UserNotFound | FailureCode::MailboxNotFound
        )
    }
}

/// The user as the tenant knows them, resolved by discovery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedUser {
    pub id: String,
    pub upn: String,
    pub display_name: String,
    /// Every address the tenant may use for this user (UPN, primary SMTP, mail), lowercase.
    pub addresses: Vec<String>,
    /// The user's own mailbox, when they have one.
    #[serde(default)]
    pub mailbox_dn: Option<String>,
    #[serde(default)]
    pub mailbox_name: Option<String>,
}

impl ResolvedUser {
    pub fn is_user(&self, value: &str) -> bool {
        let v = value.trim().to_ascii_lowercase();
        self.addresses.contains(&v)
            || v == self.id.to_ascii_lowercase()
            || self
                .mailbox_dn
                .as_deref()
                .is_some_and(|dn| dn.eq_ignore_ascii_case(&v))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub total: u32,
    pub done: u32,
    pub failed: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub run_id: RunId,
    pub request: RevocationRequest,
    pub status: RunStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// When `status` last changed (or was re-claimed): a step's lease is measured from it.
    pub status_changed_at: DateTime<Utc>,
    #[serde(default)]
    pub user: Option<ResolvedUser>,
    #[serde(default)]
    pub indirect_access: Vec<IndirectAccess>,
    #[serde(default)]
    pub scan_errors: Vec<String>,
    #[serde(default)]
    pub batches_total: u32,
    #[serde(default)]
    pub batches_done: u32,
    #[serde(default)]
    pub failure: Option<RunFailure>,
    #[serde(default)]
    pub result: Option<Report>,
}

impl Run {
    pub fn new(request: RevocationRequest) -> Run {
        let now = Utc::now();
        Run {
            run_id: RunId::new(),
            request,
            status: RunStatus::Accepted,
            created_at: now,
            updated_at: now,
            status_changed_at: now,
            user: None,
            indirect_access: Vec::new(),
            scan_errors: Vec::new(),
            batches_total: 0,
            batches_done: 0,
            failure: None,
            result: None,
        }
    }
}
