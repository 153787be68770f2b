//! Reading the tenant for one user's grants: what discovery plans from and what verification
//! re-reads. Each part (the tenant-wide Send As and Send on Behalf lookups, each mailbox's Full
//! Access, each mailbox's calendar) returns its own [`Findings`]; the scan merges them.

mod census;
mod early;
mod folder_reach;
mod folders;
mod mailbox;
mod send_as;
mod send_on_behalf;
mod trustee;

pub(crate) use census::{recipient_address, unusable_user, Census};
pub(crate) use folder_reach::{snapshot_folders, FolderReach, SnapshotFolders};
pub(crate) use folders::holds_rights;
pub(crate) use mailbox::calendar_grant;
pub(crate) use trustee::is_system_principal;

use crate::error::RemoteError;
use crate::model::{FailureCode, Grant, IndirectAccess, NotChecked, PermissionType, RunFailure};
use crate::ports::{MailboxInfo, ProgressObserver, RecipientPermissionEntry, Tenant};
use crate::steps::Deadline;
use futures_util::stream::{self, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use trustee::{Resolver, Target};

/// Per-mailbox reads in flight at once, per service. The HTTP layer holds real requests to
/// the budget it learns per tenant and service; this only bounds how many futures wait for it.
/// A whole shard: a mailbox started holds its place until both services read it, so a smaller
/// bound lets the slower service pace the other (Exchange idle while Graph catches up).
const SCAN_PARALLELISM: usize = crate::messages::MAX_SHARD_MAILBOXES;

/// Why a scan could not produce findings.
pub(crate) enum ScanError {
    /// The request cannot be carried out in this tenant (unknown user or mailbox).
    Rejected(RunFailure),
    Remote(RemoteError),
}

impl From<RemoteError> for ScanError {
    fn from(e: RemoteError) -> Self {
        ScanError::Remote(e)
    }
}

pub(crate) fn rejected(code: FailureCode, field: &str, message: String) -> ScanError {
    ScanError::Rejected(RunFailure::new(code, Some(field), message))
}

/// What one part of a scan found.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    /// Direct grants.
    pub grants: Vec<Grant>,
    pub indirect: Vec<IndirectAccess>,
    /// What could not be read or matched: reported, and the run cannot succeed.
    pub errors: Vec<String>,
    pub not_checked: Vec<NotChecked>,
    /// Mailboxes whose permissions of a type could not be read (those grants are unproven).
    pub unreadable: Vec<(String, PermissionType)>,
}

impl Findings {
    pub fn error(error: String) -> Findings {
        tracing::warn!(%error, "scan could not read or match part of the tenant");
        Findings {
            errors: vec![error],
            ..Findings::default()
        }
    }

    pub fn merge(&mut self, other: Findings) {
        self.grants.extend(other.grants);
        self.indirect.extend(other.indirect);
        self.errors.extend(other.errors);
        self.not_checked.extend(other.not_checked);
        self.unreadable.extend(other.unreadable);
    }

    /// Sorted and without duplicates, so that a redelivered discovery plans the same items.
    pub fn settle(mut self) -> Findings {
        self.errors.sort();
        self.errors.dedup();
        self.grants.sort_by(|a, b| {
            (a.right, &a.mailbox, a.place()).cmp(&(b.right, &b.mailbox, b.place()))
        });
        self.grants.dedup_by(|a, b| a.key() == b.key());
        self.indirect.sort_by(|a, b| {
            (&a.mailbox, &a.permission, &a.via).cmp(&(&b.mailbox, &b.permission, &b.via))
        });
        self.indirect.dedup();
        self.not_checked
            .sort_by_key(|n| (n.permission_type, n.reason as u8));
        self.not_checked.dedup();
        self
    }
}

/// A direct grant of `right` on `target`, held by the census's user.
fn grant(
    census: &Census,
    target: &Target,
    right: PermissionType,
    shown_as: &str,
    access_rights: Vec<String>,
) -> Grant {
    let upn = &census.user.upn;
    Grant {
        mailbox: target.address.clone(),
        mailbox_display_name: target.display_name.clone(),
        shared: target.is_shared(),
        right,
        trustee: upn.clone(),
        trustee_as_shown: (!shown_as.eq_ignore_ascii_case(upn) && !shown_as.is_empty())
            .then(|| shown_as.to_string()),
        recipient_type: Some(target.recipient_type.clone()).filter(|t| !t.is_empty()),
        access_rights,
        calendar: None,
        folder: None,
    }
}

fn indirect(target: &Target, right: PermissionType, via: String) -> IndirectAccess {
    IndirectAccess {
        mailbox: target.address.clone(),
        permission: right.report_name().to_string(),
        via,
    }
}

/// The tenant-wide Send As listing, read before the census was ready (discovery starts it at
/// once), or `None` to read it now.
pub(crate) type SendAsListing = Option<Result<Vec<RecipientPermissionEntry>, RemoteError>>;

/// The tenant-wide part of a scan: Send As (every recipient) and Send on Behalf.
pub(crate) async fn tenant_wide(
    tenant: Tenant<'_>,
    census: &Census,
    scope: &[PermissionType],
    send_as_listing: SendAsListing,
) -> Result<Findings, RemoteError> {
    let resolver = Resolver::new(census, tenant.exchange);
    let send_as = async {
        if scope.contains(&PermissionType::SendAs) {
            send_as::find(census, &resolver, tenant.exchange, send_as_listing).await
        } else {
            Ok(Findings::default())
        }
    };
    let send_on_behalf = async {
        if scope.contains(&PermissionType::SendOnBehalf) {
            send_on_behalf::find(census, tenant.exchange).await
        } else {
            Ok(Findings::default())
        }
    };
    let (send_as, send_on_behalf) = tokio::join!(send_as, send_on_behalf);
    let mut findings = send_as?;
    findings.merge(send_on_behalf?);
    Ok(findings.settle())
}

/// What the per-mailbox reads of one mailbox found, and the types the deadline left unread.
#[derive(Debug, Default)]
pub(crate) struct MailboxRead {
    pub found: Findings,
    /// Types not read because the deadline came first: read them in a continuation.
    pub unread: Vec<PermissionType>,
}

impl MailboxRead {
    /// Whether every type asked for was read.
    pub fn complete(&self) -> bool {
        self.unread.is_empty()
    }
}

/// The per-mailbox part of a scan (Full Access and folders from Exchange, every calendar
/// from Graph, all at once) of each mailbox for the types given with it, in their order. A type whose calls' turn
/// comes after `deadline` nears is left unread (and what the other type read is kept), for a
/// continuation.
pub(crate) async fn per_mailbox(
    tenant: Tenant<'_>,
    census: &Census,
    mailboxes: &[(&MailboxInfo, &[PermissionType])],
    progress: &dyn ProgressObserver,
    deadline: Deadline,
) -> Result<Vec<MailboxRead>, RemoteError> {
    let resolver = Resolver::new(census, tenant.exchange);
    let total = mailboxes.len() as u64;
    let done = AtomicU64::new(0);
    let (resolver, done) = (&resolver, &done);
    if mailboxes.iter().any(|(_, rights)| !rights.is_empty()) {
        progress.discovery(0, total);
    }
    let reads: Vec<_> = mailboxes
        .iter()
        .enumerate()
        .map(|(position, &(m, rights))| async move {
            if deadline.near() {
                return (
                    position,
                    Ok(MailboxRead {
                        found: Findings::default(),
                        unread: rights.to_vec(),
                    }),
                );
            }
            let wants = |right| rights.contains(&right);
            let fa = async {
                if !wants(PermissionType::FullAccess) {
                    return Ok(Some(Findings::default()));
                }
                unless_stopped(
                    deadline,
                    mailbox::full_access(census, resolver, tenant.exchange, m),
                )
                .await
            };
            let cal = async {
                if !wants(PermissionType::Calendar) {
                    return Ok(Some(Findings::default()));
                }
                unless_stopped(deadline, mailbox::calendar(census, tenant, m)).await
            };
            let folder = async {
                if !wants(PermissionType::Folder) {
                    return Ok(Some(Findings::default()));
                }
                unless_stopped(deadline, mailbox::folders(census, tenant, m)).await
            };
            let (fa, cal, folder) = tokio::join!(fa, cal, folder);
            let read = (|| {
                let mut out = MailboxRead::default();
                for (right, part) in [
                    (PermissionType::FullAccess, fa?),
                    (PermissionType::Calendar, cal?),
                    (PermissionType::Folder, folder?),
                ] {
                    match part {
                        Some(found) => out.found.merge(found),
                        None => out.unread.push(right),
                    }
                }
                if out.complete() {
                    progress.discovery(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                }
                Ok::<_, RemoteError>(out)
            })();
            (position, read)
        })
        .collect();
    // As they finish, not in order: one read waiting out a `Retry-After` must not hold back
    // the reads queued behind it. Put back in order after: a mailbox's position fixes the ids
    // of its items.
    let mut reads: Vec<(usize, Result<MailboxRead, RemoteError>)> = stream::iter(reads)
        .buffer_unordered(SCAN_PARALLELISM)
        .collect()
        .await;
    reads.sort_by_key(|(position, _)| *position);
    reads.into_iter().map(|(_, read)| read).collect()
}

/// Runs one read within `deadline`: started is not the same as running, every read queues for
/// the tenant's budget, and one whose turn comes after the deadline nears is stopped (`None`).
async fn unless_stopped(
    deadline: Deadline,
    read: impl std::future::Future<Output = Result<Findings, RemoteError>>,
) -> Result<Option<Findings>, RemoteError> {
    match deadline.bound(read).await {
        Err(e) if e.is_stopped() => Ok(None),
        found => found.map(Some),
    }
}
