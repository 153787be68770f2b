//! Puts back what a run removed, from its audit records alone.

use crate::error::{ErrorKind, RemoteError};
use crate::model::{AuditPhase, AuditRecord, AuditResult, Grant, PermissionType};
use crate::steps::Tenant;
use std::collections::BTreeMap;
use tracing::warn;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RestoreSummary {
    pub restored: Vec<Grant>,
    pub failed: Vec<(Grant, String)>,
}

/// The grants a run removed: the before-state of every item whose outcome was `removed`.
/// Items that were already gone, failed or only dry-run were not removed by the run.
pub fn removed_grants(records: &[AuditRecord]) -> Vec<Grant> {
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
        .filter_map(|id| before.get(&id).map(|g| (*g).clone()))
        .collect()
}

/// Re-grants everything a run removed, one call per grant.
pub async fn restore(tenant: Tenant<'_>, records: &[AuditRecord]) -> RestoreSummary {
    let mut summary = RestoreSummary::default();
    for grant in removed_grants(records) {
        match restore_grant(tenant, &grant).await {
            Ok(()) => summary.restored.push(grant),
            Err(e) => {
                warn!(mailbox = %grant.mailbox, error = %e, "restore failed");
                summary.failed.push((grant, e.reason()));
            }
        }
    }
    summary
}

async fn restore_grant(tenant: Tenant<'_>, g: &Grant) -> Result<(), RemoteError> {
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
                .add_calendar_permission(&g.mailbox, address, &c.role)
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
