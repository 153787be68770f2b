//! The result of a run, in the exact JSON shape docs/result.md documents.

use super::{
    Grant, IndirectAccess, ItemStatus, MatchedBy, PermissionType, PlanItem, RevocationRequest,
    RunKind, RunStatus,
};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Why a permission type was not checked for this user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotCheckedReason {
    /// In scope, but the tenant gave no way to check it: the run cannot succeed.
    CannotCheck,
    /// The request left it out.
    OutOfScope,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotChecked {
    pub permission_type: PermissionType,
    pub reason: NotCheckedReason,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What a run covered: the permission types, the mailboxes and whether shared mailboxes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    pub permission_types: Vec<PermissionType>,
    pub mailboxes: MailboxScope,
    pub shared_mailboxes: bool,
    /// With folder permissions in scope, which folders were read: `well_known` (root, Inbox,
    /// Calendar, Contacts, Tasks, Notes, Journal, Sent Items, Drafts, Deleted Items),
    /// `all` (`all_folders`), or `well_known+snapshot` (and every folder the permission
    /// index's snapshot lists for the user).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folders: Option<String>,
    /// With `well_known+snapshot`: the snapshot whose folders were read, and its age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder_snapshot: Option<FolderSnapshot>,
}

/// The permission-index snapshot a run took further folders from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderSnapshot {
    pub snapshot_id: String,
    pub taken_at: DateTime<Utc>,
    /// Whole hours between the snapshot and the run's start.
    pub age_hours: i64,
}

pub const FOLDERS_WELL_KNOWN: &str = "well_known";
pub const FOLDERS_ALL: &str = "all";
pub const FOLDERS_WELL_KNOWN_AND_SNAPSHOT: &str = "well_known+snapshot";

impl Scope {
    /// The scope of `request`, given the org's default permission types.
    pub fn of(request: &RevocationRequest, org_scope: &[PermissionType]) -> Scope {
        let permission_types = request.effective_scope(org_scope);
        let folders = permission_types
            .contains(&PermissionType::Folder)
            .then_some(match request.all_folders {
                true => FOLDERS_ALL,
                false => FOLDERS_WELL_KNOWN,
            })
            .map(str::to_string);
        Scope {
            permission_types,
            mailboxes: match request.target_mailboxes.as_slice() {
                [] => MailboxScope::All,
                named => MailboxScope::Named(named.to_vec()),
            },
            shared_mailboxes: request.remove_from_shared,
            folders,
            folder_snapshot: None,
        }
    }

    /// The run also read the folders `snapshot` lists for the user.
    pub fn with_folder_snapshot(
        mut self,
        snapshot_id: &str,
        taken_at: DateTime<Utc>,
        run_started: DateTime<Utc>,
    ) -> Scope {
        if self.folders.as_deref() == Some(FOLDERS_WELL_KNOWN) {
            self.folders = Some(FOLDERS_WELL_KNOWN_AND_SNAPSHOT.to_string());
            self.folder_snapshot = Some(FolderSnapshot {
                snapshot_id: snapshot_id.to_string(),
                taken_at,
                age_hours: (run_started - taken_at).num_hours().max(0),
            });
        }
        self
    }
}

/// Results stored before the scope was recorded covered every type there was then: the four
/// mailbox-level ones (folder permissions came later).
impl Default for Scope {
    fn default() -> Self {
        Scope {
            permission_types: PermissionType::ALL
                .into_iter()
                .filter(|t| *t != PermissionType::Folder)
                .collect(),
            mailboxes: MailboxScope::All,
            shared_mailboxes: true,
            folders: None,
            folder_snapshot: None,
        }
    }
}

/// `"all"`, or the mailboxes the request named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxScope {
    All,
    Named(Vec<String>),
}

impl Serialize for MailboxScope {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            MailboxScope::All => s.serialize_str("all"),
            MailboxScope::Named(m) => m.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for MailboxScope {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Wire {
            Word(String),
            Named(Vec<String>),
        }
        match Wire::deserialize(d)? {
            Wire::Word(w) if w == "all" => Ok(MailboxScope::All),
            Wire::Word(w) => Err(serde::de::Error::custom(format!(
                "mailboxes: expected \"all\" or a list of addresses, got \"{w}\""
            ))),
            Wire::Named(m) => Ok(MailboxScope::Named(m)),
        }
    }
}

/// Why a cancelled run's grants were not removed (under `skipped`).
pub const CANCELLED_REASON: &str = "not removed: the run was cancelled at the caller's request";

/// Which directory user the run acted on, and how the request's address found them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedUserSummary {
    pub upn: String,
    pub object_id: String,
    pub matched_by: MatchedBy,
    /// False for a disabled account (usual for a leaver; still worth seeing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_enabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always `revoke` here; a restore run's result is a [`super::RestoreReport`].
    #[serde(default)]
    pub kind: RunKind,
    pub success: bool,
    pub run_id: String,
    pub status: RunStatus,
    pub dry_run: bool,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub removal_summary: RemovalSummary,
    pub permissions_removed: PermissionsRemoved,
    pub verification: Verification,
    pub ticket_id: Option<String>,
    /// Who asked and why (§2), carried into the ticket note and the email.
    pub request_context: RequestContext,
    pub indirect_access: Vec<IndirectAccess>,
    pub skipped: Vec<SkippedGrant>,
    pub errors: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_user: Option<ResolvedUserSummary>,
    #[serde(default)]
    pub not_checked: Vec<NotChecked>,
    /// What the run covered.
    #[serde(default)]
    pub scope: Scope,
    /// True when the user may still reach other mailboxes after this run: access through a
    /// group or inheritance, a permission type not checked, only named mailboxes checked,
    /// shared mailboxes kept, or direct grants still present (a dry run removes none).
    #[serde(default)]
    pub residual_access: bool,
    /// Requestor addresses the report was not mailed to: their domain is not one the company
    /// allows reports to go to (`report_domains`, the sender's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_mailed: Vec<String>,
    /// Why no ticket or note was written, when the company has no PSA (`psa_kind = "none"`):
    /// the report went by email and is here. Not an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_ticket: Option<String>,
    /// A contain run: what its first phase removed from the permission index's list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub containment: Option<super::Containment>,
    /// The victim's own mailbox, when the request asked (`victim_mailbox`): not counted in
    /// `total_permissions_removed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub victim_mailbox: Option<super::VictimMailboxReport>,
    /// A contain run's identity actions (sessions, sign-in, mail consents, risk), done before
    /// any mailbox grant: see [`super::ContainAction`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contain_actions: Vec<super::ContainAction>,
    /// When the last change this run made is in effect for every app (the latest
    /// `effective_by`): the attacker's access ends by then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_ends_by: Option<DateTime<Utc>>,
    /// Said when the user is synced from on-premises AD: what else to do there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_premises_note: Option<String>,
    /// The notifications that could not be delivered (each is in `errors` too): they make
    /// `success` false, but say nothing about the removal, which the headline tells apart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notification_errors: Vec<NotificationError>,
    /// The first line the table, the PSA note and the email open with (`SUCCESS — …`,
    /// `NOT NOTIFIED — the removal succeeded (…), but the Teams post could not be
    /// delivered`), set once the notifications are done.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub headline: String,
}

/// Where a run's outcome is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationChannel {
    /// The ticket and its note.
    Psa,
    Email,
    Teams,
    Webhook,
}

impl NotificationChannel {
    /// What was not delivered, for people.
    pub fn label(self) -> &'static str {
        match self {
            NotificationChannel::Psa => "the PSA note",
            NotificationChannel::Email => "the email",
            NotificationChannel::Teams => "the Teams post",
            NotificationChannel::Webhook => "the webhook post",
        }
    }
}

/// A notification that could not be delivered, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationError {
    pub channel: NotificationChannel,
    pub error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestContext {
    pub requested_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by_principal: Option<String>,
    pub reason: Option<String>,
    pub incident_id: Option<String>,
    pub severity: Option<String>,
}

impl From<&RevocationRequest> for RequestContext {
    fn from(r: &RevocationRequest) -> Self {
        RequestContext {
            requested_by: r.requested_by.clone(),
            requested_by_principal: r.requested_by_principal.clone(),
            reason: r.reason.clone(),
            incident_id: r.incident_id.clone(),
            severity: r.severity.clone(),
        }
    }
}

impl RequestContext {
    /// The labelled values that are present, in display order.
    pub fn lines(&self) -> Vec<(&'static str, &str)> {
        [
            ("Requested by", &self.requested_by),
            ("Sent by (principal)", &self.requested_by_principal),
            ("Reason", &self.reason),
            ("Incident", &self.incident_id),
            ("Severity", &self.severity),
        ]
        .into_iter()
        .filter_map(|(label, v)| v.as_deref().map(|v| (label, v)))
        .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovalSummary {
    pub user_email: String,
    pub user_display_name: String,
    pub company: String,
    pub total_permissions_removed: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionsRemoved {
    pub full_access: Vec<GrantEntry>,
    pub send_as: Vec<GrantEntry>,
    pub send_on_behalf: Vec<GrantEntry>,
    pub calendar_delegates: Vec<GrantEntry>,
    /// Folder permissions on users' mailboxes (a shared mailbox's are under its entry).
    #[serde(default)]
    pub folder_permissions: Vec<GrantEntry>,
    pub shared_mailboxes: Vec<SharedMailboxEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantEntry {
    /// Empty (and not serialized) inside a shared-mailbox entry, which names the mailbox.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mailbox: String,
    pub permission: String,
    /// A folder permission's folder, as Exchange shows its path (`\\Inbox\\Projects`, `\\`
    /// for the root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// A secondary calendar's name (none: the default calendar).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_level: Option<String>,
    /// A folder permission's rights (`["Reviewer"]`, or individual rights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_rights: Option<Vec<String>>,
    /// A folder permission's `SharingPermissionFlags` (`Delegate`, `CanViewPrivateItems`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sharing_permission_flags: Vec<String>,
    /// On Send As entries: what kind of recipient the grant is on (Exchange's
    /// RecipientTypeDetails), since Send As lives on groups and contacts too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_type: Option<String>,
    pub removed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub would_remove: Option<bool>,
    /// "nothing to remove" warning from Exchange: gone, but not by this run (not counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A removed grant of a contain run: when Exchange has applied the removal (it takes up
    /// to 60 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_by: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedMailboxEntry {
    pub mailbox: String,
    pub removed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub would_remove: Option<bool>,
    /// `[{"permission","removed"}]`: the mailbox is the entry's.
    pub permissions: Vec<GrantEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedGrant {
    pub mailbox: String,
    pub permission: String,
    /// Whose grant it is, where a report covers several trustees (a backup restore).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trustee: Option<String>,
    pub reason: String,
}

/// A direct grant still present when verification re-read the tenant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RemainingGrant {
    pub mailbox: String,
    pub permission: String,
    pub shared: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Whether the tenant was re-read after removal. False in a partial result (a run
    /// interrupted or stopped before verification): then `remaining_*` and `remaining` count
    /// the in-scope grants this run has not removed (they may still be there), and
    /// `all_permissions_cleared` is false.
    #[serde(default = "verified_by_default")]
    pub verified: bool,
    pub remaining_full_access: u32,
    pub remaining_send_as: u32,
    pub remaining_send_on_behalf: u32,
    pub remaining_calendar_delegates: u32,
    #[serde(default)]
    pub remaining_folder_permissions: u32,
    pub remaining_shared_mailboxes: u32,
    pub all_permissions_cleared: bool,
    pub remaining: Vec<RemainingGrant>,
}

/// Results stored before the field existed were all verified ones.
fn verified_by_default() -> bool {
    true
}

impl Default for Verification {
    fn default() -> Self {
        Verification {
            verified: true,
            remaining_full_access: 0,
            remaining_send_as: 0,
            remaining_send_on_behalf: 0,
            remaining_calendar_delegates: 0,
            remaining_folder_permissions: 0,
            remaining_shared_mailboxes: 0,
            all_permissions_cleared: false,
            remaining: Vec::new(),
        }
    }
}

impl Verification {
    /// Counts the direct grants a re-read found, per type; shared-mailbox grants count only as
    /// shared.
    pub fn from_found(found: &[Grant]) -> Verification {
        Verification::counting(found.iter())
    }

    /// What a run that never re-read the tenant can say: the in-scope grants it has not
    /// removed (pending, failed) may all still be there, and nothing is proven cleared.
    pub fn unverified(items: &[PlanItem]) -> Verification {
        let left = items.iter().filter(|i| {
            matches!(
                i.status,
                ItemStatus::Pending | ItemStatus::Failed { .. } | ItemStatus::WouldRemove
            )
        });
        let mut v = Verification::counting(left.map(|i| &i.grant));
        v.verified = false;
        v.all_permissions_cleared = false;
        v
    }

    fn counting<'g>(found: impl Iterator<Item = &'g Grant>) -> Verification {
        let mut v = Verification::default();
        let mut any = false;
        for g in found {
            any = true;
            match (g.shared, g.right) {
                (true, _) => v.remaining_shared_mailboxes += 1,
                (false, PermissionType::FullAccess) => v.remaining_full_access += 1,
                (false, PermissionType::SendAs) => v.remaining_send_as += 1,
                (false, PermissionType::SendOnBehalf) => v.remaining_send_on_behalf += 1,
                (false, PermissionType::Calendar) => v.remaining_calendar_delegates += 1,
                (false, PermissionType::Folder) => v.remaining_folder_permissions += 1,
            }
            v.remaining.push(RemainingGrant {
                mailbox: g.mailbox.clone(),
                permission: g.right.report_name().to_string(),
                shared: g.shared,
                folder: g.folder_path().map(str::to_string),
                calendar: g.calendar_name().map(str::to_string),
            });
        }
        v.remaining.sort();
        v.remaining.dedup();
        v.all_permissions_cleared = !any;
        v
    }
}

/// One page of a result too large for one answer: every key and every count of the whole
/// result, the entry arrays sliced to `[(number-1)×size, number×size)`.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportPage {
    pub result: serde_json::Value,
    pub number: usize,
    pub pages: usize,
}

impl Report {
    /// Page `number` (from 1) of `size` entries. The grant entries of all types are one
    /// sequence (full access, send as, send on behalf, calendar, folders, shared mailboxes); the other
    /// lists (indirect access, skipped, errors, remaining grants, not checked) are sliced alike.
    pub fn page(&self, number: usize, size: usize) -> ReportPage {
        let size = size.max(1);
        let number = number.max(1);
        let (from, to) = ((number - 1) * size, number * size);
        let mut result = serde_json::to_value(self).unwrap_or_default();
        let mut longest = 0usize;
        // The grant entries: one sequence across the five arrays.
        let mut offset = 0usize;
        for key in [
            "full_access",
            "send_as",
            "send_on_behalf",
            "calendar_delegates",
            "folder_permissions",
            "shared_mailboxes",
        ] {
            if let Some(serde_json::Value::Array(entries)) = result
                .get_mut("permissions_removed")
                .and_then(|p| p.get_mut(key))
            {
                let len = entries.len();
                let start = from.saturating_sub(offset).min(len);
                let end = to.saturating_sub(offset).min(len);
                *entries = entries[start..end].to_vec();
                offset += len;
            }
        }
        longest = longest.max(offset);
        for pointer in [
            "/indirect_access",
            "/skipped",
            "/errors",
            "/verification/remaining",
            "/not_checked",
        ] {
            if let Some(serde_json::Value::Array(list)) = result.pointer_mut(pointer) {
                longest = longest.max(list.len());
                let len = list.len();
                *list = list[from.min(len)..to.min(len)].to_vec();
            }
        }
        ReportPage {
            result,
            number,
            pages: longest.div_ceil(size).max(1),
        }
    }
}
