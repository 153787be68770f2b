//! Restore sources and the call that puts one grant back. A source is a list of grants to put
//! back: today the grants a run removed, read from its audit records alone (a restore run
//! plans from it, see `steps::restore`).

use crate::error::{ErrorKind, RemoteError};
use crate::model::{
    AuditPhase, AuditRecord, AuditResult, Grant, ItemId, PermissionType, ResolvedUser,
};
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
/// calendar permission with its original role.
pub async fn put_back(tenant: Tenant<'_>, g: &Grant) -> Result<(), RemoteError> {
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
            tenant
                .directory
                .add_calendar_permission(g.graph_mailbox(), address, &c.role)
                .await
        }
        (PermissionType::Calendar, None) => Err(RemoteError::new(
            "graph",
            format!("restore calendar permission on {}", g.mailbox),
            ErrorKind::InvalidInput {
                field: "calendar",
                message: format!("audit record for {} has no calendar role", g.mailbox),
            },
        )),
    }
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
        PermissionType::Calendar => tenant
            .directory
            .calendar_permissions(g.graph_mailbox())
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
    })
}
