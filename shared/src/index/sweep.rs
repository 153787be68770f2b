//! The sweep: discovery without the user filter. Reads the mailbox list (Send on Behalf) and
//! the tenant-wide Send As listing, then every mailbox's Full Access (Exchange), every
//! calendar's permissions (Graph) and every folder's permissions (Exchange) at once, under the per-service budgets the HTTP layer learns; resolves
//! every trustee value once; returns the snapshot. With a journal, each mailbox read is kept
//! as it completes, and a sweep interrupted before its snapshot was stored is gone on with by
//! the next one (the mailboxes it had read are not read again).

use super::identities::Identities;
use super::sweep_folders::{folders, secondary_calendars, ByDisplayName};
use super::sweep_mailbox::{calendar, entry, full_access, place_of, SweepCalls};
use crate::error::RemoteError;
use crate::model::{
    OrgSettings, PermissionType, Snapshot, SnapshotSummary, SweepProgress, SweptMailbox, Trustee,
};
use crate::ports::{MailboxInfo, ProgressObserver, RecipientPermissionEntry, SweepJournal, Tenant};
use chrono::Utc;
use futures_util::stream::{self, StreamExt};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tracing::{info, info_span, warn, Instrument};

/// Mailboxes read at once; the HTTP layer holds real requests to the budget it learns.
const SWEEP_PARALLELISM: usize = 512;

/// What one part of the sweep found: grants with the trustee each names.
type Found = SweptMailbox;

/// An unfinished sweep that began longer ago than this is started again, not gone on with:
/// its reads would make the snapshot older than its readers expect.
const RESUME_WITHIN_HOURS: i64 = 24;

/// The company's unfinished sweep to go on with, if there is a recent one. A journal that
/// cannot be read only means starting again.
async fn resume_point(journal: &dyn SweepJournal, org: &OrgSettings) -> Option<SweepProgress> {
    match journal.unfinished_sweep(&org.company_id).await {
        Ok(Some(p)) if p.started_at > Utc::now() - chrono::Duration::hours(RESUME_WITHIN_HOURS) => {
            info!(sweep_id = %p.sweep_id, mailboxes_read = p.done.len(), "going on with an interrupted sweep");
            Some(p)
        }
        Ok(Some(p)) => {
            info!(sweep_id = %p.sweep_id, started_at = %p.started_at, "an interrupted sweep is too old to go on with; starting again");
            None
        }
        Ok(None) => None,
        Err(e) => {
            warn!(error = %e, "the sweep journal could not be read; starting again");
            None
        }
    }
}

/// Mailbox reads not yet journaled, written in batches as they complete.
struct JournalWriter<'a> {
    journal: Option<&'a dyn SweepJournal>,
    company_id: &'a str,
    sweep_id: &'a str,
    batch: usize,
    pending: std::sync::Mutex<Vec<(String, Found)>>,
}

impl JournalWriter<'_> {
    async fn add(&self, mailbox: String, read: &Found) {
        let Some(journal) = self.journal else { return };
        let full = {
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pending.push((mailbox, read.clone()));
            match pending.len() >= self.batch {
                true => std::mem::take(&mut *pending),
                false => return,
            }
        };
        // Losing a journal batch only means reading those mailboxes again after a crash.
        if let Err(e) = journal
            .save_sweep_reads(self.company_id, self.sweep_id, &full)
            .await
        {
            warn!(error = %e, mailboxes = full.len(), "sweep reads could not be journaled");
        }
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
    sweep_resumable(tenant, org, progress, learned, None).await
}

/// [`sweep`], journaling each mailbox read in `journal` and going on with the company's
/// unfinished sweep when there is a recent one (its id and start stay the snapshot's). The
/// caller ends the journal once the snapshot is stored.
pub async fn sweep_resumable(
    tenant: Tenant<'_>,
    org: &OrgSettings,
    progress: &dyn ProgressObserver,
    learned: &(dyn Fn() -> BTreeMap<String, usize> + Send + Sync),
    journal: Option<&dyn SweepJournal>,
) -> Result<Snapshot, RemoteError> {
    let resumed = match journal {
        Some(j) => resume_point(j, org).await,
        None => None,
    };
    let is_resumed = resumed.is_some();
    let SweepProgress {
        sweep_id: snapshot_id,
        started_at: taken_at,
        done,
    } = resumed.unwrap_or_else(|| SweepProgress {
        sweep_id: format!(
            "{}-{}",
            Utc::now().format("%Y%m%dT%H%M%SZ"),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ),
        started_at: Utc::now(),
        done: BTreeMap::new(),
    });
    if let (Some(j), false) = (journal, is_resumed) {
        if let Err(e) = j.begin_sweep(&org.company_id, &snapshot_id, taken_at).await {
            warn!(error = %e, "the sweep journal could not be begun; this sweep cannot be resumed");
        }
    }
    let span = info_span!("sweep", company_id = %org.company_id, snapshot_id = %snapshot_id);
    async {
        let started = Instant::now();
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
        let names = ByDisplayName::new(&mailboxes);
        let scanned: Vec<&MailboxInfo> =
            mailboxes.iter().filter(|m| m.holds_delegations()).collect();
        let (from_journal, to_read): (Vec<&MailboxInfo>, Vec<&MailboxInfo>) = scanned
            .iter()
            .partition(|m| done.contains_key(&m.address()));
        let total = scanned.len() as u64;
        let read_count = AtomicU64::new(from_journal.len() as u64);
        progress.discovery(from_journal.len() as u64, total);
        let writer = JournalWriter {
            journal,
            company_id: &org.company_id,
            sweep_id: &snapshot_id,
            batch: (to_read.len() / 100).clamp(1, 100),
            pending: std::sync::Mutex::new(Vec::new()),
        };
        let per_mailbox = stream::iter(to_read.iter().map(|m| {
            let (ids, names, calls, read_count, writer) =
                (&ids, &names, &calls, &read_count, &writer);
            async move {
                let (fa, cal, secondary, folder) = tokio::join!(
                    full_access(tenant, ids, calls, m),
                    calendar(tenant, ids, calls, m),
                    secondary_calendars(tenant, ids, calls, m),
                    folders(tenant, ids, names, calls, m)
                );
                progress.discovery(read_count.fetch_add(1, Ordering::Relaxed) + 1, total);
                let mut found = fa?;
                found.merge(cal?);
                found.merge(secondary?);
                found.merge(folder?);
                writer.add(m.address(), &found).await;
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
        let resumed_mailboxes = from_journal.len() as u64;
        for m in from_journal {
            if let Some(read) = done.get(&m.address()) {
                found.merge(read.clone());
            }
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
        grants.sort_by_cached_key(|g| {
            (
                g.mailbox.clone(),
                g.right,
                g.to_grant("").place(),
                g.trustee_id.clone(),
            )
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
            resumed_mailboxes,
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
