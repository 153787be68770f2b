//! The vocabulary of a run's state: its id, status, kind, progress, interruption, failure, and
//! what a restore run puts back.

use super::{InvalidRequest, PermissionType};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RunId(pub String);

impl RunId {
    /// A UUIDv7: its first 48 bits are the creation time, which tells a run created since
    /// audit manifests were sealed from an older one (see [`super::chained_run`]).
    pub fn new() -> RunId {
        RunId(uuid::Uuid::now_v7().to_string())
    }

    /// A run id given by a caller. Run ids name files and keys, so only the characters one
    /// has (a UUID's: letters, digits, '-'; '_' in the first release's) are taken, at most 64:
    /// `../elsewhere` never reaches a path.
    pub fn parse(raw: &str) -> Result<RunId, InvalidRequest> {
        let raw = raw.trim();
        let ok = !raw.is_empty()
            && raw.len() <= 64
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        match ok {
            true => Ok(RunId(raw.to_string())),
            false => Err(InvalidRequest::new(
                "run_id",
                format!(
                    "{:?} is not a run id: up to 64 letters, digits, '-' and '_'",
                    raw.chars().take(80).collect::<String>()
                ),
            )),
        }
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
#[derive(strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum RunStatus {
    Accepted,
    Discovering,
    Removing,
    Verifying,
    Completed,
    CompletedWithErrors,
    Failed,
    /// Stopped on one machine (Ctrl-C, a killed process, a service that could not be reached)
    /// before its end; `revoke365 resume` goes on from where it stopped.
    Interrupted,
    /// Stopped at the caller's request (`POST /revocations/{id}/cancel`) between removal
    /// batches; what was already removed stays removed and is reported.
    Cancelled,
}

impl RunStatus {
    /// A step holds the run in this status (under a lease).
    pub fn is_working(self) -> bool {
        matches!(
            self,
            RunStatus::Discovering | RunStatus::Removing | RunStatus::Verifying
        )
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed
                | RunStatus::CompletedWithErrors
                | RunStatus::Failed
                | RunStatus::Cancelled
        )
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// Why a run failed; `code` lets callers map it (CLI exit 2 for bad input or configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFailure {
    pub code: FailureCode,
    pub field: Option<String>,
    pub message: String,
    /// What went wrong telling the ticket and the recipients about this failure (empty when
    /// the note and the email went out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notification_errors: Vec<String>,
}

impl RunFailure {
    pub fn new(code: FailureCode, field: Option<&str>, message: impl Into<String>) -> RunFailure {
        RunFailure {
            code,
            field: field.map(str::to_string),
            message: message.into(),
            notification_errors: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum FailureCode {
    UserNotFound,
    /// The address names more than one directory user.
    UserAmbiguous,
    /// A cleanup run's trustee still names someone in the tenant.
    TrusteeExists,
    MailboxNotFound,
    /// `ticket_id` names a ticket of another company in the PSA.
    TicketNotForCompany,
    /// `ticket_id` names no ticket in the PSA.
    TicketNotFound,
    /// The org's `psa_company` is not a company in the PSA (a new ticket could not be made).
    PsaCompanyNotFound,
    /// The org's `notification_sender` is not a user with a mailbox Graph can send from.
    SenderInvalid,
    /// A notification recipient is not a valid address, or there is none.
    RecipientInvalid,
    /// The Microsoft 365 or PSA credentials were rejected, or the app lacks roles it needs.
    CredentialsInvalid,
    /// A restore's source trail does not verify, or names a trustee other than its run's
    /// user: nothing is granted from it.
    AuditUntrusted,
    /// The company's settings now name another tenant than the one the run recorded at
    /// intake: the run stops without a call to either tenant.
    TenantChanged,
    TenantError,
    Internal,
}

impl FailureCode {
    /// Failures caused by what was asked for or configured (not by the system) count as bad
    /// input.
    pub fn is_bad_input(self) -> bool {
        !matches!(self, FailureCode::TenantError | FailureCode::Internal)
    }

    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub total: u32,
    pub done: u32,
    pub failed: u32,
}

/// Where a run stood when it was interrupted, so that it can be resumed from there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interruption {
    pub at: DateTime<Utc>,
    /// The step it was at (`accepted`, `discovering`, `removing`, `verifying`).
    pub during: RunStatus,
    pub reason: String,
}

/// What a run does: remove a user's grants, or put back what an earlier run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[derive(strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum RunKind {
    #[default]
    Revoke,
    Restore,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// A restore run: which run (or, for a backup restore, which snapshot) it puts back, and how
/// it was asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreOf {
    /// The run whose removals are put back; for a backup restore, the snapshot's id.
    pub restored_from: RunId,
    /// Also put back grants whose trustee a later run revoked again.
    #[serde(default)]
    pub include_revoked: bool,
    /// The request named the victim-mailbox section (`include_victim_mailbox`): what the
    /// result says when it is left out.
    #[serde(default)]
    pub include_victim_mailbox: bool,
    /// The types the request named (`permission_types`; none: every type the run removed or
    /// changed). Recent delegates the victim-mailbox step removed are of any type, whatever
    /// the run's scope: only named types narrow them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked_types: Option<Vec<PermissionType>>,
    /// A backup restore: the mailbox's grants as this snapshot of the permission index held
    /// them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotSource>,
}

/// The snapshot a backup restore puts a mailbox back from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSource {
    pub snapshot_id: String,
    pub taken_at: DateTime<Utc>,
    pub mailbox: String,
}
