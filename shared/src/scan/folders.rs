//! Folder permissions of one mailbox (Exchange): its folders from
//! `Get-MailboxFolderStatistics`, then the user's entry on each folder a run reads, asked for
//! by identity (`-User`), never picked by the display name Exchange shows.
//! Which folders is `folder_reach.rs`'s. `Default` and `Anonymous` are never grants.

use super::census::Census;
use super::trustee::Target;
use super::{grant, Findings};
use crate::error::RemoteError;
use crate::model::{FolderGrant, Grant, PermissionType};
use crate::ports::{FolderInfo, FolderPermissionEntry, MailboxFolders, MailboxInfo};
use futures_util::future::join_all;

/// The grant an entry on `folder` is, held by the census's user.
pub(crate) fn folder_grant(
    census: &Census,
    target: &Target,
    folder: &FolderInfo,
    entry: &FolderPermissionEntry,
) -> Grant {
    let mut g = grant(
        census,
        target,
        PermissionType::Folder,
        "",
        entry.access_rights.clone(),
    );
    g.folder = Some(FolderGrant {
        path: folder.path(),
        folder_type: folder.folder_type.clone(),
        folder_id: folder.folder_id.clone(),
        sharing_permission_flags: entry.sharing_permission_flags.clone(),
    });
    g
}

/// Whether an entry read by `-User` for the user is a right they hold: not `Default` or
/// `Anonymous`, and not `None`.
pub(crate) fn holds_rights(entry: &FolderPermissionEntry) -> bool {
    !entry.is_special() && !entry.access_rights.is_empty()
}

/// The user's entries on the chosen folders of `m`.
pub(super) async fn read(
    census: &Census,
    folders_api: &dyn MailboxFolders,
    m: &MailboxInfo,
    target: &Target,
) -> Result<Findings, RemoteError> {
    let mailbox = &m.user_principal_name;
    let folders = folders_api.folders(mailbox).await?;
    let chosen = census.folders.chosen(&m.address(), &folders);
    let user = &census.user.upn;
    let reads = join_all(chosen.iter().map(|f| async move {
        let path = f.path();
        let entries = folders_api
            .folder_permissions(mailbox, &path, Some(user))
            .await;
        (*f, entries)
    }))
    .await;
    let mut found = Findings::default();
    for (folder, entries) in reads {
        match entries {
            Ok(entries) => found.grants.extend(
                entries
                    .iter()
                    .filter(|e| holds_rights(e))
                    .map(|e| folder_grant(census, target, folder, e)),
            ),
            // A folder renamed or deleted between the listing and its read holds nothing.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(found)
}
