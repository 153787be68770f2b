//! The per-mailbox reads: Full Access (Exchange) and calendar permissions (Graph).

use super::census::Census;
use super::trustee::{is_system_principal, Principal, Resolver, Target};
use super::{grant, indirect, Findings};
use crate::error::RemoteError;
use crate::model::{CalendarGrant, PermissionType};
use crate::ports::{CalendarPermission, Directory, Exchange, MailboxInfo};

fn target(m: &MailboxInfo) -> Target {
    Target {
        address: m.address(),
        display_name: m.display_name.clone(),
        recipient_type: m.recipient_type_details.clone(),
    }
}

/// One mailbox that cannot be read is reported, not fatal: the others are still scanned.
/// Throttling and timeouts outlasting the client's retries, and rejected credentials, are not
/// about the mailbox: they fail the whole scan, to be retried.
fn per_mailbox(
    m: &MailboxInfo,
    right: PermissionType,
    read: Result<Findings, RemoteError>,
) -> Result<Findings, RemoteError> {
    match read {
        Err(e) if e.is_service_unavailable() || e.is_auth() => Err(e),
        Err(e) => {
            let mut found =
                Findings::error(format!("{} could not be read: {}", m.address(), e.reason()));
            found.unreadable.push((m.address(), right));
            Ok(found)
        }
        ok => ok,
    }
}

pub(super) async fn full_access(
    census: &Census,
    resolver: &Resolver<'_>,
    exchange: &dyn Exchange,
    m: &MailboxInfo,
) -> Result<Findings, RemoteError> {
    let read = async {
        let entries = exchange.mailbox_permissions(&m.user_principal_name).await?;
        let target = target(m);
        let mut found = Findings::default();
        for e in entries {
            if !e.allows_full_access() || is_system_principal(&e.user) {
                continue;
            }
            match (resolver.principal(&e.user).await?, e.is_inherited) {
                (Principal::User, false) => found.grants.push(grant(
                    census,
                    &target,
                    PermissionType::FullAccess,
                    &e.user,
                    vec!["FullAccess".into()],
                )),
                (Principal::User, true) => found.indirect.push(indirect(
                    &target,
                    PermissionType::FullAccess,
                    "inheritance".into(),
                )),
                (Principal::Group(g), _) => found.indirect.push(indirect(
                    &target,
                    PermissionType::FullAccess,
                    format!("group {g}"),
                )),
                (Principal::Other, _) => {}
            }
        }
        Ok(found)
    };
    per_mailbox(m, PermissionType::FullAccess, read.await)
}

/// The report's access level for a Graph calendar role, and whether it is a delegate.
pub fn calendar_access_level(role: &str) -> (String, bool) {
    let (level, delegate) = match role {
        "write" => ("Editor", false),
        "read" => ("Reviewer", false),
        "limitedRead" => ("LimitedDetails", false),
        "freeBusyRead" => ("AvailabilityOnly", false),
        "delegateWithoutPrivateEventAccess" | "delegateWithPrivateEventAccess" => ("Editor", true),
        "none" => ("None", false),
        "custom" => ("Custom", false),
        other => (other, false),
    };
    (level.to_string(), delegate)
}

/// The calendar grant a Graph permission on the mailbox of `mailbox_upn` is.
pub(crate) fn calendar_grant(p: &CalendarPermission, mailbox_upn: &str) -> CalendarGrant {
    let (access_level, delegate) = calendar_access_level(&p.role);
    CalendarGrant {
        permission_id: p.id.clone(),
        role: p.role.clone(),
        access_level,
        delegate,
        mailbox_upn: Some(mailbox_upn.to_string()),
    }
}

/// Calendar permissions come from Graph only: locale-free, matched by address.
pub(super) async fn calendar(
    census: &Census,
    directory: &dyn Directory,
    m: &MailboxInfo,
) -> Result<Findings, RemoteError> {
    let read = async {
        let permissions = directory
            .calendar_permissions(&m.user_principal_name)
            .await?;
        let target = target(m);
        let mut found = Findings::default();
        for p in permissions {
            let Some(address) = p.email_address.as_deref() else {
                continue;
            };
            if !p.is_removable || !census.user.is_user(address) {
                continue;
            }
            let c = calendar_grant(&p, &m.user_principal_name);
            let mut g = grant(
                census,
                &target,
                PermissionType::Calendar,
                address,
                vec![c.access_level.clone()],
            );
            g.calendar = Some(c);
            found.grants.push(g);
        }
        Ok(found)
    };
    per_mailbox(m, PermissionType::Calendar, read.await)
}
