//! Grants found by discovery, and the plan items that track each one through removal.

use super::PermissionType;
use serde::{Deserialize, Serialize};

/// One (mailbox, right) pair held directly by the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Primary SMTP address of the mailbox, lowercase.
    pub mailbox: String,
    pub mailbox_display_name: String,
    pub shared: bool,
    pub right: PermissionType,
    /// The trustee passed to removal and restore: the user's UPN (Microsoft's advice for
    /// `-User`/`-Trustee`).
    pub trustee: String,
    /// The trustee as the permission answer showed it (a name, GUID, `DOMAIN\sam`, SID), when
    /// that differs from `trustee`: tried on removal when the UPN finds nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trustee_as_shown: Option<String>,
    /// Exchange's RecipientTypeDetails of the mailbox or other recipient the grant is on
    /// (`UserMailbox`, `MailUniversalDistributionGroup`, `GroupMailbox`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_type: Option<String>,
    /// Exchange access rights held, e.g. `["FullAccess"]`, or the calendar access level.
    pub access_rights: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<CalendarGrant>,
    /// A folder permission: the folder it is on and the flags a restore puts back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<FolderGrant>,
}

/// Where a folder permission is, and what besides its rights (`Grant::access_rights`) it
/// carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderGrant {
    /// The folder as the permission cmdlets name it after `<mailbox>:` and the report shows
    /// it: `\Inbox\Projects` (names as shown, localized, a `/` in a name as is), `\` for
    /// the root.
    pub path: String,
    /// Exchange's `FolderType` (`Inbox`, `Tasks`, `User Created`, ...).
    pub folder_type: String,
    /// `FolderId`: tells a folder renamed since from one deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder_id: Option<String>,
    /// `SharingPermissionFlags` (`Delegate`, `CanViewPrivateItems`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sharing_permission_flags: Vec<String>,
}

/// What tells two grants apart: the mailbox, the right, and for a folder permission or a
/// secondary calendar's, which folder or calendar (lowercase path, calendar id; empty
/// otherwise).
pub type GrantKey = (String, PermissionType, String);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarGrant {
    /// Graph calendarPermission id.
    pub permission_id: String,
    /// Graph role, e.g. `delegateWithoutPrivateEventAccess`; what a restore posts back.
    pub role: String,
    /// The role in Exchange terms, e.g. `Editor`.
    pub access_level: String,
    pub delegate: bool,
    /// The mailbox's UPN: Graph names a user by UPN or object id, not by an SMTP address that
    /// differs from the UPN. Absent in records of earlier releases (the address is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mailbox_upn: Option<String>,
    /// A secondary calendar's Graph id; none for the default calendar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar_id: Option<String>,
    /// A secondary calendar's name (`Board meetings`), as the report shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar_name: Option<String>,
}

impl Grant {
    /// Stable identity of a grant across discovery, removal and re-read: two folders (or two
    /// calendars) of one mailbox are two grants.
    pub fn key(&self) -> GrantKey {
        (self.mailbox.clone(), self.right, self.place())
    }

    /// Which folder or secondary calendar of the mailbox the grant is on (empty: the mailbox,
    /// or its default calendar).
    pub fn place(&self) -> String {
        match (&self.folder, &self.calendar) {
            (Some(f), _) => f.path.to_lowercase(),
            (None, Some(c)) => c.calendar_id.clone().unwrap_or_default(),
            (None, None) => String::new(),
        }
    }

    /// A folder permission's folder, as the report shows it.
    pub fn folder_path(&self) -> Option<&str> {
        self.folder.as_ref().map(|f| f.path.as_str())
    }

    /// Where the grant is, for messages: `ceo@x.com`, `ceo@x.com:\\Tasks`,
    /// `ceo@x.com (calendar "Board meetings")`.
    pub fn shown_on(&self) -> String {
        match (self.folder_path(), self.calendar_name()) {
            (Some(folder), _) => format!("{}:{folder}", self.mailbox),
            (None, Some(calendar)) => format!("{} (calendar \"{calendar}\")", self.mailbox),
            (None, None) => self.mailbox.clone(),
        }
    }

    /// A secondary calendar's name, as the report shows it.
    pub fn calendar_name(&self) -> Option<&str> {
        self.calendar
            .as_ref()
            .and_then(|c| c.calendar_name.as_deref())
    }

    /// The name Graph calls on the grant's mailbox use: its UPN where known.
    pub fn graph_mailbox(&self) -> &str {
        self.calendar
            .as_ref()
            .and_then(|c| c.mailbox_upn.as_deref())
            .unwrap_or(&self.mailbox)
    }

    /// A calendar grant's access level, as reports show it.
    pub fn access_level(&self) -> Option<String> {
        self.calendar.as_ref().map(|c| c.access_level.clone())
    }

    /// What kind of recipient a Send As grant is on, as reports show it (Send As lives on
    /// groups and contacts too); none for the other types.
    pub fn send_as_recipient_type(&self) -> Option<String> {
        (self.right == PermissionType::SendAs)
            .then(|| self.recipient_type.clone())
            .flatten()
    }
}

/// Access that reaches the user through a group or inheritance: it cannot be removed from
/// the mailbox, so it is reported instead.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndirectAccess {
    pub mailbox: String,
    pub permission: String,
    pub via: String,
}

pub type ItemId = u32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ItemStatus {
    Pending,
    Removed,
    /// Exchange answered with a "nothing to remove" warning: counts as removed.
    AlreadyGone {
        warning: String,
    },
    Failed {
        error: String,
    },
    /// Out of the request's scope (e.g. shared mailbox with `remove_from_shared: false`).
    Skipped {
        reason: String,
    },
    /// Dry run: found, left in place.
    WouldRemove,
    /// A restore run put the grant back.
    Restored,
    /// A restore run found the grant already there again: nothing was added.
    AlreadyPresent,
}

impl ItemStatus {
    /// The grant is gone: removed by this run, or found already gone.
    pub fn is_removed(&self) -> bool {
        matches!(self, ItemStatus::Removed | ItemStatus::AlreadyGone { .. })
    }

    /// This run's removal took the grant away (never a grant someone else removed first):
    /// what its counts, its history and a restore of it stand for.
    pub fn removed_by_this_run(&self) -> bool {
        matches!(self, ItemStatus::Removed)
    }

    pub fn is_finished(&self) -> bool {
        !matches!(self, ItemStatus::Pending)
    }

    /// The status to keep when a (duplicate) delivery reports `new` for an item already at
    /// `self`: a twin's "already gone" must not hide that the grant was removed by this run.
    pub fn merge(&self, new: ItemStatus) -> ItemStatus {
        match (self, &new) {
            (ItemStatus::Removed, ItemStatus::AlreadyGone { .. }) => ItemStatus::Removed,
            _ => new,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanItem {
    pub id: ItemId,
    pub grant: Grant,
    pub status: ItemStatus,
}
