//! The per-mailbox reads: Full Access (Exchange), every calendar's permissions (Graph) and
//! folder permissions (Exchange, see `folders.rs`).

use super::census::Census;
use super::trustee::{is_system_principal, Principal, Resolver, Target};
use super::{grant, indirect, Findings};
use crate::error::RemoteError;
use crate::model::{CalendarGrant, PermissionType};
use crate::ports::{CalendarInfo, CalendarPermission, Exchange, MailboxInfo, Tenant};

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
        calendar_id: None,
        calendar_name: None,
    }
}

/// The grant a Graph permission on a secondary calendar is.
pub(crate) fn secondary_calendar_grant(
    p: &CalendarPermission,
    mailbox_upn: &str,
    calendar: &CalendarInfo,
) -> CalendarGrant {
    CalendarGrant {
        calendar_id: Some(calendar.id.clone()),
        calendar_name: Some(calendar.name.clone()),
        ..calendar_grant(p, mailbox_upn)
    }
}

/// Calendar permissions come from Graph only: locale-free, matched by address. The default
/// calendar's (`/calendar`), and every other calendar's (`/calendars`, then each one's
/// `calendarPermissions`).
pub(super) async fn calendar(
    census: &Census,
    tenant: Tenant<'_>,
    m: &MailboxInfo,
) -> Result<Findings, RemoteError> {
    let read = async {
        let upn = &m.user_principal_name;
        let (default, calendars) = tokio::join!(
            tenant.directory.calendar_permissions(upn),
            tenant.calendars.calendars(upn)
        );
        let target = target(m);
        let mut found = Findings::default();
        let held = |permissions: Vec<CalendarPermission>| {
            permissions.into_iter().filter_map(|p| {
                let address = p.email_address.clone()?;
                (p.is_removable && census.user.is_user(&address)).then_some((address, p))
            })
        };
        let mut add = |address: &str, c: CalendarGrant| {
            let mut g = grant(
                census,
                &target,
                PermissionType::Calendar,
                address,
                vec![c.access_level.clone()],
            );
            g.calendar = Some(c);
            found.grants.push(g);
        };
        for (address, p) in held(default?) {
            add(&address, calendar_grant(&p, upn));
        }
        // A mailbox Graph lists no calendars for has only the default one.
        let calendars = match calendars {
            Err(e) if e.is_not_found() => Vec::new(),
            other => other?,
        };
        let secondary: Vec<CalendarInfo> =
            calendars.into_iter().filter(|c| !c.is_default).collect();
        let reads = futures_util::future::join_all(
            secondary
                .iter()
                .map(|c| tenant.calendars.permissions_of(upn, &c.id)),
        )
        .await;
        for (calendar, permissions) in secondary.iter().zip(reads) {
            let permissions = match permissions {
                Ok(permissions) => permissions,
                // Deleted since the listing: nothing on it.
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            for (address, p) in held(permissions) {
                add(&address, secondary_calendar_grant(&p, upn, calendar));
            }
        }
        Ok(found)
    };
    per_mailbox(m, PermissionType::Calendar, read.await)
}

/// Folder permissions: the user's entries on the folders the census's reach chooses.
pub(super) async fn folders(
    census: &Census,
    tenant: Tenant<'_>,
    m: &MailboxInfo,
) -> Result<Findings, RemoteError> {
    match super::folders::read(census, tenant.folders, m, &target(m)).await {
        // The app may not read folder permissions in this tenant: said once, not per mailbox.
        Err(e) if e.is_forbidden() => Ok(Findings {
            not_checked: vec![crate::model::NotChecked {
                permission_type: PermissionType::Folder,
                reason: crate::model::NotCheckedReason::CannotCheck,
                detail: Some(format!(
                    "the app may not read folder permissions ({}): give it the Exchange role that allows Get-MailboxFolderPermission",
                    e.reason()
                )),
            }],
            unreadable: vec![(m.address(), PermissionType::Folder)],
            ..Findings::default()
        }),
        read => per_mailbox(m, PermissionType::Folder, read),
    }
}
