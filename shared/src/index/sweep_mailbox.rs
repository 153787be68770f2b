//! The sweep's reads of one mailbox: Full Access (Exchange) and the default calendar's
//! permissions (Graph), each entry with the trustee it names; a mailbox that cannot be read is
//! noted, not fatal. The calls they make are counted for the snapshot's summary.

use super::identities::{Identities, Place};
use crate::error::RemoteError;
use crate::model::{IndexedGrant, PermissionType, SweptMailbox, Trustee};
use crate::ports::{MailboxInfo, Tenant};
use crate::scan::calendar_grant;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::warn;

/// What one part of the sweep found: grants with the trustee each names.
type Found = SweptMailbox;

/// The calls a sweep asked for, per service (a paged listing counts once).
#[derive(Debug, Default)]
pub struct SweepCalls {
    exchange: AtomicU64,
    graph: AtomicU64,
}

impl SweepCalls {
    pub(super) fn exchange(&self) {
        self.exchange.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn graph(&self) {
        self.graph.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn counts(&self, lookups: u64) -> BTreeMap<String, u64> {
        BTreeMap::from([
            (
                "exchange".to_string(),
                self.exchange.load(Ordering::Relaxed) + lookups,
            ),
            ("graph".to_string(), self.graph.load(Ordering::Relaxed)),
        ])
    }
}

pub(super) fn entry(
    trustee: &Trustee,
    place: &Place,
    right: PermissionType,
    shown_as: &str,
    access_rights: Vec<String>,
) -> IndexedGrant {
    IndexedGrant {
        trustee_id: trustee.trustee_id.clone(),
        mailbox: place.address.clone(),
        mailbox_display_name: place.display_name.clone(),
        recipient_type: place.recipient_type.clone(),
        right,
        trustee_as_shown: shown_as.to_string(),
        access_rights,
        calendar: None,
        folder: None,
    }
}

pub(super) fn place_of(m: &MailboxInfo) -> Place {
    Place {
        address: m.address(),
        display_name: m.display_name.clone(),
        recipient_type: m.recipient_type_details.clone(),
    }
}

/// A mailbox that cannot be read is noted, not fatal; throttling outlasting the client's
/// retries and rejected credentials fail the sweep (to be run again).
pub(super) fn per_mailbox(
    m: &MailboxInfo,
    what: &str,
    read: Result<Found, RemoteError>,
) -> Result<Found, RemoteError> {
    match read {
        Err(e) if e.is_service_unavailable() || e.is_auth() => Err(e),
        Err(e) => {
            warn!(mailbox = %m.address(), error = %e, "{what} could not be read");
            Ok(Found {
                errors: vec![format!(
                    "{what} of {} could not be read: {}",
                    m.address(),
                    e.reason()
                )],
                ..Found::default()
            })
        }
        ok => ok,
    }
}

pub(super) async fn full_access(
    tenant: Tenant<'_>,
    ids: &Identities<'_>,
    calls: &SweepCalls,
    m: &MailboxInfo,
) -> Result<Found, RemoteError> {
    let read = async {
        calls.exchange();
        let entries = tenant
            .exchange
            .mailbox_permissions(&m.user_principal_name)
            .await?;
        let place = place_of(m);
        let mut found = Found::default();
        for e in entries {
            if !e.allows_full_access() || e.is_inherited {
                continue;
            }
            if let Some(t) = ids.trustee(&e.user).await? {
                // The owner's own entry is not a delegation.
                if t.upn.as_deref() == Some(&m.user_principal_name.to_ascii_lowercase()) {
                    continue;
                }
                let g = entry(
                    &t,
                    &place,
                    PermissionType::FullAccess,
                    &e.user,
                    vec!["FullAccess".into()],
                );
                found.grants.push((t, g));
            }
        }
        Ok(found)
    };
    per_mailbox(m, "Full Access", read.await)
}

pub(super) async fn calendar(
    tenant: Tenant<'_>,
    ids: &Identities<'_>,
    calls: &SweepCalls,
    m: &MailboxInfo,
) -> Result<Found, RemoteError> {
    let read = async {
        calls.graph();
        let permissions = tenant
            .directory
            .calendar_permissions(&m.user_principal_name)
            .await?;
        let place = place_of(m);
        let mut found = Found::default();
        for p in permissions {
            let Some(address) = p.email_address.as_deref() else {
                continue;
            };
            if !p.is_removable {
                continue;
            }
            if let Some(t) = ids.trustee(address).await? {
                let c = calendar_grant(&p, &m.user_principal_name);
                let mut g = entry(
                    &t,
                    &place,
                    PermissionType::Calendar,
                    address,
                    vec![c.access_level.clone()],
                );
                g.calendar = Some(c);
                found.grants.push((t, g));
            }
        }
        Ok(found)
    };
    per_mailbox(m, "calendar permissions", read.await)
}
