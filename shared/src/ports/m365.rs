//! Microsoft 365: Graph (directory, calendars) and the Exchange admin API.

use crate::error::RemoteError;
use crate::model::{InboxRule, MailboxForwarding, MatchedBy};
use async_trait::async_trait;

use serde::{Deserialize, Serialize};

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

/// The Exchange Online admin API (InvokeCommand): mailboxes, recipients, users and groups.
#[async_trait]
pub trait ExchangeRecipients: Send + Sync {
    async fn mailboxes(&self) -> Result<Vec<MailboxInfo>, RemoteError>;
    /// [`ExchangeRecipients::mailboxes`], telling `page` each page's mailboxes as it arrives, so work on
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
}

/// The Exchange Online admin API: Full Access and Send As entries as they stand.
#[async_trait]
pub trait ExchangePermissions: Send + Sync {
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
}

/// The Exchange Online admin API: Full Access, Send As and Send on Behalf removed and put back.
#[async_trait]
pub trait ExchangeGrants: Send + Sync {
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

/// The Exchange Online admin API: a mailbox's forwarding and inbox rules.
#[async_trait]
pub trait MailboxRules: Send + Sync {
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

/// The Exchange Online admin API (InvokeCommand): the narrow traits above together.
pub trait Exchange:
    ExchangeRecipients + ExchangePermissions + ExchangeGrants + MailboxRules
{
}

impl<T> Exchange for T where
    T: ExchangeRecipients + ExchangePermissions + ExchangeGrants + MailboxRules + ?Sized
{
}

/// A mailbox with the forwarding set on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxSettings {
    pub info: MailboxInfo,
    pub forwarding: MailboxForwarding,
}
