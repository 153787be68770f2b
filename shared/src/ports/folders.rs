//! The ports to a mailbox's folders and calendars: folder permission entries (Exchange) and
//! every calendar's permissions (Graph) — the rights Outlook's delegates, folder shares and
//! secondary calendars give, beyond the mailbox-level grants.

use crate::error::RemoteError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::m365::{CalendarPermission, RemovalOutcome};

/// How `FolderPath` writes a `/` that is part of a folder's name.
const SLASH_IN_NAME: char = '\u{F8FF}';

/// The folder types every mailbox has whose permissions a run reads live (found by type:
/// their names are localized).
pub const WELL_KNOWN_FOLDER_TYPES: [&str; 10] = [
    "Root",
    "Inbox",
    "Calendar",
    "Contacts",
    "Tasks",
    "Notes",
    "Journal",
    "SentItems",
    "Drafts",
    "DeletedItems",
];

/// One folder of a mailbox as `Get-MailboxFolderStatistics` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderInfo {
    pub name: String,
    /// `/Inbox/Projects`; a `/` inside a name as U+F8FF; `/` for the root.
    pub folder_path: String,
    pub folder_id: Option<String>,
    /// `Root`, `Inbox`, `Calendar`, …, `User Created`, `RecoverableItemsRoot`, …
    pub folder_type: String,
}

impl FolderInfo {
    /// The folder as a permission cmdlet names it after `<mailbox>:`: `\Inbox\Projects`, a
    /// name's own `/` written back as `/`; `\` for the root.
    pub fn path(&self) -> String {
        let names: Vec<String> = self
            .folder_path
            .split('/')
            .filter(|n| !n.is_empty())
            .map(|n| n.replace(SLASH_IN_NAME, "/"))
            .collect();
        format!("\\{}", names.join("\\"))
    }

    /// Whether folder permissions exist here: the IPM subtree (the root, the well-known
    /// folders and the user's own), not the recoverable items, audits or other system
    /// folders a listing also shows.
    pub fn holds_permissions(&self) -> bool {
        let system_path = ["/Recoverable Items", "/Calendar Logging", "/Audits"]
            .iter()
            .any(|p| {
                self.folder_path.eq_ignore_ascii_case(p)
                    || self.folder_path.starts_with(&format!("{p}/"))
            });
        let system_type = self.folder_type.starts_with("RecoverableItems")
            || [
                "Audits",
                "CalendarLogging",
                "DiscoveryHolds",
                "SearchDiscoveryHoldsFolder",
            ]
            .iter()
            .any(|t| self.folder_type.eq_ignore_ascii_case(t));
        !system_path && !system_type
    }

    /// One of [`WELL_KNOWN_FOLDER_TYPES`].
    pub fn is_well_known(&self) -> bool {
        WELL_KNOWN_FOLDER_TYPES
            .iter()
            .any(|t| self.folder_type.eq_ignore_ascii_case(t))
    }
}

/// One entry of `Get-MailboxFolderPermission`. `user` is what Exchange shows: a display name
/// (two people can share one), `Default` or `Anonymous` — never decide who it is by it alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderPermissionEntry {
    pub folder_name: Option<String>,
    pub user: String,
    pub access_rights: Vec<String>,
    /// `Delegate`, `CanViewPrivateItems`.
    pub sharing_permission_flags: Vec<String>,
}

impl FolderPermissionEntry {
    /// `Default` and `Anonymous`: every folder has them, and they are never removed.
    pub fn is_special(&self) -> bool {
        ["Default", "Anonymous"]
            .iter()
            .any(|s| self.user.trim().eq_ignore_ascii_case(s))
    }
}

/// A mailbox's folders and their permission entries (Exchange: `Get-MailboxFolderStatistics`,
/// `Get-`/`Add-`/`Set-`/`Remove-MailboxFolderPermission`). `folder` is a path as
/// [`FolderInfo::path`] gives it.
#[async_trait]
pub trait MailboxFolders: Send + Sync {
    /// Every folder of the mailbox.
    async fn folders(&self, mailbox: &str) -> Result<Vec<FolderInfo>, RemoteError>;
    /// The entries on one folder; with `user`, only that user's as Exchange matches them by
    /// identity (empty when they hold none). A folder that is not there is `NotFound`.
    async fn folder_permissions(
        &self,
        mailbox: &str,
        folder: &str,
        user: Option<&str>,
    ) -> Result<Vec<FolderPermissionEntry>, RemoteError>;
    /// Removes `user`'s entry; "already gone" when they hold none there.
    async fn remove_folder_permission(
        &self,
        mailbox: &str,
        folder: &str,
        user: &str,
    ) -> Result<RemovalOutcome, RemoteError>;
    /// Gives `user` exactly these rights and flags on the folder (an entry they hold already
    /// is set to them).
    async fn put_folder_permission(
        &self,
        mailbox: &str,
        folder: &str,
        user: &str,
        access_rights: &[String],
        sharing_permission_flags: &[String],
    ) -> Result<(), RemoteError>;
}

/// One calendar of a mailbox (Graph `GET /users/{id}/calendars`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarInfo {
    pub id: String,
    pub name: String,
    pub is_default: bool,
}

/// Every calendar of a mailbox and each one's permissions (Graph). The default calendar's
/// are also [`super::Directory::calendar_permissions`].
#[async_trait]
pub trait Calendars: Send + Sync {
    async fn calendars(&self, mailbox: &str) -> Result<Vec<CalendarInfo>, RemoteError>;
    async fn permissions_of(
        &self,
        mailbox: &str,
        calendar_id: &str,
    ) -> Result<Vec<CalendarPermission>, RemoteError>;
    async fn remove_permission_of(
        &self,
        mailbox: &str,
        calendar_id: &str,
        permission_id: &str,
    ) -> Result<RemovalOutcome, RemoteError>;
    async fn add_permission_of(
        &self,
        mailbox: &str,
        calendar_id: &str,
        address: &str,
        role: &str,
    ) -> Result<(), RemoteError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(path: &str, folder_type: &str) -> FolderInfo {
        FolderInfo {
            name: String::new(),
            folder_path: path.into(),
            folder_id: None,
            folder_type: folder_type.into(),
        }
    }

    #[test]
    fn paths_give_back_a_slash_in_a_name_and_system_folders_hold_no_permissions() {
        assert_eq!(folder("/", "Root").path(), "\\");
        assert_eq!(
            folder("/Posteingang/Q1\u{F8FF}Q2", "User Created").path(),
            "\\Posteingang\\Q1/Q2"
        );
        assert!(folder("/Kalender", "Calendar").is_well_known());
        assert!(!folder("/Projects", "User Created").is_well_known());
        assert!(!folder("/Recoverable Items", "RecoverableItemsRoot").holds_permissions());
        assert!(!folder("/Recoverable Items/Deletions", "User Created").holds_permissions());
        assert!(folder("/Recoverable Itemsx", "User Created").holds_permissions());
        assert!(folder("/", "Root").holds_permissions());
    }
}
