//! The sweep: discovery without the user filter. Reads the mailbox list (Send on Behalf) and
//! the tenant-wide Send As listing, then every mailbox's Full Access (Exchange) and calendar
//! permissions (Graph) at once, under the per-service budgets the HTTP layer learns; resolves
//! every trustee value once; returns the snapshot.

use super::identities::{Identities, Place};
use crate::error::RemoteError;
use crate::model::{IndexedGrant, OrgSettings, PermissionType, Snapshot, SnapshotSummary, Trustee};
use crate::ports::{MailboxInfo, ProgressObserver, RecipientPermissionEntry, Tenant};
use crate::scan::calendar_grant;
use chrono::Utc;
use futures_util::stream::{self, StreamExt};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tracing::{info, info_span, warn, Instrument};

/// Mailboxes read at once; the HTTP layer holds real requests to the budget it learns.
const SWEEP_PARALLELISM: usize = 512;

/// The calls a sweep asked for, per service (a paged listing counts once).
#[derive(Debug, Default)]
pub struct SweepCalls {
    exchange: AtomicU64,
    graph: AtomicU64,
}

impl SweepCalls {
    fn exchange(&self) {
        self.exchange.fetch_add(1, Ordering::Relaxed);
    }
    fn graph(&self) {
        self.graph.fetch_add(1, Ordering::Relaxed);
    }
    fn counts(&self, lookups: u64) -> BTreeMap<String, u64> {
        BTreeMap::from([
            (
                "exchange".to_string(),
                self.exchange.load(Ordering::Relaxed) + lookups,
            ),
            ("graph".to_string(), self.graph.load(Ordering::Relaxed)),
        ])
    }
}

/// What one part of the sweep found: grants with the trustee each names.
#[derive(Default)]
struct Found {
    grants: Vec<(Trustee, IndexedGrant)>,
    errors: Vec<String>,
}

impl Found {
    fn merge(&mut self, other: Found) {
        self.grants.extend(other.grants);
        self.errors.extend(other.errors);
    }
}

fn entry(
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
    }
}

fn place_of(m: &MailboxInfo) -> Place {
    Place {
        address: m.address(),
        display_name: m.display_name.clone(),
        recipient_type: m.recipient_type_details.clone(),
    }
}

/// Reads the whole tenant of `org` into a snapshot. `learned` tells the in-flight limits the
/// HTTP layer learned, per service, once the reads are done.
pub async fn sweep(
    tenant: Tenant<'_>,
    org: &OrgSettings,
    progress: &dyn ProgressObserver,
    learned: &(dyn Fn() -> BTreeMap<String, usize> + Send + Sync),
) -> Result<Snapshot, RemoteError> {
    let snapshot_id = format!(
        "{}-{}",
        Utc::now().format("%Y%m%dT%H%M%SZ"),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let span = info_span!("sweep", company_id = %org.company_id, snapshot_id = %snapshot_id);
    async {
        let started = Instant::now();
        let taken_at = Utc::now();
        let calls = SweepCalls::default();
        for _ in 0..3 {
            calls.exchange();
        }
        let (mailboxes, send_as, users) = tokio::join!(
            tenant.exchange.mailboxes(),
            tenant.exchange.send_as_entries(),
            tenant.exchange.users()
        );
        let mailboxes = mailboxes?;
        let mut listing_errors = Vec::new();
        let users = match users {
            Ok(users) => users,
            Err(e) if e.is_transient() || e.is_auth() => return Err(e),
            Err(e) => {
                listing_errors.push(format!(
                    "the user list could not be read (SIDs and DOMAIN\\sam values stay unresolved): {}",
                    e.reason()
                ));
                Vec::new()
            }
        };
        let ids = Identities::new(&mailboxes, &users, tenant.exchange);
        let scanned: Vec<&MailboxInfo> =
            mailboxes.iter().filter(|m| m.holds_delegations()).collect();
        let total = scanned.len() as u64;
        let done = AtomicU64::new(0);
        progress.discovery(0, total);
        let per_mailbox = stream::iter(scanned.iter().map(|m| {
            let (ids, calls, done) = (&ids, &calls, &done);
            async move {
                let (fa, cal) = tokio::join!(
                    full_access(tenant, ids, calls, m),
                    calendar(tenant, ids, calls, m)
                );
                progress.discovery(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                let mut found = fa?;
                found.merge(cal?);
                Ok::<_, RemoteError>(found)
            }
        }))
        .buffer_unordered(SWEEP_PARALLELISM)
        .collect::<Vec<_>>();
        let tenant_wide = async {
            let mut found = send_as_grants(&ids, send_as).await?;
            found.merge(send_on_behalf(&ids, &mailboxes).await?);
            Ok::<_, RemoteError>(found)
        };
        let (per_mailbox, tenant_wide) = tokio::join!(per_mailbox, tenant_wide);
        let mut found = tenant_wide?;
        found.errors.extend(listing_errors);
        for part in per_mailbox {
            found.merge(part?);
        }
        let mut trustees: BTreeMap<String, Trustee> = BTreeMap::new();
        let mut grants = Vec::with_capacity(found.grants.len());
        for (t, g) in found.grants {
            match trustees.get_mut(&t.trustee_id) {
                Some(known) => {
                    for v in t.shown_as {
                        if !known.shown_as.iter().any(|s| s.eq_ignore_ascii_case(&v)) {
                            known.shown_as.push(v);
                        }
                    }
                }
                None => {
                    trustees.insert(t.trustee_id.clone(), t);
                }
            }
            grants.push(g);
        }
        grants.sort_by(|a, b| {
            (&a.mailbox, a.right, &a.trustee_id).cmp(&(&b.mailbox, b.right, &b.trustee_id))
        });
        grants.dedup_by(|a, b| a.same_entry(b));
        found.errors.sort();
        found.errors.dedup();
        let lookups = ids.lookups.load(Ordering::Relaxed);
        let summary = SnapshotSummary {
            snapshot_id: snapshot_id.clone(),
            company_id: org.company_id.clone(),
            tenant_id: org.tenant_id.clone(),
            taken_at,
            duration_ms: started.elapsed().as_millis() as u64,
            mailboxes: mailboxes.len() as u64,
            trustees: trustees.len() as u64,
            grants: grants.len() as u64,
            calls: calls.counts(lookups),
            limits: learned(),
            errors: found.errors,
        };
        info!(
            mailboxes = summary.mailboxes,
            grants = summary.grants,
            trustees = summary.trustees,
            errors = summary.errors.len(),
            ms = summary.duration_ms,
            "sweep done"
        );
        Ok(Snapshot {
            summary,
            trustees: trustees.into_values().collect(),
            grants,
        })
    }
    .instrument(span)
    .await
}

/// A mailbox that cannot be read is noted, not fatal; throttling outlasting the client's
/// retries and rejected credentials fail the sweep (to be run again).
fn per_mailbox(
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

async fn full_access(
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

async fn calendar(
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

/// Values resolved at once in the tenant-wide parts (each asked of Exchange once).
const RESOLVE_PARALLELISM: usize = 64;

async fn send_as_grants(
    ids: &Identities<'_>,
    listing: Result<Vec<RecipientPermissionEntry>, RemoteError>,
) -> Result<Found, RemoteError> {
    let listing = match listing {
        Ok(l) => l,
        Err(e) if e.is_transient() || e.is_auth() => return Err(e),
        Err(e) => {
            return Ok(Found {
                errors: vec![format!(
                    "the Send As listing could not be read: {}",
                    e.reason()
                )],
                ..Found::default()
            })
        }
    };
    let parts = stream::iter(
        listing
            .into_iter()
            .filter(|e| e.allows_send_as() && !e.is_inherited),
    )
    .map(|e| async move {
        let mut found = Found::default();
        let Some(t) = ids.trustee(&e.trustee).await? else {
            return Ok(found);
        };
        match ids.place(&e.identity).await? {
            Some(place) => {
                let g = entry(
                    &t,
                    &place,
                    PermissionType::SendAs,
                    &e.trustee,
                    vec!["SendAs".into()],
                );
                found.grants.push((t, g));
            }
            None => found.errors.push(format!(
                "a Send As entry on '{}' names no known recipient; not indexed",
                e.identity
            )),
        }
        Ok::<_, RemoteError>(found)
    })
    .buffer_unordered(RESOLVE_PARALLELISM)
    .collect::<Vec<_>>()
    .await;
    let mut found = Found::default();
    for part in parts {
        found.merge(part?);
    }
    Ok(found)
}

async fn send_on_behalf(
    ids: &Identities<'_>,
    mailboxes: &[MailboxInfo],
) -> Result<Found, RemoteError> {
    let values = mailboxes
        .iter()
        .flat_map(|m| m.grant_send_on_behalf_to.iter().map(move |v| (m, v)));
    let parts = stream::iter(values)
        .map(|(m, v)| async move {
            let mut found = Found::default();
            if let Some(t) = ids.trustee(v).await? {
                let g = entry(
                    &t,
                    &place_of(m),
                    PermissionType::SendOnBehalf,
                    v,
                    vec!["SendOnBehalf".into()],
                );
                found.grants.push((t, g));
            }
            Ok::<_, RemoteError>(found)
        })
        .buffer_unordered(RESOLVE_PARALLELISM)
        .collect::<Vec<_>>()
        .await;
    let mut found = Found::default();
    for part in parts {
        found.merge(part?);
    }
    Ok(found)
}
