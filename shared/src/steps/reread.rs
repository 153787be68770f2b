//! Verification's live re-read of the tenant for the run's user — of a revocation (what is
//! left) and of a restore of a run (what is back). It goes in chunks (the tenant-wide lookups,
//! then the touched mailboxes a chunk at a time), each saved as it is done: a verification
//! that nears its deadline hands the run on to a continuation, which goes on where it stopped.

use super::{Deadline, Delivery, NoProgress, RunContext, Tenant};
use crate::error::StepError;
use crate::model::{
    Grant, ItemId, ItemStatus, NotChecked, NotCheckedReason, OrgSettings, PermissionType, PlanItem,
    ResolvedUser, Run, RunKind, Verification,
};
use crate::ports::{MailboxInfo, RereadChunk, RunStore, ScanFacts};
use crate::scan::{per_mailbox, tenant_wide, Census, Findings, MailboxRead, ScanError};
use futures_util::stream::{FuturesUnordered, StreamExt};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use tracing::{info, warn};

/// Touched mailboxes re-read per saved chunk (a chunk cut short by the deadline still saves
/// what it read). Small enough that saving the chunks read when the deadline nears fits in
/// the step's margin on Lambda.
const REREAD_CHUNK: usize = 200;

/// What verification learned from the tenant: what it finds is what remains — never inferred
/// from the removal results.
pub(crate) struct Reread {
    pub verification: Verification,
    pub errors: Vec<String>,
    /// Types with a mailbox neither discovery nor the re-read could read: never cleared.
    pub unproven: Vec<NotChecked>,
    /// False when the tenant could not be read: `verification` then counts every grant in
    /// scope as remaining, unproven.
    pub read: bool,
    /// The items a backup restore's re-read shows back, each read by its own trustee (a
    /// restore of a run tells them from `verification`: it had one user).
    pub back: Option<BTreeSet<ItemId>>,
}

/// A dry run removes nothing: its pending items are what it would remove.
pub(crate) async fn mark_would_remove(
    cx: RunContext<'_>,
    items: &mut [PlanItem],
) -> Result<(), StepError> {
    if !cx.run.request.dry_run {
        return Ok(());
    }
    for item in items.iter_mut().filter(|i| i.status == ItemStatus::Pending) {
        item.status = ItemStatus::WouldRemove;
        cx.store
            .set_item_status(&cx.run.run_id, item.id, &item.status)
            .await?;
    }
    Ok(())
}

/// A removal that answered success but left the grant in place did not remove it: such items
/// fail. Only what the re-read actually saw counts: an unreadable tenant proves nothing either
/// way.
pub(crate) async fn fail_still_present(
    cx: RunContext<'_>,
    items: &mut [PlanItem],
    found: &Reread,
) -> Result<(), StepError> {
    if !found.read {
        return Ok(());
    }
    let still_there: BTreeSet<(&str, &str)> = found
        .verification
        .remaining
        .iter()
        .map(|r| (r.mailbox.as_str(), r.permission.as_str()))
        .collect();
    for item in items.iter_mut().filter(|i| i.status.is_removed()) {
        let key = (item.grant.mailbox.as_str(), item.grant.right.report_name());
        if still_there.contains(&key) {
            warn!(mailbox = %item.grant.mailbox, permission = %item.grant.right, "grant still present after a successful removal");
            item.status = ItemStatus::Failed {
                error: "the removal was acknowledged but the grant is still present on re-read"
                    .into(),
            };
            cx.store
                .set_item_status(&cx.run.run_id, item.id, &item.status)
                .await?;
        }
    }
    Ok(())
}

/// The re-read, resumed from its saved chunks; `None` when the deadline came first.
pub(crate) async fn reread(
    cx: RunContext<'_>,
    items: &[PlanItem],
    facts: &ScanFacts,
    delivery: &Delivery,
) -> Result<Option<Reread>, StepError> {
    let RunContext {
        store,
        tenant,
        org,
        run,
        ..
    } = cx;
    let in_scope = |g: &Grant| !g.shared || run.request.remove_from_shared;
    match read_remaining(store, tenant, org, run, items, &facts.unreadable, delivery).await {
        Ok(Some(Remaining {
            grants,
            errors,
            unreadable,
        })) => {
            let in_scope: Vec<Grant> = grants.into_iter().filter(|g| in_scope(g)).collect();
            // A mailbox discovery could not read that the re-read could not read either.
            let unread_twice = facts
                .unreadable
                .iter()
                .filter(|pair| unreadable.contains(pair));
            Ok(Some(
                Reread {
                    verification: Verification::from_found(&in_scope),
                    // What discovery already reported (an unreadable mailbox) is said once.
                    errors: errors
                        .into_iter()
                        .filter(|e| !facts.scan_errors.contains(e))
                        .map(|e| format!("verification: {e}"))
                        .collect(),
                    unproven: unproven(unread_twice, "in discovery or on re-read"),
                    read: true,
                    back: None,
                }
                .unproven_not_cleared(),
            ))
        }
        Ok(None) => Ok(None),
        Err(Reading::Step(e)) => Err(e),
        Err(Reading::Scan(ScanError::Remote(e))) if e.is_transient() => Err(e.into()),
        Err(Reading::Scan(failure)) => {
            let reason = match failure {
                ScanError::Remote(e) => e.to_string(),
                ScanError::Rejected(f) => f.message,
            };
            warn!(%reason, "verification could not re-read the tenant");
            // Unproven is not gone: everything that was in scope counts as remaining.
            let unverified: Vec<Grant> = items
                .iter()
                .map(|i| i.grant.clone())
                .filter(|g| in_scope(g))
                .collect();
            Ok(Some(
                Reread {
                    verification: Verification::from_found(&unverified),
                    errors: vec![format!(
                        "verification could not re-read the tenant: {reason}"
                    )],
                    unproven: unproven(
                        facts.unreadable.iter(),
                        "in discovery, and the tenant could not be re-read",
                    ),
                    read: false,
                    back: None,
                }
                .unproven_not_cleared(),
            ))
        }
    }
}

impl Reread {
    /// A type with a mailbox read by neither discovery nor the re-read is never "cleared".
    fn unproven_not_cleared(mut self) -> Reread {
        if !self.unproven.is_empty() {
            self.verification.all_permissions_cleared = false;
        }
        self
    }
}

/// The types of `unread` (mailbox, type) pairs, each unproven: in scope, but no read showed
/// whether the user still holds it there (`when`: which reads failed).
fn unproven<'a>(
    unread: impl Iterator<Item = &'a (String, PermissionType)>,
    when: &str,
) -> Vec<NotChecked> {
    let mut by_type: BTreeMap<PermissionType, Vec<&str>> = BTreeMap::new();
    for (mailbox, permission_type) in unread {
        by_type.entry(*permission_type).or_default().push(mailbox);
    }
    by_type
        .into_iter()
        .map(|(permission_type, mailboxes)| NotChecked {
            permission_type,
            reason: NotCheckedReason::CannotCheck,
            detail: Some(format!("{} could not be read {when}", mailboxes.join(", "))),
        })
        .collect()
}

/// What the re-read found: the user's direct grants still there, what it could not read or
/// match, and the (mailbox, type) pairs it could not read.
struct Remaining {
    grants: Vec<Grant>,
    errors: Vec<String>,
    unreadable: BTreeSet<(String, PermissionType)>,
}

enum Reading {
    Scan(ScanError),
    Step(StepError),
}

impl From<ScanError> for Reading {
    fn from(e: ScanError) -> Self {
        Reading::Scan(e)
    }
}

impl From<crate::error::RemoteError> for Reading {
    fn from(e: crate::error::RemoteError) -> Self {
        Reading::Scan(ScanError::Remote(e))
    }
}

impl From<crate::error::StoreError> for Reading {
    fn from(e: crate::error::StoreError) -> Self {
        Reading::Step(e.into())
    }
}

/// The user's direct grants still in the tenant, chunk by chunk: chunk 0 is the tenant-wide
/// reverse lookups, the others the touched mailboxes — those with a grant of the run, and
/// those discovery could not read (`unread_in_discovery`), which may hold one. Each chunk gets a second look (after
/// `tenant.recheck.delay`) at grants this run removed that still show, since Exchange may
/// answer from a replica that lags. `None` when the deadline came before the last chunk.
async fn read_remaining(
    store: &dyn RunStore,
    tenant: Tenant<'_>,
    org: &OrgSettings,
    run: &Run,
    items: &[PlanItem],
    unread_in_discovery: &[(String, PermissionType)],
    delivery: &Delivery,
) -> Result<Option<Remaining>, Reading> {
    let run_id = &run.run_id;
    let mut done: BTreeMap<u32, RereadChunk> = store
        .reread_chunks(run_id)
        .await?
        .into_iter()
        .map(|c| (c.chunk, c))
        .collect();
    let user = match &run.user {
        Some(user) => user.clone(),
        None => Census::discover(tenant, org, &run.request).await?.user,
    };
    let scope = run
        .request
        .effective_scope(&org.m365_permission_removal_scope);
    // The Send As listing does not wait for the mailbox list (it is read the same way in
    // discovery).
    let wide_read = done.contains_key(&0);
    let send_as_listing = async {
        match !wide_read && scope.contains(&PermissionType::SendAs) {
            true => Some(tenant.exchange.send_as_entries().await),
            false => None,
        }
    };
    let touched: BTreeSet<String> = items
        .iter()
        .filter(|i| i.grant.right.is_per_mailbox())
        .map(|i| i.grant.mailbox.clone())
        .chain(unread_in_discovery.iter().map(|(m, _)| m.clone()))
        .collect();
    // The touched mailboxes are re-read as the mailbox list's pages come in, not after the
    // last page: what the list does not show in scope is dropped below.
    let saved: BTreeSet<String> = done
        .values()
        .filter(|c| c.chunk != 0)
        .flat_map(|c| c.mailboxes.iter().cloned())
        .collect();
    let (pages, arriving) = tokio::sync::mpsc::unbounded_channel::<Vec<MailboxInfo>>();
    let census = {
        let (touched, user) = (&touched, &user);
        async move {
            let page = move |page: &[MailboxInfo]| {
                let wanted: Vec<MailboxInfo> = page
                    .iter()
                    .filter(|m| {
                        let address = m.address();
                        m.holds_delegations()
                            && !user.is_user(&address)
                            && touched.contains(&address)
                            && !saved.contains(&address)
                    })
                    .cloned()
                    .collect();
                if !wanted.is_empty() {
                    // The receiver lives until the list is read.
                    let _ = pages.send(wanted);
                }
            };
            Census::reread_by_page(tenant, org, user.clone(), &run.request, &page).await
        }
    };
    let per: Vec<PermissionType> = scope
        .iter()
        .copied()
        .filter(|t| t.is_per_mailbox())
        .collect();
    let early = read_as_listed(tenant, &user, arriving, &per, delivery.deadline);
    let (census, send_as_listing, early) = tokio::join!(census, send_as_listing, early);
    let census = census?;
    let early = early?;
    let touched: Vec<&MailboxInfo> = census
        .scanned_mailboxes()
        .into_iter()
        .filter(|m| touched.contains(&m.address()))
        .collect();
    let removed_by_run = |g: &Grant| {
        items
            .iter()
            .any(|i| i.status.is_removed() && i.grant.key() == g.key())
    };
    let put_back: Vec<Grant> = items
        .iter()
        .filter(|i| matches!(i.status, ItemStatus::Restored | ItemStatus::AlreadyPresent))
        .map(|i| i.grant.clone())
        .collect();
    let expect = match run.kind() {
        RunKind::Revoke => Expect::Gone(&removed_by_run),
        RunKind::Restore => Expect::Back(&put_back),
    };

    // The tenant-wide lookups (chunk 0) and the touched mailboxes (the other chunks) are read
    // side by side: they are different calls, and neither needs the other.
    let wide = async {
        if wide_read {
            return Ok(None);
        }
        let wide: Vec<PermissionType> = scope
            .iter()
            .copied()
            .filter(|t| !t.is_per_mailbox())
            .collect();
        let found = tenant_wide(tenant, &census, &wide, send_as_listing).await?;
        recheck(tenant, org, run, &census, &Part::TenantWide, found, &expect)
            .await
            .map(Some)
    };
    let mut chunks: BTreeMap<u32, RereadChunk> = done
        .iter()
        .filter(|(number, _)| **number != 0)
        .map(|(n, c)| (*n, c.clone()))
        .collect();
    let mailboxes = read_touched(
        store,
        tenant,
        org,
        run,
        &census,
        &touched,
        early,
        &scope,
        &expect,
        &mut chunks,
        delivery.deadline,
    );
    // The tenant-wide part stops at the deadline like the mailbox chunks: cut short, it is
    // read again by the continuation.
    let (wide, mailboxes) = tokio::join!(delivery.deadline.bound(wide), mailboxes);
    let wide_done = match wide {
        Ok(Some(found)) => {
            save(store, run_id, &mut done, 0, Vec::new(), found).await?;
            true
        }
        Ok(None) => true,
        Err(Reading::Scan(ScanError::Remote(e))) if e.is_stopped() => false,
        Err(e) => return Err(e),
    };
    let all_read = mailboxes?;
    done.extend(chunks);
    if !(wide_done && all_read) {
        return Ok(None);
    }
    // A mailbox that could not be read proves nothing: what the run found there counts as
    // remaining.
    let unreadable: BTreeSet<(String, PermissionType)> = done
        .values()
        .flat_map(|c| c.unreadable.iter().cloned())
        .collect();
    let mut remaining = Findings {
        grants: done.values().flat_map(|c| c.remaining.clone()).collect(),
        ..Findings::default()
    };
    remaining.grants.extend(
        items
            .iter()
            .filter(|i| unreadable.contains(&(i.grant.mailbox.clone(), i.grant.right)))
            .map(|i| i.grant.clone()),
    );
    // Settled as discovery's findings are: one grant read twice (its trustee shown once by
    // UPN, once by object id) or both read and unproven counts once.
    Ok(Some(Remaining {
        grants: remaining.settle().grants,
        errors: done.values().flat_map(|c| c.errors.clone()).collect(),
        unreadable,
    }))
}

/// The per-mailbox reads of each page's touched mailboxes, started as the pages arrive.
async fn read_as_listed(
    tenant: Tenant<'_>,
    user: &ResolvedUser,
    mut arriving: tokio::sync::mpsc::UnboundedReceiver<Vec<MailboxInfo>>,
    rights: &[PermissionType],
    deadline: Deadline,
) -> Result<Vec<(MailboxInfo, MailboxRead)>, crate::error::RemoteError> {
    let read_page = |page: Vec<MailboxInfo>| async move {
        let census = Census::for_shard(user.clone(), page);
        let targets: Vec<(&MailboxInfo, &[PermissionType])> =
            census.mailboxes.iter().map(|m| (m, rights)).collect();
        let reads = per_mailbox(tenant, &census, &targets, &NoProgress, deadline).await?;
        Ok::<_, crate::error::RemoteError>(census.mailboxes.into_iter().zip(reads).collect())
    };
    let mut reading = FuturesUnordered::new();
    let mut read: Vec<(MailboxInfo, MailboxRead)> = Vec::new();
    loop {
        tokio::select! {
            page = arriving.recv() => match page {
                Some(page) => reading.push(read_page(page)),
                None => break,
            },
            Some(done) = reading.next(), if !reading.is_empty() => {
                let done: Vec<(MailboxInfo, MailboxRead)> = done?;
                read.extend(done);
            }
        }
    }
    while let Some(done) = reading.next().await {
        read.extend(done?);
    }
    Ok(read)
}

/// Re-reads the touched mailboxes no saved chunk has read yet, a chunk at a time, saving each;
/// false when the deadline came first. `early` is what was read as the mailbox list came in:
/// kept for the mailboxes the list shows in scope.
#[allow(clippy::too_many_arguments)]
async fn read_touched(
    store: &dyn RunStore,
    tenant: Tenant<'_>,
    org: &OrgSettings,
    run: &Run,
    census: &Census,
    touched: &[&MailboxInfo],
    early: Vec<(MailboxInfo, MailboxRead)>,
    scope: &[PermissionType],
    expect: &Expect<'_>,
    chunks: &mut BTreeMap<u32, RereadChunk>,
    deadline: Deadline,
) -> Result<bool, Reading> {
    let by_address: HashMap<String, &MailboxInfo> =
        touched.iter().map(|m| (m.address(), *m)).collect();
    let mut early = early
        .into_iter()
        .filter(|(_, read)| read.complete())
        .filter_map(|(m, read)| by_address.get(&m.address()).map(|m| (*m, read)))
        .peekable();
    while early.peek().is_some() {
        let chunk: Vec<(&MailboxInfo, MailboxRead)> = early.by_ref().take(REREAD_CHUNK).collect();
        keep_chunk(store, tenant, org, run, census, expect, chunks, chunk).await?;
    }
    // The touched mailboxes no saved chunk has read yet, a chunk at a time; what a chunk read
    // before the deadline is saved even when the deadline cut it short, so every invocation
    // gets further.
    let per: Vec<PermissionType> = scope
        .iter()
        .copied()
        .filter(|t| t.is_per_mailbox())
        .collect();
    loop {
        let read: BTreeSet<&str> = chunks
            .values()
            .flat_map(|c| c.mailboxes.iter().map(String::as_str))
            .collect();
        let todo: Vec<&MailboxInfo> = touched
            .iter()
            .copied()
            .filter(|m| !read.contains(m.address().as_str()))
            .take(REREAD_CHUNK)
            .collect();
        if todo.is_empty() {
            break;
        }
        if deadline.near() {
            return Ok(false);
        }
        let targets: Vec<(&MailboxInfo, &[PermissionType])> =
            todo.iter().map(|m| (*m, per.as_slice())).collect();
        let reads = per_mailbox(tenant, census, &targets, &NoProgress, deadline).await?;
        // A mailbox counts as re-read once every type was: a part read is read again later.
        let chunk: Vec<(&MailboxInfo, MailboxRead)> = todo
            .iter()
            .copied()
            .zip(reads)
            .filter(|(_, read)| read.complete())
            .collect();
        if chunk.is_empty() {
            return Ok(false);
        }
        keep_chunk(store, tenant, org, run, census, expect, chunks, chunk).await?;
    }
    Ok(true)
}

/// Saves the complete reads of some touched mailboxes as the next chunk, after a second look
/// at what lags the run's writes.
#[allow(clippy::too_many_arguments)]
async fn keep_chunk(
    store: &dyn RunStore,
    tenant: Tenant<'_>,
    org: &OrgSettings,
    run: &Run,
    census: &Census,
    expect: &Expect<'_>,
    chunks: &mut BTreeMap<u32, RereadChunk>,
    reads: Vec<(&MailboxInfo, MailboxRead)>,
) -> Result<(), Reading> {
    let mut found = Findings::default();
    let mut chunk_mailboxes = Vec::new();
    let mut chunk: Vec<&MailboxInfo> = Vec::new();
    for (m, read) in reads {
        found.merge(read.found);
        chunk_mailboxes.push(m.address());
        chunk.push(m);
    }
    let part = Part::Mailboxes(&chunk);
    let found = recheck(tenant, org, run, census, &part, found, expect).await?;
    let number = chunks.keys().max().copied().unwrap_or(0) + 1;
    save(store, &run.run_id, chunks, number, chunk_mailboxes, found).await
}

async fn save(
    store: &dyn RunStore,
    run_id: &crate::model::RunId,
    done: &mut BTreeMap<u32, RereadChunk>,
    chunk: u32,
    mailboxes: Vec<String>,
    found: Findings,
) -> Result<(), Reading> {
    let saved = RereadChunk {
        chunk,
        mailboxes,
        remaining: found.grants,
        errors: found.errors,
        unreadable: found.unreadable,
    };
    store.save_reread_chunk(run_id, &saved).await?;
    done.insert(chunk, saved);
    Ok(())
}

/// A part of the re-read.
enum Part<'a> {
    /// Send As and Send on Behalf, tenant-wide.
    TenantWide,
    Mailboxes(&'a [&'a MailboxInfo]),
}

impl Part<'_> {
    /// Whether this part reads `g`.
    fn covers(&self, g: &Grant) -> bool {
        match self {
            Part::TenantWide => !g.right.is_per_mailbox(),
            Part::Mailboxes(mailboxes) => {
                g.right.is_per_mailbox() && mailboxes.iter().any(|m| m.address() == g.mailbox)
            }
        }
    }
}

/// What the run's writes should show on re-read.
enum Expect<'a> {
    /// A revocation: the grants it removed (for which this says true) are gone.
    Gone(&'a (dyn Fn(&Grant) -> bool + Sync)),
    /// A restore: these grants are back.
    Back(&'a [Grant]),
}

async fn read_part(
    tenant: Tenant<'_>,
    census: &Census,
    part: &Part<'_>,
    rights: &[PermissionType],
) -> Result<Findings, crate::error::RemoteError> {
    match part {
        Part::TenantWide => tenant_wide(tenant, census, rights, None).await,
        Part::Mailboxes(mailboxes) => {
            let targets: Vec<(&MailboxInfo, &[PermissionType])> =
                mailboxes.iter().map(|m| (*m, rights)).collect();
            let reads = per_mailbox(tenant, census, &targets, &NoProgress, Deadline::NONE).await?;
            let mut found = Findings::default();
            for read in reads {
                found.merge(read.found);
            }
            Ok(found)
        }
    }
}

/// Reads again, after a pause, what lags the run's writes (Exchange may answer from a replica
/// that lags): for a revocation, the grants it removed that still show — keeping those the
/// second look still finds; for a restore, the grants it put back that do not show yet —
/// adding those the second look finds. The mailbox list carries Send on Behalf too: it is read
/// again when that lags.
async fn recheck(
    tenant: Tenant<'_>,
    org: &OrgSettings,
    run: &Run,
    census: &Census,
    part: &Part<'_>,
    mut found: Findings,
    expect: &Expect<'_>,
) -> Result<Findings, Reading> {
    let mut fresh: Option<Census> = None;
    for _ in 0..tenant.recheck.attempts {
        let shows = |g: &Grant| found.grants.iter().any(|f| f.key() == g.key());
        let lagging: Vec<&Grant> = match expect {
            Expect::Gone(removed_by_run) => {
                found.grants.iter().filter(|g| removed_by_run(g)).collect()
            }
            Expect::Back(back) => back
                .iter()
                .filter(|g| part.covers(g) && !shows(g))
                .collect(),
        };
        if lagging.is_empty() {
            break;
        }
        info!(
            grants = lagging.len(),
            "the re-read lags this run's writes; reading those grants again after a pause"
        );
        let mut rights: Vec<PermissionType> = lagging.iter().map(|g| g.right).collect();
        rights.sort();
        rights.dedup();
        let lagging_mailboxes: BTreeSet<&str> =
            lagging.iter().map(|g| g.mailbox.as_str()).collect();
        tokio::time::sleep(tenant.recheck.delay).await;
        if rights.contains(&PermissionType::SendOnBehalf) {
            let user = census.user.clone();
            fresh = Some(Census::reread(tenant, org, user, &run.request).await?);
        }
        let census = fresh.as_ref().unwrap_or(census);
        let again = match part {
            Part::TenantWide => read_part(tenant, census, part, &rights).await?,
            Part::Mailboxes(mailboxes) => {
                let only: Vec<&MailboxInfo> = mailboxes
                    .iter()
                    .copied()
                    .filter(|m| lagging_mailboxes.contains(m.address().as_str()))
                    .collect();
                read_part(tenant, census, &Part::Mailboxes(&only), &rights).await?
            }
        };
        match expect {
            Expect::Gone(removed_by_run) => found
                .grants
                .retain(|g| !removed_by_run(g) || again.grants.iter().any(|a| a.key() == g.key())),
            Expect::Back(_) => {
                for g in again.grants {
                    if !found.grants.iter().any(|f| f.key() == g.key()) {
                        found.grants.push(g);
                    }
                }
            }
        }
    }
    Ok(found)
}
