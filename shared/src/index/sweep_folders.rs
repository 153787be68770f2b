//! The sweep's reads of every folder and every calendar of a mailbox: each folder's entries
//! (`Get-MailboxFolderPermission` without a user filter: every holder at once) and each
//! secondary calendar's permissions (Graph).
//!
//! Exchange shows a folder entry's holder by display name. A name one mailbox has is that
//! mailbox's user; a name several share is asked of the folder again by each one's identity
//! (`-User`), so a twin's right is never indexed under the other; a name no mailbox has is
//! resolved as any trustee value is (a group, a user without a mailbox). `Default` and
//! `Anonymous` are never grants. The default calendar and the calendars under it are read
//! through Graph (as a run reads them), not as folders.

use super::identities::Identities;
use super::sweep_mailbox::{entry, per_mailbox, place_of, SweepCalls};
use crate::error::RemoteError;
use crate::model::{FolderGrant, PermissionType, SweptMailbox, Trustee};
use crate::ports::{FolderInfo, FolderPermissionEntry, MailboxInfo, Tenant};
use crate::scan::{calendar_grant, FolderReach};
use futures_util::future::join_all;
use std::collections::HashMap;

/// User mailboxes by lowercase display name: who a folder entry's `User` may be.
pub(super) struct ByDisplayName<'a>(HashMap<String, Vec<&'a MailboxInfo>>);

impl<'a> ByDisplayName<'a> {
    pub fn new(mailboxes: &'a [MailboxInfo]) -> ByDisplayName<'a> {
        let mut by_name: HashMap<String, Vec<&MailboxInfo>> = HashMap::new();
        for m in mailboxes {
            let name = m.display_name.trim().to_lowercase();
            if !name.is_empty() {
                by_name.entry(name).or_default().push(m);
            }
        }
        ByDisplayName(by_name)
    }

    fn named(&self, shown: &str) -> &[&'a MailboxInfo] {
        self.0
            .get(&shown.trim().to_lowercase())
            .map_or(&[], Vec::as_slice)
    }
}

/// Every folder's entries of `m`, and every secondary calendar's permissions.
pub(super) async fn folders(
    tenant: Tenant<'_>,
    ids: &Identities<'_>,
    names: &ByDisplayName<'_>,
    calls: &SweepCalls,
    m: &MailboxInfo,
) -> Result<SweptMailbox, RemoteError> {
    let read = async {
        let mailbox = &m.user_principal_name;
        calls.exchange();
        let listed = tenant.folders.folders(mailbox).await?;
        let reach = FolderReach {
            all: true,
            ..FolderReach::default()
        };
        let chosen = reach.chosen(&m.address(), &listed);
        let reads = join_all(chosen.iter().map(|f| async move {
            calls.exchange();
            let entries = tenant
                .folders
                .folder_permissions(mailbox, &f.path(), None)
                .await;
            (*f, entries)
        }))
        .await;
        let mut found = SweptMailbox::default();
        for (folder, entries) in reads {
            let entries = match entries {
                Ok(entries) => entries,
                // Gone between the listing and its read.
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            for e in entries.iter().filter(|e| crate::scan::holds_rights(e)) {
                for (t, shown) in holders(tenant, ids, names, calls, m, folder, e).await? {
                    let mut g = entry(
                        &t,
                        &place_of(m),
                        PermissionType::Folder,
                        &shown,
                        e.access_rights.clone(),
                    );
                    g.folder = Some(FolderGrant {
                        path: folder.path(),
                        folder_type: folder.folder_type.clone(),
                        folder_id: folder.folder_id.clone(),
                        sharing_permission_flags: e.sharing_permission_flags.clone(),
                    });
                    found.grants.push((t, g));
                }
            }
        }
        Ok(found)
    };
    per_mailbox(m, "folder permissions", read.await)
}

/// Who holds an entry Exchange shows by display name, each with the value a removal names
/// them by (their UPN; a group's name as shown).
async fn holders(
    tenant: Tenant<'_>,
    ids: &Identities<'_>,
    names: &ByDisplayName<'_>,
    calls: &SweepCalls,
    m: &MailboxInfo,
    folder: &FolderInfo,
    e: &FolderPermissionEntry,
) -> Result<Vec<(Trustee, String)>, RemoteError> {
    let candidates: Vec<&MailboxInfo> = names
        .named(&e.user)
        .iter()
        .copied()
        .filter(|c| !c.is_identified_by(&m.user_principal_name))
        .collect();
    let confirmed: Vec<&MailboxInfo> = match candidates.as_slice() {
        [] => {
            let t = ids.trustee(&e.user).await?;
            return Ok(t.into_iter().map(|t| (t, e.user.clone())).collect());
        }
        [one] => vec![*one],
        several => {
            let checks = join_all(several.iter().map(|c| async move {
                calls.exchange();
                let held = tenant
                    .folders
                    .folder_permissions(
                        &m.user_principal_name,
                        &folder.path(),
                        Some(&c.user_principal_name),
                    )
                    .await?;
                Ok::<_, RemoteError>(held.iter().any(crate::scan::holds_rights).then_some(*c))
            }))
            .await;
            let mut confirmed = Vec::new();
            for check in checks {
                confirmed.extend(check?);
            }
            confirmed
        }
    };
    let mut trustees = Vec::new();
    for c in confirmed {
        if let Some(t) = ids.trustee(&c.user_principal_name).await? {
            trustees.push((t, c.user_principal_name.to_ascii_lowercase()));
        }
    }
    Ok(trustees)
}

/// Every secondary calendar's permissions of `m` (the default calendar's are read apart).
pub(super) async fn secondary_calendars(
    tenant: Tenant<'_>,
    ids: &Identities<'_>,
    calls: &SweepCalls,
    m: &MailboxInfo,
) -> Result<SweptMailbox, RemoteError> {
    let read = async {
        let mailbox = &m.user_principal_name;
        calls.graph();
        let calendars = tenant.calendars.calendars(mailbox).await?;
        let secondary: Vec<_> = calendars.into_iter().filter(|c| !c.is_default).collect();
        let reads = join_all(secondary.iter().map(|c| {
            calls.graph();
            tenant.calendars.permissions_of(mailbox, &c.id)
        }))
        .await;
        let mut found = SweptMailbox::default();
        for (calendar, permissions) in secondary.iter().zip(reads) {
            let permissions = match permissions {
                Ok(p) => p,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            for p in permissions.iter().filter(|p| p.is_removable) {
                let Some(address) = p.email_address.as_deref() else {
                    continue;
                };
                if let Some(t) = ids.trustee(address).await? {
                    let mut c = calendar_grant(p, mailbox);
                    c.calendar_id = Some(calendar.id.clone());
                    c.calendar_name = Some(calendar.name.clone());
                    let mut g = entry(
                        &t,
                        &place_of(m),
                        PermissionType::Calendar,
                        address,
                        vec![c.access_level.clone()],
                    );
                    g.calendar = Some(c);
                    found.grants.push((t, g));
                }
            }
        }
        Ok(found)
    };
    per_mailbox(m, "calendars", read.await)
}
