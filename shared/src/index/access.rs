//! Who can open what, from the index: every grant a user holds, or every trustee that holds a
//! grant on a mailbox, as of a snapshot; with `live`, re-read from the tenant and marked with
//! what changed since the snapshot.

use crate::error::{RemoteError, StoreError};
use crate::model::{
    Grant, IndexHits, IndexedGrant, OrgSettings, PermissionType, RevocationRequest,
    SnapshotSummary, Trustee, TrusteeKind,
};
use crate::ports::{NoProgress, PermissionIndex, Tenant};
use crate::scan::{per_mailbox, tenant_wide, Census, ScanError};
use crate::steps::Deadline;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;

/// What `access` looks up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessQuery {
    /// Every grant this user (UPN, address, object id) holds.
    User(String),
    /// Every trustee that holds a grant on this mailbox (address).
    Mailbox(String),
}

/// How a grant compares with the snapshot, after a live re-read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// In the snapshot and in the tenant.
    Unchanged,
    /// In the tenant, not in the snapshot.
    Added,
    /// In the snapshot, no longer in the tenant.
    Removed,
}

/// One grant of the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessEntry {
    pub mailbox: String,
    pub mailbox_display_name: String,
    pub recipient_type: String,
    pub permission: PermissionType,
    /// A folder permission's folder (`\\Inbox\\Projects`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folder: Option<String>,
    /// A secondary calendar's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    pub access_rights: Vec<String>,
    /// A folder permission's `SharingPermissionFlags`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sharing_permission_flags: Vec<String>,
    /// Who holds it: UPN, address, or the value Exchange shows.
    pub trustee: String,
    pub trustee_kind: TrusteeKind,
    /// The value the permission answer showed, when it differs from `trustee`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trustee_as_shown: Option<String>,
    /// With `live`: how it compares with the snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
}

impl AccessEntry {
    /// Where the grant is, for tables: the mailbox, with the folder or secondary calendar.
    pub fn shown_on(&self) -> String {
        match (&self.folder, &self.calendar) {
            (Some(folder), _) => format!("{}:{folder}", self.mailbox),
            (None, Some(calendar)) => format!("{} (calendar \"{calendar}\")", self.mailbox),
            (None, None) => self.mailbox.clone(),
        }
    }
}

/// The answer of `access` (and `GET /access`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessMap {
    pub company_id: String,
    /// `{"user": ...}` or `{"mailbox": ...}`.
    pub query: BTreeMap<&'static str, String>,
    pub snapshot_id: String,
    /// When the snapshot was taken: how fresh the answer is without `live`.
    pub as_of: DateTime<Utc>,
    /// Whether the tenant was re-read.
    pub live: bool,
    /// The trustees the user query matched in the snapshot.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trustees: Vec<Trustee>,
    pub grants: Vec<AccessEntry>,
    /// Grants per permission type.
    pub counts: BTreeMap<PermissionType, usize>,
    /// With `live`: `added` and `removed` since the snapshot.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub changes: BTreeMap<&'static str, usize>,
    /// Parts of the tenant the snapshot (or the live read) could not read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub incomplete: Vec<String>,
}

/// Why a lookup has no answer.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(
        "company '{0}' has no permission index yet: run `revoke365 sweep --company-id {0}` first"
    )]
    NoSnapshot(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The live re-read cannot be made for this user (not found, ambiguous).
    #[error("{0}")]
    Rejected(String),
}

pub(super) fn entry(g: &IndexedGrant, trustees: &BTreeMap<&str, &Trustee>) -> AccessEntry {
    let t = trustees.get(g.trustee_id.as_str());
    let trustee = t.map_or(g.trustee_as_shown.clone(), |t| t.name().to_string());
    AccessEntry {
        mailbox: g.mailbox.clone(),
        mailbox_display_name: g.mailbox_display_name.clone(),
        recipient_type: g.recipient_type.clone(),
        permission: g.right,
        folder: g.folder.as_ref().map(|f| f.path.clone()),
        calendar: g.calendar.as_ref().and_then(|c| c.calendar_name.clone()),
        access_rights: g.access_rights.clone(),
        sharing_permission_flags: g
            .folder
            .as_ref()
            .map(|f| f.sharing_permission_flags.clone())
            .unwrap_or_default(),
        trustee_as_shown: (!g.trustee_as_shown.eq_ignore_ascii_case(&trustee))
            .then(|| g.trustee_as_shown.clone()),
        trustee,
        trustee_kind: t.map_or(TrusteeKind::Unresolved, |t| t.kind),
        change: None,
    }
}

fn live_entry(g: &Grant) -> AccessEntry {
    AccessEntry {
        mailbox: g.mailbox.clone(),
        mailbox_display_name: g.mailbox_display_name.clone(),
        recipient_type: g.recipient_type.clone().unwrap_or_default(),
        permission: g.right,
        folder: g.folder_path().map(str::to_string),
        calendar: g.calendar_name().map(str::to_string),
        access_rights: g.access_rights.clone(),
        sharing_permission_flags: g
            .folder
            .as_ref()
            .map(|f| f.sharing_permission_flags.clone())
            .unwrap_or_default(),
        trustee: g.trustee.clone(),
        trustee_kind: TrusteeKind::User,
        trustee_as_shown: g.trustee_as_shown.clone(),
        change: Some(Change::Added),
    }
}

/// Answers `query` from the newest snapshot of `org`'s company — no tenant call — or, with
/// `live`, re-reads the user's grants (a scan of every mailbox for that user, like a dry run)
/// and marks each grant as unchanged, added or removed since the snapshot.
pub async fn lookup(
    index: &dyn PermissionIndex,
    org: &OrgSettings,
    query: &AccessQuery,
    live: Option<Tenant<'_>>,
) -> Result<AccessMap, AccessError> {
    let snapshot: SnapshotSummary = index
        .find_snapshot(&org.company_id, &crate::model::SnapshotRef::Newest)
        .await?
        .ok_or_else(|| AccessError::NoSnapshot(org.company_id.clone()))?;
    let (hits, query_map) = match query {
        AccessQuery::User(u) => (
            index
                .held_by(&snapshot.snapshot_id, &[u.trim().to_ascii_lowercase()])
                .await?,
            BTreeMap::from([("user", u.clone())]),
        ),
        AccessQuery::Mailbox(m) => (
            index.held_on(&snapshot.snapshot_id, m).await?,
            BTreeMap::from([("mailbox", m.clone())]),
        ),
    };
    let IndexHits { trustees, grants } = hits;
    let by_id: BTreeMap<&str, &Trustee> = trustees
        .iter()
        .map(|t| (t.trustee_id.as_str(), t))
        .collect();
    let mut entries: Vec<AccessEntry> = grants.iter().map(|g| entry(g, &by_id)).collect();
    let mut incomplete = snapshot.errors.clone();
    let mut changes = BTreeMap::new();
    if let Some(tenant) = live {
        let AccessQuery::User(user) = query else {
            return Err(AccessError::Rejected(
                "--live is available with --user (a mailbox's trustees are read by a sweep)".into(),
            ));
        };
        let listed: Vec<Grant> = grants.iter().map(|g| g.to_grant("")).collect();
        let (found, errors) = live_grants(tenant, org, user, &listed).await?;
        incomplete.extend(errors);
        let mut added = 0;
        for e in entries.iter_mut() {
            e.change = Some(Change::Removed);
        }
        for g in &found {
            match entries.iter_mut().find(|e| {
                e.mailbox == g.mailbox
                    && e.permission == g.right
                    && e.folder.as_deref() == g.folder_path()
                    && e.calendar.as_deref() == g.calendar_name()
            }) {
                Some(e) => e.change = Some(Change::Unchanged),
                None => {
                    entries.push(live_entry(g));
                    added += 1;
                }
            }
        }
        let removed = entries
            .iter()
            .filter(|e| e.change == Some(Change::Removed))
            .count();
        changes.insert("added", added);
        changes.insert("removed", removed);
    }
    entries.sort_by(|a, b| {
        (&a.mailbox, a.permission, &a.folder, &a.calendar, &a.trustee).cmp(&(
            &b.mailbox,
            b.permission,
            &b.folder,
            &b.calendar,
            &b.trustee,
        ))
    });
    let mut counts = BTreeMap::new();
    for e in entries.iter().filter(|e| e.change != Some(Change::Removed)) {
        *counts.entry(e.permission).or_insert(0) += 1;
    }
    Ok(AccessMap {
        company_id: org.company_id.clone(),
        query: query_map,
        snapshot_id: snapshot.snapshot_id,
        as_of: snapshot.taken_at,
        live: live.is_some(),
        trustees: match query {
            AccessQuery::User(_) => trustees,
            AccessQuery::Mailbox(_) => Vec::new(),
        },
        grants: entries,
        counts,
        changes,
        incomplete,
    })
}

/// The user's direct grants as the tenant shows them now.
async fn live_grants(
    tenant: Tenant<'_>,
    org: &OrgSettings,
    user: &str,
    snapshot_folders: &[Grant],
) -> Result<(Vec<Grant>, Vec<String>), AccessError> {
    let body =
        serde_json::json!({"user_email": user, "company_id": org.company_id, "dry_run": true});
    let request =
        RevocationRequest::from_json(&body).map_err(|e| AccessError::Rejected(e.to_string()))?;
    let census = match Census::discover(tenant, org, &request).await {
        // Every folder the snapshot lists for the user is read too.
        Ok(c) => {
            let reach = crate::scan::FolderReach::of(&request).with_extra(snapshot_folders.iter());
            c.with_folders(reach)
        }
        Err(ScanError::Rejected(f)) => return Err(AccessError::Rejected(f.message)),
        Err(ScanError::Remote(e)) => return Err(e.into()),
    };
    let mut found = tenant_wide(tenant, &census, &PermissionType::ALL, None).await?;
    let rights = [
        PermissionType::FullAccess,
        PermissionType::Calendar,
        PermissionType::Folder,
    ];
    let mailboxes: Vec<_> = census
        .scanned_mailboxes()
        .into_iter()
        .map(|m| (m, &rights[..]))
        .collect();
    for read in per_mailbox(tenant, &census, &mailboxes, &NoProgress, Deadline::NONE).await? {
        found.merge(read.found);
    }
    let found = found.settle();
    Ok((found.grants, found.errors))
}
