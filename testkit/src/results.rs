//! A run's result as it is on the wire (the CLI's stdout, the API's answer, the engine's
//! report serialized), typed by the tests' own structs rather than the library's: a field
//! the library renames or drops fails the tests that read it, where indexing a JSON value
//! would read `null` and may still pass. Unknown fields are allowed: adding one breaks nothing.

use serde::Deserialize;
use serde_json::Value;

/// The result of a revoke, restore or contain run.
#[derive(Debug, Clone, Deserialize)]
pub struct RunResult {
    pub kind: String,
    pub success: bool,
    pub run_id: String,
    pub status: String,
    pub dry_run: bool,
    pub removal_summary: RemovalSummary,
    pub permissions_removed: PermissionsRemoved,
    pub verification: Verification,
    /// The PSA ticket the run reported to (`null` without one).
    pub ticket_id: Option<String>,
    pub errors: Vec<String>,
    pub scope: Scope,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RemovalSummary {
    pub user_email: String,
    pub user_display_name: String,
    pub company: String,
    pub total_permissions_removed: u64,
}

/// Each kind's grants; a shared mailbox entry lists its own permissions.
#[derive(Debug, Clone, Deserialize)]
pub struct PermissionsRemoved {
    pub full_access: Vec<Grant>,
    pub send_as: Vec<Grant>,
    pub send_on_behalf: Vec<Grant>,
    pub calendar_delegates: Vec<Grant>,
    pub folder_permissions: Vec<Grant>,
    pub shared_mailboxes: Vec<SharedMailbox>,
}

impl PermissionsRemoved {
    /// The kinds by their wire names, in the result's order, each with how many entries.
    pub fn counts(&self) -> [(&'static str, usize); 6] {
        [
            ("full_access", self.full_access.len()),
            ("send_as", self.send_as.len()),
            ("send_on_behalf", self.send_on_behalf.len()),
            ("calendar_delegates", self.calendar_delegates.len()),
            ("folder_permissions", self.folder_permissions.len()),
            ("shared_mailboxes", self.shared_mailboxes.len()),
        ]
    }

    /// Every entry of every kind, none at all.
    pub fn is_empty(&self) -> bool {
        self.counts().iter().all(|(_, n)| *n == 0)
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Grant {
    #[serde(default)]
    pub mailbox: String,
    pub permission: String,
    /// A folder permission's folder (`\\Inbox\\Projects`).
    #[serde(default)]
    pub folder: Option<String>,
    /// A secondary calendar's name.
    #[serde(default)]
    pub calendar: Option<String>,
    #[serde(default)]
    pub access_level: Option<String>,
    /// A folder permission's rights.
    #[serde(default)]
    pub access_rights: Option<Vec<String>>,
    #[serde(default)]
    pub sharing_permission_flags: Vec<String>,
    pub removed: bool,
    #[serde(default)]
    pub would_remove: Option<bool>,
    #[serde(default)]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SharedMailbox {
    pub mailbox: String,
    pub removed: bool,
    #[serde(default)]
    pub would_remove: Option<bool>,
    pub permissions: Vec<Grant>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Verification {
    pub verified: bool,
    pub remaining_full_access: u64,
    pub remaining_send_as: u64,
    pub remaining_send_on_behalf: u64,
    pub remaining_calendar_delegates: u64,
    pub remaining_folder_permissions: u64,
    pub remaining_shared_mailboxes: u64,
    pub all_permissions_cleared: bool,
    pub remaining: Vec<Value>,
}

impl Verification {
    /// The six `remaining_*` counts, summed.
    pub fn remaining_total(&self) -> u64 {
        self.remaining_full_access
            + self.remaining_send_as
            + self.remaining_send_on_behalf
            + self.remaining_calendar_delegates
            + self.remaining_folder_permissions
            + self.remaining_shared_mailboxes
    }
}

/// What the run covered: `mailboxes` is `"all"` or the list the request named.
#[derive(Debug, Clone, Deserialize)]
pub struct Scope {
    pub permission_types: Vec<String>,
    pub mailboxes: Value,
    pub shared_mailboxes: bool,
    /// `well_known`, `all` or `well_known+snapshot` when folder permissions were in scope.
    #[serde(default)]
    pub folders: Option<String>,
}

impl RunResult {
    /// `value` as a run result; panics naming what did not fit.
    pub fn from_value(value: &Value) -> RunResult {
        serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("not a run result ({e}): {value}"))
    }
}
