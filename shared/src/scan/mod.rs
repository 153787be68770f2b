//! Reading the tenant for one user's grants: what discovery plans from and what verification
//! re-reads. Each part (the tenant-wide Send As and Send on Behalf lookups, each mailbox's Full
//! Access, each mailbox's calendar) returns its own [`Findings`]; the scan merges them.

mod census;
mod mailbox;
mod send_as;
mod send_on_behalf;
mod trustee;

pub(crate) use census::Census;

use crate::error::RemoteError;
use crate::model::{FailureCode, Grant, IndirectAccess, NotChecked, PermissionType, RunFailure};
use crate::steps::{ProgressObserver, Tenant};
use futures_util::stream::{self, StreamExt};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use trustee::{Resolver, Target};

/// Per-mailbox reads in flight at once, per service. The HTTP layer holds real requests to
/// the budget it learns per tenant and service; this only bounds how many futures wait for it.
const SCAN_PARALLELISM: usize = 512;

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
    ScanError::Rejected(RunFailure {
        code,
        field: Some(field.to_string()),
        message,
    })
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
}

impl Findings {
    pub fn error(error: String) -> Findings {
        tracing::warn!(%error, "scan could not read or match part of the tenant");
        Findings {
            errors: vec![error],
            ..Findings::default()
        }
    }

    fn merge(&mut self, other: Findings) {
        self.grants.extend(other.grants);
        self.indirect.extend(other.indirect);
        self.errors.extend(other.errors);
        self.not_checked.extend(other.not_checked);
    }

    /// Sorted and without duplicates, so that a redelivered discovery plans the same items.
    fn settle(mut self) -> Findings {
        self.errors.sort();
        self.errors.dedup();
        self.grants
            .sort_by(|a, b| (a.right, &a.mailbox).cmp(&(b.right, &b.mailbox)));
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
    }
}

fn indirect(target: &Target, right: PermissionType, via: String) -> IndirectAccess {
    IndirectAccess {
        mailbox: target.address.clone(),
        permission: right.report_name().to_string(),
        via,
    }
}

/// Reads every grant of the census's user within `scope`. `only_mailboxes` narrows the
/// per-mailbox reads (Full Access, calendar) to those addresses: verification re-reads just
/// the mailboxes it touched. The Send As and Send on Behalf lookups cover the whole tenant
/// either way, so a grant that appeared elsewhere meanwhile is still seen.
pub(crate) async fn scan(
    tenant: Tenant<'_>,
    census: &Census,
    scope: &[PermissionType],
    only_mailboxes: Option<&BTreeSet<String>>,
    progress: &dyn ProgressObserver,
) -> Result<Findings, RemoteError> {
    let resolver = Resolver::new(census, tenant.exchange);
    let per_mailbox: Vec<_> = census
        .scanned_mailboxes()
        .into_iter()
        .filter(|m| only_mailboxes.is_none_or(|only| only.contains(&m.address())))
        .collect();
    let full_access = scope.contains(&PermissionType::FullAccess);
    let calendar = scope.contains(&PermissionType::Calendar);
    let total = per_mailbox.len() as u64 * (u64::from(full_access) + u64::from(calendar));
    let done = AtomicU64::new(0);
    progress.discovery(0, total);
    let tick = || progress.discovery(done.fetch_add(1, Ordering::Relaxed) + 1, total);

    let send_as = async {
        if scope.contains(&PermissionType::SendAs) {
            send_as::find(census, &resolver, tenant.exchange).await
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
    // Exchange and Graph have budgets of their own: each service's reads go as fast as its
    // budget allows, neither waits for the other.
    let exchange_reads: Vec<_> = per_mailbox
        .iter()
        .filter(|_| full_access)
        .map(|m| async {
            let found = mailbox::full_access(census, &resolver, tenant.exchange, m).await;
            tick();
            found
        })
        .collect();
    let graph_reads: Vec<_> = per_mailbox
        .iter()
        .filter(|_| calendar)
        .map(|m| async {
            let found = mailbox::calendar(census, tenant.directory, m).await;
            tick();
            found
        })
        .collect();
    let exchange_reads = stream::iter(exchange_reads)
        .buffer_unordered(SCAN_PARALLELISM)
        .collect::<Vec<Result<Findings, RemoteError>>>();
    let graph_reads = stream::iter(graph_reads)
        .buffer_unordered(SCAN_PARALLELISM)
        .collect::<Vec<Result<Findings, RemoteError>>>();
    let (send_as, send_on_behalf, exchange_reads, graph_reads) =
        tokio::join!(send_as, send_on_behalf, exchange_reads, graph_reads);

    let mut findings = Findings::default();
    for part in [send_as, send_on_behalf]
        .into_iter()
        .chain(exchange_reads)
        .chain(graph_reads)
    {
        findings.merge(part?);
    }
    Ok(findings.settle())
}
