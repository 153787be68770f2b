//! The capabilities the steps need, as traits. Adapters implement them: HTTP clients for
//! Graph, Exchange and the PSA; an in-process queue and a file-backed store for one machine;
//! SQS and DynamoDB in Lambda.

use crate::error::{QueueError, RemoteError, StoreError};
use crate::messages::StepMessage;
use crate::model::{
    AuditRecord, IndirectAccess, ItemId, ItemStatus, MatchedBy, NotChecked, OrgSettings, PlanItem,
    Report, ResolvedUser, Run, RunFailure, RunId, RunStatus,
};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------------------------------------
// Queue and run store

#[async_trait]
pub trait Queue: Send + Sync {
    async fn send(&self, message: StepMessage) -> Result<(), QueueError>;

    async fn send_all(&self, messages: Vec<StepMessage>) -> Result<(), QueueError> {
        for m in messages {
            self.send(m).await?;
        }
        Ok(())
    }
}

/// How long a request's idempotency keys return its run.
pub const IDEMPOTENCY_WINDOW: chrono::Duration = chrono::Duration::minutes(15);

/// What discovery hands to removal and verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub user: ResolvedUser,
    pub items: Vec<PlanItem>,
    pub indirect_access: Vec<IndirectAccess>,
    pub batches_total: u32,
    /// What discovery could not read or match; reported, and the run cannot succeed.
    #[serde(default)]
    pub scan_errors: Vec<String>,
    /// Permission types that were not checked, and why.
    #[serde(default)]
    pub not_checked: Vec<NotChecked>,
}

/// The result of counting a finished removal batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchProgress {
    /// False when this batch had already been counted (duplicate delivery).
    pub newly_counted: bool,
    pub done: u32,
    pub total: u32,
}

impl BatchProgress {
    /// Every batch has been counted. Verification is queued whenever this holds after a batch,
    /// including on redelivery (the first try may have died before queueing it); the verify
    /// step's claim on the run makes sure it starts only once.
    pub fn all_done(&self) -> bool {
        self.done >= self.total
    }
}

#[async_trait]
pub trait RunStore: Send + Sync {
    async fn org_settings(&self, company_id: &str) -> Result<Option<OrgSettings>, StoreError>;
    /// Every configured company id, for error messages that list the allowed values.
    async fn company_ids(&self) -> Result<Vec<String>, StoreError>;

    /// Reserves an idempotency key for `run_id` for [`IDEMPOTENCY_WINDOW`]. Returns the run
    /// that already holds the key, if one does (the key is then left as it is).
    async fn reserve_idempotency_key(
        &self,
        key: &str,
        run_id: &RunId,
    ) -> Result<Option<RunId>, StoreError>;
    async fn create_run(&self, run: &Run) -> Result<(), StoreError>;
    async fn get_run(&self, run_id: &RunId) -> Result<Option<Run>, StoreError>;
    /// Moves the run to `to` only if it is in one of `from`; returns whether it moved. This is
    /// what makes each step safe under duplicate delivery.
    async fn transition(
        &self,
        run_id: &RunId,
        from: &[RunStatus],
        to: RunStatus,
    ) -> Result<bool, StoreError>;
    /// Stores the plan (items, user, indirect access, batch count) of a run in `discovering`.
    async fn save_plan(&self, run_id: &RunId, plan: &Plan) -> Result<(), StoreError>;
    async fn items(&self, run_id: &RunId) -> Result<Vec<PlanItem>, StoreError>;
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
    /// Writes an audit record unless one with its id already exists: records are never
    /// overwritten. Returns whether this call wrote it.
    async fn append_audit(&self, record: &AuditRecord) -> Result<bool, StoreError>;
    async fn audit_records(&self, run_id: &RunId) -> Result<Vec<AuditRecord>, StoreError>;
    /// Ends the run with its report (`status` is the report's).
    async fn finish_run(&self, run_id: &RunId, report: &Report) -> Result<(), StoreError>;
    async fn fail_run(&self, run_id: &RunId, failure: &RunFailure) -> Result<(), StoreError>;
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

    /// Whether an `Identity` value from an Exchange answer names this mailbox.
    pub fn is_identified_by(&self, identity: &str) -> bool {
        let i = identity.trim();
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
        .any(|v| !v.is_empty() && v.eq_ignore_ascii_case(i))
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

/// Microsoft Graph: users, groups and calendar permissions.
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
}

/// The Exchange Online admin API (InvokeCommand).
#[async_trait]
pub trait Exchange: Send + Sync {
    async fn mailboxes(&self) -> Result<Vec<MailboxInfo>, RemoteError>;
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

#[async_trait]
pub trait Psa: Send + Sync {
    /// Checks a ticket id's format without any call (ConnectWise ids are integers).
    fn check_ticket_id(&self, ticket_id: &str) -> Result<(), RemoteError>;
    /// Creates a ticket and returns its id.
    async fn create_ticket(&self, ticket: &NewTicket) -> Result<String, RemoteError>;
    async fn add_note(&self, ticket_id: &str, text: &str) -> Result<(), RemoteError>;
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
