//! Restore sources and the call that puts one grant back. A source is a list of grants to put
//! back: today the grants a run removed, read from its audit records alone (a restore run
//! plans from it, see `steps::restore`).

use crate::error::{ErrorKind, RemoteError};
use crate::model::{
    AuditPhase, AuditRecord, AuditResult, FolderGrant, Grant, ItemId, PermissionType, ResolvedUser,
};
use crate::scan::holds_rights;
use crate::steps::Tenant;
use std::collections::BTreeMap;

/// The grants a run removed: the before-state of every item whose outcome was `removed`.
/// Items that were already gone, failed or only dry-run were not removed by the run.
pub fn removed_grants(records: &[AuditRecord]) -> Vec<(ItemId, Grant)> {
    let mut before: BTreeMap<u32, &Grant> = BTreeMap::new();
    let mut removed = Vec::new();
    for r in records {
        match (r.phase, r.item_id, &r.grant) {
            (AuditPhase::Before, Some(id), Some(g)) => {
                before.insert(id, g);
            }
            (AuditPhase::Outcome, Some(id), _) if r.result == Some(AuditResult::Removed) => {
                removed.push(id)
            }
            _ => {}
        }
    }
    removed
        .into_iter()
        .filter_map(|id| before.get(&id).map(|g| (id, (*g).clone())))
        .collect()
}

/// Adds one grant back as it was: Full Access (with Exchange's default AutoMapping), Send As
/// (also on groups and contacts), Send on Behalf (added to the list, never replacing it), a
/// calendar permission with its original role (on the calendar it was on), a folder
/// permission with its rights and sharing flags (on the folder it was on: one renamed or
/// deleted since is reported, never guessed).
pub async fn put_back(tenant: Tenant<'_>, g: &Grant) -> Result<(), RemoteError> {
    if let Some(f) = &g.folder {
        return put_folder_back(tenant, g, f).await;
    }
    match (g.right, &g.calendar) {
        (PermissionType::FullAccess, _) => {
            tenant
                .exchange
                .add_full_access(&g.mailbox, &g.trustee)
                .await
        }
        (PermissionType::SendAs, _) => {
            tenant
                .exchange
                .add_send_as(&g.mailbox, g.recipient_type.as_deref(), &g.trustee)
                .await
        }
        (PermissionType::SendOnBehalf, _) => {
            tenant
                .exchange
                .add_send_on_behalf(&g.mailbox, &g.trustee)
                .await
        }
        // Graph names calendar grantees by SMTP address, which may differ from the UPN.
        (PermissionType::Calendar, Some(c)) => {
            let address = g.trustee_as_shown.as_deref().unwrap_or(&g.trustee);
            match &c.calendar_id {
                None => {
                    tenant
                        .directory
                        .add_calendar_permission(g.graph_mailbox(), address, &c.role)
                        .await
                }
                Some(id) => tenant
                    .calendars
                    .add_permission_of(g.graph_mailbox(), id, address, &c.role)
                    .await
                    .map_err(|e| gone_calendar(e, g)),
            }
        }
        (PermissionType::Calendar, None) => Err(RemoteError::new(
            "graph",
            format!("restore calendar permission on {}", g.mailbox),
            ErrorKind::InvalidInput {
                field: "calendar",
                message: format!("audit record for {} has no calendar role", g.mailbox),
            },
        )),
        // A folder grant with its folder was put back above.
        (PermissionType::Folder, _) => Err(RemoteError::new(
            "exchange",
            format!("restore folder permission on {}", g.mailbox),
            ErrorKind::InvalidInput {
                field: "folder",
                message: format!("audit record for {} names no folder", g.mailbox),
            },
        )),
    }
}

/// A secondary calendar that is no longer there: said so, nothing guessed.
fn gone_calendar(e: RemoteError, g: &Grant) -> RemoteError {
    if !e.is_not_found() {
        return e;
    }
    RemoteError::new(
        "graph",
        format!("restore calendar permission on {}", g.shown_on()),
        ErrorKind::InvalidInput {
            field: "calendar",
            message: format!(
                "the calendar {} is no longer there (deleted since); not put back",
                g.shown_on()
            ),
        },
    )
}

/// Puts a folder permission back with its rights and flags on the folder it was on. A folder
/// that is no longer at its path is looked for by its id: renamed or deleted, it is reported
/// and nothing is added anywhere else.
async fn put_folder_back(
    tenant: Tenant<'_>,
    g: &Grant,
    f: &FolderGrant,
) -> Result<(), RemoteError> {
    let added = tenant
        .folders
        .put_folder_permission(
            &g.mailbox,
            &f.path,
            &g.trustee,
            &g.access_rights,
            &f.sharing_permission_flags,
        )
        .await;
    match added {
        Err(e) if e.is_not_found() => Err(folder_gone(tenant, g, f).await),
        other => other,
    }
}

/// Why a folder permission cannot go back: its folder was renamed (found by id elsewhere) or
/// deleted.
async fn folder_gone(tenant: Tenant<'_>, g: &Grant, f: &FolderGrant) -> RemoteError {
    let now = match &f.folder_id {
        Some(id) => tenant
            .folders
            .folders(&g.mailbox)
            .await
            .ok()
            .and_then(|all| {
                all.into_iter()
                    .find(|x| x.folder_id.as_deref() == Some(id.as_str()))
            }),
        None => None,
    };
    let message = match now {
        Some(renamed) => format!(
            "the folder {} was renamed or moved to {} since; not put back (restore it there by hand if that is the same folder)",
            f.path,
            renamed.path()
        ),
        None => format!(
            "the folder {} is no longer in {} (deleted or renamed since); not put back",
            f.path, g.mailbox
        ),
    };
    RemoteError::new(
        "exchange",
        format!("restore folder permission on {}", g.shown_on()),
        ErrorKind::InvalidInput {
            field: "folder",
            message,
        },
    )
}

/// Whether `user` holds `g` again already (a second restore, or someone re-added it), read
/// the way discovery reads each kind of grant. `None` when it cannot be told (the add then
/// goes ahead; verification decides).
pub async fn present(tenant: Tenant<'_>, user: &ResolvedUser, g: &Grant) -> Option<bool> {
    match read_grant(tenant, user, g).await {
        Ok(found) => Some(found.is_some()),
        Err(e) => {
            tracing::info!(mailbox = %g.mailbox, error = %e, "could not tell whether the grant is back already; adding it");
            None
        }
    }
}

/// `g` as the tenant shows it now for `user` — with the calendar permission's current id and
/// role and the trustee as the answer names it — or `None` when it is not there. A Send on
/// Behalf grant of a user without a distinguished name cannot be read alone: it is taken as
/// there (its removal tells).
pub async fn read_grant(
    tenant: Tenant<'_>,
    user: &ResolvedUser,
    g: &Grant,
) -> Result<Option<Grant>, RemoteError> {
    let shown = |value: &str| {
        let mut found = g.clone();
        found.trustee_as_shown = (!value.eq_ignore_ascii_case(&g.trustee) && !value.is_empty())
            .then(|| value.to_string());
        found
    };
    if let Some(f) = &g.folder {
        return read_folder_grant(tenant, g, f).await;
    }
    Ok(match g.right {
        PermissionType::FullAccess => tenant
            .exchange
            .mailbox_permissions(&g.mailbox)
            .await?
            .iter()
            .find(|e| e.allows_full_access() && !e.is_inherited && user.is_user(&e.user))
            .map(|e| shown(&e.user)),
        PermissionType::SendAs => tenant
            .exchange
            .send_as_on(&g.mailbox)
            .await?
            .iter()
            .find(|e| e.allows_send_as() && !e.is_inherited && user.is_user(&e.trustee))
            .map(|e| shown(&e.trustee)),
        PermissionType::SendOnBehalf => match user.mailbox_dn.as_deref() {
            Some(dn) => tenant
                .exchange
                .mailboxes_with_send_on_behalf(dn)
                .await?
                .iter()
                .any(|m| m.address() == g.mailbox)
                .then(|| g.clone()),
            None => Some(g.clone()),
        },
        PermissionType::Calendar => calendar_permissions(tenant, g)
            .await?
            .into_iter()
            .find(|p| p.email_address.as_deref().is_some_and(|a| user.is_user(a)))
            .map(|p| {
                let mut found = shown(p.email_address.as_deref().unwrap_or_default());
                if let Some(c) = found.calendar.as_mut() {
                    c.permission_id = p.id.clone();
                    c.role = p.role.clone();
                }
                found
            }),
        // A folder grant always names its folder (read above).
        PermissionType::Folder => None,
    })
}

/// The permissions of the calendar `g` is on; none when a secondary calendar is gone.
async fn calendar_permissions(
    tenant: Tenant<'_>,
    g: &Grant,
) -> Result<Vec<crate::ports::CalendarPermission>, RemoteError> {
    match g.calendar.as_ref().and_then(|c| c.calendar_id.as_deref()) {
        None => {
            tenant
                .directory
                .calendar_permissions(g.graph_mailbox())
                .await
        }
        Some(id) => match tenant.calendars.permissions_of(g.graph_mailbox(), id).await {
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            other => other,
        },
    }
}

/// `g`'s folder entry as it stands, asked for by the trustee's identity (`-User`); none when
/// they hold none there or the folder is gone.
async fn read_folder_grant(
    tenant: Tenant<'_>,
    g: &Grant,
    f: &FolderGrant,
) -> Result<Option<Grant>, RemoteError> {
    let entries = match tenant
        .folders
        .folder_permissions(&g.mailbox, &f.path, Some(&g.trustee))
        .await
    {
        Err(e) if e.is_not_found() => return Ok(None),
        other => other?,
    };
    Ok(entries.iter().find(|e| holds_rights(e)).map(|e| {
        let mut found = g.clone();
        found.access_rights = e.access_rights.clone();
        if let Some(folder) = found.folder.as_mut() {
            folder.sharing_permission_flags = e.sharing_permission_flags.clone();
        }
        found
    }))
}
